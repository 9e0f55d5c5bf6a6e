"""부록 A: 파이토치 소개 (``llm_from_scratch.appendix_a``). 내용은 appendix_a.py에 있다."""

from .appendix_a import *
