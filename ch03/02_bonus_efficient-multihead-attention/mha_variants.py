"""3장 보너스: 멀티 헤드 코잘 어텐션을 계산하는 여러 방법.

3장의 두 클래스(``MultiHeadAttentionWrapper``, ``MultiHeadAttention``)는 ``llm_from_scratch.ch03`` 에서 가져오고,
이 파일에는 같은 계산을 다른 방식으로 하는 변형만 있다. 모든 변형은 ``(배치, 토큰, d_in)`` 입력을 받아
``(배치, 토큰, d_out)`` 을 내며, ``copy_weights_from_mha`` 로 ``MultiHeadAttention`` 하나의 가중치를 옮겨 받으면
같은 입력에 (부동소수점 오차 안에서) 같은 출력을 낸다.

mha-implementations.ipynb 가 이 파일의 클래스와 함수를 같은 코드로 셀에서 하나씩 정의하며 설명한다
(tests/test_listings.py 가 둘이 같은지 확인한다).
"""

import statistics
import time

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention

from llm_from_scratch.ch03 import MultiHeadAttention, MultiHeadAttentionWrapper

try:  # FlexAttention 은 PyTorch 2.5 부터 있다
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:
    create_block_mask = flex_attention = None

FLEX_ATTENTION_AVAILABLE = flex_attention is not None

__all__ = [
    "FLEX_ATTENTION_AVAILABLE",
    "MHAEinsum",
    "MHAPyTorchClass",
    "MHAPyTorchFlexAttention",
    "MHAPyTorchSDPA",
    "MHAPyTorchSDPAMath",
    "MultiHeadAttentionCombinedQKV",
    "MultiHeadAttentionWrapperWithProj",
    "benchmark_ms",
    "build_variants",
    "copy_weights_from_mha",
]


def _check_heads(d_out, num_heads):
    if num_heads < 1 or d_out % num_heads != 0:
        raise ValueError(
            f"d_out({d_out})은 1 이상인 num_heads({num_heads})로 나누어떨어져야 합니다(헤드마다 같은 차원을 맡는다)."
        )


def _check_length(num_tokens, context_length):
    if num_tokens > context_length:
        raise ValueError(f"입력 토큰 수 {num_tokens}가 context_length {context_length}보다 깁니다.")


def _causal_mask(context_length):
    # 대각선 위(미래 토큰)가 True 인 마스크
    return torch.triu(torch.ones(context_length, context_length, dtype=torch.bool), diagonal=1)


