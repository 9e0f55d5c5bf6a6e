"""DPO(직접 선호 최적화)를 밑바닥부터: 선호 데이터셋, 배치 함수, 로그 확률, DPO 손실, 훈련 루프.

7장의 지시 미세 튜닝을 마친 모델(정책 모델)을, 같은 모델의 고정된 사본(참조 모델)과 비교하며 훈련한다.
선호 데이터의 각 항목에는 ``chosen``(선호하는 응답)과 ``rejected``(선호하지 않는 응답)가 있고,
DPO는 정책이 참조보다 chosen 의 확률을 더 올리고 rejected 의 확률을 더 내리도록 한다(Rafailov 외, 2023).
프롬프트 형식과 데이터 분할은 7장(``llm_from_scratch.ch07``)의 것을 그대로 가져다 쓴다.
"""

import json
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator
from torch.utils.data import DataLoader, Dataset

from llm_from_scratch.ch05 import generate, text_to_token_ids, token_ids_to_text
from llm_from_scratch.ch07 import extract_response, format_input, format_response
from llm_from_scratch.download import download_data_file

__all__ = [
    "PAD_TOKEN_ID",
    "PreferenceDataset",
    "compute_dpo_loss",
    "compute_dpo_loss_batch",
    "compute_dpo_loss_loader",
    "compute_logprobs",
    "create_preference_loaders",
    "evaluate_dpo_loss_loader",
    "load_preference_data",
    "plot_dpo_metrics",
    "preference_collate_fn",
    "train_model_dpo",
]

PAD_TOKEN_ID = 50256  # GPT-2 의 <|endoftext|>
PREFERENCE_FILE = "instruction-data-with-preference.json"


# ---------------------------------------------------------------------------
# 데이터셋과 배치
# ---------------------------------------------------------------------------


def load_preference_data(folder="."):
    """선호 데이터 ``instruction-data-with-preference.json`` (1,100개 항목)을 ``folder`` 에 받아 읽는다."""
    path = download_data_file(PREFERENCE_FILE, folder)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class PreferenceDataset(Dataset):
    """항목마다 프롬프트, chosen 전체 텍스트, rejected 전체 텍스트를 미리 토큰화해 두는 데이터셋.

    ``prompt`` 는 Alpaca 프롬프트에 응답 표시(``### Response:``)까지 붙인 토큰이다. chosen 과 rejected 는 둘 다
    이 토큰들로 시작하므로, 배치 함수가 그 길이만큼을 가려 응답 토큰만 점수에 넣을 수 있다.
    """

    def __init__(self, data, tokenizer):
        self.data = data
        self.encoded_texts = []
        for index, entry in enumerate(data):
            if not isinstance(entry, dict):
                raise TypeError(f"선호 데이터 {index}번 항목이 딕셔너리가 아닙니다(받은 것: {type(entry).__name__}).")
            missing = [key for key in ("instruction", "chosen", "rejected") if key not in entry]
            if missing:
                raise KeyError(f"선호 데이터 {index}번 항목에 {', '.join(missing)} 키가 없습니다.")
            for key in ("instruction", "input", "chosen", "rejected"):
                value = entry.get(key)
                if not isinstance(value, str) and not (key == "input" and value is None):
                    raise TypeError(
                        f"선호 데이터 {index}번 항목의 {key!r} 값은 문자열이어야 합니다(받은 값: {value!r}). "
                        "JSON 의 null 이나 숫자를 글로 고치세요."
                    )
            prompt = format_input(entry)
            header = format_response({"output": ""})  # "\n\n### Response:\n"
            self.encoded_texts.append(
                {
                    "prompt": tokenizer.encode(prompt + header),
                    "chosen": tokenizer.encode(prompt + format_response({"output": entry["chosen"]})),
                    "rejected": tokenizer.encode(prompt + format_response({"output": entry["rejected"]})),
                }
            )

    def __getitem__(self, index):
        return self.encoded_texts[index]

    def __len__(self):
        return len(self.data)


