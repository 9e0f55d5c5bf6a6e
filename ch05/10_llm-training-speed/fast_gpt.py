"""5장 보너스: 훈련이 더 빠른 GPTModel.

4장의 ``GPTModel`` 을 물려받아 계산 방식만 바꾼다. 파라미터 이름과 모양은 ``GPTModel`` 과 같으므로
``GPTModel`` 체크포인트를 그대로 ``load_state_dict`` 할 수 있고, 같은 가중치면 (fp32에서) 같은 로짓이 나온다.

- ``SDPAMultiHeadAttention``: 3장 ``MultiHeadAttention`` 의 forward 를 ``F.scaled_dot_product_attention`` 한 번으로.
- ``NativeLayerNorm``, ``NativeGELU``: 4장 ``LayerNorm``, ``GELU`` 의 수식을 PyTorch 네이티브 커널 하나로.
- 어휘 크기를 64의 배수로 늘리기(50,257 -> 50,304): 늘어난 열의 로짓은 -inf 로 가려서 손실과 확률이 바뀌지 않는다.
"""

import torch
import torch.nn.functional as F

from llm_from_scratch.ch03 import MultiHeadAttention
from llm_from_scratch.ch04 import GELU, GPTModel, LayerNorm

__all__ = [
    "FastGPTModel",
    "NativeGELU",
    "NativeLayerNorm",
    "SDPAMultiHeadAttention",
    "padded_vocab_size",
]

# 어휘 크기가 바뀌는 두 텐서(토큰 임베딩의 행, 출력층의 행)
_VOCAB_ROWS = ("tok_emb.weight", "out_head.weight")


def padded_vocab_size(vocab_size, multiple=64):
    """``vocab_size`` 이상인 가장 작은 ``multiple`` 의 배수. ``multiple=1`` 이면 그대로."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size 는 1 이상이어야 합니다(받은 값: {vocab_size}).")
    if multiple < 1:
        raise ValueError(
            f"어휘 패딩 단위 multiple 은 1 이상이어야 합니다(받은 값: {multiple}). 패딩을 끄려면 1 을 쓰세요."
        )
    return -(-vocab_size // multiple) * multiple


class SDPAMultiHeadAttention(MultiHeadAttention):
    """3장 ``MultiHeadAttention`` 과 가중치가 같고, 어텐션 계산만 PyTorch 의 SDPA 커널에 맡긴다.

    점수 행렬, 마스킹, 소프트맥스, 드롭아웃, 값의 가중합을 커널 하나가 처리하므로 중간 텐서를 덜 만든다.
    ``mask`` 버퍼는 쓰지 않지만 state_dict 키를 ``MultiHeadAttention`` 과 맞추려고 그대로 둔다.
    """

    def forward(self, x):
        b, num_tokens, _ = x.shape
        if num_tokens > self.mask.shape[0]:
            raise ValueError(f"입력 토큰 수 {num_tokens}가 context_length {self.mask.shape[0]}보다 깁니다.")
        # (b, 토큰, d_out) -> (b, 헤드, 토큰, head_dim)
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        keys = self.W_key(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

        dropout_p = self.dropout.p if self.training else 0.0
        context_vec = F.scaled_dot_product_attention(queries, keys, values, dropout_p=dropout_p, is_causal=True)
        context_vec = context_vec.transpose(1, 2).reshape(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


class NativeLayerNorm(LayerNorm):
    """4장 ``LayerNorm`` 과 같은 식(분산은 n 으로 나눔, eps 1e-5)을 ``F.layer_norm`` 커널 하나로 계산한다."""

    def forward(self, x):
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)


class NativeGELU(GELU):
    """4장 ``GELU`` 와 같은 tanh 근사를 ``F.gelu(approximate="tanh")`` 커널 하나로 계산한다."""

    def forward(self, x):
        return F.gelu(x, approximate="tanh")


def _swap_class(module, new_class):
    # 서브클래스는 forward 만 바꾸고 파라미터·버퍼는 그대로이므로, 이미 만든 모듈의 클래스만 바꾼다
    # (가중치를 새로 만들거나 복사하지 않는다)
    module.__class__ = new_class


class FastGPTModel(GPTModel):
    """``GPTModel`` 과 같은 가중치로 더 빠르게 훈련하는 모델. 각 최적화는 인자로 끄고 켤 수 있다.

    Args:
        cfg: 책의 설정 딕셔너리(``GPT_CONFIG_124M`` 과 같은 키).
        sdpa: 어텐션을 ``F.scaled_dot_product_attention`` 으로 계산한다.
        native_layernorm: 층 정규화를 ``F.layer_norm`` 으로 계산한다.
        native_gelu: GELU 를 ``F.gelu(approximate="tanh")`` 로 계산한다.
        vocab_multiple: 어휘 크기를 이 수의 배수로 늘린다(1 이면 늘리지 않는다). 늘어난 열의 로짓은 -inf 이다.

    ``state_dict()`` 는 늘어난 행을 잘라 ``GPTModel`` 과 같은 모양으로 돌려주고, ``load_state_dict()`` 는
    ``GPTModel`` 모양의 텐서를 받으면 0으로 채운 행을 덧붙여 읽는다. 그래서 두 모델 사이에 체크포인트를
    그대로 주고받을 수 있다.
    """

    def __init__(self, cfg, *, sdpa=True, native_layernorm=True, native_gelu=True, vocab_multiple=64):
        padded = padded_vocab_size(cfg["vocab_size"], vocab_multiple)
        super().__init__({**cfg, "vocab_size": padded})
        self.vocab_size = cfg["vocab_size"]

        for block in self.trf_blocks:
            if sdpa:
                _swap_class(block.att, SDPAMultiHeadAttention)
            if native_layernorm:
                _swap_class(block.norm1, NativeLayerNorm)
                _swap_class(block.norm2, NativeLayerNorm)
            if native_gelu:
                _swap_class(block.ff.layers[1], NativeGELU)
        if native_layernorm:
            _swap_class(self.final_norm, NativeLayerNorm)

        if padded > self.vocab_size:
            with torch.no_grad():
                self.tok_emb.weight[self.vocab_size :].zero_()
                self.out_head.weight[self.vocab_size :].zero_()
        self.register_state_dict_post_hook(_drop_vocab_padding)
        self.register_load_state_dict_pre_hook(_add_vocab_padding)

    def forward(self, in_idx):
        logits = super().forward(in_idx)
        if logits.shape[-1] > self.vocab_size:
            # 없는 토큰의 확률을 0으로: 소프트맥스·크로스 엔트로피가 패딩 전과 같아진다
            logits[..., self.vocab_size :] = float("-inf")
        return logits


def _drop_vocab_padding(module, state_dict, prefix, local_metadata):
    for name in _VOCAB_ROWS:
        key = prefix + name
        if key in state_dict:
            state_dict[key] = state_dict[key][: module.vocab_size].clone()


def _add_vocab_padding(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
    padded = module.tok_emb.num_embeddings
    for name in _VOCAB_ROWS:
        key = prefix + name
        tensor = state_dict.get(key)
        if tensor is None or tensor.shape[0] == padded:
            continue
        if tensor.shape[0] != module.vocab_size:
            raise ValueError(
                f"{key} 의 행 수가 {tensor.shape[0]}입니다. 이 모델의 어휘 크기 {module.vocab_size}"
                f"(또는 패딩한 크기 {padded})와 같아야 합니다."
            )
        padding = tensor.new_zeros(padded - tensor.shape[0], *tensor.shape[1:])
        state_dict[key] = torch.cat([tensor, padding])
