"""3장: 어텐션 메커니즘 구현하기 (``llm_from_scratch.ch03``). 내용은 ch03.py에 있다."""

from .ch03 import *
