"""5장 보너스(학습률 스케줄러): 부록 D의 워밍업+코사인 스케줄이 파이토치 스케줄러 조합과 같은 값인지."""

import math

import pytest
import torch

from llm_from_scratch.appendix_d import lr_at_step


def _sequential_lrs(total_steps, warmup_steps, peak_lr, initial_lr, min_lr):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak_lr)
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=initial_lr / peak_lr, total_iters=warmup_steps)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps - 1 - warmup_steps, eta_min=min_lr)
    scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])
    lrs = []
    for _ in range(total_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("total_steps, warmup_steps", [(135, 27), (40, 8), (10, 1)])
def test_linear_then_cosine_scheduler_matches_appendix_d(total_steps, warmup_steps):
    peak_lr, initial_lr, min_lr = 0.01, 0.0001, 0.00001
    expected = [lr_at_step(s, total_steps, warmup_steps, peak_lr, initial_lr, min_lr) for s in range(total_steps)]
    got = _sequential_lrs(total_steps, warmup_steps, peak_lr, initial_lr, min_lr)
    assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(expected, got))
    assert expected[warmup_steps] == pytest.approx(peak_lr) and expected[-1] == pytest.approx(min_lr)
