"""GPT 에서 Llama 2, Llama 3/3.1/3.2 로: 모델 구조.

4장의 GPTModel 에서 네 가지를 바꾼다: 층 정규화 -> RMSNorm, GELU -> SiLU 와 SwiGLU 피드 포워드,
절대 위치 임베딩 -> RoPE(회전 위치 임베딩), 드롭아웃과 편향은 뺀다. Llama 3 은 여기에 그룹 쿼리 어텐션(GQA),
RoPE 기저 500,000, (3.1 부터) RoPE 주파수 조정을 더한다. 생성 속도를 위해 어텐션에 KV 캐시가 들어 있다.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LLAMA2_CONFIG_7B",
    "LLAMA3_CONFIG_8B",
    "LLAMA31_CONFIG_8B",
    "LLAMA32_CONFIG_1B",
    "LLAMA32_CONFIG_3B",
    "FeedForward",
    "GroupedQueryAttention",
    "Llama2Model",
    "Llama3Model",
    "MultiHeadAttention",
    "RMSNorm",
    "SiLU",
    "TransformerBlock",
    "apply_rope",
    "compute_rope_params",
    "count_parameters",
    "generate_cached",
    "model_memory_size",
    "scale_rope_frequencies",
]

LLAMA2_CONFIG_7B = {
    "vocab_size": 32_000,  # 어휘 사전 크기(SentencePiece)
    "context_length": 4096,  # 문맥 길이
    "emb_dim": 4096,  # 임베딩 차원
    "n_heads": 32,  # 어텐션 헤드 수
    "n_layers": 32,  # 트랜스포머 블록 수
    "hidden_dim": 11_008,  # 피드 포워드 중간 차원
    "rope_base": 10_000.0,  # RoPE 기저(theta)
    "rope_freq": None,  # RoPE 주파수 조정(Llama 3.1 부터)
    "dtype": torch.bfloat16,  # 메모리를 아끼려고 bfloat16 으로 만든다
}

LLAMA3_CONFIG_8B = {
    "vocab_size": 128_256,  # 어휘 사전이 네 배로 커졌다(tiktoken 기반 BPE)
    "context_length": 8192,  # 문맥 길이가 두 배로
    "emb_dim": 4096,
    "n_heads": 32,
    "n_layers": 32,
    "hidden_dim": 14_336,  # 피드 포워드가 더 넓다
    "n_kv_groups": 8,  # 그룹 쿼리 어텐션: 키·값 헤드 8개를 쿼리 헤드 32개가 나눠 쓴다
    "rope_base": 500_000.0,  # RoPE 기저가 50배로
    "rope_freq": None,
    "dtype": torch.bfloat16,
}

LLAMA31_CONFIG_8B = {
    **LLAMA3_CONFIG_8B,
    "context_length": 131_072,  # 128k 토큰
    "rope_freq": {  # 긴 문맥을 위해 낮은 주파수를 늘린다
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_context_length": 8192,
    },
}

LLAMA32_CONFIG_1B = {
    **LLAMA31_CONFIG_8B,
    "emb_dim": 2048,  # 임베딩 차원이 절반
    "n_layers": 16,  # 층 수가 절반
    "hidden_dim": 8192,
    "rope_freq": {**LLAMA31_CONFIG_8B["rope_freq"], "factor": 32.0},
}

LLAMA32_CONFIG_3B = {
    **LLAMA32_CONFIG_1B,
    "emb_dim": 3072,
    "n_heads": 24,
    "n_layers": 28,
}

class RMSNorm(nn.Module):
    """평균을 빼지 않고 제곱평균제곱근(RMS)으로만 나누는 정규화. 이동(shift) 파라미터도 없다.

    계산은 float32 로 하고 결과를 입력의 dtype 으로 돌린다(bfloat16 모델에서도 정확하게).
    """

    def __init__(self, emb_dim, eps=1e-5, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(emb_dim, dtype=dtype))

    def forward(self, x):
        x_float = x.float()
        normed = x_float * torch.rsqrt(x_float.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


class SiLU(nn.Module):
    """SiLU(Swish): x * 시그모이드(x). GELU 와 모양이 비슷하지만 계산이 더 간단하다."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class FeedForward(nn.Module):
    """SwiGLU 피드 포워드: SiLU(fc1(x)) 로 fc2(x) 의 각 성분을 얼마나 통과시킬지 정한 뒤 fc3 으로 줄인다."""

    def __init__(self, cfg):
        super().__init__()
        dtype = cfg.get("dtype")
        self.fc1 = nn.Linear(cfg["emb_dim"], cfg["hidden_dim"], bias=False, dtype=dtype)  # 게이트
        self.fc2 = nn.Linear(cfg["emb_dim"], cfg["hidden_dim"], bias=False, dtype=dtype)  # 값
        self.fc3 = nn.Linear(cfg["hidden_dim"], cfg["emb_dim"], bias=False, dtype=dtype)
        self.silu = SiLU()

    def forward(self, x):
        return self.fc3(self.silu(self.fc1(x)) * self.fc2(x))


