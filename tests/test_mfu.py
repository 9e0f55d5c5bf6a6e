"""MFU 를 한 방법으로 재는 ``llm_from_scratch.mfu`` 와 bf16 자동 선택에 쓰는 ``machine.native_bf16``."""

import pytest
import torch
from support import FakeClock, load_module

from llm_from_scratch import machine, mfu
from llm_from_scratch.ch04 import GPT2_MODEL_CONFIGS, GPT_CONFIG_124M
from llm_from_scratch.utils import synchronize

flops_analysis = load_module("ch04/02_performance-analysis/flops_analysis.py", "flops_analysis_for_mfu")


@pytest.mark.parametrize("name", list(GPT2_MODEL_CONFIGS))
@pytest.mark.parametrize("num_tokens", [1, 128, 1024])
def test_training_flops_per_token_is_three_times_the_counted_forward(name, num_tokens):
    cfg = flops_analysis.gpt2_config(name)
    counted, _ = flops_analysis.count_forward_flops(cfg, 2, num_tokens)
    assert mfu.training_flops_per_token(cfg, num_tokens) * 2 * num_tokens == 3 * counted


def test_training_flops_default_to_the_context_length_and_reject_empty_input():
    cfg = {**GPT_CONFIG_124M, "context_length": 256}
    assert mfu.training_flops_per_token(cfg) == mfu.training_flops_per_token(cfg, 256)
    with pytest.raises(ValueError, match="num_tokens"):
        mfu.training_flops_per_token(cfg, 0)




def test_matmul_peak_uses_the_fastest_of_the_repeats(monkeypatch):
    monkeypatch.setattr(mfu, "time", FakeClock(0.0, 0.002, 1.0, 1.001, 2.0, 2.004))  # 2 ms, 1 ms, 4 ms
    assert mfu.matmul_peak_flops("cpu", size=64, repeats=3) == pytest.approx(2 * 64**3 / 0.001)
    with pytest.raises(ValueError, match="size"):
        mfu.matmul_peak_flops("cpu", size=0)


def test_matmul_peak_runs_in_the_requested_precision(monkeypatch):
    seen = []
    original = torch.randn
    monkeypatch.setattr(mfu.torch, "randn", lambda *a, **k: seen.append(k["dtype"]) or original(*a, **k))
    assert mfu.matmul_peak_flops("cpu", torch.bfloat16, size=32, repeats=1) > 0
    assert seen == [torch.bfloat16, torch.bfloat16]


def test_model_flops_utilization():
    assert mfu.model_flops_utilization(100, 6e9, 1.2e12) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="peak_flops"):
        mfu.model_flops_utilization(100, 6e9, 0)


@pytest.mark.parametrize(
    ("capabilities", "expected", "words"),
    [
        ({"amx_bf16": True, "avx512_bf16": True}, True, "AMX-BF16"),
        ({"amx_bf16": False, "avx512_bf16": True}, True, "AVX512-BF16"),
        ({"amx_bf16": False, "avx512_bf16": False}, False, "fp32"),
    ],
)
def test_native_bf16_reads_pytorchs_cpu_capabilities(monkeypatch, capabilities, expected, words):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities, raising=False)
    on, why = machine.native_bf16("cpu")
    assert on is expected and words in why


def test_native_bf16_is_off_on_other_devices():
    on, why = machine.native_bf16("meta")
    assert on is False and "meta" in why


def test_resolve_bf16_follows_the_command_line_then_the_hardware(monkeypatch):
    monkeypatch.setattr(machine, "native_bf16", lambda device: (True, "CPU에 AMX-BF16이 있습니다"))
    assert machine.resolve_bf16("auto", "cpu") == (True, "auto: CPU에 AMX-BF16이 있습니다")
    assert machine.resolve_bf16("off", "cpu") == (False, "명령줄 옵션 --bf16 off")
    assert machine.resolve_bf16("on", "cpu")[0] is True
    with pytest.raises(ValueError, match="'yes'"):
        machine.resolve_bf16("yes", "cpu")


def test_synchronize_waits_only_on_asynchronous_devices(monkeypatch):
    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(("cuda", str(device))))
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waited.append(("mps", None)))
    synchronize("cpu")
    synchronize("cuda:1")
    synchronize(torch.device("mps"))
    assert waited == [("cuda", "cuda:1"), ("mps", None)]
