"""5장 보너스(토크나이저 확장): 새 특수 토큰의 ID, 임베딩·출력층을 늘릴 때 기존 행·편향·묶기가 지켜지는지."""

import importlib.util
from pathlib import Path

import pytest
import tiktoken
import torch

import llm_from_scratch  # noqa: F401  (tiktoken 캐시를 준비한다)
from llm_from_scratch.ch04 import GPTModel

FOLDER = Path(__file__).resolve().parents[1] / "ch05" / "09_extending-tokenizers"
TINY_CFG = {"vocab_size": 50257, "context_length": 16, "emb_dim": 8, "n_heads": 2, "n_layers": 1,
            "drop_rate": 0.0, "qkv_bias": False}


@pytest.fixture(scope="module")
def extend_vocab():
    spec = importlib.util.spec_from_file_location("extend_vocab", FOLDER / "extend_vocab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_new_special_tokens_get_the_next_ids(extend_vocab):
    custom = extend_vocab.extend_encoding(tiktoken.get_encoding("gpt2"), ["MyNewToken_1", "MyNewToken_2"])
    ids = custom.encode("Sample text with MyNewToken_1 and MyNewToken_2. <|endoftext|>", allowed_special="all")
    assert ids == [36674, 2420, 351, 220, 50257, 290, 220, 50258, 13, 220, 50256]
    assert custom.n_vocab == 50259
    assert custom.encode("Every effort moves you") == [6109, 3626, 6100, 345]


def test_duplicate_or_existing_tokens_are_refused(extend_vocab):
    base = tiktoken.get_encoding("gpt2")
    with pytest.raises(ValueError, match="<\\|endoftext\\|>"):
        extend_vocab.extend_encoding(base, ["<|endoftext|>"])
    with pytest.raises(ValueError, match="A"):
        extend_vocab.extend_encoding(base, ["A", "A"])


def test_resizing_keeps_old_rows_and_bias_and_accepts_new_ids(extend_vocab):
    torch.manual_seed(0)
    model = GPTModel(TINY_CFG).eval()
    model.out_head = torch.nn.Linear(8, 50257, bias=True)
    old_emb, old_head_w, old_bias = (t.detach().clone() for t in (model.tok_emb.weight, model.out_head.weight,
                                                                  model.out_head.bias))
    with pytest.raises(IndexError):
        model(torch.tensor([[50258]]))
    extend_vocab.resize_token_embeddings(model, 50259)
    assert model.tok_emb.weight.shape == (50259, 8) and model.out_head.weight.shape == (50259, 8)
    assert torch.equal(model.tok_emb.weight[:50257], old_emb)
    assert torch.equal(model.out_head.weight[:50257], old_head_w)
    assert torch.equal(model.out_head.bias[:50257], old_bias)
    assert model(torch.tensor([[50257, 50258]])).shape == (1, 2, 50259)
    with pytest.raises(ValueError, match="50000"):
        extend_vocab.resize_token_embeddings(model, 50000)


def test_tied_weights_stay_tied_after_resizing(extend_vocab):
    model = GPTModel(TINY_CFG)
    model.out_head.weight = model.tok_emb.weight
    extend_vocab.resize_token_embeddings(model, 50259)
    assert model.out_head.weight is model.tok_emb.weight
    assert model.tok_emb.weight.shape == (50259, 8)
