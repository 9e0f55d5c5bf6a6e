"""5장 보너스(훈련 속도): 최적화한 모델이 GPTModel 과 같은 가중치로 같은 로짓을 내는지, 스크립트가 도는지 확인한다."""

import importlib
import os
import re
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


def test_auto_flags_on_cpu_and_pin_memory_needs_cuda(speed_utils):
    cpu = torch.device("cpu")
    flags = speed_utils.resolve_flags({}, cpu)
    assert flags["sdpa"] and flags["fused_adamw"] and flags["pad_vocab"]
    assert not flags["compile"] and not flags["pin_memory"] and not flags["tf32"]
    assert speed_utils.resolve_flags({"bf16": "on", "sdpa": False}, cpu)["bf16"] is True
    for name in ("pin_memory", "tf32"):
        with pytest.raises(ValueError, match=name):
            speed_utils.resolve_flags({name: "on"}, cpu)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_auto_follows_the_cpus_bf16_units_and_says_why(speed_utils, monkeypatch, native):
    why = "CPU에 bfloat16 행렬 유닛(AMX-BF16)이 있습니다" if native else "CPU에 bfloat16 행렬 곱 명령이 없습니다"
    monkeypatch.setattr(speed_utils, "native_bf16", lambda device: (native, why))
    cpu = torch.device("cpu")
    assert speed_utils.resolve_flags({}, cpu)["bf16"] is native
    assert speed_utils.resolve_flags({"bf16": "off"}, cpu)["bf16"] is False  # 명령줄이 auto 보다 우선한다
    reasons = speed_utils.auto_flag_reasons({}, cpu)
    assert f"bf16: auto -> {'켬' if native else '끔'} ({why})" in reasons
    assert not any(line.startswith("bf16") for line in speed_utils.auto_flag_reasons({"bf16": "on"}, cpu))


def test_twenty_bf16_training_steps_track_the_fp32_losses(speed_utils, tmp_path):
    """같은 가중치와 배치로 20스텝: bf16 autocast 의 손실이 매 스텝 fp32 손실과 0.02 (약 0.5%) 안에서 같이 내려간다."""
    from llm_from_scratch.ch05 import calc_loss_batch

    settings = speed_utils.run_settings(True)
    settings["cfg"]["drop_rate"] = 0.0  # 드롭아웃 마스크 차이를 빼고 정밀도 차이만 본다
    flags = speed_utils.resolve_flags({"bf16": "off"}, torch.device("cpu"))
    loader = speed_utils.make_train_loader(32, 2, tmp_path)
    batches = [batch for batch, _ in zip(loader, range(4))] * 5

    def losses(bf16):
        model, optimizer = speed_utils.build_optimized(settings, torch.device("cpu"), flags)
        for group in optimizer.param_groups:
            group["lr"] = 5e-3  # 20스텝 안에 손실이 크게 내려가도록(책의 4e-4 로는 거의 그대로다)
        if bf16:
            model = speed_utils.AutocastForward(model, "cpu")
        values = []
        for input_batch, target_batch in batches:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, "cpu")
            loss.backward()
            optimizer.step()
            values.append(loss.item())
        return values

    fp32, bf16 = losses(False), losses(True)
    assert fp32[-1] < fp32[0] - 3  # 훈련이 실제로 진행된다
    assert bf16 != fp32  # autocast 가 정말 bf16 으로 계산했다
    assert max(abs(a - b) for a, b in zip(fp32, bf16)) < 0.02


def test_tf32_switch_sets_and_restores_matmul_precision(speed_utils):
    before = torch.get_float32_matmul_precision()
    with speed_utils.tf32_matmul(True):
        assert torch.get_float32_matmul_precision() == "high"
    assert torch.get_float32_matmul_precision() == before
    with speed_utils.tf32_matmul(False):
        assert torch.get_float32_matmul_precision() == before


def test_run_settings_rejects_bad_values(speed_utils):
    with pytest.raises(ValueError, match="batch_size"):
        speed_utils.run_settings(True, batch_size=0)
    with pytest.raises(ValueError, match="timed_steps"):
        speed_utils.run_settings(True, timed_steps=0)


