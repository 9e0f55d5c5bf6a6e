"""5장: 레이블이 없는 데이터로 사전 훈련하기 (``llm_from_scratch.ch05``).

훈련·생성 도구는 ch05.py, GPT-2 가중치 내려받기·적재는 gpt_download.py 에 있다.
"""

from .ch05 import *
from .gpt_download import *
