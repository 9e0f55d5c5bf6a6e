"""부록 D: 학습률 스케줄(웜업 + 코사인 감쇠), 그레이디언트 클리핑, 세 기능을 갖춘 train_model."""

import itertools
import math

import pytest
import tiktoken
import torch

from llm_from_scratch.appendix_d import find_highest_gradient, global_grad_norm, lr_at_step, train_model
from llm_from_scratch.ch02 import create_dataloader_v1, load_the_verdict
from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch05 import calc_loss_batch

TINY_CONFIG = {
    "vocab_size": 50257,
    "context_length": 32,
    "emb_dim": 32,
    "n_heads": 2,
    "n_layers": 1,
    "drop_rate": 0.0,
    "qkv_bias": False,
}

# 책의 D.1 데모: 15 에포크 × 9 배치, 웜업 20%
BOOK_SCHEDULE = {"total_steps": 135, "warmup_steps": 27, "peak_lr": 0.01, "initial_lr": 0.0001, "min_lr": 0.00001}


def schedule(total_steps, warmup_steps, peak_lr, initial_lr, min_lr):
    return [lr_at_step(step, total_steps, warmup_steps, peak_lr, initial_lr, min_lr) for step in range(total_steps)]


@pytest.mark.parametrize(
    "cfg",
    [
        BOOK_SCHEDULE,
        {"total_steps": 18, "warmup_steps": 3, "peak_lr": 0.001, "initial_lr": 1e-5, "min_lr": 1e-5},
        {"total_steps": 10, "warmup_steps": 1, "peak_lr": 0.5, "initial_lr": 0.0, "min_lr": 0.0},
    ],
)
def test_warmup_is_linear_and_reaches_the_peak_exactly_at_the_warmup_step(cfg):
    lrs = schedule(**cfg)
    warmup = cfg["warmup_steps"]
    assert lrs[0] == pytest.approx(cfg["initial_lr"], abs=1e-15)
    increment = (cfg["peak_lr"] - cfg["initial_lr"]) / warmup
    for step in range(1, warmup):
        assert lrs[step] - lrs[step - 1] == pytest.approx(increment, rel=1e-9)
    assert all(lr < cfg["peak_lr"] for lr in lrs[:warmup])
    assert lrs[warmup] == pytest.approx(cfg["peak_lr"], rel=1e-12)
    assert max(range(len(lrs)), key=lrs.__getitem__) == warmup


@pytest.mark.parametrize("cfg", [BOOK_SCHEDULE, {**BOOK_SCHEDULE, "warmup_steps": 0}])
def test_cosine_decay_falls_monotonically_to_the_minimum_at_the_last_step(cfg):
    lrs = schedule(**cfg)
    after_warmup = lrs[cfg["warmup_steps"] :]
    assert all(later < earlier for earlier, later in itertools.pairwise(after_warmup))
    assert lrs[-1] == pytest.approx(cfg["min_lr"], rel=1e-12)
    assert min(lrs) == lrs[-1]
    # 코사인 반주기의 한가운데에서는 최댓값과 최솟값의 딱 중간이다
    middle = cfg["warmup_steps"] + (cfg["total_steps"] - 1 - cfg["warmup_steps"]) / 2
    if middle.is_integer():
        assert lrs[int(middle)] == pytest.approx((cfg["peak_lr"] + cfg["min_lr"]) / 2, rel=1e-9)


def test_one_step_after_warmup_stays_at_the_peak():
    assert schedule(total_steps=4, warmup_steps=3, peak_lr=0.1, initial_lr=0.0, min_lr=0.0)[-1] == 0.1


@pytest.mark.parametrize(
    ("changes", "error", "name"),
    [
        ({"step": 135}, ValueError, "step"),
        ({"step": -1}, ValueError, "step"),
        ({"warmup_steps": 135}, ValueError, "warmup_steps"),
        ({"total_steps": 0, "warmup_steps": 0, "step": 0}, ValueError, "total_steps"),
        ({"step": 1.5}, TypeError, "step"),
        ({"peak_lr": -0.1}, ValueError, "peak_lr"),
        ({"min_lr": float("nan")}, ValueError, "min_lr"),
        ({"min_lr": 0.1}, ValueError, "min_lr"),
    ],
)
def test_lr_at_step_rejects_bad_arguments_naming_them(changes, error, name):
    kwargs = {"step": 0, **BOOK_SCHEDULE, **changes}
    with pytest.raises(error, match=name):
        lr_at_step(**kwargs)


