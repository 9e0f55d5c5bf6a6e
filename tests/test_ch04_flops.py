"""4장 보너스: FlopCounterMode 로 센 GPT-2 순전파 FLOPs 가 식과 같은지, MFU·최대 배치 도구가 동작하는지."""

from pathlib import Path

import pytest
import torch
from support import FakeClock, load_module

from llm_from_scratch.ch04 import GPT2_MODEL_CONFIGS, GPT_CONFIG_124M, GPTModel

MODULE_PATH = Path(__file__).resolve().parents[1] / "ch04" / "02_performance-analysis" / "flops_analysis.py"

fa = load_module(MODULE_PATH, "flops_analysis")  # 폴더 이름에 '-' 가 있어 파일 경로로 불러온다
TINY = fa.gpt2_config("gpt2-small (124M)", vocab_size=101, context_length=16, emb_dim=32, n_layers=2, n_heads=4)


def test_linear_flops_of_124m_at_batch_2_by_1024_is_505987203072():
    assert fa.analytic_linear_flops(fa.gpt2_config("gpt2-small (124M)"), 2, 1024) == 505_987_203_072


@pytest.mark.parametrize(
    ("name", "expected"),
    [("gpt2-medium (355M)", 1.4e12), ("gpt2-large (774M)", 3.2e12), ("gpt2-xl (1558M)", 6.4e12)],
)
def test_linear_flops_of_larger_models_round_to_the_reference(name, expected):
    assert round(fa.analytic_linear_flops(fa.gpt2_config(name), 2, 1024), -11) == expected


@pytest.mark.parametrize("name", list(GPT2_MODEL_CONFIGS))
def test_flop_counter_equals_linear_plus_attention_matmuls(name):
    cfg = fa.gpt2_config(name)
    total, by_op = fa.count_forward_flops(cfg, 2, 1024)
    linear, attention = fa.analytic_linear_flops(cfg, 2, 1024), fa.analytic_attention_flops(cfg, 2, 1024)
    assert total == linear + attention
    assert by_op["aten.bmm"] == attention  # 어텐션 점수와 문맥 벡터의 배치 행렬 곱
    assert by_op["aten.mm"] + by_op["aten.addmm"] == linear


def test_counting_on_cpu_gives_the_same_flops_as_on_meta():
    assert fa.count_forward_flops(TINY, 3, 16, device="cpu") == fa.count_forward_flops(TINY, 3, 16)


def test_count_rejects_inputs_longer_than_the_context():
    with pytest.raises(ValueError, match="context_length 16"):
        fa.count_forward_flops(TINY, 1, 17)
    with pytest.raises(KeyError, match="gpt2-small"):
        fa.gpt2_config("gpt2-huge")




def test_training_throughput_counts_only_the_timed_steps(monkeypatch):
    monkeypatch.setattr(fa, "time", FakeClock(10.0, 10.5))
    assert fa.train_tokens_per_second(TINY, 2, 8, steps=3, warmup=1) == pytest.approx(3 * 2 * 8 / 0.5)
    with pytest.raises(ValueError, match="steps"):
        fa.train_tokens_per_second(TINY, 2, 8, steps=0)


def test_activation_estimate_equals_the_saved_tensors_of_a_real_run():
    # 메타 장치에서 센 값 = 실제 CPU 순전파에서 역전파용으로 저장되는 텐서(파라미터 제외, 저장 공간마다 한 번)
    #                      + 크로스 엔트로피가 저장하는 로짓 크기의 소프트맥스 한 벌
    per_sample = fa.activation_bytes_per_sample(TINY, 16)
    model = GPTModel(TINY).train()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        logits = model(torch.zeros(1, 16, dtype=torch.long))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in saved}
    real = sum(size for ptr, size in storages.items() if ptr not in params)
    assert per_sample == real + logits.numel() * logits.element_size()


def test_max_batch_estimate_uses_four_copies_of_the_parameters():
    estimate = fa.estimate_max_batch(TINY, 16, memory_bytes=10**9)
    num_params = sum(p.numel() for p in GPTModel(TINY).parameters())
    assert estimate["num_params"] == num_params
    assert estimate["fixed_bytes"] == 4 * 4 * num_params
    assert estimate["max_batch"] == (10**9 - estimate["fixed_bytes"]) // estimate["per_sample_bytes"]
    assert fa.estimate_max_batch(TINY, 16, memory_bytes=estimate["fixed_bytes"])["max_batch"] == 0


def test_cuda_search_explains_itself_without_cuda():
    if torch.cuda.is_available():
        assert fa.find_max_batch_cuda(TINY, 16, upper=8) >= 1
    else:
        with pytest.raises(RuntimeError, match="estimate_max_batch"):
            fa.find_max_batch_cuda(TINY, 16)


def test_reference_config_is_the_books_124m():
    assert fa.gpt2_config("gpt2-small (124M)")["emb_dim"] == GPT_CONFIG_124M["emb_dim"] == 768


def test_sgd_measurement_and_memory_estimate_need_two_copies_instead_of_four():
    adamw = fa.estimate_max_batch(TINY, 8, 10**9)
    sgd = fa.estimate_max_batch(TINY, 8, 10**9, optimizer="sgd")
    assert sgd["fixed_bytes"] * 2 == adamw["fixed_bytes"] == 4 * 4 * adamw["num_params"]
    assert sgd["max_batch"] >= adamw["max_batch"]
    assert fa.train_tokens_per_second(TINY, 1, 8, steps=1, warmup=0, optimizer="sgd") > 0
    for bad in ("adam", "SGD"):
        with pytest.raises(ValueError, match="optimizer"):
            fa.train_tokens_per_second(TINY, 1, 8, optimizer=bad)
        with pytest.raises(ValueError, match="optimizer"):
            fa.estimate_max_batch(TINY, 8, 10**9, optimizer=bad)
