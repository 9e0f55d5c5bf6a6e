"""5장 보너스(훈련 속도): 최적화한 모델이 GPTModel 과 같은 가중치로 같은 로짓을 내는지, 스크립트가 도는지 확인한다."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llm_from_scratch.ch04 import GPTModel

FOLDER = Path(__file__).resolve().parents[1] / "ch05" / "10_llm-training-speed"

TINY_CFG = {
    "vocab_size": 50257,
    "context_length": 16,
    "emb_dim": 32,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": False,
}


@pytest.fixture(scope="module")
def fast_gpt():
    # 보너스 폴더는 패키지가 아니므로, 스크립트가 실행될 때처럼 폴더를 경로에 넣고 가져온다
    sys.path.insert(0, str(FOLDER))
    try:
        yield importlib.import_module("fast_gpt")
    finally:
        sys.path.remove(str(FOLDER))


@pytest.fixture(scope="module")
def speed_utils(fast_gpt):
    sys.path.insert(0, str(FOLDER))
    try:
        yield importlib.import_module("speed_utils")
    finally:
        sys.path.remove(str(FOLDER))


def _pair(fast_gpt, cfg=TINY_CFG, **switches):
    torch.manual_seed(123)
    reference = GPTModel(cfg).eval()
    fast = fast_gpt.FastGPTModel(cfg, **switches).eval()
    fast.load_state_dict(reference.state_dict())
    return reference, fast


@pytest.mark.parametrize(
    "switches",
    [
        {},
        {"sdpa": False},
        {"native_layernorm": False},
        {"native_gelu": False},
        {"vocab_multiple": 1},
        {"sdpa": False, "native_layernorm": False, "native_gelu": False, "vocab_multiple": 1},
    ],
)
def test_fast_model_gives_gpt_model_logits_on_same_weights(fast_gpt, switches):
    reference, fast = _pair(fast_gpt, **switches)
    idx = torch.randint(0, TINY_CFG["vocab_size"], (3, TINY_CFG["context_length"]))
    with torch.no_grad():
        expected = reference(idx)
        actual = fast(idx)[..., : TINY_CFG["vocab_size"]]
    assert actual.dtype == torch.float32
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)


def test_fast_model_with_qkv_bias_and_short_input_matches(fast_gpt):
    cfg = {**TINY_CFG, "qkv_bias": True}
    reference, fast = _pair(fast_gpt, cfg)
    idx = torch.randint(0, cfg["vocab_size"], (2, 5))  # 문맥보다 짧은 입력: 인과 마스크의 앞부분만 쓰인다
    with torch.no_grad():
        torch.testing.assert_close(fast(idx)[..., : cfg["vocab_size"]], reference(idx), rtol=0, atol=1e-5)


def test_optimized_kernels_are_really_in_use(fast_gpt):
    fast = fast_gpt.FastGPTModel(TINY_CFG)
    block = fast.trf_blocks[0]
    assert isinstance(block.att, fast_gpt.SDPAMultiHeadAttention)
    assert isinstance(block.norm1, fast_gpt.NativeLayerNorm)
    assert isinstance(fast.final_norm, fast_gpt.NativeLayerNorm)
    assert isinstance(block.ff.layers[1], fast_gpt.NativeGELU)
    plain = fast_gpt.FastGPTModel(TINY_CFG, sdpa=False, native_layernorm=False, native_gelu=False)
    assert type(plain.trf_blocks[0].att).__name__ == "MultiHeadAttention"


def test_padded_vocab_keeps_real_logits_and_hides_padding(fast_gpt):
    reference, fast = _pair(fast_gpt)
    assert fast.out_head.out_features == fast.tok_emb.num_embeddings == 50304
    idx = torch.randint(0, TINY_CFG["vocab_size"], (2, 8))
    targets = torch.randint(0, TINY_CFG["vocab_size"], (2, 8))
    with torch.no_grad():
        logits = fast(idx)
        expected = reference(idx)
    assert torch.isneginf(logits[..., 50257:]).all()
    torch.testing.assert_close(logits[..., :50257], expected, rtol=0, atol=1e-5)
    # 패딩 열의 확률이 0이므로 손실도 패딩 전과 같다
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    expected_loss = torch.nn.functional.cross_entropy(expected.flatten(0, 1), targets.flatten())
    torch.testing.assert_close(loss, expected_loss, rtol=0, atol=1e-5)


def test_padded_rows_get_no_gradient(fast_gpt):
    _, fast = _pair(fast_gpt)
    fast.train()
    idx = torch.randint(0, TINY_CFG["vocab_size"], (2, 8))
    loss = torch.nn.functional.cross_entropy(fast(idx).flatten(0, 1), idx.flatten())
    loss.backward()
    assert torch.isfinite(loss)
    assert fast.out_head.weight.grad[50257:].abs().max() == 0
    assert fast.tok_emb.weight.grad[50257:].abs().max() == 0


def test_state_dict_has_gpt_model_keys_and_shapes_both_ways(fast_gpt):
    reference, fast = _pair(fast_gpt)
    fast_state = fast.state_dict()
    reference_state = reference.state_dict()
    assert list(fast_state) == list(reference_state)
    assert all(fast_state[key].shape == reference_state[key].shape for key in reference_state)
    restored = GPTModel(TINY_CFG).eval()
    restored.load_state_dict(fast_state)
    idx = torch.randint(0, TINY_CFG["vocab_size"], (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(restored(idx), reference(idx), rtol=0, atol=0)


def test_load_state_dict_rejects_wrong_vocab_rows(fast_gpt):
    other = GPTModel({**TINY_CFG, "vocab_size": 1000})
    fast = fast_gpt.FastGPTModel(TINY_CFG)
    with pytest.raises(ValueError, match="tok_emb.weight"):
        fast.load_state_dict(other.state_dict())


def test_one_training_step_matches_gpt_model(fast_gpt):
    reference, fast = _pair(fast_gpt)
    idx = torch.randint(0, TINY_CFG["vocab_size"], (2, 8))
    targets = torch.randint(0, TINY_CFG["vocab_size"], (2, 8))
    for model in (reference, fast):
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
        logits = model(idx)[..., : TINY_CFG["vocab_size"]]
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
        optimizer.step()
    updated = fast.state_dict()
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(updated[key], value, rtol=0, atol=1e-5, msg=key)


def test_padded_vocab_size(fast_gpt):
    assert fast_gpt.padded_vocab_size(50257) == 50304
    assert fast_gpt.padded_vocab_size(50304) == 50304
    assert fast_gpt.padded_vocab_size(50257, multiple=1) == 50257
    with pytest.raises(ValueError, match="multiple"):
        fast_gpt.padded_vocab_size(50257, multiple=0)


def test_matmul_params_counts_gpt_model_without_embedding_tables(speed_utils):
    for cfg in (TINY_CFG, {**TINY_CFG, "qkv_bias": True}):
        model = GPTModel(cfg)
        expected = sum(p.numel() for p in model.parameters()) - model.tok_emb.weight.numel()
        expected -= model.pos_emb.weight.numel()
        assert speed_utils.matmul_params(cfg) == expected


def test_auto_flags_on_cpu_and_pin_memory_needs_cuda(speed_utils):
    cpu = torch.device("cpu")
    flags = speed_utils.resolve_flags({}, cpu)
    assert flags["sdpa"] and flags["fused_adamw"] and flags["pad_vocab"]
    assert not flags["compile"] and not flags["pin_memory"]
    assert speed_utils.resolve_flags({"bf16": "on", "sdpa": False}, cpu)["bf16"] is True
    with pytest.raises(ValueError, match="pin_memory"):
        speed_utils.resolve_flags({"pin_memory": "on"}, cpu)


def test_run_settings_rejects_bad_values(speed_utils):
    with pytest.raises(ValueError, match="batch_size"):
        speed_utils.run_settings(True, batch_size=0)
    with pytest.raises(ValueError, match="timed_steps"):
        speed_utils.run_settings(True, timed_steps=0)


def _run_script(name, tmp_path, *args):
    completed = subprocess.run(
        [sys.executable, str(FOLDER / name), "--quick", "--data-dir", str(tmp_path), *args],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_baseline_script_runs_quick(tmp_path):
    out = _run_script("00_baseline.py", tmp_path, "--device", "cpu")
    assert "기준선(5장 루프): 초당 훈련 토큰" in out


def test_optimized_script_runs_with_switches(tmp_path):
    out = _run_script("01_optimized.py", tmp_path, "--device", "cpu", "--no-sdpa", "--no-pad-vocab", "--bf16", "on")
    assert "켠 최적화: fused_adamw, native_layernorm, native_gelu, bf16" in out
    assert "최적화: 초당 훈련 토큰" in out


def test_benchmark_prints_table_with_ratios_and_mfu(tmp_path):
    out = _run_script("benchmark.py", tmp_path, "--device", "cpu", "--ablation")
    table, ablation = out.split("| 뒤집은 스위치 |")
    rows = [line for line in table.splitlines() if line.startswith("| ") and "x |" in line]
    assert [row.split(" | ")[0] for row in rows] == [
        "| 기준선 (GPTModel, 5장 루프)",
        "| 최적화 (FastGPTModel)",
        "| transformers GPT2LMHeadModel",
    ]
    assert rows[0].split(" | ")[2] == "1.00x"  # 기준선 대비 기준선
    assert rows[2].split(" | ")[3] == "1.00x"  # transformers 대비 transformers
    assert all(row.rstrip(" |").endswith("%") for row in rows)
    assert "최적화 / transformers:" in out and "최적화 / 기준선:" in out
    flipped = [line.split(" | ")[0] for line in ablation.splitlines() if line.startswith("| ") and "x |" in line]
    assert flipped == [
        "| 끔: sdpa",
        "| 끔: fused_adamw",
        "| 끔: native_layernorm",
        "| 끔: native_gelu",
        "| 끔: pad_vocab",
        "| 켬: bf16",
    ]
