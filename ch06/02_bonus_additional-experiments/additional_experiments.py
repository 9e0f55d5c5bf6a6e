"""6장 분류 미세 튜닝의 추가 실험: 어느 층을, 어느 토큰으로, 어떤 길이로 훈련할지 바꿔 본다.

6장의 데이터 준비·데이터셋·분류 헤드·정확도 함수와 부록 E의 LoRA를 가져다 쓰고, 여기서는 실험 스위치만 더한다.

    python additional_experiments.py                                  # 책의 설정(GPT-2 124M, 마지막 블록, 마지막 토큰)
    python additional_experiments.py --trainable-layers lora --lora-rank 16 --lora-alpha 16
    python additional_experiments.py --weights random --model-size tiny --trainable-layers all   # CPU 로 몇 분

빠른 모드(--quick 또는 LLMFS_QUICK=1)는 작은 무작위 모델로 몇 스텝만 훈련해 모든 코드 경로를 확인한다.
"""

import argparse
import functools
import time
from pathlib import Path

import tiktoken
import torch
from torch.nn import functional as F

from llm_from_scratch.appendix_e import LinearWithLoRA, replace_linear_with_lora
from llm_from_scratch.ch04 import GPT2_MODEL_CONFIGS, GPT_CONFIG_124M, GPTModel
from llm_from_scratch.ch05 import evaluate_model
from llm_from_scratch.ch06 import (
    SpamDataset,
    add_classification_head,
    calc_accuracy_loader,
    load_pretrained_gpt2,
    prepare_spam_data,
)
from llm_from_scratch.classification import PAD_TOKEN_ID, TOKEN_POSITIONS, parse_context_length
from llm_from_scratch.classification import ClassifierView as _ClassifierView
from llm_from_scratch.utils import QUICK, ArgumentParser, get_device, set_seed

CSV_NAMES = ("train.csv", "validation.csv", "test.csv")
# --model-size 이름 -> (OpenAI 체크포인트 크기, 설정). tiny 는 CPU 실험용 작은 구조다(사전 훈련 가중치 없음).
MODEL_SIZES = {
    "gpt2-small (124M)": "124M",
    "gpt2-medium (355M)": "355M",
    "gpt2-large (774M)": "774M",
    "gpt2-xl (1558M)": "1558M",
    "tiny": None,
}
TINY_CONFIG = {"emb_dim": 64, "n_layers": 2, "n_heads": 4}
TRAINABLE_LAYERS = ("all", "last_block", "last_two_blocks", "last_layer", "lora", "lora_alternative")
QUICK_SETTINGS = {"num_epochs": 1, "max_steps": 3, "eval_iter": 1, "num_eval_batches": 2, "model_size": "tiny"}


# ---------------------------------------------------------------------------
# 모델: 크기, 가중치, 훈련할 층
# ---------------------------------------------------------------------------


def model_config(model_size, context_length=1024, qkv_bias=True):
    """``--model-size`` 이름에 맞는 ``GPTModel`` 설정(드롭아웃 0, OpenAI 구조처럼 qkv 편향)."""
    if model_size not in MODEL_SIZES:
        raise ValueError(f"알 수 없는 모델 크기 {model_size!r} 입니다. 가능한 크기: {', '.join(MODEL_SIZES)}")
    sizes = TINY_CONFIG if model_size == "tiny" else GPT2_MODEL_CONFIGS[model_size]
    return {**GPT_CONFIG_124M, **sizes, "context_length": context_length, "drop_rate": 0.0, "qkv_bias": qkv_bias}


class LinearWithLoRAMerged(LinearWithLoRA):
    """LoRA의 다른 구현: ``W + alpha * (A @ B).T`` 를 먼저 합친 가중치로 선형 층을 한 번만 계산한다.

    파라미터(``linear``, ``lora.A``, ``lora.B``)는 부록 E의 ``LinearWithLoRA`` 와 같고 계산 순서만 다르다.
    """

    def forward(self, x):
        merged = self.linear.weight + self.lora.alpha * (self.lora.A @ self.lora.B).T
        return F.linear(x, merged, self.linear.bias)


