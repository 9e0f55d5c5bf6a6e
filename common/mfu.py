"""모델 FLOP 활용률(MFU)을 한 가지 방법으로 잰다: 4장 성능 분석(ch04/02)과 5장 훈련 속도(ch05/10)가 함께 쓴다.

- ``matmul_peak_flops``: 이 장치가 큰 정사각 행렬 곱에서 실제로 내는 FLOP/s(정밀도마다 따로). MFU 의 분모다.
- ``training_flops_per_token``: GPT 모델이 토큰 하나를 훈련하는 데 필요한 FLOPs(순전파 1 + 역전파 2 = 순전파의 3배).
- ``model_flops_utilization``: 초당 훈련 토큰 x 토큰당 FLOPs / 최대 FLOP/s.

FLOPs 는 행렬 곱만 센다(곱하기와 더하기를 하나씩, (m x k)·(k x n) = 2mkn). 선형 층 가중치(블록마다 12·d², 출력
헤드 d·V)와 어텐션 행렬 곱 두 개(Q·Kᵀ, 가중치·V: 블록마다 토큰당 4·T·d)다. 편향, 층 정규화, 소프트맥스,
임베딩 조회는 행렬 곱이 아니어서 넣지 않는다. ch04/02 노트북이 ``FlopCounterMode`` 로 센 값과 같음을 보인다.
"""

from __future__ import annotations

import time

import torch

from llm_from_scratch.utils import synchronize

__all__ = ["matmul_peak_flops", "model_flops_utilization", "training_flops_per_token"]


def matmul_peak_flops(device="cpu", dtype=torch.float32, size=2048, repeats=5):
    """``size`` x ``size`` 행렬 곱을 ``repeats`` 번 재서 가장 빠른 한 번의 FLOP/s 를 돌려준다.

    제조사 사양이 아니라 이 장치에서 실제로 나오는 최대치다. 다른 프로세스가 CPU를 나눠 쓰면 함께 낮아지므로
    MFU 를 잴 훈련과 같은 실행에서 잰다. 정밀도(``dtype``)마다 최대치가 다르다(bf16 행렬 유닛이 있는 CPU·GPU 는
    bfloat16 이 몇 배 빠르다).
    """
    if size < 1 or repeats < 1:
        raise ValueError(f"size 와 repeats 는 1 이상이어야 합니다(size={size}, repeats={repeats}).")
    device = torch.device(device)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # 첫 호출(메모리 할당, 커널 선택)은 재지 않는다
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def training_flops_per_token(cfg, num_tokens=None):
    """토큰 하나를 훈련(순전파 + 역전파)하는 FLOPs = 3 x 순전파 = 6·(12·L·d² + d·V) + 12·L·T·d.

    Args:
        cfg: 4장의 설정 딕셔너리(``emb_dim``, ``n_layers``, ``vocab_size``, ``context_length``).
        num_tokens: 한 샘플의 토큰 수 T (기본: ``cfg["context_length"]``). 어텐션 몫이 T 에 비례한다.
    """
    d, n_layers, vocab = cfg["emb_dim"], cfg["n_layers"], cfg["vocab_size"]
    num_tokens = cfg["context_length"] if num_tokens is None else num_tokens
    if num_tokens < 1:
        raise ValueError(f"num_tokens 는 1 이상이어야 합니다(받은 값: {num_tokens}).")
    forward = 2 * (12 * n_layers * d * d + d * vocab) + 4 * n_layers * num_tokens * d
    return 3 * forward


def model_flops_utilization(tokens_per_second, flops_per_token, peak_flops):
    """MFU = 초당 훈련 토큰 x 토큰당 훈련 FLOPs / 최대 FLOP/s (0~1 사이의 비율)."""
    if peak_flops <= 0:
        raise ValueError(f"peak_flops 는 0보다 커야 합니다(받은 값: {peak_flops}).")
    return tokens_per_second * flops_per_token / peak_flops
