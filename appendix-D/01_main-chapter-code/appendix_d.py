"""부록 D 요약: 훈련 루프에 부가 기능 추가하기.

선형 워밍업(D.1)과 코사인 감쇠(D.2)를 합친 학습률 스케줄 ``lr_at_step``, 그레이디언트 클리핑(D.3)의 효과를 재는
``find_highest_gradient``, ``global_grad_norm``, 세 기능을 모두 쓰는 훈련 루프 ``train_model``(D.4)을 담는다.
손실 계산, 평가, 샘플 생성은 5장의 함수를 그대로 가져다 쓴다.
"""

import math
from numbers import Integral, Real

import torch

from llm_from_scratch.ch05 import calc_loss_batch, evaluate_model, generate_and_print_sample

__all__ = ["find_highest_gradient", "global_grad_norm", "lr_at_step", "train_model"]


def _check_int(name, value, low, high=None):
    """정수 ``value``가 [low, high) 안에 있는지 확인한다(high가 None 이면 아래쪽만)."""
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"{name}은(는) 정수여야 합니다(받은 값: {value!r}).")
    if value < low or (high is not None and value >= high):
        upper = f" {high} 미만" if high is not None else ""
        raise ValueError(f"{name}은(는) {low} 이상{upper}이어야 합니다(받은 값: {value}).")


def lr_at_step(step, total_steps, warmup_steps, peak_lr, initial_lr, min_lr):
    """스텝 ``step``(0부터 센다)에서 쓸 학습률: 선형 워밍업 뒤 코사인 감쇠.

    - 스텝 0 … ``warmup_steps - 1``: ``initial_lr``에서 시작해 스텝마다 같은 양만큼 올린다(D.1).
    - 스텝 ``warmup_steps``: 정확히 ``peak_lr``.
    - 그 뒤 마지막 스텝 ``total_steps - 1`` 까지: 코사인 반주기를 따라 ``min_lr``로 내려가며(D.2),
      마지막 스텝에서 정확히 ``min_lr``이 된다. 책의 코드는 진행률을 ``total_steps - warmup_steps``로 나눠
      마지막 스텝이 ``min_lr`` 보다 조금 위에서 끝나는데, 여기서는 한 스텝 적은 수로 나눠 끝점을 맞췄다.
      워밍업 뒤에 스텝이 하나뿐이면(``warmup_steps == total_steps - 1``) 그 스텝은 ``peak_lr`` 이다.

    Args:
        step: 지금 스텝 번호(0 이상 ``total_steps`` 미만).
        total_steps: 전체 훈련 스텝 수(에포크 수 × 에포크당 배치 수).
        warmup_steps: 워밍업 스텝 수(0 이상 ``total_steps`` 미만). 책은 전체의 20%를 쓴다.
        peak_lr: 워밍업이 끝났을 때의 최대 학습률.
        initial_lr: 워밍업을 시작하는 학습률.
        min_lr: 코사인 감쇠가 끝나는 최소 학습률(0 이상 ``peak_lr`` 이하).
    """
    _check_int("total_steps", total_steps, 1)
    _check_int("warmup_steps", warmup_steps, 0, total_steps)
    _check_int("step", step, 0, total_steps)
    for name, value in (("peak_lr", peak_lr), ("initial_lr", initial_lr), ("min_lr", min_lr)):
        if not (isinstance(value, Real) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}은(는) 0 이상의 유한한 수여야 합니다(받은 값: {value!r}).")
    if min_lr > peak_lr:
        raise ValueError(f"min_lr({min_lr})은 peak_lr({peak_lr}) 이하여야 합니다.")

    if step < warmup_steps:
        lr_increment = (peak_lr - initial_lr) / warmup_steps
        return initial_lr + step * lr_increment
    decay_steps = total_steps - 1 - warmup_steps
    if decay_steps == 0:
        return peak_lr
    progress = (step - warmup_steps) / decay_steps  # 0(워밍업 직후) → 1(마지막 스텝)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def _gradients(model):
    grads = [param.grad for param in model.parameters() if param.grad is not None]
    if not grads:
        raise ValueError("모델에 그레이디언트가 없습니다. 먼저 loss.backward()를 호출하세요.")
    return grads