def compute_rope_params(head_dim, theta_base=10_000.0, context_length=4096, freq_config=None):
    """위치 0 .. context_length-1 의 RoPE 코사인·사인 표를 만든다. 모양은 (context_length, head_dim), float32.

    Args:
        head_dim: 헤드 하나의 차원(짝수).
        theta_base: 주파수의 기저. Llama 2 는 10,000, Llama 3 은 500,000.
        context_length: 표를 만들 위치의 수.
        freq_config: Llama 3.1 부터 쓰는 주파수 조정 설정(``scale_rope_frequencies`` 참고). 없으면 None.
    """
    if head_dim % 2 != 0:
        raise ValueError(f"RoPE 의 head_dim 은 짝수여야 합니다(받은 값: {head_dim}).")
    # 차원 쌍 i 의 회전 속도(역주파수): 1 / theta^(2i/d). 앞쪽 쌍은 빠르게, 뒤쪽 쌍은 느리게 돈다
    inv_freq = 1.0 / (theta_base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    if freq_config is not None:
        inv_freq = scale_rope_frequencies(inv_freq, **freq_config)  # Llama 3.1 (Llama 3 노트북에서 다룬다)
    positions = torch.arange(context_length, dtype=torch.float32)
    angles = positions[:, None] * inv_freq[None, :]  # (위치, head_dim / 2)
    angles = torch.cat([angles, angles], dim=-1)  # 앞 절반과 뒤 절반이 한 쌍을 이룬다
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x, cos, sin):
    """(배치, 헤드, 토큰, head_dim) 텐서의 차원 쌍 (i, i + head_dim/2) 를 위치마다 다른 각도로 회전한다.

    ``cos``, ``sin`` 은 이 토큰들의 위치에 해당하는 행만 잘라 넘긴다: 모양 (토큰, head_dim).
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


def scale_rope_frequencies(inv_freq, factor, low_freq_factor, high_freq_factor, original_context_length):
    """Llama 3.1 의 RoPE 주파수 조정: 파장이 긴(느린) 주파수만 ``factor`` 배 느리게 해 긴 문맥으로 늘린다.

    파장이 ``original_context_length / low_freq_factor`` 보다 길면 ``factor`` 로 나누고,
    ``original_context_length / high_freq_factor`` 보다 짧으면 그대로 두고, 그 사이는 부드럽게 잇는다.
    """
    if not low_freq_factor < high_freq_factor:
        raise ValueError(
            f"low_freq_factor({low_freq_factor})는 high_freq_factor({high_freq_factor})보다 작아야 합니다."
        )
    low_freq_wavelen = original_context_length / low_freq_factor
    high_freq_wavelen = original_context_length / high_freq_factor
    wavelen = 2 * math.pi / inv_freq

    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (original_context_length / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * (scaled / factor) + smooth * scaled
    is_medium = (wavelen <= low_freq_wavelen) & (wavelen >= high_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


class MultiHeadAttention(nn.Module):
    """Llama 의 멀티 헤드 어텐션: 3장과 같지만 편향·드롭아웃이 없고, 쿼리·키에 RoPE 를 적용한다.

    ``num_kv_groups`` 는 키·값 헤드의 수다. Llama 2 는 헤드 수와 같고(기본값 None), Llama 3 의 그룹 쿼리
    어텐션은 이보다 적은 키·값 헤드를 여러 쿼리 헤드가 나눠 쓴다. ``use_cache=True`` 면 키·값을 보관해
    다음 호출에서 이어 쓴다(KV 캐시).
    """

    def __init__(self, d_in, d_out, num_heads, num_kv_groups=None, dtype=None):
        super().__init__()
        num_kv_groups = num_heads if num_kv_groups is None else num_kv_groups
        if d_out % num_heads != 0:
            raise ValueError(f"d_out({d_out})은 num_heads({num_heads})로 나누어떨어져야 합니다.")
        if num_kv_groups < 1 or num_heads % num_kv_groups != 0:
            raise ValueError(f"num_heads({num_heads})는 num_kv_groups({num_kv_groups})로 나누어떨어져야 합니다.")
        self.num_heads = num_heads
        self.num_kv_groups = num_kv_groups
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=False, dtype=dtype)
        self.W_key = nn.Linear(d_in, num_kv_groups * self.head_dim, bias=False, dtype=dtype)
        self.W_value = nn.Linear(d_in, num_kv_groups * self.head_dim, bias=False, dtype=dtype)
        self.out_proj = nn.Linear(d_out, d_out, bias=False, dtype=dtype)
        self.reset_cache()

    def reset_cache(self):
        self.cache_k, self.cache_v = None, None

    def forward(self, x, cos, sin, use_cache=False):
        b, num_tokens, _ = x.shape
        # (b, 토큰, 헤드 * head_dim) -> (b, 헤드, 토큰, head_dim)
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        keys = self.W_key(x).view(b, num_tokens, self.num_kv_groups, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_kv_groups, self.head_dim).transpose(1, 2)
        queries = apply_rope(queries, cos, sin)
        keys = apply_rope(keys, cos, sin)

        num_past = 0
        if use_cache:
            if self.cache_k is not None:
                num_past = self.cache_k.shape[2]
                keys = torch.cat([self.cache_k, keys], dim=2)
                values = torch.cat([self.cache_v, values], dim=2)
            self.cache_k, self.cache_v = keys, values  # 캐시에는 나누기 전의(작은) 키·값을 둔다

        if self.num_kv_groups != self.num_heads:  # 키·값 헤드 하나를 쿼리 헤드 여러 개가 함께 본다
            group_size = self.num_heads // self.num_kv_groups
            keys = keys.repeat_interleave(group_size, dim=1)
            values = values.repeat_interleave(group_size, dim=1)

        if num_past == 0:  # 처음 보는 토큰들끼리: 보통의 코잘 마스크
            context = F.scaled_dot_product_attention(queries, keys, values, is_causal=num_tokens > 1)
        elif num_tokens == 1:  # 새 토큰 하나는 캐시의 모든 토큰과 자기 자신을 본다: 마스크가 필요 없다
            context = F.scaled_dot_product_attention(queries, keys, values)
        else:  # 캐시 뒤에 여러 토큰: 새 토큰 i 는 캐시 전체와 새 토큰 0..i 를 본다
            allowed = torch.ones(num_tokens, num_past + num_tokens, dtype=torch.bool, device=x.device)
            allowed = allowed.tril(diagonal=num_past)
            context = F.scaled_dot_product_attention(queries, keys, values, attn_mask=allowed)
        context = context.transpose(1, 2).reshape(b, num_tokens, self.num_heads * self.head_dim)
        return self.out_proj(context)


class TransformerBlock(nn.Module):
    """RMSNorm -> 어텐션(RoPE) -> 숏컷, RMSNorm -> SwiGLU 피드 포워드 -> 숏컷. 드롭아웃은 없다."""

    def __init__(self, cfg):
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            num_heads=cfg["n_heads"],
            num_kv_groups=cfg.get("n_kv_groups"),  # Llama 2 설정에는 없다: 멀티 헤드 어텐션
            dtype=cfg.get("dtype"),
        )
        self.ff = FeedForward(cfg)
        self.norm1 = RMSNorm(cfg["emb_dim"], dtype=cfg.get("dtype"))
        self.norm2 = RMSNorm(cfg["emb_dim"], dtype=cfg.get("dtype"))

    def forward(self, x, cos, sin, use_cache=False):
        x = x + self.att(self.norm1(x), cos, sin, use_cache)
        x = x + self.ff(self.norm2(x))
        return x


class Llama2Model(nn.Module):
    """Llama 2 구조: 토큰 임베딩(위치 임베딩 없음) -> 트랜스포머 블록 n_layers 개 -> RMSNorm -> 어휘 크기 로짓.

    ``model(idx)`` 는 4장처럼 시퀀스 전체를 계산한다. ``model(idx, use_cache=True)`` 는 KV 캐시에 이어서
    계산하고(위치는 캐시된 토큰 수부터), ``reset_kv_cache()`` 가 캐시를 비운다.
    """

    required_keys = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "hidden_dim", "rope_base")

    def __init__(self, cfg):
        super().__init__()
        missing = [key for key in self.required_keys if key not in cfg]
        if missing:
            raise ValueError(f"모델 설정에 {', '.join(missing)} 값이 없습니다. LLAMA2_CONFIG_7B 처럼 모두 넣으세요.")
        if not cfg["n_heads"] >= 1:
            raise ValueError(f"n_heads는 1 이상이어야 합니다(받은 값: {cfg['n_heads']!r}). 예: Llama 2 7B는 32입니다.")
        if cfg["emb_dim"] % cfg["n_heads"] != 0:
            raise ValueError(f"emb_dim({cfg['emb_dim']})은 n_heads({cfg['n_heads']})로 나누어떨어져야 합니다.")
        rope_keys = {"factor", "low_freq_factor", "high_freq_factor", "original_context_length"}
        if cfg.get("rope_freq") is not None and set(cfg["rope_freq"]) != rope_keys:
            raise ValueError(
                f"rope_freq의 키가 맞지 않습니다(빠진 키: {sorted(rope_keys - set(cfg['rope_freq']))}, "
                f"모르는 키: {sorted(set(cfg['rope_freq']) - rope_keys)}). LLAMA31_CONFIG_8B['rope_freq']처럼 "
                "네 키를 모두 넣거나, 주파수 조정을 쓰지 않으려면 None으로 두세요."
            )
        dtype = cfg.get("dtype")
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"], dtype=dtype)
        self.trf_blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = RMSNorm(cfg["emb_dim"], dtype=dtype)
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False, dtype=dtype)

        cos, sin = compute_rope_params(
            cfg["emb_dim"] // cfg["n_heads"], cfg["rope_base"], cfg["context_length"], cfg.get("rope_freq")
        )
        # 모든 층이 같은 표를 쓰므로 모델에 한 번만 둔다. 체크포인트에는 넣지 않는다(persistent=False)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.current_pos = 0  # KV 캐시에 든 토큰 수

    def reset_kv_cache(self):
        for block in self.trf_blocks:
            block.att.reset_cache()
        self.current_pos = 0

    def forward(self, in_idx, use_cache=False):
        num_tokens = in_idx.shape[1]
        start = self.current_pos if use_cache else 0
        if start + num_tokens > self.cos.shape[0]:
            raise ValueError(
                f"위치 {start + num_tokens} 까지 계산해야 하는데 모델의 context_length 는 {self.cos.shape[0]} 입니다. "
                "입력을 줄이거나 reset_kv_cache() 로 캐시를 비우세요."
            )
        cos, sin = self.cos[start : start + num_tokens], self.sin[start : start + num_tokens]
        x = self.tok_emb(in_idx)
        for block in self.trf_blocks:
            x = block(x, cos, sin, use_cache)
        if use_cache:
            self.current_pos += num_tokens
        x = self.final_norm(x)
        return self.out_head(x)


class GroupedQueryAttention(MultiHeadAttention):
    """그룹 쿼리 어텐션(GQA): 쿼리 헤드 ``num_heads`` 개가 키·값 헤드 ``num_kv_groups`` 개를 나눠 쓴다.

    계산은 ``MultiHeadAttention`` 과 같다(키·값 헤드를 그룹 크기만큼 되풀이해 쿼리 헤드와 짝짓는다).
    달라지는 것은 키·값 투영 행렬이 ``num_heads / num_kv_groups`` 배 작아지고, KV 캐시도 그만큼 작아진다는 점이다.
    """

    def __init__(self, d_in, d_out, num_heads, num_kv_groups, dtype=None):
        super().__init__(d_in, d_out, num_heads, num_kv_groups, dtype)


class Llama3Model(Llama2Model):
    """Llama 3/3.1/3.2: 구조는 Llama 2 와 같고 설정이 다르다(GQA, RoPE 기저 500,000, 주파수 조정, 큰 어휘).

    Llama 3.2 는 출력층이 토큰 임베딩 행렬을 함께 쓴다(가중치 묶기). ``load_weights_into_llama`` 가
    체크포인트에 ``lm_head.weight`` 가 없으면 두 층을 묶는다.
    """

    def __init__(self, cfg):
        if "n_kv_groups" not in cfg:
            raise ValueError("Llama 3 설정에는 n_kv_groups(키·값 헤드 수)가 있어야 합니다. 예: LLAMA32_CONFIG_1B")
        super().__init__(cfg)


def count_parameters(model):
    """(전체 파라미터 수, 중복 없는 파라미터 수). 출력층이 토큰 임베딩과 묶여 있으면 두 값이 다르다."""
    unique = sum(p.numel() for p in model.parameters())  # parameters() 는 같은 텐서를 한 번만 돌려준다
    total = unique
    if model.out_head.weight is model.tok_emb.weight:
        total += model.out_head.weight.numel()
    return total, unique


def model_memory_size(model, dtype=torch.float32):
    """모델의 파라미터(중복 없이)를 ``dtype`` 으로 담는 데 드는 바이트 수. RoPE 표 같은 버퍼는 뺀다."""
    element_size = torch.tensor([], dtype=dtype).element_size()
    return sum(p.numel() for p in model.parameters()) * element_size


def _next_token(logits, temperature, top_k):
    """5장 ``generate`` 와 같은 규칙으로 다음 토큰을 고른다: 탑-k 로 거르고, 온도 0 이면 그리디 디코딩."""
    if top_k is not None:
        top_logits, _ = torch.topk(logits, top_k)
        logits = torch.where(logits < top_logits[:, -1:], torch.tensor(float("-inf"), device=logits.device), logits)
    if temperature > 0.0:
        return torch.multinomial(torch.softmax(logits / temperature, dim=-1), num_samples=1)
    return torch.argmax(logits, dim=-1, keepdim=True)


def generate_cached(model, idx, max_new_tokens, temperature=0.0, top_k=None, eos_id=None):
    """KV 캐시로 토큰을 만든다. 5장 ``generate`` 와 인자·결과가 같고, 각 단계에서 새 토큰 하나만 계산한다.

    Args:
        model: ``Llama2Model`` 또는 ``Llama3Model``.
        idx: (배치, 토큰 수) 프롬프트 토큰 ID.
        max_new_tokens: 새로 만들 토큰 수. 프롬프트와 합쳐 모델의 문맥 길이를 넘을 수 없다.
        temperature, top_k: 5장 ``generate`` 와 같은 샘플링 설정.
        eos_id: 이 토큰이 (배치 전체에서) 나오면 일찍 멈춘다.
    """
    context_length = model.cos.shape[0]
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens 는 0 이상이어야 합니다(받은 값: {max_new_tokens}).")
    if idx.shape[1] + max_new_tokens > context_length:
        raise ValueError(
            f"프롬프트 {idx.shape[1]} 토큰과 새 토큰 {max_new_tokens}개의 합이 문맥 길이 {context_length} 를 넘습니다. "
            "max_new_tokens 를 줄이세요."
        )
    if not temperature >= 0:  # nan 도 여기서 거른다(nan 은 어떤 비교도 거짓이라 조용히 그리디가 된다)
        raise ValueError(f"temperature 는 0 이상의 수여야 합니다(받은 값: {temperature}).")
    model.reset_kv_cache()
    try:
        with torch.inference_mode():
            new_tokens = idx  # 첫 단계는 프롬프트 전체로 캐시를 채우고, 그다음부터는 새 토큰 하나만 넣는다
            for _ in range(max_new_tokens):
                logits = model(new_tokens, use_cache=True)[:, -1]
                new_tokens = _next_token(logits, temperature, top_k)
                if eos_id is not None and (new_tokens == eos_id).all():
                    break
                idx = torch.cat([idx, new_tokens], dim=1)
    finally:
        model.reset_kv_cache()
    return idx
