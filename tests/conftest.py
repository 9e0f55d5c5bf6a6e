"""tests 폴더의 pytest 설정: 함께 쓰는 도우미 모듈(``support.py``)을 가져올 수 있게 한다.

pytest 는 ``--import-mode=importlib`` 로 돌아 테스트 폴더를 ``sys.path`` 에 넣지 않으므로 여기서 넣는다.
"""

import sys
from pathlib import Path

TESTS_DIR = str(Path(__file__).resolve().parent)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)
