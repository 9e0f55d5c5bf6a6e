"""4장: GPT 모델 구현의 모양, 매개변수 수, 생성, 오류 처리, GPT-2(transformers)와의 동등성."""

import subprocess
import sys
from pathlib import Path

import pytest
import tiktoken
import torch
import transformers
from support import assert_same_as_transformers_gpt2

from llm_from_scratch.ch04 import (
    GELU,
    GPT2_MODEL_CONFIGS,
    GPT_CONFIG_124M,
    FeedForward,
    GPTModel,
    LayerNorm,
    TransformerBlock,
    generate_text_simple,
)
from llm_from_scratch.ch05 import load_hf_weights_into_gpt

REPO_ROOT = Path(__file__).resolve().parents[1]
GPT_SCRIPT = REPO_ROOT / "ch04" / "01_main-chapter-code" / "gpt.py"

TINY_CFG = {
    "vocab_size": 500,
    "context_length": 16,
    "emb_dim": 32,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": False,
}


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def tiny_model(seed=123, **overrides):
    torch.manual_seed(seed)
    return GPTModel({**TINY_CFG, **overrides}).eval()


@pytest.fixture(scope="module")
def gpt124m():
    torch.manual_seed(123)
    return GPTModel(GPT_CONFIG_124M).eval()


def test_gpt124m_parameter_counts_and_size_match_book(gpt124m):
    total = count_params(gpt124m)
    assert total == 163_009_536
    assert total - count_params(gpt124m.out_head) == 124_412_160


def test_untrained_gpt124m_continues_hello_i_am_like_the_book(gpt124m):
    tokenizer = tiktoken.get_encoding("gpt2")
    encoded = torch.tensor([tokenizer.encode("Hello, I am")])
    out = generate_text_simple(gpt124m, encoded, max_new_tokens=6, context_size=GPT_CONFIG_124M["context_length"])
    assert out.tolist() == [[15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267]]
    assert tokenizer.decode(out[0].tolist()) == "Hello, I am Featureiman Byeswickattribute argue"


def test_gpt124m_logits_shape_for_two_texts(gpt124m):
    tokenizer = tiktoken.get_encoding("gpt2")
    batch = torch.tensor([tokenizer.encode("Every effort moves you"), tokenizer.encode("Every day holds a")])
    assert batch.tolist() == [[6109, 3626, 6100, 345], [6109, 1110, 6622, 257]]
    with torch.no_grad():
        assert gpt124m(batch).shape == (2, 4, 50257)


