"""여러 장이 함께 쓰는 작은 도구: QUICK 모드, 장치 선택, 시드 고정, 명령줄 인자 검사.

명령줄 인자 검사 함수(``positive_int`` 등)는 ``argparse`` 의 ``type=`` 으로 쓴다. 잘못된 값은 긴 작업이 시작되기
전, 인자를 읽는 순간에 그 값과 기대한 것을 밝히는 한국어 오류로 거부된다.
"""

import argparse
import math
import os
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DEVICE_CHOICES",
    "QUICK",
    "ArgumentParser",
    "device_name",
    "existing_file",
    "get_device",
    "is_quick",
    "nonempty_text",
    "nonnegative_float",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "refuse_to_overwrite",
    "set_seed",
    "synchronize",
    "writable_dir",
]


def is_quick() -> bool:
    """환경 변수 ``LLMFS_QUICK`` 이 켜져 있으면 True (노트북·스크립트를 작은 작업량으로 돌린다)."""
    return os.environ.get("LLMFS_QUICK", "0").strip().lower() not in ("", "0", "false", "no", "off")


QUICK = is_quick()


DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def get_device(preferred=None) -> torch.device:
    """쓸 장치를 고른다: CUDA, 그다음 Apple MPS, 마지막으로 CPU.

    Args:
        preferred: "auto", "cpu", "cuda"(또는 "cuda:1"), "mps" 처럼 직접 고를 때(``torch.device`` 도 받는다).
            None 이면 환경 변수 ``LLMFS_DEVICE`` 를 보고, 그것도 없으면 자동으로 고른다.
            알 수 없는 이름이나 이 머신에 없는 장치면 한국어 ValueError.
    """
    preferred = preferred or os.environ.get("LLMFS_DEVICE") or "auto"
    if isinstance(preferred, torch.device):
        preferred = str(preferred)
    if not isinstance(preferred, str):
        raise TypeError(f"장치는 {', '.join(DEVICE_CHOICES)} 중 하나의 문자열이어야 합니다(받은 값: {preferred!r}).")
    name = preferred.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind not in DEVICE_CHOICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(
            f"알 수 없는 장치 {preferred!r} 입니다. {', '.join(DEVICE_CHOICES)} 중 하나(GPU 번호는 'cuda:1' 처럼)를 쓰세요."
        )
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"장치 {preferred!r} 를 골랐지만 이 머신에서는 CUDA를 쓸 수 없습니다. 'cpu' 나 'auto' 를 쓰세요.")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ValueError(
            f"장치 {preferred!r} 를 골랐지만 이 머신의 GPU는 {torch.cuda.device_count()}개입니다(번호는 0부터)."
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"장치 {preferred!r} 를 골랐지만 이 머신에서는 MPS를 쓸 수 없습니다. 'cpu' 나 'auto' 를 쓰세요.")
    return torch.device(name)



def synchronize(device) -> None:
    """``device`` 에 넣어 둔 계산이 끝날 때까지 기다린다. GPU 는 비동기로 돌므로 시간을 재기 전후에 부른다(CPU 는 할 일 없음)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()

# ---------------------------------------------------------------------------
# 명령줄 인자 검사(argparse 의 type=): 값을 읽는 순간 한국어로 거부한다
# ---------------------------------------------------------------------------


def _number(text, kind):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        what = "정수" if kind is int else "수"
        raise argparse.ArgumentTypeError(f"{text!r} 는 {what}가 아닙니다.") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} 는 유한한 수가 아닙니다(nan, inf 는 쓸 수 없습니다).")
    return value


def positive_int(text):
    """1 이상의 정수(에포크 수, 배치 크기 등)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"1 이상의 정수여야 합니다(받은 값: {text}).")
    return value


def nonnegative_int(text):
    """0 이상의 정수(새로 만들 토큰 수 등)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"0 이상의 정수여야 합니다(받은 값: {text}).")
    return value


def positive_float(text):
    """0보다 큰 유한한 수(학습률, 제한 시간 등)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"0보다 큰 수여야 합니다(받은 값: {text}).")
    return value


def nonnegative_float(text):
    """0 이상의 유한한 수(가중치 감쇠, 온도 등)."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"0 이상의 수여야 합니다(받은 값: {text}).")
    return value


def nonempty_text(text):
    """비어 있지 않은 문자열(프롬프트 등)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"비어 있으면 안 됩니다(받은 값: {text!r}). 한 글자 이상 주세요.")
    return text


