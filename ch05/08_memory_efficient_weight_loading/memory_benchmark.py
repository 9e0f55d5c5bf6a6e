"""큰 ``GPTModel`` 가중치를 불러오는 여섯 가지 방법과, 각 방법의 최대 메모리(RSS, GPU)를 재는 도구.

방법마다 새 파이썬 프로세스에서 재야 앞 방법이 남긴 메모리가 섞이지 않는다. 그래서 이 파일은 모듈이면서 스크립트다.

    python memory_benchmark.py --method mmap --weights 가중치.pth --config 설정.json

는 한 방법으로 불러온 뒤 측정값을 JSON 한 줄로 출력한다. 노트북과 테스트는 ``measure_in_subprocess`` 로 이것을 부른다.
memory-efficient-state-dict.ipynb 는 ``save_per_tensor_files``, ``load_model``, ``PeakMemoryMonitor``,
``measure_in_this_process`` 를 같은 코드로 셀에서 정의하며 설명한다(tests/test_listings.py 가 둘이 같은지 확인한다).
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import torch

from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.utils import ArgumentParser

__all__ = [
    "METHODS",
    "PeakMemoryMonitor",
    "load_model",
    "measure_in_subprocess",
    "measure_in_this_process",
    "save_per_tensor_files",
]

MB = 1024**2

METHODS = {
    "naive": "모델을 만들고 torch.load 로 state_dict 전체를 읽어 load_state_dict",
    "map_location": "torch.load(map_location=장치): state_dict 를 곧바로 목표 장치에 읽기",
    "sequential": "state_dict 를 CPU 에 읽고 텐서를 하나씩 모델로 복사하며 지우기",
    "meta_assign": "meta 장치에 빈 모델 + load_state_dict(assign=True)",
    "mmap": "meta 장치 + torch.load(mmap=True) + assign=True",
    "per_tensor_files": "텐서마다 따로 저장한 파일을 하나씩 읽어 채우기",
}


class PeakMemoryMonitor:
    """``with`` 블록 동안 이 프로세스의 RSS 를 별도 스레드에서 자주 재어 최댓값을 기록한다."""

    def __init__(self, interval=0.002):
        self.interval = interval
        self.process = psutil.Process()
        self.peak_rss = 0
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self.baseline_rss = self.process.memory_info().rss
        self.peak_rss = self.baseline_rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
        return False


def save_per_tensor_files(state_dict, folder):
    """state_dict 의 텐서를 하나씩 ``folder/<이름>.pt`` 로 저장한다(이름 목록은 ``index.json``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, tensor in state_dict.items():
        torch.save(tensor.clone(), folder / f"{name}.pt")  # clone: 큰 저장소를 함께 쓰는 뷰라도 그 텐서만 저장한다
    (folder / "index.json").write_text(json.dumps(list(state_dict)), encoding="utf-8")


def load_model(method, config, weights, device):
    """``method`` 로 ``GPTModel(config)`` 에 가중치를 싣고 모델을 돌려준다.

    Args:
        method: ``METHODS`` 의 키.
        config: ``GPTModel`` 설정 딕셔너리.
        weights: ``torch.save(model.state_dict())`` 로 저장한 파일(``per_tensor_files`` 는 ``save_per_tensor_files`` 의 폴더).
        device: 모델을 둘 장치.
    """
    if method not in METHODS:
        raise ValueError(f"알 수 없는 방법 {method!r} 입니다. 가능한 방법: {', '.join(METHODS)}")
    device = torch.device(device)

    if method in ("naive", "map_location", "sequential"):
        model = GPTModel(config).to(device)  # 무작위 초기화로 모델 크기만큼 메모리를 먼저 쓴다
        if method == "naive":
            state_dict = torch.load(weights, weights_only=True)  # 저장된 장치(여기서는 CPU)에 전부 읽는다
            model.load_state_dict(state_dict)
        elif method == "map_location":
            state_dict = torch.load(weights, map_location=device, weights_only=True)
            model.load_state_dict(state_dict)
        else:
            state_dict = torch.load(weights, map_location="cpu", weights_only=True)
            with torch.no_grad():
                for name, tensor in model.state_dict().items():
                    tensor.copy_(state_dict.pop(name).to(device))  # 옮긴 텐서는 state_dict 에서 지운다
        del state_dict
        return model

    with torch.device("meta"):
        model = GPTModel(config)  # 파라미터가 모양만 있고 메모리는 쓰지 않는다
    if method == "meta_assign":
        state_dict = torch.load(weights, map_location=device, weights_only=True)
        model.load_state_dict(state_dict, assign=True)  # 복사하지 않고 읽은 텐서를 그대로 파라미터로 쓴다
    elif method == "mmap":
        state_dict = torch.load(weights, mmap=True, weights_only=True)  # 파일을 메모리에 매핑만 하고 아직 읽지 않는다
        if device.type != "cpu":
            state_dict = {name: tensor.to(device) for name, tensor in state_dict.items()}
        model.load_state_dict(state_dict, assign=True)
    else:
        model = model.to_empty(device=device)  # 값은 채우지 않은 채 목표 장치에 메모리만 잡는다
        params = model.state_dict()
        with torch.no_grad():
            for name in json.loads((Path(weights) / "index.json").read_text(encoding="utf-8")):
                params[name].copy_(torch.load(Path(weights) / f"{name}.pt", map_location=device, weights_only=True))
    return model


def measure_in_this_process(method, config, weights, device="cpu"):
    """이 프로세스에서 한 방법을 재고 결과 딕셔너리를 돌려준다.

    앞서 이 프로세스가 쓴 메모리가 섞이므로 깨끗한 최댓값은 ``measure_in_subprocess`` 로 잰다.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats()
    if method in ("meta_assign", "mmap", "per_tensor_files"):
        # meta 장치에서 torch.triu(어텐션 마스크)를 처음 부르면 파이토치가 파이썬 구현을 찾느라 모듈을 많이 가져온다
        # (수십 MB, 몇 초). 불러오기와 상관없는 한 번뿐인 비용이므로 재기 전에 치른다
        with torch.device("meta"):
            torch.triu(torch.ones(2, 2), diagonal=1)
    file_before = getattr(psutil.Process().memory_info(), "shared", 0)
    with PeakMemoryMonitor() as monitor:
        start = time.perf_counter()
        model = load_model(method, config, weights, device)
        seconds = time.perf_counter() - start
    after_load = psutil.Process().memory_info().rss
    result = {
        "method": method,
        "seconds": seconds,
        "baseline_mb": monitor.baseline_rss / MB,
        "peak_rss_mb": monitor.peak_rss / MB,
        "load_rss_increase_mb": (monitor.peak_rss - monitor.baseline_rss) / MB,
        "after_load_rss_mb": after_load / MB,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / MB if cuda else None,
    }
    # 한 번 순전파하면 모든 가중치를 실제로 읽는다(mmap 이면 이때 파일 페이지가 RSS 에 들어온다)
    with torch.no_grad():
        model(torch.zeros((1, 4), dtype=torch.long, device=device))
    memory = psutil.Process().memory_info()
    result["after_forward_rss_mb"] = memory.rss / MB
    # RSS 가운데 파일에 매핑된 페이지(리눅스의 RssFile + RssShmem)가 불러오기 전보다 늘어난 양.
    # mmap 으로 읽은 가중치는 여기에 들어간다(공유 라이브러리처럼 전부터 있던 파일 페이지는 뺀다)
    result["file_pages_increase_mb"] = (getattr(memory, "shared", 0) - file_before) / MB
    return result


def measure_in_subprocess(method, config, weights, device="cpu", timeout=600):
    """새 파이썬 프로세스에서 ``method`` 를 재고 결과 딕셔너리를 돌려준다."""
    with open(Path(weights).with_name("memory-benchmark-config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    command = [sys.executable, str(Path(__file__).resolve()), "--method", method, "--weights", str(weights),
               "--config", f.name, "--device", str(device)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    completed = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout, env=env)
    if completed.returncode != 0:
        hint = " 메모리가 모자라 운영 체제가 종료시켰을 수 있습니다. 더 작은 모델로 재세요." if completed.returncode == -9 else ""
        raise RuntimeError(f"방법 {method} 의 측정 프로세스가 실패했습니다(종료 코드 {completed.returncode}).{hint}\n"
                           f"{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = ArgumentParser(description="한 가지 방법으로 GPTModel 가중치를 불러오며 최대 메모리를 잰다.")
    parser.add_argument("--method", required=True, choices=list(METHODS), help="불러오는 방법")
    parser.add_argument("--weights", required=True, help="state_dict 파일(per_tensor_files 는 텐서별 파일 폴더)")
    parser.add_argument("--config", required=True, help="GPTModel 설정 JSON 파일")
    parser.add_argument("--device", default="cpu", help="모델을 둘 장치 (기본: cpu)")
    args = parser.parse_args(argv)
    weights = Path(args.weights)
    if not weights.exists():
        parser.error(f"가중치 {weights} 가 없습니다. 먼저 노트북의 저장 단계를 실행하세요.")
    config = json.loads(Path(args.config).read_text(encoding="utf-8"))
    print(json.dumps(measure_in_this_process(args.method, config, weights, args.device)))


if __name__ == "__main__":
    main()