def test_layer_norm_gives_zero_mean_and_unit_variance():
    torch.manual_seed(123)
    x = torch.randn(2, 5) * 3 + 7
    out = LayerNorm(emb_dim=5)(x)
    assert torch.allclose(out.mean(dim=-1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(out.var(dim=-1, unbiased=False), torch.ones(2), atol=1e-4)


def test_gelu_is_the_tanh_approximation():
    x = torch.linspace(-5, 5, 101)
    assert torch.allclose(GELU()(x), torch.nn.functional.gelu(x, approximate="tanh"), atol=1e-6)


def test_feed_forward_and_transformer_block_keep_the_shape():
    torch.manual_seed(123)
    assert FeedForward(GPT_CONFIG_124M)(torch.rand(2, 3, 768)).shape == (2, 3, 768)
    assert TransformerBlock(GPT_CONFIG_124M)(torch.rand(2, 4, 768)).shape == (2, 4, 768)


def test_exercise_4_1_feed_forward_has_twice_the_attention_params():
    block = TransformerBlock(GPT_CONFIG_124M)
    assert count_params(block.ff) == 4_722_432
    assert count_params(block.att) == 2_360_064


@pytest.mark.parametrize(
    ("name", "expected_params"),
    [
        ("gpt2-small (124M)", 163_009_536),
        ("gpt2-medium (355M)", 406_212_608),
        ("gpt2-large (774M)", 838_220_800),
        ("gpt2-xl (1558M)", 1_637_792_000),
    ],
)
def test_exercise_4_2_gpt2_sizes(name, expected_params):
    with torch.device("meta"):  # 모양만 만들고 메모리는 잡지 않는다
        model = GPTModel({**GPT_CONFIG_124M, **GPT2_MODEL_CONFIGS[name]})
    assert count_params(model) == expected_params


def test_exercise_4_3_separate_dropout_rates():
    cfg = {**TINY_CFG, "drop_rate_emb": 0.1, "drop_rate_attn": 0.2, "drop_rate_shortcut": 0.3}
    model = GPTModel(cfg)
    assert model.drop_emb.p == 0.1
    for block in model.trf_blocks:
        assert block.att.dropout.p == 0.2
        assert block.drop_shortcut.p == 0.3


def test_gpt_model_output_shape():
    model = tiny_model()
    idx = torch.randint(0, TINY_CFG["vocab_size"], (3, 7))
    assert model(idx).shape == (3, 7, TINY_CFG["vocab_size"])


def test_gpt_model_is_causal():
    model = tiny_model()
    idx = torch.randint(0, TINY_CFG["vocab_size"], (1, 10))
    changed = idx.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % TINY_CFG["vocab_size"]
    with torch.no_grad():
        logits, logits_changed = model(idx), model(changed)
    assert torch.equal(logits[:, :6], logits_changed[:, :6])
    assert not torch.allclose(logits[:, 6:], logits_changed[:, 6:])


def test_too_long_input_raises_naming_both_lengths():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"17.*16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_generate_text_simple_crops_a_prompt_longer_than_the_context():
    model = tiny_model()
    prompt = torch.randint(0, TINY_CFG["vocab_size"], (2, 25))
    out = generate_text_simple(model, prompt, max_new_tokens=5, context_size=TINY_CFG["context_length"])
    assert out.shape == (2, 30)
    assert torch.equal(out[:, :25], prompt)
    # 앞쪽 9토큰은 보이지 않으므로 마지막 16토큰만 준 것과 같은 토큰이 나와야 한다
    cropped = generate_text_simple(model, prompt[:, -16:], max_new_tokens=5, context_size=16)
    assert torch.equal(out[:, 25:], cropped[:, 16:])


def test_emb_dim_not_divisible_by_heads_raises_at_construction():
    with pytest.raises(ValueError, match=r"30.*4"):
        GPTModel({**TINY_CFG, "emb_dim": 30})


def test_gpt_model_matches_huggingface_gpt2():
    hf_config = transformers.GPT2Config(
        vocab_size=1000, n_positions=128, n_embd=64, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    torch.manual_seed(0)
    hf_model = transformers.GPT2LMHeadModel(hf_config).eval()
    cfg = {"vocab_size": 1000, "context_length": 128, "emb_dim": 64, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0,
           "qkv_bias": True}
    torch.manual_seed(1)
    model = GPTModel(cfg).eval()
    load_hf_weights_into_gpt(model, hf_model.state_dict())
    assert_same_as_transformers_gpt2(model, hf_model, torch.randint(0, 1000, (2, 50)), cfg["context_length"])


def run_script(*args, cwd):
    return subprocess.run(
        [sys.executable, str(GPT_SCRIPT), *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_gpt_script_runs_in_quick_mode(tmp_path):
    result = run_script("--quick", "--prompt", "Every effort moves you", "--max-new-tokens", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "인코딩된 입력: [6109, 3626, 6100, 345]" in result.stdout
    assert "출력 길이: 9" in result.stdout
    assert "출력 텍스트: 'Every effort moves you" in result.stdout


def test_gpt_script_help(tmp_path):
    result = run_script("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--max-new-tokens" in result.stdout


@pytest.mark.parametrize("bad", [-1, 2.5, None])
def test_generate_text_simple_rejects_bad_max_new_tokens(bad):
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_text_simple(tiny_model(), torch.tensor([[1, 2]]), max_new_tokens=bad, context_size=16)


@pytest.mark.parametrize("bad", [0, -3, 1.0])
def test_generate_text_simple_rejects_context_size_below_one(bad):
    with pytest.raises(ValueError, match="context_size"):
        generate_text_simple(tiny_model(), torch.tensor([[1, 2]]), max_new_tokens=2, context_size=bad)


def test_generate_text_simple_rejects_an_empty_prompt():
    with pytest.raises(ValueError, match="빈 프롬프트"):
        generate_text_simple(tiny_model(), torch.zeros(1, 0, dtype=torch.long), max_new_tokens=2, context_size=16)


@pytest.mark.parametrize("bad_id", [TINY_CFG["vocab_size"], -1])
def test_generate_text_simple_rejects_token_ids_outside_the_vocabulary(bad_id):
    with pytest.raises(ValueError, match=rf"0 이상 {TINY_CFG['vocab_size']} 미만.*{bad_id}"):
        generate_text_simple(tiny_model(), torch.tensor([[1, bad_id]]), max_new_tokens=2, context_size=16)


def test_generate_text_simple_with_zero_new_tokens_returns_the_prompt():
    prompt = torch.tensor([[5, 6, 7]])
    assert torch.equal(generate_text_simple(tiny_model(), prompt, max_new_tokens=0, context_size=16), prompt)