def preference_collate_fn(
    batch, pad_token_id=PAD_TOKEN_ID, allowed_max_length=None, mask_prompt_tokens=True, device="cpu"
):
    """선호 예제들을 텐서로 묶는다: chosen 과 rejected 를 같은 길이로 ``pad_token_id`` 로 채우고 마스크를 만든다.

    마스크는 점수에 넣을 토큰이 True 다. 패딩은 언제나 False, ``mask_prompt_tokens`` 가 True 면 프롬프트(응답 표시까지)도
    False 다. ``allowed_max_length`` 가 있으면 그 길이로 자른다.

    Returns:
        ``prompt`` (텐서 리스트, 길이가 제각각), ``chosen``, ``rejected``, ``chosen_mask``, ``rejected_mask``
        ((배치 크기, 길이) 모양) 키를 가진 딕셔너리.
    """
    if len(batch) == 0:
        raise ValueError("빈 배치는 묶을 수 없습니다(예제가 하나 이상 있어야 합니다).")
    if allowed_max_length is not None and allowed_max_length < 2:
        raise ValueError(f"allowed_max_length 는 2 이상이거나 None 이어야 합니다(받은 값: {allowed_max_length}).")

    # chosen 과 rejected 를 같은 길이로 맞춰야 한 번에 모델에 넣을 수 있다
    max_length = max(max(len(item["chosen"]), len(item["rejected"])) for item in batch)
    result = {"prompt": [], "chosen": [], "rejected": [], "chosen_mask": [], "rejected_mask": []}
    for item in batch:
        prompt_length = len(item["prompt"])
        result["prompt"].append(torch.tensor(item["prompt"]))
        for key in ("chosen", "rejected"):
            sequence = item[key]
            padded = torch.tensor(sequence + [pad_token_id] * (max_length - len(sequence)))
            mask = torch.zeros(max_length, dtype=torch.bool)
            mask[: len(sequence)] = True
            if mask_prompt_tokens:
                mask[:prompt_length] = False
            result[key].append(padded)
            result[f"{key}_mask"].append(mask)

    for key in ("chosen", "rejected", "chosen_mask", "rejected_mask"):
        stacked = torch.stack(result[key])
        if allowed_max_length is not None:
            stacked = stacked[:, :allowed_max_length]
        result[key] = stacked.to(device)
    result["prompt"] = [p.to(device) for p in result["prompt"]]
    return result


def create_preference_loaders(
    train_data, val_data, test_data, tokenizer, device="cpu", batch_size=8, allowed_max_length=1024,
    mask_prompt_tokens=True, seed=123,
):
    """선호 데이터의 훈련·검증·테스트 데이터 로더(훈련만 섞고 마지막 불완전 배치를 버린다)."""
    if batch_size < 1:
        raise ValueError(f"batch_size 는 1 이상이어야 합니다(받은 값: {batch_size}).")
    # 훈련 로더는 마지막 불완전 배치를 버리므로 예제가 batch_size 보다 적으면 배치가 0개가 된다
    if len(train_data) < batch_size:
        raise ValueError(
            f"훈련 데이터가 {len(train_data)}개로 batch_size({batch_size})보다 적어 훈련 배치가 하나도 없습니다. "
            "데이터를 늘리거나 batch_size 를 줄이세요."
        )
    if len(val_data) == 0:
        raise ValueError("검증 데이터가 비어 있습니다. 손실을 평가하려면 검증 항목이 하나 이상 있어야 합니다.")

    def collate(batch):
        return preference_collate_fn(
            batch, allowed_max_length=allowed_max_length, mask_prompt_tokens=mask_prompt_tokens, device=device
        )

    def loader(data, training):
        return DataLoader(
            PreferenceDataset(data, tokenizer),
            batch_size=batch_size,
            collate_fn=collate,
            shuffle=training,
            drop_last=training,
            generator=torch.Generator().manual_seed(seed) if training else None,
        )

    return loader(train_data, True), loader(val_data, False), loader(test_data, False)


