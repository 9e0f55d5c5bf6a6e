"""pytest 설정: 모든 테스트와 노트북 커널이 네트워크 없이 QUICK 모드로 돈다.

노트북 커널(nbval)은 이 프로세스의 환경 변수를 물려받으므로, 여기서 정한 값이 노트북에도 적용된다.
데이터 파일은 저장소가 함께 싣고 다니는 사본(``data/``)에서 오고, tiktoken 캐시도 그 사본으로 채운다.
"""

import os
import tempfile
from pathlib import Path


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
