"""6장: 분류를 위해 미세 튜닝하기 (``llm_from_scratch.ch06``). 내용은 ch06.py 에 있다.

주의: 이 패키지의 ``calc_loss_batch``, ``calc_loss_loader`` 는 5장의 다음 토큰 손실이 아니라
분류용(마지막 토큰의 로짓으로 레이블을 맞히는) 손실이다. 5장 것은 ``llm_from_scratch.ch05`` 에 있다.
"""

from .ch06 import *
