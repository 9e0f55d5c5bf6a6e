"""4장: GPT 모델 구현하기 (``llm_from_scratch.ch04``). 내용은 ch04.py에 있다."""

from .ch04 import *
