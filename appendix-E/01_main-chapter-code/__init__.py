"""부록 E: LoRA로 파라미터 효율적으로 미세 튜닝하기 (``llm_from_scratch.appendix_e``). 내용은 appendix_e.py 에 있다."""

from .appendix_e import *
