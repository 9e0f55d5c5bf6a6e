"""pytest 설정: 모든 테스트와 노트북 커널이 네트워크 없이 QUICK 모드로 돈다.

노트북 커널(nbval)은 이 프로세스의 환경 변수를 물려받으므로, 여기서 정한 값이 노트북에도 적용된다.
데이터 파일은 저장소가 함께 싣고 다니는 사본(``data/``)에서 오고, tiktoken 캐시도 그 사본으로 채운다.
"""

import os
import tempfile
import time
from pathlib import Path
from queue import Empty


def _set_test_environment() -> None:
    os.environ.setdefault("LLMFS_QUICK", "1")
    os.environ["LLMFS_OFFLINE"] = "1"  # 테스트는 절대 인터넷에 나가지 않는다
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # 워커 두 개가 코어 두 개를 나눠 쓰므로, 커널마다 스레드 하나면 서로 다투지 않는다
        os.environ.setdefault("OMP_NUM_THREADS", "1")

    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        from llm_from_scratch.download import prepare_tiktoken_cache

        cache_dir = Path(tempfile.gettempdir()) / f"llmfs-tiktoken-cache-{os.getuid() if hasattr(os, 'getuid') else 0}"
        prepare_tiktoken_cache(cache_dir)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)


_set_test_environment()


class KernelDiedError(RuntimeError):
    """노트북 커널 프로세스가 셀을 실행하다가 죽었다(세그멘테이션 오류, 메모리 부족 등)."""


def _fail_fast_on_dead_kernels() -> None:
    """nbval이 죽은 커널의 답을 셀 시간 제한(기본 2,000초)만큼 기다리지 않게 한다.

    답을 기다리는 동안 2초마다 커널 프로세스가 살아 있는지 보고, 죽었으면 곧바로 ``KernelDiedError``를 낸다.
    그 노트북의 나머지 셀은 nbval이 "Kernel dead on test start"로 바로 실패시킨다.
    """
    try:
        from nbval.kernel import RunningKernel
    except ImportError:  # nbval이 없으면 노트북 테스트도 없다
        return
    if getattr(RunningKernel.get_message, "_llmfs_guarded", False):
        return
    wait_for_message = RunningKernel.get_message

    def get_message(self, stream, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 2.0 if deadline is None else max(0.0, min(2.0, deadline - time.monotonic()))
            try:
                return wait_for_message(self, stream, timeout=step)
            except Empty:
                if not self.is_alive():
                    raise KernelDiedError(
                        "노트북 커널이 이 셀을 실행하다가 죽었습니다(세그멘테이션 오류나 메모리 부족). "
                        "같은 코드를 터미널의 python에서 실행해 오류 메시지를 확인하세요."
                    ) from None
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    get_message._llmfs_guarded = True
    RunningKernel.get_message = get_message


_fail_fast_on_dead_kernels()
