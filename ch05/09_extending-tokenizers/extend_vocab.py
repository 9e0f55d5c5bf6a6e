"""tiktoken 인코딩에 특수 토큰을 더하고, ``GPTModel`` 의 임베딩과 출력층을 새 어휘 크기에 맞게 늘리는 도구.

extend-tiktoken.ipynb 가 이 파일의 함수들을 같은 코드로 셀에서 정의하며 단계별로 설명한다
(tests/test_listings.py 가 둘이 같은지 확인한다).
"""

import tiktoken
import torch
from torch import nn

__all__ = ["extend_encoding", "resize_token_embeddings"]


def extend_encoding(base, new_tokens, name=None):
    """``base`` 인코딩의 BPE 병합 순위를 그대로 쓰고 특수 토큰 ``new_tokens`` 를 더한 새 ``tiktoken.Encoding``.

    Args:
        base: 바탕이 될 인코딩(예: ``tiktoken.get_encoding("gpt2")``).
        new_tokens: 새 특수 토큰 문자열 목록. 기존 어휘 다음 ID(``base.n_vocab``, ``base.n_vocab + 1``, …)를 받는다.
        name: 새 인코딩 이름(기본: ``<base 이름>_extended``).
    """
    new_tokens = list(new_tokens)
    existing = set(base._special_tokens) | {token for token in new_tokens if new_tokens.count(token) > 1}
    clashes = [token for token in new_tokens if token in existing]
    if clashes:
        raise ValueError(f"이미 있거나 두 번 들어간 토큰입니다: {', '.join(clashes)}. 새 토큰은 서로 다른 새 문자열이어야 합니다.")
    special_tokens = dict(base._special_tokens)
    for offset, token in enumerate(new_tokens):
        special_tokens[token] = base.n_vocab + offset
    return tiktoken.Encoding(
        name=name or f"{base.name}_extended",
        pat_str=base._pat_str,
        mergeable_ranks=base._mergeable_ranks,
        special_tokens=special_tokens,
    )


def _grown_rows(old_weight, new_rows):
    """기존 행을 그대로 두고, 새 행은 기존 행들의 평균으로 채운 (new_rows, dim) 텐서."""
    grown = old_weight.new_empty((new_rows, old_weight.shape[1]))
    grown[: old_weight.shape[0]] = old_weight
    # 새 행을 평균으로 두면 처음에는 '평범한' 토큰처럼 행동한다(미세 튜닝이 이 행을 배운다)
    grown[old_weight.shape[0] :] = old_weight.mean(dim=0, keepdim=True)
    return grown


@torch.no_grad()
def resize_token_embeddings(model, new_vocab_size):
    """``model.tok_emb`` 와 ``model.out_head`` 를 ``new_vocab_size`` 행으로 늘린다(기존 행과 편향은 그대로).

    두 층이 가중치를 공유하고 있었으면(``out_head.weight is tok_emb.weight``) 늘린 뒤에도 공유한다.

    Args:
        model: 5장의 ``GPTModel``(``tok_emb``, ``out_head`` 를 가진 모델).
        new_vocab_size: 새 어휘 크기. 지금 크기보다 작을 수 없다.
    """
    old_emb, old_head = model.tok_emb, model.out_head
    old_vocab_size = old_emb.num_embeddings
    if new_vocab_size < old_vocab_size:
        raise ValueError(
            f"new_vocab_size({new_vocab_size})가 지금 어휘 크기({old_vocab_size})보다 작습니다. 이 함수는 늘리기만 합니다."
        )
    tied = old_head.weight is old_emb.weight
    device, dtype = old_emb.weight.device, old_emb.weight.dtype

    new_emb = nn.Embedding(new_vocab_size, old_emb.embedding_dim, device=device, dtype=dtype)
    new_emb.weight.copy_(_grown_rows(old_emb.weight, new_vocab_size))
    model.tok_emb = new_emb

    has_bias = old_head.bias is not None
    new_head = nn.Linear(old_head.in_features, new_vocab_size, bias=has_bias, device=device, dtype=dtype)
    if tied:
        new_head.weight = new_emb.weight
    else:
        new_head.weight.copy_(_grown_rows(old_head.weight, new_vocab_size))
    if has_bias:
        new_head.bias.zero_()
        new_head.bias[:old_vocab_size] = old_head.bias
    model.out_head = new_head
    return model
