"""5장 요약: 레이블이 없는 데이터로 사전 훈련하기.

텍스트<->토큰 변환, 손실 계산, 간단한 훈련 루프, 손실 그래프, 온도·top-k 샘플링 생성 함수를 담는다.
OpenAI GPT-2 가중치 내려받기와 적재는 gpt_download.py에 있다.
"""

import math
from numbers import Integral, Real

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

from llm_from_scratch.ch04 import generate_text_simple

__all__ = [
    "calc_loss_batch",
    "calc_loss_loader",
    "evaluate_model",
    "generate",
    "generate_and_print_sample",
    "plot_losses",
    "plot_train_val",
    "sample_token_counts",
    "softmax_with_temperature",
    "text_to_token_ids",
    "token_ids_to_text",
    "train_model_simple",
]


def text_to_token_ids(text, tokenizer):
    """문자열을 배치 차원이 붙은 (1, 토큰 수) 텐서로 바꾼다. 특수 토큰은 책처럼 <|endoftext|>만 허용한다."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"프롬프트 text는 비어 있지 않은 문자열이어야 합니다(받은 값: {text!r}).")
    special = getattr(tokenizer, "special_tokens_set", set())
    disallowed = sorted(token for token in special if token != "<|endoftext|>" and token in text)
    if disallowed:
        raise ValueError(f"프롬프트에 쓸 수 없는 특수 토큰 {', '.join(disallowed)}이(가) 있습니다. "
                         "<|endoftext|> 말고는 지우거나 평범한 글자로 바꾸세요.")
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    return torch.tensor(encoded).unsqueeze(0)


def token_ids_to_text(token_ids, tokenizer):
    """(1, 토큰 수) 텐서를 문자열로 되돌린다."""
    return tokenizer.decode(token_ids.squeeze(0).tolist())


def calc_loss_batch(input_batch, target_batch, model, device):
    """배치 하나의 평균 크로스 엔트로피 손실."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = model(input_batch)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), target_batch.flatten())


def calc_loss_loader(data_loader, model, device, num_batches=None, batch_loss=calc_loss_batch):
    """데이터 로더의 처음 ``num_batches`` 개 배치(기본: 전부)의 평균 손실. 배치가 없으면 nan.

    ``batch_loss``는 배치 하나의 손실을 계산하는 함수다(6장은 분류 손실을 넘긴다).
    """
    if num_batches is not None and not num_batches >= 1:
        raise ValueError(f"num_batches는 1 이상이거나 None(전부)이어야 합니다(받은 값: {num_batches!r}).")
    if len(data_loader) == 0:
        return float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    total_loss = 0.0
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i >= num_batches:
            break
        total_loss += batch_loss(input_batch, target_batch, model, device).item()
    return total_loss / num_batches


def evaluate_model(model, train_loader, val_loader, device, eval_iter, batch_loss=calc_loss_batch):
    """평가 모드에서 훈련·검증 손실을 ``eval_iter`` 개 배치로 추정한다(``batch_loss``는 calc_loss_loader와 같다)."""
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter, batch_loss=batch_loss)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter, batch_loss=batch_loss)
    model.train()
    return train_loss, val_loss


def generate_and_print_sample(model, tokenizer, device, start_context, max_new_tokens=50):
    """``start_context``에 이어지는 텍스트를 그리디 디코딩으로 생성해 한 줄로 출력한다."""
    model.eval()
    context_size = model.pos_emb.weight.shape[0]
    encoded = text_to_token_ids(start_context, tokenizer).to(device)
    with torch.no_grad():
        token_ids = generate_text_simple(model, encoded, max_new_tokens, context_size)
    print(token_ids_to_text(token_ids, tokenizer).replace("\n", " "))
    model.train()


def train_model_simple(
    model, train_loader, val_loader, optimizer, device, num_epochs, eval_freq, eval_iter, start_context, tokenizer
):
    """책의 간단한 훈련 루프. ``eval_freq`` 스텝마다 손실을 기록하고 에포크마다 샘플을 출력한다.

    Returns:
        (훈련 손실 목록, 검증 손실 목록, 평가 시점까지 본 토큰 수 목록)
    """
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1

    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            tokens_seen += input_batch.numel()
            global_step += 1

            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                print(
                    f"에포크 {epoch + 1} (스텝 {global_step:06d}): 훈련 손실 {train_loss:.3f}, 검증 손실 {val_loss:.3f}"
                )

        generate_and_print_sample(model, tokenizer, device, start_context)

    return train_losses, val_losses, track_tokens_seen


