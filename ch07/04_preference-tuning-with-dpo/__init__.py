"""DPO(직접 선호 최적화)를 밑바닥부터: ``llm_from_scratch.dpo`` (7장 보너스). 내용은 dpo.py 에 있다."""

from .dpo import *
