"""부록 D: 훈련 루프에 부가 기능 추가하기 (``llm_from_scratch.appendix_d``). 내용은 appendix_d.py 에 있다."""

from .appendix_d import *