def plot_train_val(epochs_seen, seen, train_values, val_values, label="loss", seen_label="Tokens seen",
                   legend_loc="best", save_path=None):
    """훈련·검증 값(손실, 정확도 등)을 에포크 축(아래)과 본 토큰·샘플 수 축(위)에 함께 그린다.

    5장의 ``plot_losses``와 6장의 ``plot_values``가 이 함수 하나를 쓴다.
    """
    fig, ax1 = plt.subplots(figsize=(5, 3))
    ax1.plot(epochs_seen, train_values, label=f"Training {label}")
    ax1.plot(epochs_seen, val_values, linestyle="-.", label=f"Validation {label}")
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel(label.capitalize())
    ax1.legend(loc=legend_loc)
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2 = ax1.twiny()
    ax2.plot(seen, train_values, alpha=0)  # 눈금만 맞추려는 보이지 않는 선
    ax2.set_xlabel(seen_label)
    fig.tight_layout()
    if save_path is not None:
        fig.savefig(save_path)
    return fig


def plot_losses(epochs_seen, tokens_seen, train_losses, val_losses, save_path=None):
    """훈련·검증 손실을 에포크 축(아래)과 본 토큰 수 축(위)에 함께 그린다."""
    return plot_train_val(epochs_seen, tokens_seen, train_losses, val_losses, legend_loc="upper right",
                          save_path=save_path)


def softmax_with_temperature(logits, temperature):
    """로짓을 ``temperature``로 나눈 뒤 소프트맥스한다(1보다 크면 고르게, 작으면 뾰족해진다)."""
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature는 0보다 큰 유한한 수여야 합니다(받은 값: {temperature}).")
    return torch.softmax(logits / temperature, dim=-1)


def sample_token_counts(probas, num_samples=1_000, seed=123):
    """확률 분포 ``probas``에서 토큰을 하나씩 ``num_samples`` 번 뽑아 토큰별 횟수를 돌려준다.

    책처럼 ``torch.multinomial``을 한 번에 하나씩 부르므로, 같은 시드면 책과 같은 횟수가 나온다.
    """
    if seed is not None:
        torch.manual_seed(seed)
    samples = [torch.multinomial(probas, num_samples=1).item() for _ in range(num_samples)]
    return torch.bincount(torch.tensor(samples), minlength=probas.shape[-1])


def _is_int(value):
    """bool이 아닌 정수인지(True가 1로 받아들여지지 않도록)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def generate(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None, eos_id=None):
    """온도 스케일링과 탑-k 샘플링을 지원하는 생성 함수.

    Args:
        temperature: 0 이면 그리디 디코딩(결정적), 0 보다 크면 그 온도로 샘플링한다.
        top_k: 주어지면 로짓이 가장 큰 k 개 토큰 안에서만 고른다.
        eos_id: 이 토큰이 나오면 일찍 멈춘다.
    """
    vocab_size = model.tok_emb.num_embeddings  # out_head가 LoRA 층으로 바뀌어 있어도 쓸 수 있다
    # 잘못된 값은 생성을 시작하기 전에 막는다(nan 온도가 조용히 그리디 디코딩이 되지 않도록)
    if not _is_int(max_new_tokens) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens는 0 이상의 정수여야 합니다(받은 값: {max_new_tokens!r}).")
    if not _is_int(context_size) or context_size < 1:
        raise ValueError(f"context_size는 1 이상의 정수여야 합니다(받은 값: {context_size!r}).")
    if not isinstance(temperature, Real) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature는 0 이상의 유한한 수여야 합니다(받은 값: {temperature!r}).")
    if top_k is not None and (not _is_int(top_k) or not 1 <= top_k <= vocab_size):
        raise ValueError(f"top_k는 1 이상 어휘 크기({vocab_size}) 이하의 정수여야 합니다(받은 값: {top_k!r}).")
    if idx.numel() == 0 or idx.min() < 0 or idx.max() >= vocab_size:
        raise ValueError(f"idx의 토큰 ID는 0 이상 {vocab_size} 미만이어야 하고 하나 이상 있어야 합니다(받은 모양: "
                         f"{tuple(idx.shape)}).")

    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]
        with torch.no_grad():
            logits = model(idx_cond)[:, -1, :]
        if top_k is not None:
            top_logits, _ = torch.topk(logits, top_k)
            logits = torch.where(logits < top_logits[:, -1:], torch.tensor(float("-inf"), device=logits.device), logits)
        if temperature > 0.0:
            probs = torch.softmax(logits / temperature, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1)
        else:
            idx_next = torch.argmax(logits, dim=-1, keepdim=True)
        if eos_id is not None and (idx_next == eos_id).all():
            break
        idx = torch.cat((idx, idx_next), dim=1)
    return idx

