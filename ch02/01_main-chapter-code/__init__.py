"""2장: 텍스트 데이터 다루기 (``llm_from_scratch.ch02``). 내용은 ch02.py에 있다."""

from .ch02 import *
