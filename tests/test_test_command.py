"""README의 테스트 명령이 독자의 머신에서 사실대로 말하는지: 죽은 커널은 곧바로 실패하고, 시간 제한과
네트워크 차단이 켜져 있으며, TensorFlow 체크포인트를 읽은 프로세스에서 옵티마이저를 만들어도 죽지 않는다."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parent.parent


def _addopts() -> str:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["tool"]["pytest"]["ini_options"]["addopts"]


def test_test_command_blocks_the_network_and_bounds_every_wait():
    options = _addopts().split()
    assert "--allow-hosts=127.0.0.1,::1" in options  # pytest-socket: 루프백 말고는 연결할 수 없다
    assert any(o.startswith("--timeout=") for o in options)  # pytest-timeout: 멈춘 테스트는 끝난다
    cell_timeout = next(o for o in options if o.startswith("--nbval-cell-timeout="))
    assert 0 < float(cell_timeout.split("=")[1]) <= 600
    assert "--nbval-current-env" in options  # 노트북은 테스트와 같은 파이썬(가상 환경)으로 돈다


def test_a_test_cannot_reach_the_internet():
    import socket

    from pytest_socket import SocketConnectBlockedError

    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("93.184.216.34", 80), timeout=1)


def test_a_dead_notebook_kernel_fails_at_once_and_names_the_cell(tmp_path):
    """커널이 죽으면(세그멘테이션 오류 등) nbval이 셀 시간 제한까지 기다리지 않고 그 셀을 실패시킨다."""
    cells = [
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": "x = 1"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": "print(x)"},
    ]
    notebook = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
                "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "dies.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # 셀 시간 제한은 1,000초로 두고, 커널이 죽었을 때 그보다 훨씬 빨리(여기서는 120초 안에) 끝나는지 본다
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", os.devnull, f"--rootdir={tmp_path}", "-p", "conftest", "-p", "no:cacheprovider",
         "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=1000", "-q", str(path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "2 failed, 1 passed" in output, output
    assert "커널이 이 셀을 실행하다가 죽었습니다" in output
    assert "dies.ipynb::Cell 1" in output


def test_reading_a_tensorflow_checkpoint_then_training_does_not_crash(tmp_path):
    """OpenAI 체크포인트를 TensorFlow로 읽은 같은 프로세스에서 AdamW를 만들고 한 스텝 훈련한다.

    CUDA 빌드의 torch(triton 포함)와 tensorflow-cpu를 함께 깔면, TensorFlow 다음에 triton을 가져오는 순간
    프로세스가 죽었다(AdamW가 torch._dynamo를 거쳐 triton을 가져온다). 새 프로세스에서 확인한다.
    """
    script = textwrap.dedent(f"""
        import torch
        from llm_from_scratch.ch04 import GPTModel
        from llm_from_scratch.ch05 import (download_and_load_gpt2, gpt2_config_from_hparams, load_weights_into_gpt,
                                           write_synthetic_gpt2_checkpoint)

        write_synthetic_gpt2_checkpoint({str(tmp_path)!r}, "124M")
        settings, params = download_and_load_gpt2("124M", {str(tmp_path)!r})
        model = GPTModel(gpt2_config_from_hparams(settings))
        load_weights_into_gpt(model, params)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        batch = torch.randint(0, 50257, (2, 8))
        losses = []
        for _ in range(2):
            logits = model(batch[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        print("losses", losses)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"종료 코드 {result.returncode}\n{result.stderr[-3000:]}"
    first, second = (float(v) for v in result.stdout.split("losses")[1].strip(" []\n").split(","))
    assert second < first  # 같은 배치를 한 번 더 보면 손실이 내려간다: 옵티마이저가 실제로 움직였다


def _requirement_floors() -> dict[str, str]:
    floors = {}
    for line in (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if ">=" in line and not line.startswith("-"):
            name, version = line.split(";", 1)[0].split(">=")
            floors[name.strip().lower()] = version.strip()
    return floors


def test_ci_tests_the_oldest_versions_that_requirements_allow():
    """.ci/oldest.txt 는 requirements.txt 의 바닥 버전 그대로여야 한다(그래야 README가 약속하는 범위를 CI가 돈다)."""
    pins = {}
    for line in (REPO_ROOT / ".ci" / "oldest.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    floors = _requirement_floors()
    floors.pop("tensorflow", None)  # macOS·ARM 용 줄: CI(x86-64 리눅스)는 tensorflow-cpu 를 깐다
    assert {name: Version(v) for name, v in pins.items()} == {name: Version(v) for name, v in floors.items()}