def find_highest_gradient(model):
    """모든 파라미터의 그레이디언트 원소 가운데 가장 큰 값(책의 D.3 처럼 절댓값이 아닌 값 그대로)."""
    return max(grad.max().item() for grad in _gradients(model))


def global_grad_norm(model):
    """모든 그레이디언트를 한 벡터로 이어 붙였을 때의 L2 노름. ``clip_grad_norm_``이 제한하는 값이 이것이다."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in _gradients(model)])).item()


def train_model(
    model,
    train_loader,
    val_loader,
    optimizer,
    device,
    n_epochs,
    eval_freq,
    eval_iter,
    start_context,
    tokenizer,
    warmup_steps,
    initial_lr=3e-05,
    min_lr=1e-6,
    max_norm=1.0,
):
    """선형 워밍업, 코사인 감쇠, 그레이디언트 클리핑을 갖춘 훈련 루프(5장 ``train_model_simple``의 확장판).

    최대 학습률은 호출할 때 옵티마이저에 설정된 학습률이다. 스텝마다 ``lr_at_step``으로 학습률을 정하고,
    워밍업이 끝난 스텝(``warmup_steps`` 번째 스텝)부터 그레이디언트의 전체 노름을 ``max_norm``으로 자른다.

    Args:
        n_epochs: 에포크 수.
        eval_freq: 몇 스텝마다 훈련·검증 손실을 기록하고 출력할지.
        eval_iter: 손실을 추정할 때 쓸 배치 수.
        start_context: 에포크가 끝날 때마다 이어 쓰기를 보여 줄 시작 문장.
        warmup_steps: 워밍업 스텝 수(0 이상 전체 스텝 수 미만).
        initial_lr: 워밍업을 시작하는 학습률.
        min_lr: 코사인 감쇠가 끝나는 학습률.
        max_norm: 그레이디언트 클리핑의 최대 노름.

    Returns:
        (훈련 손실 목록, 검증 손실 목록, 평가 시점까지 본 토큰 수 목록, 스텝별 학습률 목록)
    """
    _check_int("n_epochs", n_epochs, 1)
    _check_int("eval_freq", eval_freq, 1)
    if len(train_loader) == 0:
        raise ValueError("train_loader에 배치가 하나도 없습니다. 텍스트를 늘리거나 배치 크기를 줄이세요.")
    if not max_norm > 0:
        raise ValueError(f"max_norm은 0 보다 커야 합니다(받은 값: {max_norm!r}).")

    train_losses, val_losses, track_tokens_seen, track_lrs = [], [], [], []
    tokens_seen, global_step = 0, -1
    peak_lr = optimizer.param_groups[0]["lr"]
    total_steps = len(train_loader) * n_epochs
    # 훈련을 시작하기 전에 스케줄 인수를 한 번 확인한다(틀렸으면 여기서 오류가 난다)
    lr_at_step(0, total_steps, warmup_steps, peak_lr, initial_lr, min_lr)

    for epoch in range(n_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            global_step += 1

            lr = lr_at_step(global_step, total_steps, warmup_steps, peak_lr, initial_lr, min_lr)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            track_lrs.append(lr)

            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            # 워밍업 동안에는 학습률이 작아 업데이트도 작다. 클리핑은 학습률이 커진 뒤의 큰 업데이트를 막는다
            if global_step >= warmup_steps:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_norm)
            optimizer.step()
            tokens_seen += input_batch.numel()

            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                print(f"에포크 {epoch + 1} (스텝 {global_step:06d}): 훈련 손실 {train_loss:.3f}, 검증 손실 {val_loss:.3f}")

        generate_and_print_sample(model, tokenizer, device, start_context)

    return train_losses, val_losses, track_tokens_seen, track_lrs