class MultiHeadAttentionWrapperWithProj(MultiHeadAttentionWrapper):
    """3장의 래퍼에 ``MultiHeadAttention`` 과 같은 출력 투영(``out_proj``)을 붙인 것.

    래퍼의 ``d_out`` 은 헤드 하나의 크기지만, 여기서는 다른 변형과 같이 전체 출력 크기를 받아 헤드 수로 나눈다.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        _check_heads(d_out, num_heads)
        super().__init__(d_in, d_out // num_heads, context_length, dropout, num_heads, qkv_bias)
        self.d_out = d_out
        self.num_heads = num_heads
        self.out_proj = nn.Linear(d_out, d_out)

    def forward(self, x):
        return self.out_proj(super().forward(x))


class MultiHeadAttentionCombinedQKV(nn.Module):
    """쿼리·키·값을 선형 층 하나(``qkv``, 출력 3 × d_out)로 한 번에 투영하는 멀티 헤드 어텐션."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        _check_heads(d_out, num_heads)
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", _causal_mask(context_length))

    def forward(self, x):
        b, num_tokens, _d_in = x.shape
        _check_length(num_tokens, self.mask.shape[0])
        # (b, 토큰, 3·d_out) -> (b, 토큰, 3, 헤드, head_dim) -> (3, b, 헤드, 토큰, head_dim)
        qkv = self.qkv(x).view(b, num_tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        queries, keys, values = qkv.unbind(0)

        attn_scores = queries @ keys.transpose(-2, -1)
        attn_scores = attn_scores.masked_fill(self.mask[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = self.dropout(torch.softmax(attn_scores / self.head_dim**0.5, dim=-1))

        context_vec = (attn_weights @ values).transpose(1, 2).reshape(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


class MHAEinsum(nn.Module):
    """투영과 어텐션을 모두 ``torch.einsum`` 으로 적는 멀티 헤드 어텐션.

    가중치는 ``SelfAttention_v1`` 처럼 ``(d_in, d_out)`` 모양의 파라미터로 둔다. einsum 이 축 이름으로 곱할 축을
    고르므로 ``transpose`` 가 필요 없다.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        _check_heads(d_out, num_heads)
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Parameter(torch.empty(d_in, d_out))
        self.W_key = nn.Parameter(torch.empty(d_in, d_out))
        self.W_value = nn.Parameter(torch.empty(d_in, d_out))
        for weight in (self.W_query, self.W_key, self.W_value):
            nn.init.xavier_uniform_(weight)
        if qkv_bias:
            self.b_query = nn.Parameter(torch.zeros(d_out))
            self.b_key = nn.Parameter(torch.zeros(d_out))
            self.b_value = nn.Parameter(torch.zeros(d_out))
        else:
            self.b_query = self.b_key = self.b_value = None
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", _causal_mask(context_length))

    def _project(self, x, weight, bias):
        out = torch.einsum("bnd,do->bno", x, weight)
        if bias is not None:
            out = out + bias
        return out.view(*out.shape[:2], self.num_heads, self.head_dim)  # (b, 토큰, 헤드, head_dim)

    def forward(self, x):
        b, num_tokens, _d_in = x.shape
        _check_length(num_tokens, self.mask.shape[0])
        queries = self._project(x, self.W_query, self.b_query)
        keys = self._project(x, self.W_key, self.b_key)
        values = self._project(x, self.W_value, self.b_value)

        # q: 쿼리 위치, k: 키 위치, h: 헤드, d: head_dim
        attn_scores = torch.einsum("bqhd,bkhd->bhqk", queries, keys)
        attn_scores = attn_scores.masked_fill(self.mask[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = self.dropout(torch.softmax(attn_scores / self.head_dim**0.5, dim=-1))

        context_vec = torch.einsum("bhqk,bkhd->bqhd", attn_weights, values).reshape(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


class MHAPyTorchSDPA(nn.Module):
    """어텐션 계산을 ``torch.nn.functional.scaled_dot_product_attention`` 에 맡기는 멀티 헤드 어텐션.

    PyTorch 가 장치와 입력에 맞춰 빠른 커널(FlashAttention 등)을 고른다. 코잘 마스크는 ``is_causal=True`` 로 준다.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        _check_heads(d_out, num_heads)
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.dropout = dropout
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)

    def forward(self, x):
        b, num_tokens, _d_in = x.shape
        _check_length(num_tokens, self.context_length)
        qkv = self.qkv(x).view(b, num_tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        queries, keys, values = qkv.unbind(0)

        dropout_p = self.dropout if self.training else 0.0
        context_vec = scaled_dot_product_attention(queries, keys, values, dropout_p=dropout_p, is_causal=True)

        context_vec = context_vec.transpose(1, 2).reshape(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


class MHAPyTorchSDPAMath(MHAPyTorchSDPA):
    """``MHAPyTorchSDPA`` 와 같지만 SDPA 를 수학(math) 커널로만 돌리게 강제한 것.

    수학 커널은 어텐션 행렬을 통째로 만드는 참고 구현이라, 빠른 커널(FlashAttention 등)이 얼마나 이득인지 보여 준다.
    """

    def forward(self, x):
        with sdpa_kernel(SDPBackend.MATH):
            return super().forward(x)


class MHAPyTorchFlexAttention(MHAPyTorchSDPA):
    """어텐션 계산을 ``torch.nn.attention.flex_attention`` 에 맡기는 멀티 헤드 어텐션.

    코잘 마스크는 "쿼리 위치 >= 키 위치" 함수(``mask_mod``)에서 만든 블록 마스크로 준다. 블록 마스크는 토큰 수와 장치마다
    한 번 만들어 둔다. GPU 에서는 ``torch.compile`` 로 감싸야 빠른 커널이 생기고, 그냥 부르면(CPU 포함) 어텐션 행렬을
    통째로 만드는 느린 참고 구현으로 돈다. 어텐션 드롭아웃은 지원하지 않는다.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        if not FLEX_ATTENTION_AVAILABLE:
            raise RuntimeError(f"FlexAttention 은 PyTorch 2.5 이상에 있습니다(지금 {torch.__version__}).")
        if dropout:
            raise ValueError(f"FlexAttention 변형은 어텐션 드롭아웃을 지원하지 않습니다(dropout={dropout}). 0.0 을 주세요.")
        super().__init__(d_in, d_out, context_length, dropout, num_heads, qkv_bias)
        self._block_masks = {}
        self.flex_attention = flex_attention  # torch.compile 한 함수로 바꿔 끼울 수 있게 속성으로 둔다

    @staticmethod
    def _causal(batch, head, q_idx, kv_idx):
        return q_idx >= kv_idx

    def _block_mask(self, num_tokens, device):
        key = (num_tokens, str(device))
        if key not in self._block_masks:
            self._block_masks[key] = create_block_mask(
                self._causal, B=None, H=None, Q_LEN=num_tokens, KV_LEN=num_tokens, device=device
            )
        return self._block_masks[key]

    def forward(self, x):
        b, num_tokens, _d_in = x.shape
        _check_length(num_tokens, self.context_length)
        qkv = self.qkv(x).view(b, num_tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        queries, keys, values = qkv.unbind(0)

        block_mask = self._block_mask(num_tokens, x.device)
        context_vec = self.flex_attention(queries, keys, values, block_mask=block_mask)

        context_vec = context_vec.transpose(1, 2).reshape(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


class MHAPyTorchClass(nn.Module):
    """PyTorch 의 ``nn.MultiheadAttention`` 을 코잘 마스크와 함께 쓰는 감싸개.

    ``nn.MultiheadAttention`` 은 입력 크기와 출력 크기가 같아야 하므로 ``d_in == d_out`` 이어야 한다.
    편향 설정 하나(``bias``)가 입력 투영과 출력 투영에 함께 적용되므로, ``qkv_bias=False`` 일 때도
    ``MultiHeadAttention`` 처럼 출력 투영에는 편향을 둔다.

    ``need_weights=True`` (``nn.MultiheadAttention`` 의 기본값)이면 헤드 평균 어텐션 가중치를 만들어 돌려주느라
    빠른 경로(SDPA)를 쓰지 못한다. 비교하려고 둘 다 만들 수 있게 했다.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False, need_weights=False):
        super().__init__()
        self.need_weights = need_weights
        _check_heads(d_out, num_heads)
        if d_in != d_out:
            raise ValueError(f"nn.MultiheadAttention 은 d_in 과 d_out 이 같아야 합니다(d_in={d_in}, d_out={d_out}).")
        self.d_out = d_out
        self.num_heads = num_heads
        self.mha = nn.MultiheadAttention(d_out, num_heads, dropout=dropout, bias=qkv_bias, batch_first=True)
        if not qkv_bias:
            self.mha.out_proj.bias = nn.Parameter(torch.zeros(d_out))
        self.register_buffer("mask", _causal_mask(context_length))

    def forward(self, x):
        num_tokens = x.shape[1]
        _check_length(num_tokens, self.mask.shape[0])
        attn_mask = self.mask[:num_tokens, :num_tokens]
        # need_weights=False 여야 어텐션 가중치를 따로 만들지 않고 빠른 경로를 쓴다
        out, _ = self.mha(x, x, x, attn_mask=attn_mask, need_weights=self.need_weights, is_causal=True)
        return out


def _copy(target, source, what):
    if (target is None) != (source is None):
        raise ValueError(f"{what}: 원본과 대상의 qkv_bias 설정이 다릅니다(둘 다 켜거나 둘 다 꺼야 합니다).")
    if target is not None:
        target.copy_(source)


def copy_weights_from_mha(source, target):
    """``MultiHeadAttention`` 하나(``source``)의 가중치를 다른 변형(``target``)에 옮긴다.

    옮긴 뒤에는 두 모듈이 같은 입력에 같은 출력을 낸다.

    Args:
        source: 가중치를 줄 ``llm_from_scratch.ch03.MultiHeadAttention``.
        target: 이 파일의 변형이나 또 다른 ``MultiHeadAttention``. 헤드 수와 ``d_out`` 이 같아야 한다.
    """
    if not isinstance(source, MultiHeadAttention):
        raise TypeError(f"source 는 MultiHeadAttention 이어야 합니다(받은 것: {type(source).__name__}).")
    if (target.d_out, target.num_heads) != (source.d_out, source.num_heads):
        raise ValueError(
            f"d_out 과 num_heads 가 같아야 합니다: 원본 ({source.d_out}, {source.num_heads}), "
            f"대상 ({target.d_out}, {target.num_heads})."
        )
    wq, wk, wv = source.W_query, source.W_key, source.W_value
    with torch.no_grad():
        if isinstance(target, MultiHeadAttention):
            target.load_state_dict(source.state_dict())
            return
        if isinstance(target, MultiHeadAttentionWrapperWithProj):
            # 헤드 h 는 큰 행렬의 h 번째 행 묶음(출력 차원 조각)을 맡는다
            head_dim = source.head_dim
            for h, head in enumerate(target.heads):
                rows = slice(h * head_dim, (h + 1) * head_dim)
                for mine, theirs in ((head.W_query, wq), (head.W_key, wk), (head.W_value, wv)):
                    mine.weight.copy_(theirs.weight[rows])
                    _copy(mine.bias, None if theirs.bias is None else theirs.bias[rows], "래퍼의 헤드 편향")
            out_proj = target.out_proj
        elif isinstance(target, MultiHeadAttentionCombinedQKV | MHAPyTorchSDPA):
            target.qkv.weight.copy_(torch.cat([wq.weight, wk.weight, wv.weight]))
            biases = None if wq.bias is None else torch.cat([wq.bias, wk.bias, wv.bias])
            _copy(target.qkv.bias, biases, "qkv 편향")
            out_proj = target.out_proj
        elif isinstance(target, MHAEinsum):
            # nn.Linear 는 (d_out, d_in) 으로 저장하므로 전치해서 넣는다
            for mine, my_bias, theirs in (
                (target.W_query, target.b_query, wq),
                (target.W_key, target.b_key, wk),
                (target.W_value, target.b_value, wv),
            ):
                mine.copy_(theirs.weight.T)
                _copy(my_bias, theirs.bias, "einsum 편향")
            out_proj = target.out_proj
        elif isinstance(target, MHAPyTorchClass):
            target.mha.in_proj_weight.copy_(torch.cat([wq.weight, wk.weight, wv.weight]))
            biases = None if wq.bias is None else torch.cat([wq.bias, wk.bias, wv.bias])
            _copy(target.mha.in_proj_bias, biases, "in_proj 편향")
            out_proj = target.mha.out_proj
        else:
            raise TypeError(f"가중치를 옮길 줄 모르는 모듈입니다: {type(target).__name__}")
        out_proj.weight.copy_(source.out_proj.weight)
        out_proj.bias.copy_(source.out_proj.bias)


def build_variants(d_in, d_out, context_length, num_heads, dropout=0.0, qkv_bias=False, seed=123):
    """비교할 구현을 모두 만들고, 모두 같은 가중치를 갖게 한다.

    기준인 3장 ``MultiHeadAttention`` 을 시드 ``seed`` 로 먼저 만든 뒤, 그 가중치를 나머지 변형에 옮긴다.
    FlexAttention 은 PyTorch 2.5 이상이고 ``dropout`` 이 0 일 때만 넣는다.

    Returns:
        이름 -> 모듈 딕셔너리. 키 "Ch03 MultiHeadAttention" 이 기준 구현이다(이름은 그래프 글꼴 때문에 영문).
    """
    torch.manual_seed(seed)
    args = (d_in, d_out, context_length, dropout, num_heads, qkv_bias)
    reference = MultiHeadAttention(*args)
    variants = {
        "Ch03 wrapper + out_proj": MultiHeadAttentionWrapperWithProj(*args),
        "Ch03 MultiHeadAttention": reference,
        "Combined QKV": MultiHeadAttentionCombinedQKV(*args),
        "Einsum": MHAEinsum(*args),
        "F.scaled_dot_product_attention": MHAPyTorchSDPA(*args),
        "SDPA (math kernel)": MHAPyTorchSDPAMath(*args),
        "nn.MultiheadAttention": MHAPyTorchClass(*args),
        "nn.MultiheadAttention (need_weights=True)": MHAPyTorchClass(*args, need_weights=True),
    }
    if FLEX_ATTENTION_AVAILABLE and not dropout:
        variants["FlexAttention"] = MHAPyTorchFlexAttention(*args)
    for module in variants.values():
        if module is not reference:
            copy_weights_from_mha(reference, module)
    return variants


def benchmark_ms(module, x, *, backward=False, repeats=3, warmup=1):
    """``module(x)`` 한 번에 걸린 시간의 중앙값을 밀리초로 잰다.

    Args:
        module: 잴 모듈(``x`` 와 같은 장치에 있어야 한다).
        x: 입력 텐서.
        backward: True 면 순전파 + ``sum().backward()`` 를, False 면 기울기 없이(``torch.no_grad``) 순전파만 잰다.
        repeats: 잰 횟수(중앙값을 쓴다).
        warmup: 재기 전에 버리는 실행 횟수(메모리 할당, 커널 선택 같은 첫 실행 비용을 뺀다).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats 는 1 이상, warmup 은 0 이상이어야 합니다(repeats={repeats}, warmup={warmup}).")

    def step():
        if backward:
            module.zero_grad(set_to_none=True)
            module(x).sum().backward()
        else:
            with torch.no_grad():
                module(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000