# ---------------------------------------------------------------------------
# 로그 확률과 DPO 손실
# ---------------------------------------------------------------------------


def compute_logprobs(logits, labels, selection_mask=None):
    """각 시퀀스에서 고른 다음 토큰들의 평균 로그 확률.

    위치 t 의 로짓은 토큰 t+1 을 맞히므로, 5장처럼 타깃은 ``labels`` 를 한 칸 왼쪽으로 민 것이다.

    Args:
        logits: (배치, 길이, 어휘 크기) 모델 출력.
        labels: (배치, 길이) 입력 토큰 ID.
        selection_mask: (배치, 길이) 불리언 마스크. 타깃 토큰 자리가 True 인 것만 평균에 넣는다. None 이면 전부.

    Returns:
        (배치,) 모양의 평균 로그 확률.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"logits 는 (배치, 길이, 어휘) 모양, labels 는 (배치, 길이) 모양이어야 합니다"
            f"(받은 모양: {tuple(logits.shape)}, {tuple(labels.shape)})."
        )
    targets = labels[:, 1:]
    log_probs = F.log_softmax(logits[:, :-1, :], dim=-1)
    token_log_probs = torch.gather(log_probs, dim=-1, index=targets.unsqueeze(-1)).squeeze(-1)
    if selection_mask is None:
        return token_log_probs.mean(dim=-1)
    mask = selection_mask[:, 1:].to(token_log_probs.dtype)
    return (token_log_probs * mask).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1.0)


def compute_dpo_loss(
    model_chosen_logprobs, model_rejected_logprobs, reference_chosen_logprobs, reference_rejected_logprobs, beta=0.1
):
    """DPO 손실: -log σ(β·[(정책 chosen - 정책 rejected) - (참조 chosen - 참조 rejected)]) 의 평균.

    Args:
        model_*_logprobs: 정책 모델이 chosen / rejected 응답에 준 로그 확률, (배치,) 모양.
        reference_*_logprobs: 참조 모델(고정)이 준 로그 확률.
        beta: 참조 모델에서 얼마나 멀어져도 되는지 정하는 온도(0.1~0.5 가 흔하다). 작을수록 멀어지기 쉽다.

    Returns:
        (loss, chosen_rewards, rejected_rewards): 배치 평균. 보상은 β·(정책 - 참조) 로그 확률이며
        그레이디언트를 흘리지 않는다. 정책이 참조와 같으면 loss = ln 2, 보상은 0 이다.
    """
    if not (beta > 0 and math.isfinite(beta)):
        raise ValueError(f"beta 는 0보다 큰 유한한 수여야 합니다(받은 값: {beta}).")
    logprobs = {
        "model_chosen_logprobs": model_chosen_logprobs,
        "model_rejected_logprobs": model_rejected_logprobs,
        "reference_chosen_logprobs": reference_chosen_logprobs,
        "reference_rejected_logprobs": reference_rejected_logprobs,
    }
    shapes = {name: tuple(value.shape) for name, value in logprobs.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 1:
        raise ValueError(
            "네 로그 확률은 모두 같은 (배치,) 모양이어야 합니다(받은 모양: "
            + ", ".join(f"{name} {shape}" for name, shape in shapes.items())
            + "). 서로 다른 모양은 조용히 브로드캐스트되어 손실이 틀어집니다."
        )
    model_logratios = model_chosen_logprobs - model_rejected_logprobs
    reference_logratios = reference_chosen_logprobs - reference_rejected_logprobs
    losses = -F.logsigmoid(beta * (model_logratios - reference_logratios))
    chosen_rewards = beta * (model_chosen_logprobs - reference_chosen_logprobs).detach()
    rejected_rewards = beta * (model_rejected_logprobs - reference_rejected_logprobs).detach()
    return losses.mean(), chosen_rewards.mean(), rejected_rewards.mean()


def compute_dpo_loss_batch(batch, policy_model, reference_model, beta):
    """배치 하나의 DPO 손실과 보상. 참조 모델은 그레이디언트 없이 계산한다."""

    def logprobs(model, key):
        return compute_logprobs(model(batch[key]), batch[key], selection_mask=batch[f"{key}_mask"])

    policy_chosen = logprobs(policy_model, "chosen")
    policy_rejected = logprobs(policy_model, "rejected")
    with torch.no_grad():
        reference_chosen = logprobs(reference_model, "chosen")
        reference_rejected = logprobs(reference_model, "rejected")
    return compute_dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta=beta)


def compute_dpo_loss_loader(data_loader, policy_model, reference_model, beta, num_batches=None):
    """데이터 로더의 앞 ``num_batches`` 개 배치(None 이면 전부)의 평균 손실과 평균 보상."""
    if len(data_loader) == 0:
        return float("nan"), float("nan"), float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    total_loss = total_chosen = total_rejected = 0.0
    for index, batch in enumerate(data_loader):
        if index >= num_batches:
            break
        loss, chosen_rewards, rejected_rewards = compute_dpo_loss_batch(batch, policy_model, reference_model, beta)
        total_loss += loss.item()
        total_chosen += chosen_rewards.item()
        total_rejected += rejected_rewards.item()
    return total_loss / num_batches, total_chosen / num_batches, total_rejected / num_batches


def evaluate_dpo_loss_loader(policy_model, reference_model, train_loader, val_loader, beta, eval_iter):
    """평가 모드에서 훈련·검증 손실과 보상을 ``eval_iter`` 개 배치로 추정한다."""
    policy_model.eval()
    with torch.no_grad():
        train = compute_dpo_loss_loader(train_loader, policy_model, reference_model, beta, num_batches=eval_iter)
        val = compute_dpo_loss_loader(val_loader, policy_model, reference_model, beta, num_batches=eval_iter)
    policy_model.train()
    keys = ("loss", "chosen_reward", "rejected_reward")
    return {**{f"train_{k}": v for k, v in zip(keys, train)}, **{f"val_{k}": v for k, v in zip(keys, val)}}


# ---------------------------------------------------------------------------
# 훈련 루프와 그림
# ---------------------------------------------------------------------------


def _print_sample(model, tokenizer, entry, max_new_tokens):
    model.eval()
    prompt = format_input(entry)
    device = next(model.parameters()).device
    with torch.no_grad():
        token_ids = generate(
            model, text_to_token_ids(prompt, tokenizer).to(device), max_new_tokens,
            context_size=model.pos_emb.weight.shape[0], eos_id=PAD_TOKEN_ID,
        )
    response = extract_response(token_ids_to_text(token_ids, tokenizer), prompt)
    print(f"  응답 예: {response[:200]!r}")
    model.train()


def train_model_dpo(
    policy_model, reference_model, train_loader, val_loader, optimizer, num_epochs, beta, eval_freq, eval_iter,
    sample_entry=None, tokenizer=None, max_new_tokens=35,
):
    """DPO 훈련 루프. ``eval_freq`` 스텝마다 손실과 보상 차이(chosen - rejected)를 기록한다.

    Args:
        policy_model: 훈련할 모델. reference_model: 고정된 참조 모델(평가 모드로 두고 훈련하지 않는다).
        sample_entry, tokenizer: 주면 에포크마다 이 항목에 대한 응답을 생성해 보여 준다.

    Returns:
        기록 딕셔너리: ``train_losses``, ``val_losses``, ``train_chosen_rewards``, ``train_rejected_rewards``,
        ``val_chosen_rewards``, ``val_rejected_rewards``, ``train_reward_margins``, ``val_reward_margins``,
        ``tokens_seen``, ``steps``.
    """
    if num_epochs < 1 or eval_freq < 1:
        raise ValueError(f"num_epochs 와 eval_freq 는 1 이상이어야 합니다(받은 값: {num_epochs}, {eval_freq}).")
    if len(train_loader) == 0:
        raise ValueError(
            "훈련 데이터 로더에 배치가 하나도 없어 훈련할 수 없습니다(예제 수가 batch_size 보다 적으면 drop_last 로 "
            "모두 버려집니다). 데이터를 늘리거나 batch_size 를 줄이세요."
        )
    reference_model.eval()
    for parameter in reference_model.parameters():
        parameter.requires_grad_(False)
    tracking = {key: [] for key in (
        "train_losses", "val_losses", "train_chosen_rewards", "train_rejected_rewards", "val_chosen_rewards",
        "val_rejected_rewards", "train_reward_margins", "val_reward_margins", "tokens_seen", "steps",
    )}
    tokens_seen, global_step = 0, -1

    for epoch in range(num_epochs):
        policy_model.train()
        for batch in train_loader:
            optimizer.zero_grad()
            loss, _, _ = compute_dpo_loss_batch(batch, policy_model, reference_model, beta)
            loss.backward()
            optimizer.step()
            tokens_seen += batch["chosen"].numel()
            global_step += 1

            if global_step % eval_freq == 0:
                res = evaluate_dpo_loss_loader(policy_model, reference_model, train_loader, val_loader, beta, eval_iter)
                for split in ("train", "val"):
                    tracking[f"{split}_losses"].append(res[f"{split}_loss"])
                    tracking[f"{split}_chosen_rewards"].append(res[f"{split}_chosen_reward"])
                    tracking[f"{split}_rejected_rewards"].append(res[f"{split}_rejected_reward"])
                    tracking[f"{split}_reward_margins"].append(
                        res[f"{split}_chosen_reward"] - res[f"{split}_rejected_reward"]
                    )
                tracking["tokens_seen"].append(tokens_seen)
                tracking["steps"].append(global_step)
                print(
                    f"에포크 {epoch + 1} (스텝 {global_step:06d}): "
                    f"훈련 손실 {res['train_loss']:.3f}, 검증 손실 {res['val_loss']:.3f}, "
                    f"훈련 보상 차이 {tracking['train_reward_margins'][-1]:.3f}, "
                    f"검증 보상 차이 {tracking['val_reward_margins'][-1]:.3f}"
                )

        if sample_entry is not None and tokenizer is not None:
            _print_sample(policy_model, tokenizer, sample_entry, max_new_tokens)

    return tracking


def plot_dpo_metrics(tracking, save_path=None):
    """DPO 훈련 기록으로 손실(왼쪽)과 보상 차이(오른쪽)를 스텝 축에 그린다."""
    fig, (ax_loss, ax_margin) = plt.subplots(1, 2, figsize=(9, 3))
    steps = tracking["steps"]
    # (축, 기록 키, 축 이름, 범례에 쓰는 이름): 범례는 "Training DPO loss"처럼 약어의 대문자를 그대로 둔다
    panels = ((ax_loss, "losses", "DPO loss", "DPO loss"), (ax_margin, "reward_margins", "Reward margin", "reward margin"))
    for ax, key, label, legend in panels:
        ax.plot(steps, tracking[f"train_{key}"], label=f"Training {legend}")
        ax.plot(steps, tracking[f"val_{key}"], linestyle="-.", label=f"Validation {legend}")
        ax.set_xlabel("Steps")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="best")
    ax_loss.axhline(math.log(2), color="gray", linewidth=0.8, linestyle=":")  # 시작점 ln 2
    ax_margin.axhline(0.0, color="gray", linewidth=0.8, linestyle=":")
    fig.tight_layout()
    if save_path is not None:
        fig.savefig(save_path)
    return fig