def replace_linear_with_lora_merged(model, rank, alpha):
    """부록 E의 ``replace_linear_with_lora`` 로 바꾼 뒤, 각 LoRA 층을 합친 가중치 구현으로 바꾼다."""
    replace_linear_with_lora(model, rank, alpha)
    for module in model.modules():
        if type(module) is LinearWithLoRA:
            module.__class__ = LinearWithLoRAMerged
    return model


def set_trainable_layers(model, trainable_layers, lora_rank=16, lora_alpha=16):
    """분류 헤드를 붙인 모델에서 ``trainable_layers`` 가 고른 부분만 훈련되게 한다(제자리에서 바꾼다).

    - all: 모든 층 / last_block: 마지막 블록+최종 층 정규화+헤드(책) / last_two_blocks: 마지막 두 블록+최종 층 정규화+헤드
    - last_layer: 새 출력 헤드만 / lora, lora_alternative: 모든 선형 층(헤드 포함)에 LoRA를 달고 LoRA만
    """
    if trainable_layers not in TRAINABLE_LAYERS:
        raise ValueError(
            f"trainable_layers 는 {', '.join(TRAINABLE_LAYERS)} 중 하나여야 합니다(받은 값: {trainable_layers!r})."
        )
    for param in model.parameters():
        param.requires_grad = trainable_layers == "all"
    if trainable_layers in ("lora", "lora_alternative"):
        replace = replace_linear_with_lora if trainable_layers == "lora" else replace_linear_with_lora_merged
        replace(model, lora_rank, lora_alpha)
        return model
    modules = {
        "all": [],
        "last_block": [model.trf_blocks[-1], model.final_norm, model.out_head],
        "last_two_blocks": [*model.trf_blocks[-2:], model.final_norm, model.out_head],
        "last_layer": [model.out_head],
    }[trainable_layers]
    for module in modules:
        for param in module.parameters():
            param.requires_grad = True
    return model


def count_trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def disable_causal_mask(model):
    """모든 어텐션 층의 코잘 마스크 버퍼를 0으로 채워 각 토큰이 뒤쪽 토큰도 보게 한다.

    3장의 ``MultiHeadAttention`` 은 마스크 버퍼의 1인 자리만 가리므로, 버퍼를 0으로 만들면 가리는 곳이 없다.
    """
    for block in model.trf_blocks:
        block.att.mask.zero_()
    return model


def build_model(args, device):
    """옵션대로 GPT 분류기를 만든다: 가중치(사전 훈련/무작위) -> 2 클래스 헤드 -> 훈련할 층 -> 코잘 마스크."""
    if args.weights == "pretrained":
        if MODEL_SIZES[args.model_size] is None:
            raise ValueError(f"--model-size {args.model_size} 에는 사전 훈련 가중치가 없습니다. --weights random 을 쓰세요.")
        model, _cfg = load_pretrained_gpt2(args.models_dir, MODEL_SIZES[args.model_size])
    else:
        set_seed(args.seed)
        model = GPTModel(model_config(args.model_size))
    add_classification_head(model, num_classes=2, seed=args.seed)
    set_trainable_layers(model, args.trainable_layers, args.lora_rank, args.lora_alpha)
    if args.disable_causal_mask:
        disable_causal_mask(model)
    return model.to(device)


# ---------------------------------------------------------------------------
# 어느 토큰의 출력으로 분류할지
# ---------------------------------------------------------------------------


class ClassifierView(_ClassifierView):
    """공용 감싸개와 같되, 원서처럼 ``--average-embeddings`` 가 패딩까지 모든 위치를 평균한다."""

    def __init__(self, model, token_pos="last", average_embeddings=False):
        super().__init__(model, token_pos, average_embeddings, average_padding=True)


