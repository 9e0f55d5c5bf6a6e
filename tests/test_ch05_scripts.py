"""5장 스크립트(gpt_train.py, gpt_generate.py, gpt_download.py)를 빠른 모드로 끝까지 돌려 본다."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT_DIR = Path(__file__).resolve().parents[1] / "ch05" / "01_main-chapter-code"


def run_script(name, *args, cwd):
    env = {**os.environ, "LLMFS_QUICK": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT_DIR / name), *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("name", ["gpt_train", "gpt_generate", "gpt_download"])
def test_script_help(name, capsys):
    # --help 은 프로세스를 새로 띄우지 않고 같은 main() 으로 확인한다(torch 를 다시 불러오는 시간을 아낀다)
    module = importlib.import_module(f"llm_from_scratch.ch05.{name}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "--quick" in out


def test_gpt_train_quick_saves_model_and_plot(tmp_path):
    out = run_script("gpt_train.py", "--output-dir", "out", "--device", "cpu", cwd=tmp_path)
    assert "에포크 1 (스텝 000000)" in out
    assert (tmp_path / "out" / "model.pth").stat().st_size > 0
    assert (tmp_path / "out" / "loss.pdf").read_bytes().startswith(b"%PDF")


def test_gpt_generate_quick_uses_synthetic_tf_checkpoint(tmp_path):
    out = run_script("gpt_generate.py", "--max-new-tokens", "5", "--models-dir", "models", cwd=tmp_path)
    assert "빠른 모드" in out and "Every effort moves you" in out
    assert (tmp_path / "models" / "124M" / "model.ckpt.index").is_file()


def test_gpt_generate_quick_hf_source_is_deterministic_at_temperature_zero(tmp_path, capsys):
    from llm_from_scratch.ch05 import gpt_generate

    args = ["--source", "hf", "--quick", "--temperature", "0", "--max-new-tokens", "5", "--device", "cpu"]
    gpt_generate.main([*args, "--models-dir", str(tmp_path / "a")])
    first = capsys.readouterr().out
    gpt_generate.main([*args, "--models-dir", str(tmp_path / "b"), "--seed", "7"])
    second = capsys.readouterr().out
    assert "빠른 모드" in first and "Every effort moves you" in first
    assert first == second
    assert (tmp_path / "a" / "gpt2" / "model.safetensors").is_file()


def test_gpt_download_cli_quick_loads_synthetic_checkpoint(tmp_path):
    out = run_script("gpt_download.py", "--model-size", "355M", "--models-dir", "gpt2", cwd=tmp_path)
    assert "'n_layer': 2" in out
    assert (tmp_path / "gpt2" / "355M" / "hparams.json").is_file()
