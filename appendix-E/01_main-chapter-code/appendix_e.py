"""부록 E 요약: LoRA(저랭크 적응)로 파라미터 효율적으로 미세 튜닝하기.

사전 훈련된 선형 층의 가중치 W는 그대로 얼려 두고, 작은 행렬 두 개의 곱 A @ B 만 훈련한다.
출력은 ``x @ W.T + alpha * (x @ A @ B)`` 다. B를 0으로 시작하므로 훈련 전에는 원래 모델과 출력이 같다.
"""

import math
from numbers import Real

import torch
from torch import nn

__all__ = ["LinearWithLoRA", "LoRALayer", "replace_linear_with_lora"]


def _check_rank_and_alpha(rank, alpha):
    # bool은 int의 하위 클래스라서 따로 막는다(True가 랭크 1로 받아들여지지 않도록)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"LoRA 랭크 rank는 1 이상의 정수여야 합니다(받은 값: {rank!r}).")
    # alpha가 nan이나 inf면 모든 출력이 nan이 된다
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not math.isfinite(alpha):
        raise ValueError(f"LoRA 배율 alpha는 유한한 수여야 합니다(받은 값: {alpha!r}).")


class LoRALayer(nn.Module):
    """저랭크 업데이트 ``alpha * (x @ A @ B)``를 계산하는 층.

    Args:
        in_dim: 입력 특성 수.
        out_dim: 출력 특성 수.
        rank: 저랭크 행렬의 내부 차원(1 이상의 정수). 클수록 훈련할 파라미터가 많다.
        alpha: 업데이트의 크기를 조절하는 배율(유한한 수).
        device, dtype: A, B를 만들 장치와 자료형(감쌀 선형 층과 맞출 때 쓴다).
    """

    def __init__(self, in_dim, out_dim, rank, alpha, device=None, dtype=None):
        super().__init__()
        _check_rank_and_alpha(rank, alpha)
        self.A = nn.Parameter(torch.empty(in_dim, rank, device=device, dtype=dtype))
        # nn.Linear의 기본 초기화와 같은 방식으로 A를 무작위로 채운다
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        # B가 0 이므로 훈련을 시작하기 전의 업데이트는 정확히 0 이다
        self.B = nn.Parameter(torch.zeros(rank, out_dim, device=device, dtype=dtype))
        self.alpha = alpha

    def forward(self, x):
        return self.alpha * (x @ self.A @ self.B)


class LinearWithLoRA(nn.Module):
    """기존 ``nn.Linear``의 출력에 LoRA 업데이트를 더하는 층."""

    def __init__(self, linear, rank, alpha):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"LinearWithLoRA는 nn.Linear를 감쌉니다(받은 것: {type(linear).__name__}).")
        self.linear = linear
        self.lora = LoRALayer(
            linear.in_features,
            linear.out_features,
            rank,
            alpha,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )

    def forward(self, x):
        return self.linear(x) + self.lora(x)


def replace_linear_with_lora(model, rank, alpha):
    """``model`` 안의 모든 ``nn.Linear``를 ``LinearWithLoRA``로 바꾼다(제자리에서, 재귀적으로).

    원래 가중치의 ``requires_grad``는 건드리지 않는다. 책처럼 먼저 모델 전체를 얼린 뒤 부르면
    새로 생긴 A, B 만 훈련된다.

    Args:
        model: 바꿀 모듈.
        rank: LoRA 랭크(1 이상의 정수).
        alpha: LoRA 배율(유한한 수).
    """
    _check_rank_and_alpha(rank, alpha)  # 모델을 하나라도 바꾸기 전에 확인한다
    for name, module in model.named_children():
        if isinstance(module, nn.Linear):
            setattr(model, name, LinearWithLoRA(module, rank, alpha))
        else:
            replace_linear_with_lora(module, rank, alpha)
    return model
