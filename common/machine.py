"""시간을 재는 코드가 결과 옆에 적을 측정 환경: CPU(또는 GPU) 모델, 스레드 수, 부하 평균.

같은 코드도 다른 프로세스가 CPU를 나눠 쓰면 몇 배 느리게 재어진다. 그래서 벤치마크 스크립트와 노트북의 측정 셀은
표보다 먼저 ``print_machine_summary()``로 무엇 위에서 쟀는지 출력하고, 머신이 바쁘면 한국어로 경고한다.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

BUSY_LOAD_PER_CORE = 1.0  # 1분 부하 평균이 코어당 이보다 크면 잰 시간을 믿기 어렵다


def cpu_model() -> str:
    """CPU 모델 이름(리눅스는 /proc/cpuinfo, 그 밖에는 platform 이 아는 이름)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "알 수 없음"


def load_average() -> float | None:
    """1분 부하 평균(윈도처럼 알 수 없으면 None)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def machine_summary(device=None) -> dict:
    """측정 환경을 딕셔너리로: cpu, cores, threads, load_avg, (CUDA 장치면) gpu."""
    import torch

    info = {"cpu": cpu_model(), "cores": os.cpu_count() or 1, "threads": torch.get_num_threads(),
            "load_avg": load_average(), "torch": torch.__version__}
    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def print_machine_summary(device=None, file=None) -> dict:
    """측정 환경을 한 줄로 출력하고, 부하가 높으면 경고한 뒤 ``machine_summary()``를 돌려준다."""
    file = file or sys.stdout
    info = machine_summary(device)
    where = f"GPU {info['gpu']}, " if "gpu" in info else ""
    load = "알 수 없음" if info["load_avg"] is None else f"{info['load_avg']:.2f}"
    print(f"측정 환경: {where}CPU {info['cpu']}, 코어 {info['cores']}개, 파이토치 스레드 {info['threads']}개, "
          f"1분 부하 평균 {load}, torch {info['torch']}", file=file)
    if info["load_avg"] is not None and info["load_avg"] > BUSY_LOAD_PER_CORE * info["cores"]:
        print(f"경고: 부하 평균 {info['load_avg']:.2f}이(가) 코어 수 {info['cores']}보다 큽니다. 다른 작업이 CPU를 나눠 쓰고 "
              "있어서 아래 시간은 실제보다 길게 나옵니다. 다른 작업을 멈추고 다시 재세요.", file=file)
    return info


def native_bf16(device) -> tuple[bool, str]:
    """이 장치가 bfloat16 행렬 곱을 전용 하드웨어로 하는지와 그 이유(한국어 한 문장).

    - CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere 이후 GPU 의 텐서 코어).
    - CPU: 파이토치가 CPU 에서 찾은 명령어 집합(``torch.cpu.get_capabilities()``)에 AMX-BF16 행렬 유닛이나
      AVX512-BF16 명령이 있으면 참이다. 없으면 bf16 은 fp32 로 바꿔 계산하므로 오히려 느리다.
    - 그 밖의 장치(MPS 등)는 거짓으로 둔다.
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return True, f"GPU {torch.cuda.get_device_name(device)}가 bfloat16 텐서 코어 연산을 지원합니다"
        return False, f"GPU {torch.cuda.get_device_name(device)}는 bfloat16 을 지원하지 않습니다"
    if device.type != "cpu":
        return False, f"{device.type} 장치에서는 bfloat16 을 자동으로 켜지 않습니다"
    capabilities = _cpu_capabilities()
    if capabilities.get("amx_bf16"):
        return True, "CPU에 bfloat16 행렬 유닛(AMX-BF16)이 있습니다"
    if capabilities.get("avx512_bf16"):
        return True, "CPU에 bfloat16 행렬 곱 명령(AVX512-BF16)이 있습니다"
    return False, "CPU에 bfloat16 행렬 곱 명령(AMX-BF16, AVX512-BF16)이 없어 fp32 로 계산합니다"


def resolve_bf16(choice: str, device) -> tuple[bool, str]:
    """명령줄의 ``--bf16 {auto,on,off}`` 를 (켤지, 이유)로 바꾼다. ``auto`` 는 ``native_bf16`` 을 따른다."""
    if choice not in ("auto", "on", "off"):
        raise ValueError(f"bf16 은 auto, on, off 중 하나여야 합니다(받은 값: {choice!r}).")
    if choice == "auto":
        on, why = native_bf16(device)
        return on, f"auto: {why}"
    return choice == "on", f"명령줄 옵션 --bf16 {choice}"


def _cpu_capabilities() -> dict:
    # torch.cpu.get_capabilities() 는 파이토치 2.5 무렵부터 있다. 없으면 옛 개별 검사 함수를 쓴다
    import torch

    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is not None:
        return dict(get_capabilities())
    return {
        "amx_bf16": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()),
        "avx512_bf16": bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()),
    }