def device_name(text):
    """auto, cpu, cuda(cuda:N), mps 중 이 머신에서 쓸 수 있는 장치 이름. 확인한 이름(문자열)을 돌려준다."""
    try:
        get_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def existing_file(text):
    """이미 있는 파일 경로."""
    path = Path(text)
    if not path.is_file():
        what = "폴더입니다" if path.is_dir() else "없습니다"
        raise argparse.ArgumentTypeError(f"파일 {text!r} 가 {what}. 있는 파일의 경로를 주세요.")
    return text


def writable_dir(text):
    """결과를 쓸 폴더. 있으면 그 안에, 없으면 만들어질 가장 가까운 상위 폴더에 시험 파일을 만들었다 지워 확인한다.

    폴더는 만들지 않는다(만드는 것은 스크립트가 쓰기 직전에 한다). 확인한 경로(문자열)를 돌려준다.
    """
    path = Path(text).expanduser()
    probe_dir = path
    while not probe_dir.exists():
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} 에 폴더를 만들 수 없습니다: {probe_dir} 가 폴더가 아니라 파일입니다.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".llmfs-write-test-", dir=probe_dir)
        os.close(fd)
        os.remove(probe)
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"폴더 {text!r} 에 쓸 수 없습니다({probe_dir}: {error.strerror}). 쓰기 권한이 있는 폴더를 고르세요."
        ) from None
    return text


def refuse_to_overwrite(parser, paths, overwrite=False):
    """이번 실행이 쓸 파일 가운데 이미 있는 것이 있으면, 긴 작업을 시작하기 전에 argparse 오류(종료 코드 2)로 멈춘다.

    이미 있는 파일은 이전에 훈련한 모델처럼 사용자의 것일 수 있으므로, ``overwrite`` 가 참(``--overwrite``)일 때만
    덮어쓴다. ``paths`` 는 이번 실행이 쓸 파일 경로들이다.
    """
    if overwrite:
        return
    existing = [str(path) for path in paths if Path(path).exists()]
    if existing:
        shown = ", ".join(existing[:3]) + (f" 외 {len(existing) - 3}개" if len(existing) > 3 else "")
        parser.error(
            f"{shown} 이(가) 이미 있습니다. 이전에 훈련한 모델일 수 있어 덮어쓰지 않았고 훈련도 시작하지 않았습니다. "
            "다른 --output-dir 를 주거나, 덮어써도 되면 --overwrite 를 주세요."
        )


def set_seed(seed: int = 123) -> None:
    """파이썬, NumPy, PyTorch의 난수 시드를 한 번에 고정한다(책은 주로 123을 쓴다)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------
# 영어 원서 저장소의 옵션 표기(--num_epochs)도 받는 ArgumentParser
# ---------------------------------------------------------------------------

UNDERSCORE_NOTE = "영어 원서 저장소의 밑줄 표기(예: --num_epochs, --model_size)도 같은 옵션으로 받습니다."


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` 와 같되, 옵션 이름의 밑줄과 하이픈을 서로 바꿔 쓴 표기도 받는다.

    이 저장소의 스크립트는 ``--num-epochs`` 처럼 하이픈으로 옵션을 정의하지만, 영어 원서 저장소의 README 에 있는
    명령은 ``--num_epochs`` 처럼 밑줄을 쓴다. 이 파서는 읽기 직전에 인자 목록을 훑어, 정의되지 않은 이름
    ``--foo_bar`` (``--foo_bar=값`` 포함)의 다른 표기 ``--foo-bar`` 가 정의되어 있으면 그것으로 바꿔 읽는다
    (반대 방향도 같다). 그래서 두 표기가 같은 옵션, 같은 값이 되고, ``--help`` 에는 정의한 표기만 나온다.
    ``--`` 뒤의 인자와 옵션이 아닌 인자는 건드리지 않는다. 도움말 끝(epilog)에는 이 사실을 한 줄 덧붙인다.
    """

    def __init__(self, *args, epilog=None, **kwargs):
        epilog = f"{epilog}\n\n{UNDERSCORE_NOTE}" if epilog else UNDERSCORE_NOTE
        super().__init__(*args, epilog=epilog, **kwargs)

    def canonical_args(self, args):
        """인자 목록에서 다른 표기로 쓴 옵션 이름을 이 파서가 정의한 표기로 바꾼 새 목록을 돌려준다."""
        known = self._option_string_actions
        result = list(args)
        for index, token in enumerate(result):
            if token == "--":
                break
            if not token.startswith("--") or token[2:3] in ("", "-"):
                continue
            name, sep, value = token.partition("=")
            if name in known:
                continue
            for other in (name.replace("_", "-"), name[:2] + name[2:].replace("-", "_")):
                if other != name and other in known:
                    result[index] = other + sep + value
                    break
        return result

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else args
        return super().parse_known_args(self.canonical_args(args), namespace)