def _run_script(name, tmp_path, *args, timeout=240):
    completed = subprocess.run(
        [sys.executable, str(FOLDER / name), "--quick", "--data-dir", str(tmp_path), *args],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
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


def _table_rows(text):
    return [line.split(" | ") for line in text.splitlines() if line.startswith("| ") and "x |" in line]


def _gflops(out, dtype):
    return float(re.search(rf"{dtype} ([\d,.]+) GFLOP/s", out).group(1).replace(",", "")) * 1e9


def test_benchmark_fp32_prints_table_with_ratios_mfu_and_ablation(tmp_path):
    from llm_from_scratch.mfu import training_flops_per_token

    out = _run_script("benchmark.py", tmp_path, "--device", "cpu", "--bf16", "off", "--ablation")
    table, ablation = out.split("| 뒤집은 스위치 |")
    rows = _table_rows(table)
    assert [row[0] for row in rows] == [
        "| 기준선 (GPTModel, 5장 루프)",
        "| 최적화 (FastGPTModel)",
        "| transformers GPT2LMHeadModel",
    ]
    assert rows[0][2] == "1.00x"  # 기준선 대비 기준선
    assert rows[2][3] == "1.00x"  # transformers 대비 transformers
    # MFU 칸 = 토큰당 훈련 FLOPs x 초당 토큰 / 출력된 fp32 최대치 (반올림한 값으로 다시 계산해 2% 안에서 같다)
    flops_per_token = training_flops_per_token({**speed_utils_quick_cfg(), "context_length": 32})
    peak = _gflops(out, "fp32")
    for row in rows:
        tokens_per_s = float(row[1].replace(",", ""))
        assert float(row[4].rstrip("%")) / 100 == pytest.approx(flops_per_token * tokens_per_s / peak, rel=0.02)
        assert float(row[5].split()[0]) > 0  # 메모리 최대(GB)
    assert "최적화 / transformers:" in out and "최적화 / 기준선:" in out
    assert "bf16 / 최적화 fp32" not in out
    assert [row[0] for row in _table_rows(ablation)] == [
        "| 끔: sdpa",
        "| 끔: fused_adamw",
        "| 끔: native_layernorm",
        "| 끔: native_gelu",
        "| 끔: pad_vocab",
        "| 켬: bf16",
    ]


def speed_utils_quick_cfg():
    sys.path.insert(0, str(FOLDER))
    try:
        return dict(importlib.import_module("speed_utils").QUICK_SETTINGS["cfg"])
    finally:
        sys.path.remove(str(FOLDER))


def test_benchmark_bf16_also_times_fp32_and_larger_batches(tmp_path):
    out = _run_script("benchmark.py", tmp_path, "--device", "cpu", "--bf16", "on", "--larger-batch", "2", "4")
    main_table, batch_table = out.split("| 배치 크기 |")
    assert [row[0] for row in _table_rows(main_table)] == [
        "| 기준선 (GPTModel, 5장 루프)",
        "| 최적화 (FastGPTModel)",
        "| 최적화, bf16 끔 (FastGPTModel fp32)",
        "| transformers GPT2LMHeadModel",
    ]
    assert _gflops(out, "bf16") > 0
    ratio = re.search(r"최적화 bf16 / 최적화 fp32: ([\d.]+)x", out)
    rows = {row[0]: float(row[1].replace(",", "")) for row in _table_rows(main_table)}
    expected = rows["| 최적화 (FastGPTModel)"] / rows["| 최적화, bf16 끔 (FastGPTModel fp32)"]
    assert float(ratio.group(1)) == pytest.approx(expected, abs=0.01 + 0.01 * expected)
    batch_rows = [line.split(" | ") for line in batch_table.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [row[0] for row in batch_rows] == ["| 2", "| 4"]
    assert batch_rows[0][2] == "1.00x" and all(float(row[3].split()[0]) > 0 for row in batch_rows)


def test_benchmark_full_run_trains_the_book_loop_and_the_optimized_path(tmp_path):
    out = _run_script(
        "benchmark.py", tmp_path, "--device", "cpu", "--full", "--epochs", "1", "--bf16", "on", timeout=600
    )
    assert out.count("에포크 1 (스텝 000070)") == 2  # 5장 루프의 평가 출력이 두 구성 모두에서 나온다
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| ") and "초 |" in line]
    assert [row[0] for row in rows] == ["| 기준선 (GPTModel, 5장 루프)", "| 최적화 (FastGPTModel)"]
    for row in rows:
        train_loss, val_loss = float(row[3]), float(row[4].rstrip(" |"))
        assert train_loss < 10.5 and val_loss < 10.8  # 무작위 모델의 ln(50257) = 10.8 보다 내려갔다
    assert re.search(r"최적화 경로가 [\d,.]+초 (덜|더) 걸렸습니다", out)


def test_benchmark_rejects_epochs_without_full(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(FOLDER / "benchmark.py"), "--quick", "--epochs", "3"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode != 0 and "--full" in completed.stderr


def test_ddp_script_two_cpu_processes_end_with_identical_weights_and_falling_loss(tmp_path):
    completed = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            str(FOLDER / "02_opt_multi_gpu_ddp.py"), "--quick", "--device", "cpu", "--data-dir", str(tmp_path),
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    out = completed.stdout
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "프로세스 2개, 장치 cpu, 백엔드 gloo" in out
    checksums = re.findall(r"^프로세스 (\d) 가중치 체크섬: (.+)$", out, flags=re.MULTILINE)
    assert [rank for rank, _ in checksums] == ["0", "1"]
    assert checksums[0][1] == checksums[1][1]
    assert "모든 프로세스(2개)의 가중치가 같습니다." in out
    losses = [float(value) for value in re.findall(r"평균 훈련 손실 ([\d.]+)", out)]
    assert len(losses) == 3 and losses[-1] < losses[0] - 1


def test_ddp_script_explains_how_to_launch_without_torchrun(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    completed = subprocess.run(
        [sys.executable, str(FOLDER / "02_opt_multi_gpu_ddp.py"), "--quick"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode != 0 and "torchrun --nproc_per_node" in completed.stderr