def test_gradient_clipping_bounds_the_global_gradient_norm():
    torch.manual_seed(123)
    model = GPTModel(TINY_CONFIG)
    inputs = torch.randint(0, TINY_CONFIG["vocab_size"], (2, 16))
    targets = torch.randint(0, TINY_CONFIG["vocab_size"], (2, 16))
    (100 * calc_loss_batch(inputs, targets, model, "cpu")).backward()  # 노름이 1 을 훨씬 넘도록 키운다

    norm_before, highest_before = global_grad_norm(model), find_highest_gradient(model)
    assert norm_before > 1.0
    reported = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    assert reported.item() == pytest.approx(norm_before, rel=1e-5)  # 우리가 잰 노름이 torch 가 잰 노름과 같다
    assert global_grad_norm(model) <= 1.0 + 1e-5
    assert 0 < find_highest_gradient(model) < highest_before


def test_gradient_helpers_explain_missing_gradients():
    with pytest.raises(ValueError, match="backward"):
        global_grad_norm(GPTModel(TINY_CONFIG))


@pytest.fixture(scope="module")
def verdict_loaders(tmp_path_factory):
    text = load_the_verdict(tmp_path_factory.mktemp("verdict"))[:2500]
    split = int(0.9 * len(text))
    torch.manual_seed(123)
    ctx = TINY_CONFIG["context_length"]
    train_loader = create_dataloader_v1(text[:split], batch_size=2, max_length=ctx, stride=ctx, shuffle=True)
    val_loader = create_dataloader_v1(text[split:], batch_size=2, max_length=ctx, stride=ctx, shuffle=False, drop_last=False)
    return train_loader, val_loader


def test_train_model_lowers_the_loss_and_follows_the_schedule(verdict_loaders, monkeypatch, capsys):
    train_loader, val_loader = verdict_loaders
    clip_steps = []
    original_clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm, **kwargs):
        clip_steps.append(max_norm)
        return original_clip(parameters, max_norm, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)

    torch.manual_seed(123)
    model = GPTModel(TINY_CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    n_epochs = 3
    total_steps = n_epochs * len(train_loader)
    warmup_steps = int(0.2 * total_steps)
    train_losses, val_losses, tokens_seen, lrs = train_model(
        model,
        train_loader,
        val_loader,
        optimizer,
        "cpu",
        n_epochs=n_epochs,
        eval_freq=2,
        eval_iter=2,
        start_context="Every effort moves you",
        tokenizer=tiktoken.get_encoding("gpt2"),
        warmup_steps=warmup_steps,
        initial_lr=1e-5,
        min_lr=1e-5,
    )

    assert train_losses[0] > 9.0  # 훈련 전 손실은 ln(50257) ≈ 10.8 근처
    assert train_losses[-1] < train_losses[0] - 2.0
    assert len(train_losses) == len(val_losses) == len(tokens_seen) == math.ceil(total_steps / 2)
    assert all(math.isfinite(v) for v in val_losses)
    assert lrs == pytest.approx(schedule(total_steps, warmup_steps, 0.01, 1e-5, 1e-5))
    assert clip_steps == [1.0] * (total_steps - warmup_steps)  # 웜업이 끝난 스텝부터만 자른다
    assert capsys.readouterr().out.count("Every effort moves you") == n_epochs


def test_train_model_rejects_a_warmup_longer_than_training(verdict_loaders):
    train_loader, val_loader = verdict_loaders
    model = GPTModel(TINY_CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.001)
    with pytest.raises(ValueError, match="warmup_steps"):
        train_model(
            model, train_loader, val_loader, optimizer, "cpu", n_epochs=1, eval_freq=1, eval_iter=1,
            start_context="Every", tokenizer=tiktoken.get_encoding("gpt2"), warmup_steps=len(train_loader),
        )
