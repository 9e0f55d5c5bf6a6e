"""부록 A: 신경망 파라미터 수, 장난감 데이터셋, 훈련 루프의 정확도, 두 DDP 스크립트(CPU, gloo, 프로세스 2개)."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support import load_module
from torch.utils.data import DataLoader

from llm_from_scratch.appendix_a import NeuralNetwork, ToyDataset, compute_accuracy, toy_data

CODE_DIR = Path(__file__).resolve().parents[1] / "appendix-A" / "01_main-chapter-code"
# 스크립트 하나가 이보다 오래 걸리면 멈춘 것으로 보고 프로세스 그룹째 끝낸다
SCRIPT_TIMEOUT_SECONDS = 120


def count_trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_neural_network_50_inputs_3_outputs_has_2213_trainable_parameters():
    assert count_trainable(NeuralNetwork(50, 3)) == 2_213


def test_neural_network_2_inputs_2_outputs_has_752_trainable_parameters():
    assert count_trainable(NeuralNetwork(2, 2)) == 752


def test_neural_network_outputs_one_logit_per_class():
    torch.manual_seed(123)
    out = NeuralNetwork(50, 3)(torch.rand(4, 50))
    assert out.shape == (4, 3)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "2"])
def test_neural_network_rejects_bad_sizes_with_a_message_naming_the_value(bad):
    with pytest.raises(ValueError, match="num_inputs"):
        NeuralNetwork(bad, 2)


def test_toy_dataset_returns_feature_label_pairs_and_length():
    X_train, y_train, X_test, y_test = toy_data()
    ds = ToyDataset(X_train, y_train)
    assert len(ds) == 5 and len(ToyDataset(X_test, y_test)) == 2
    features, label = ds[3]
    assert features.tolist() == pytest.approx([2.3, -1.1]) and label.item() == 1


def test_toy_dataset_rejects_mismatched_lengths():
    X_train, y_train, _, _ = toy_data()
    with pytest.raises(ValueError, match="5개.*4개"):
        ToyDataset(X_train, y_train[:4])


def test_toy_training_loop_reaches_accuracy_one_on_train_and_test():
    X_train, y_train, X_test, y_test = toy_data()
    torch.manual_seed(123)
    train_loader = DataLoader(ToyDataset(X_train, y_train), batch_size=2, shuffle=True, drop_last=True)
    test_loader = DataLoader(ToyDataset(X_test, y_test), batch_size=2, shuffle=False)
    full_train_loader = DataLoader(ToyDataset(X_train, y_train), batch_size=2)
    model = NeuralNetwork(num_inputs=2, num_outputs=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    assert compute_accuracy(model, full_train_loader) < 1.0  # 훈련 전에는 아직 다 맞히지 못한다

    for _ in range(3):
        model.train()
        for features, labels in train_loader:
            loss = torch.nn.functional.cross_entropy(model(features), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    assert compute_accuracy(model, full_train_loader) == 1.0
    assert compute_accuracy(model, test_loader) == 1.0


def test_compute_accuracy_counts_wrong_predictions():
    X_train, y_train, _, _ = toy_data()
    model = NeuralNetwork(2, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.layers[4].bias.copy_(torch.tensor([1.0, 0.0]))  # 언제나 클래스 0 을 고른다
    loader = DataLoader(ToyDataset(X_train, y_train), batch_size=2)
    assert compute_accuracy(model, loader) == pytest.approx(3 / 5)



def test_compute_accuracy_of_a_loader_without_batches_raises_in_korean():
    X_train, y_train, _, _ = toy_data()
    # drop_last=True 에 배치 크기가 샘플 수보다 크면 배치가 하나도 없다
    loader = DataLoader(ToyDataset(X_train, y_train), batch_size=8, drop_last=True)
    with pytest.raises(ValueError, match="배치를 하나도"):
        compute_accuracy(NeuralNetwork(2, 2), loader)


def _start(command, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def _finish(process):
    try:
        output, _ = process.communicate(timeout=SCRIPT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # 자식 프로세스(랭크들)까지 함께 끝낸다
        output, _ = process.communicate()
        pytest.fail(f"DDP 스크립트가 {SCRIPT_TIMEOUT_SECONDS}초 안에 끝나지 않았습니다:\n{output}")
    return process.returncode, output


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    """두 스크립트를 동시에 띄워(각자 빈 포트를 고른다) 종료 코드와 출력을 모은다."""
    cwd = tmp_path_factory.mktemp("ddp")
    spawn = _start([sys.executable, str(CODE_DIR / "DDP-script.py"), "--device", "cpu", "--world-size", "2"], cwd)
    torchrun = _start(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(CODE_DIR / "DDP-script-torchrun.py"),
            "--device",
            "cpu",
        ],
        cwd,
    )
    (cwd / "threads_after_ddp.py").write_text(THREADS_AFTER_DDP, encoding="utf-8")
    closed = _start([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "threads_after_ddp.py"], cwd)
    return {"spawn": _finish(spawn), "torchrun": _finish(torchrun), "closed": _finish(closed)}


# ddp_train 이 돌아온 뒤 프로세스에 남은 스레드 이름을 출력한다(리눅스 /proc)
THREADS_AFTER_DDP = """
import os
from llm_from_scratch.appendix_a import ddp_train
ddp_train(int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]), 1, "cpu")
names = sorted(open(f"/proc/self/task/{task}/comm").read().strip() for task in os.listdir("/proc/self/task"))
print(f"남은 스레드 {os.environ['LOCAL_RANK']}: {names}", flush=True)
"""


@pytest.mark.parametrize("launcher", ["spawn", "torchrun"])
def test_ddp_script_trains_on_two_cpu_ranks_to_accuracy_one(ddp_runs, launcher):
    returncode, output = ddp_runs[launcher]
    assert returncode == 0, output
    for rank in (0, 1):
        assert len(re.findall(rf"^\[CPU{rank}\] 에포크 \d{{3}}/003", output, flags=re.MULTILINE)) == 3, output
        assert re.search(rf"^\[CPU{rank}\] 훈련 정확도 1\.0$", output, flags=re.MULTILINE), output
        assert re.search(rf"^\[CPU{rank}\] 테스트 정확도 1\.0$", output, flags=re.MULTILINE), output


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="스레드 목록을 /proc 에서 읽는다(리눅스)")
def test_ddp_train_joins_the_gloo_threads_before_python_exits(ddp_runs):
    # gloo 작업 스레드가 파이썬 종료 때까지 살아 있으면 열 번에 한 번쯤 "terminate called ..." 로 중단된다
    returncode, output = ddp_runs["closed"]
    assert returncode == 0, output
    left = re.findall(r"^남은 스레드 \d: (.*)$", output, flags=re.MULTILINE)
    assert len(left) == 2, output
    assert all("gloo" not in names for names in left), output


def test_torchrun_script_explains_how_to_launch_when_run_directly(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "WORLD_SIZE")}
    result = subprocess.run(
        [sys.executable, str(CODE_DIR / "DDP-script-torchrun.py"), "--device", "cpu"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode != 0
    assert "LOCAL_RANK" in result.stderr and "torchrun" in result.stderr


def test_spawn_script_retries_with_a_new_port_when_another_program_took_it(monkeypatch):
    script = load_module(CODE_DIR / "DDP-script.py", "ddp_script_port_retry")
    ports, calls = iter([41001, 41002]), []

    def fake_spawn(fn, args, nprocs):
        calls.append(os.environ["MASTER_PORT"])
        if len(calls) == 1:
            raise script.mp.ProcessRaisedException("DistNetworkError: ... EADDRINUSE, address already in use", 0, 1)

    monkeypatch.delenv("MASTER_PORT", raising=False)
    monkeypatch.setenv("MASTER_ADDR", "localhost")
    monkeypatch.setattr(script, "find_free_port", lambda: next(ports))
    monkeypatch.setattr(script.mp, "spawn", fake_spawn)
    monkeypatch.setattr(sys, "argv", ["DDP-script.py", "--device", "cpu"])
    script.main()
    assert calls == ["41001", "41002"]

    # 사용자가 정한 포트는 바꾸지 않고, 다른 오류는 다시 시도하지 않는다
    monkeypatch.setenv("MASTER_PORT", "42000")
    calls.clear()
    with pytest.raises(script.mp.ProcessRaisedException):
        script.main()
    assert calls == ["42000"]
