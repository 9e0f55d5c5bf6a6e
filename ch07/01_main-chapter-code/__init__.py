"""7장: 지시를 따르도록 미세 튜닝하기 (``llm_from_scratch.ch07``). 내용은 ch07.py 에 있다."""

from .ch07 import *
