"""여러 장이 함께 쓰는 작은 도구: QUICK 모드, 장치 선택, 시드 고정."""

import os
import random

import numpy as np
import torch

__all__ = ["QUICK", "get_device", "is_quick", "set_seed"]


def is_quick() -> bool:
    """환경 변수 ``LLMFS_QUICK`` 이 켜져 있으면 True (노트북·스크립트를 작은 작업량으로 돌린다)."""
    return os.environ.get("LLMFS_QUICK", "0").strip().lower() not in ("", "0", "false", "no", "off")


QUICK = is_quick()


def get_device(preferred: str | None = None) -> torch.device:
    """쓸 장치를 고른다: CUDA, 그다음 Apple MPS, 마지막으로 CPU.

    Args:
        preferred: "cuda", "mps", "cpu" 처럼 직접 고를 때. None 이면 환경 변수
            ``LLMFS_DEVICE`` 를 보고, 그것도 없으면 자동으로 고른다.
    """
    preferred = preferred or os.environ.get("LLMFS_DEVICE") or "auto"
    if preferred == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(preferred)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"장치 {preferred!r} 를 골랐지만 이 머신에서는 CUDA를 쓸 수 없습니다. 'cpu' 나 'auto' 를 쓰세요.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"장치 {preferred!r} 를 골랐지만 이 머신에서는 MPS를 쓸 수 없습니다. 'cpu' 나 'auto' 를 쓰세요.")
    return device


def set_seed(seed: int = 123) -> None:
    """파이썬, NumPy, PyTorch의 난수 시드를 한 번에 고정한다(책은 주로 123을 쓴다)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
