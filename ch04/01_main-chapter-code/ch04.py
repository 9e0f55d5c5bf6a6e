"""4장 요약: GPT 모델 구현하기.

층 정규화, GELU, 피드 포워드, 트랜스포머 블록, GPTModel, 간단한 텍스트 생성 함수를 담는다.
멀티 헤드 어텐션은 3장에서 가져온다.
"""

import math

import torch
from torch import nn

from llm_from_scratch.ch03 import MultiHeadAttention

__all__ = [
    "GELU",
    "GPT2_MODEL_CONFIGS",
    "GPT_CONFIG_124M",
    "FeedForward",
    "GPTModel",
    "LayerNorm",
    "TransformerBlock",
    "generate_text_simple",
]

GPT_CONFIG_124M = {
    "vocab_size": 50257,  # 어휘 사전 크기(GPT-2 BPE)
    "context_length": 1024,  # 최대 입력 토큰 수
    "emb_dim": 768,  # 임베딩 차원
    "n_heads": 12,  # 어텐션 헤드 수
    "n_layers": 12,  # 트랜스포머 블록 수
    "drop_rate": 0.1,  # 드롭아웃 비율
    "qkv_bias": False,  # 쿼리·키·값 선형층의 편향
}

# GPT-2 네 가지 크기: 124M 설정에서 이 값들만 바꾸면 된다
GPT2_MODEL_CONFIGS = {
    "gpt2-small (124M)": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "gpt2-medium (355M)": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "gpt2-large (774M)": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "gpt2-xl (1558M)": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
}


class LayerNorm(nn.Module):
    """마지막 차원을 평균 0, 분산 1로 맞춘 뒤 학습되는 scale, shift를 적용한다."""

    def __init__(self, emb_dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # GPT-2처럼 n으로 나눈다
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


# GELU 근사식의 상수: 호출할 때마다 텐서를 새로 만들지 않도록 한 번만 계산해 둔다
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class GELU(nn.Module):
    """GPT-2가 쓴 tanh 근사 GELU 활성화 함수."""

    def forward(self, x):
        return 0.5 * x * (1 + torch.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3)))


class FeedForward(nn.Module):
    """임베딩 차원을 네 배로 넓혔다가 다시 줄이는 2층 신경망."""

    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            GELU(),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )

    def forward(self, x):
        return self.layers(x)


class TransformerBlock(nn.Module):
    """사전 층 정규화(pre-LN) -> 어텐션 -> 숏컷, 사전 층 정규화 -> 피드 포워드 -> 숏컷.

    ``cfg``에 ``drop_rate_attn``, ``drop_rate_shortcut``이 있으면 그 값을, 없으면 ``drop_rate``를 쓴다
    (연습 문제 4.3).
    """

    def __init__(self, cfg):
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            num_heads=cfg["n_heads"],
            dropout=cfg.get("drop_rate_attn", cfg["drop_rate"]),
            qkv_bias=cfg["qkv_bias"],
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg.get("drop_rate_shortcut", cfg["drop_rate"]))

    def forward(self, x):
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


class GPTModel(nn.Module):
    """GPT-2 구조: 토큰·위치 임베딩 -> 트랜스포머 블록 n_layers 개 -> 최종 층 정규화 -> 어휘 크기 로짓.

    ``cfg``에 ``drop_rate_emb``이 있으면 임베딩 드롭아웃에 그 값을 쓴다(연습 문제 4.3).
    """

    def __init__(self, cfg):
        super().__init__()
        if not cfg["n_heads"] >= 1:
            raise ValueError(f"n_heads는 1 이상이어야 합니다(받은 값: {cfg['n_heads']!r}). 예: GPT-2 124M은 12입니다.")
        if cfg["emb_dim"] % cfg["n_heads"] != 0:
            raise ValueError(f"emb_dim({cfg['emb_dim']})은 n_heads({cfg['n_heads']})로 나누어떨어져야 합니다.")
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg.get("drop_rate_emb", cfg["drop_rate"]))
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx):
        seq_len = in_idx.shape[1]
        context_length = self.pos_emb.num_embeddings
        if seq_len > context_length:
            raise ValueError(
                f"입력 길이 {seq_len} 토큰이 모델의 context_length {context_length}보다 깁니다. "
                f"입력을 마지막 {context_length} 토큰으로 자르세요."
            )
        try:
            tok_embeds = self.tok_emb(in_idx)
        except IndexError as error:  # 범위는 실패했을 때만 따진다(정상 경로에는 검사 비용이 없다)
            vocab_size = self.tok_emb.num_embeddings
            bad = in_idx[(in_idx < 0) | (in_idx >= vocab_size)].flatten()[0].item()
            raise IndexError(
                f"토큰 ID {bad}이(가) 어휘 범위(0 이상 {vocab_size - 1} 이하) 밖에 있습니다. "
                f"모델의 vocab_size({vocab_size})에 맞는 토크나이저로 인코딩했는지 확인하세요."
            ) from error
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = self.drop_emb(tok_embeds + pos_embeds)
        x = self.trf_blocks(x)
        x = self.final_norm(x)
        return self.out_head(x)


def generate_text_simple(model, idx, max_new_tokens, context_size):
    """가장 확률이 높은 다음 토큰을 하나씩 붙여 ``max_new_tokens``개를 생성한다(그리디 디코딩).

    Args:
        model: 로짓을 돌려주는 모델.
        idx: (배치, 토큰 수) 토큰 ID 텐서.
        max_new_tokens: 새로 만들 토큰 수.
        context_size: 모델이 한 번에 볼 수 있는 최대 토큰 수(넘치면 앞쪽을 자른다).
    """
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens는 0 이상의 정수여야 합니다(받은 값: {max_new_tokens!r}).")
    if not isinstance(context_size, int) or isinstance(context_size, bool) or context_size < 1:
        raise ValueError(f"context_size는 1 이상의 정수여야 합니다(받은 값: {context_size!r}).")
    if idx.dim() != 2 or idx.shape[1] == 0:
        raise ValueError(
            f"idx는 (배치, 토큰 수) 모양에 토큰이 하나 이상 있어야 합니다(받은 모양: {tuple(idx.shape)}). "
            "빈 프롬프트에서는 생성할 수 없으니 시작 문장을 주세요."
        )
    vocab_size = model.tok_emb.num_embeddings
    if idx.min() < 0 or idx.max() >= vocab_size:
        raise ValueError(
            f"토큰 ID는 0 이상 {vocab_size} 미만이어야 합니다(받은 ID: {idx.min().item()}~{idx.max().item()}). "
            "모델과 같은 어휘 사전의 토크나이저로 인코딩했는지 확인하세요."
        )

    for _ in range(max_new_tokens):
        # 모델이 볼 수 있는 마지막 context_size 토큰만 남긴다
        idx_cond = idx[:, -context_size:]
        with torch.no_grad():
            logits = model(idx_cond)
        # 마지막 위치의 로짓에서 가장 큰 값의 토큰을 고른다
        next_token = torch.argmax(logits[:, -1, :], dim=-1, keepdim=True)
        idx = torch.cat((idx, next_token), dim=1)
    return idx