def calc_loss_batch(input_batch, target_batch, model, device, ignore_index=-100):
    """분류 손실. 레이블이 ``ignore_index`` 인 예제는 손실과 그레이디언트에서 빠진다."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = model(input_batch)[:, -1, :]
    return F.cross_entropy(logits, target_batch, ignore_index=ignore_index)


# ---------------------------------------------------------------------------
# 데이터: 패딩 길이, 패딩 없이
# ---------------------------------------------------------------------------


class UnpaddedSpamDataset(SpamDataset):
    """6장 ``SpamDataset`` 과 같지만 끝의 패딩 토큰을 떼고 돌려준다(배치 크기 1에서만 쓸 수 있다)."""

    def __getitem__(self, index):
        encoded, label = super().__getitem__(index)
        length = max(1, int((encoded != PAD_TOKEN_ID).sum()))
        return encoded[:length], label


def create_loaders(folder, tokenizer, context_length, model_context_length, batch_size, no_padding, seed):
    """train/validation/test CSV 로 데이터 로더 세 개를 만든다(6장과 같이 훈련 로더만 섞고 마지막 덜 찬 배치를 버린다)."""
    if context_length in ("longest", "longest_training_example"):
        max_length = None
    elif context_length == "model_context_length":
        max_length = model_context_length
    else:
        max_length = min(context_length, model_context_length)
    dataset_cls = UnpaddedSpamDataset if no_padding else SpamDataset
    train_dataset = dataset_cls(Path(folder) / "train.csv", tokenizer, max_length=max_length)
    if train_dataset.max_length > model_context_length:
        train_dataset = dataset_cls(Path(folder) / "train.csv", tokenizer, max_length=model_context_length)
    datasets = [
        train_dataset,
        dataset_cls(Path(folder) / "validation.csv", tokenizer, max_length=train_dataset.max_length),
        dataset_cls(Path(folder) / "test.csv", tokenizer, max_length=train_dataset.max_length),
    ]
    generator = torch.Generator().manual_seed(seed)
    train_loader = torch.utils.data.DataLoader(
        datasets[0], batch_size, shuffle=True, drop_last=True, generator=generator
    )
    val_loader = torch.utils.data.DataLoader(datasets[1], batch_size)
    test_loader = torch.utils.data.DataLoader(datasets[2], batch_size)
    return train_loader, val_loader, test_loader


# ---------------------------------------------------------------------------
# 훈련: 그레이디언트 누적
# ---------------------------------------------------------------------------


def train_classifier(
    model, train_loader, val_loader, optimizer, device, num_epochs, eval_freq, eval_iter,
    accumulation_steps=1, ignore_index=-100, max_steps=None,
):
    """6장의 분류 훈련 루프에 그레이디언트 누적을 더한 것.

    배치 ``accumulation_steps`` 개의 손실을 그 수로 나눠 그레이디언트를 더한 뒤 한 번 갱신하므로,
    배치가 ``accumulation_steps`` 배 큰 것과 같은 갱신이 된다. ``max_steps`` 는 옵티마이저 갱신 횟수다.

    Returns:
        (훈련 손실 목록, 검증 손실 목록, 본 예제 수, 갱신 횟수)
    """
    batch_loss = functools.partial(calc_loss_batch, ignore_index=ignore_index)
    train_losses, val_losses = [], []
    examples_seen, updates = 0, 0
    for epoch in range(num_epochs):
        model.train()
        optimizer.zero_grad()
        for batch_idx, (input_batch, target_batch) in enumerate(train_loader, start=1):
            loss = batch_loss(input_batch, target_batch, model, device) / accumulation_steps
            loss.backward()
            examples_seen += input_batch.shape[0]
            if batch_idx % accumulation_steps != 0 and batch_idx != len(train_loader):
                continue
            optimizer.step()
            optimizer.zero_grad()
            updates += 1
            if updates % eval_freq == 0:
                train_loss, val_loss = evaluate_model(
                    model, train_loader, val_loader, device, eval_iter, batch_loss=batch_loss
                )
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                print(f"에포크 {epoch + 1} (갱신 {updates:05d}): 훈련 손실 {train_loss:.3f}, 검증 손실 {val_loss:.3f}")
            if max_steps is not None and updates >= max_steps:
                return train_losses, val_losses, examples_seen, updates
    return train_losses, val_losses, examples_seen, updates


# ---------------------------------------------------------------------------


def build_parser():
    parser = ArgumentParser(description="6장 분류 미세 튜닝의 추가 실험(층, 토큰 위치, 길이, LoRA, 마스크).")
    parser.add_argument("--model-size", default="gpt2-small (124M)", choices=tuple(MODEL_SIZES),
                        help="모델 크기(기본: gpt2-small (124M)). tiny 는 CPU 실험용 작은 구조(무작위 가중치만)")
    parser.add_argument("--weights", default="pretrained", choices=("pretrained", "random"),
                        help="OpenAI 사전 훈련 가중치(pretrained, 기본) 또는 무작위 초기화(random)")
    parser.add_argument("--trainable-layers", default="last_block", choices=TRAINABLE_LAYERS,
                        help="훈련할 층(기본: last_block = 마지막 블록+최종 층 정규화+헤드)")
    parser.add_argument("--trainable-token-pos", default="last", choices=TOKEN_POSITIONS,
                        help="분류에 쓸 토큰: first, last(기본), flexible(패딩을 뺀 마지막 진짜 토큰)")
    parser.add_argument("--average-embeddings", action="store_true",
                        help="토큰 하나 대신 모든 위치의 출력 평균으로 분류한다")
    parser.add_argument("--context-length", default="longest", type=parse_context_length,
                        help="패딩 길이: longest 또는 longest_training_example(가장 긴 훈련 텍스트, 기본), "
                             "model_context_length(1024), 또는 정수")
    parser.add_argument("--lora-rank", type=int, default=16, help="LoRA 랭크(기본: 16)")
    parser.add_argument("--lora-alpha", type=float, default=16, help="LoRA 배율 alpha(기본: 16)")
    parser.add_argument("--no-padding", action="store_true", help="패딩 없이 배치 크기 1로 훈련한다")
    parser.add_argument("--accumulation-steps", type=int, default=1,
                        help="그레이디언트를 이 배치 수만큼 모아 한 번 갱신한다(기본: 1)")
    parser.add_argument("--disable-causal-mask", action="store_true", help="어텐션의 코잘 마스크를 끈다")
    parser.add_argument("--ignore-index", type=int, default=-100,
                        help="레이블이 이 값인 예제를 손실에서 뺀다(cross_entropy 의 ignore_index, 기본: -100)")
    parser.add_argument("--num-epochs", type=int, default=5, help="에포크 수(기본: 5)")
    parser.add_argument("--batch-size", type=int, default=8, help="배치 크기(기본: 8, --no-padding 이면 1)")
    parser.add_argument("--lr", type=float, default=5e-5, help="AdamW 학습률(기본: 5e-5)")
    parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay(기본: 0.1)")
    parser.add_argument("--eval-freq", type=int, default=50, help="손실을 평가할 갱신 간격(기본: 50)")
    parser.add_argument("--eval-iter", type=int, default=5, help="평가에 쓸 배치 수(기본: 5)")
    parser.add_argument("--max-steps", type=int, default=None, help="이 갱신 횟수만큼만 훈련한다")
    parser.add_argument("--seed", type=int, default=123, help="난수 시드(기본: 123)")
    parser.add_argument("--output-dir", default=".",
                        help="데이터 CSV를 둘 폴더(기본: 현재 폴더). 세 CSV가 이미 있으면 그대로 쓴다")
    parser.add_argument("--models-dir", default="gpt2", help="GPT-2 가중치 폴더(기본: gpt2)")
    parser.add_argument("--device", default=None, help="cuda, mps, cpu 중 하나(기본: 자동 선택)")
    parser.add_argument("--quick", action=argparse.BooleanOptionalAction, default=QUICK,
                        help="tiny 무작위 모델로 몇 스텝만 돈다(LLMFS_QUICK=1 이면 기본으로 켜짐, --no-quick 으로 끔)")
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("lora_rank", "accumulation_steps", "num_epochs", "batch_size", "eval_freq", "eval_iter"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} 는 1 이상이어야 합니다(받은 값: {getattr(args, name)}).")
    if args.max_steps is not None and args.max_steps < 1:
        parser.error(f"--max-steps 는 1 이상이어야 합니다(받은 값: {args.max_steps}).")
    if args.lr <= 0:
        parser.error(f"--lr 은 0보다 커야 합니다(받은 값: {args.lr}).")
    if args.weights == "pretrained" and args.model_size == "tiny" and not args.quick:
        parser.error("--model-size tiny 에는 사전 훈련 가중치가 없습니다. --weights random 을 함께 쓰세요.")
    existing = [name for name in CSV_NAMES if (Path(args.output_dir) / name).exists()]
    if 0 < len(existing) < len(CSV_NAMES):
        parser.error(
            f"{args.output_dir} 에 {', '.join(existing)} 만 있습니다. 덮어쓰지 않으려고 멈췄습니다. "
            "세 파일(train/validation/test.csv)을 모두 두거나 빈 폴더를 --output-dir 로 주세요."
        )
    if args.no_padding:
        args.batch_size = 1  # 길이가 다른 예제는 한 배치에 쌓을 수 없다
    if args.quick:
        args.model_size, args.weights = QUICK_SETTINGS["model_size"], "random"
        args.num_epochs, args.eval_iter = QUICK_SETTINGS["num_epochs"], QUICK_SETTINGS["eval_iter"]
        args.max_steps = QUICK_SETTINGS["max_steps"]
        args.eval_freq = min(args.eval_freq, QUICK_SETTINGS["max_steps"])
    return args


def main(argv=None):
    """실험 하나를 돌리고 {"train": …, "validation": …, "test": …} 정확도와 훈련 파라미터 수를 돌려준다."""
    args = parse_args(argv)
    device = get_device(args.device)
    output_dir = Path(args.output_dir)
    if not all((output_dir / name).exists() for name in CSV_NAMES):  # 셋 다 있으면 그대로 쓴다(덮어쓰지 않는다)
        output_dir.mkdir(parents=True, exist_ok=True)
        prepare_spam_data(output_dir)

    model = build_model(args, device)
    num_trainable = count_trainable(model)
    classifier = ClassifierView(model, args.trainable_token_pos, args.average_embeddings)
    tokenizer = tiktoken.get_encoding("gpt2")
    train_loader, val_loader, test_loader = create_loaders(
        output_dir, tokenizer, args.context_length, model.pos_emb.num_embeddings, args.batch_size,
        args.no_padding, args.seed,
    )
    print(f"장치: {device} | 모델: {args.model_size}, 가중치 {args.weights} | 훈련할 파라미터: {num_trainable:,}개")
    print(f"입력 길이: {train_loader.dataset.max_length} 토큰{' (패딩 없음, 배치 1)' if args.no_padding else ''} | "
          f"배치 수(훈련/검증/테스트): {len(train_loader)} / {len(val_loader)} / {len(test_loader)}")

    set_seed(args.seed)
    optimizer = torch.optim.AdamW(
        (p for p in model.parameters() if p.requires_grad), lr=args.lr, weight_decay=args.weight_decay
    )
    start = time.time()
    train_classifier(
        classifier, train_loader, val_loader, optimizer, device, args.num_epochs, args.eval_freq, args.eval_iter,
        accumulation_steps=args.accumulation_steps, ignore_index=args.ignore_index, max_steps=args.max_steps,
    )
    minutes = (time.time() - start) / 60
    num_batches = QUICK_SETTINGS["num_eval_batches"] if args.quick else None
    accuracies = {
        name: calc_accuracy_loader(loader, classifier, device, num_batches=num_batches)
        for name, loader in (("train", train_loader), ("validation", val_loader), ("test", test_loader))
    }
    print(f"훈련 시간: {minutes:.2f}분")
    print(f"훈련 정확도: {accuracies['train'] * 100:.2f}% | 검증 정확도: {accuracies['validation'] * 100:.2f}% | "
          f"테스트 정확도: {accuracies['test'] * 100:.2f}%")
    return {**accuracies, "trainable_params": num_trainable, "minutes": minutes}


if __name__ == "__main__":
    main()
