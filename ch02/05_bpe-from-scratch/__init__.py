"""바이트 페어 인코딩(BPE)을 밑바닥부터: ``llm_from_scratch.bpe`` (2장 보너스). 내용은 bpe.py 에 있다."""

from .bpe import *
