"""IMDb 리뷰의 긍정/부정을 GPT-2 분류기로 미세 튜닝한다(6장의 데이터 로더·분류 헤드·훈련 루프를 그대로 쓴다).

먼저 ``python download_prepare_dataset.py`` 로 train/validation/test CSV를 만든 뒤:

    python train_gpt.py                                   # GPT-2 124M, 마지막 블록, 마지막 토큰, 256 토큰, 1 에포크
    python train_gpt.py --trainable-layers all --num-epochs 2
    python train_gpt.py --trainable-token-pos flexible     # 패딩을 뺀 마지막 진짜 토큰으로 분류
    python train_gpt.py --average-embeddings               # 진짜 토큰(패딩 제외) 출력의 평균으로 분류
    python train_gpt.py --weights random --trainable-layers all   # 사전 훈련 없이 무작위 가중치에서
    python train_gpt.py --context-length longest_training_example

빠른 모드(--quick 또는 LLMFS_QUICK=1)는 작은 무작위 GPT(tiny)로 몇 스텝만 돈다.
"""

import argparse
import time
from pathlib import Path

import tiktoken
import torch

from llm_from_scratch.ch04 import GPT2_MODEL_CONFIGS, GPT_CONFIG_124M, GPTModel
from llm_from_scratch.ch06 import (
    add_classification_head,
    calc_accuracy_loader,
    create_spam_dataloaders,
    load_pretrained_gpt2,
    train_classifier_simple,
)
from llm_from_scratch.classification import TOKEN_POSITIONS, ClassifierView, parse_context_length
from llm_from_scratch.utils import QUICK, ArgumentParser, get_device, set_seed

# --model-size 값 -> 원서의 이름(GPT2_MODEL_CONFIGS 의 키). tiny 는 CPU 실험용 작은 구조로 무작위 가중치만 있다.
MODEL_SIZES = {
    "124M": "gpt2-small (124M)",
    "355M": "gpt2-medium (355M)",
    "774M": "gpt2-large (774M)",
    "1558M": "gpt2-xl (1558M)",
    "tiny": None,
}
SIZE_ALIASES = {name: size for size, name in MODEL_SIZES.items() if name}  # 원서의 표기 "gpt2-small (124M)" 도 받는다
TINY_CONFIG = {"emb_dim": 64, "n_layers": 2, "n_heads": 4}
TRAINABLE_LAYERS = ("last_block", "all", "last_layer", "none")  # last_layer(원서)와 none(6장)은 둘 다 헤드만
QUICK_SETTINGS = {"num_epochs": 1, "max_steps": 3, "eval_freq": 1, "eval_iter": 1, "num_eval_batches": 2}


# ---------------------------------------------------------------------------
# 옵션 값 읽기
# ---------------------------------------------------------------------------


def parse_model_size(value):
    """``--model-size``: 124M, 355M, 774M, 1558M, tiny, 또는 원서의 이름(gpt2-small (124M) 등)."""
    size = SIZE_ALIASES.get(value, value)
    if size not in MODEL_SIZES:
        names = ", ".join([*MODEL_SIZES, *SIZE_ALIASES])
        raise argparse.ArgumentTypeError(f"알 수 없는 모델 크기 {value!r} 입니다. {names} 중 하나를 주세요.")
    return size


def model_config(model_size, context_length=1024):
    """무작위 가중치로 만들 때의 ``GPTModel`` 설정(OpenAI 구조처럼 qkv 편향, 드롭아웃 0)."""
    sizes = TINY_CONFIG if model_size == "tiny" else GPT2_MODEL_CONFIGS[MODEL_SIZES[model_size]]
    return {**GPT_CONFIG_124M, **sizes, "context_length": context_length, "drop_rate": 0.0, "qkv_bias": True}


def build_model(weights, model_size, models_dir, trainable_layers, seed=123):
    """GPT 분류기: 사전 훈련 가중치를 읽거나(pretrained) 무작위로 만들고(random) 2 클래스 헤드를 붙인다.

    random 이면 체크포인트를 읽지도 받지도 않는다.
    """
    if weights == "pretrained":
        if MODEL_SIZES.get(model_size) is None:
            raise ValueError(f"--model-size {model_size} 에는 사전 훈련 가중치가 없습니다. --weights random 을 쓰세요.")
        model, _cfg = load_pretrained_gpt2(models_dir, model_size)
    elif weights == "random":
        set_seed(seed)
        model = GPTModel(model_config(model_size))
    else:
        raise ValueError(f"weights 는 pretrained 또는 random 이어야 합니다(받은 값: {weights!r}).")
    head_only = trainable_layers in ("last_layer", "none")
    return add_classification_head(model, num_classes=2, trainable_layers="none" if head_only else trainable_layers,
                                   seed=seed)


# ---------------------------------------------------------------------------


def build_parser():
    parser = ArgumentParser(description="IMDb 긍정/부정 분류: GPT-2 미세 튜닝(6장 코드 재사용).")
    parser.add_argument("--data-dir", default=".", help="train/validation/test.csv 가 있는 폴더(기본: 현재 폴더)")
    parser.add_argument("--model-size", default="124M", type=parse_model_size,
                        help="GPT-2 크기: 124M(기본), 355M, 774M, 1558M(원서의 'gpt2-small (124M)' 표기도 받음), "
                             "tiny(CPU 실험용 작은 구조, --weights random 만)")
    parser.add_argument("--weights", default="pretrained", choices=("pretrained", "random"),
                        help="OpenAI 사전 훈련 가중치(pretrained, 기본) 또는 무작위 초기화(random)")
    parser.add_argument("--models-dir", default="gpt2", help="GPT-2 가중치 폴더(기본: gpt2)")
    parser.add_argument("--trainable-layers", default="last_block", choices=TRAINABLE_LAYERS,
                        help="훈련할 층: last_block(기본), all, last_layer 또는 none(둘 다 헤드만)")
    parser.add_argument("--trainable-token-pos", default="last", choices=TOKEN_POSITIONS,
                        help="분류에 쓸 토큰: first, last(기본), flexible(패딩을 뺀 마지막 진짜 토큰)")
    parser.add_argument("--average-embeddings", action="store_true",
                        help="토큰 하나 대신 진짜 토큰(패딩 제외) 모든 위치의 출력 평균으로 분류한다")
    parser.add_argument("--context-length", type=parse_context_length, default=256,
                        help="입력 길이: 정수(기본: 256), longest_training_example(가장 긴 훈련 리뷰), "
                             "model_context_length(모델의 문맥 길이). 모델의 문맥 길이를 넘지 않는다")
    parser.add_argument("--num-epochs", type=int, default=1, help="에포크 수(기본: 1)")
    parser.add_argument("--batch-size", type=int, default=8, help="배치 크기(기본: 8)")
    parser.add_argument("--lr", "--learning-rate", type=float, default=5e-5, help="AdamW 학습률(기본: 5e-5)")
    parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay(기본: 0.1)")
    parser.add_argument("--eval-freq", type=int, default=200, help="손실을 평가할 스텝 간격(기본: 200)")
    parser.add_argument("--eval-iter", type=int, default=20, help="평가에 쓸 배치 수(기본: 20)")
    parser.add_argument("--max-steps", type=int, default=None, help="이 스텝 수만큼만 훈련한다")
    parser.add_argument("--seed", type=int, default=123, help="난수 시드(기본: 123)")
    parser.add_argument("--device", default=None, help="cuda, mps, cpu 중 하나(기본: 자동 선택)")
    parser.add_argument("--quick", action=argparse.BooleanOptionalAction, default=QUICK,
                        help="작은 무작위 GPT로 몇 스텝만(LLMFS_QUICK=1 이면 기본으로 켜짐, --no-quick 으로 끔)")
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("num_epochs", "batch_size", "eval_freq", "eval_iter"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} 는 1 이상이어야 합니다(받은 값: {getattr(args, name)}).")
    if args.max_steps is not None and args.max_steps < 1:
        parser.error(f"--max-steps 는 1 이상이어야 합니다(받은 값: {args.max_steps}).")
    if not args.lr > 0:
        parser.error(f"--lr 은 0보다 커야 합니다(받은 값: {args.lr}).")
    if args.quick:
        args.model_size, args.weights = "tiny", "random"
    elif args.weights == "pretrained" and args.model_size == "tiny":
        parser.error("--model-size tiny 에는 사전 훈련 가중치가 없습니다. --weights random 을 함께 쓰세요.")
    missing = [name for name in ("train.csv", "validation.csv", "test.csv") if not (Path(args.data_dir) / name).is_file()]
    if missing:
        parser.error(f"{args.data_dir} 에 {', '.join(missing)} 이(가) 없습니다. 먼저 download_prepare_dataset.py 를 실행하세요.")
    return args


def input_length(context_length, model_context_length):
    """``--context-length`` 값을 6장 ``create_spam_dataloaders`` 의 max_length 로(None 은 가장 긴 훈련 텍스트)."""
    if context_length == "longest_training_example":
        return None
    if context_length == "model_context_length":
        return model_context_length
    return min(context_length, model_context_length)


def main(argv=None):
    """훈련하고 {"train": …, "validation": …, "test": …} 정확도를 돌려준다."""
    args = parse_args(argv)
    settings = {"num_epochs": args.num_epochs, "max_steps": args.max_steps, "eval_freq": args.eval_freq,
                "eval_iter": args.eval_iter, "num_eval_batches": None}
    if args.quick:
        settings.update(QUICK_SETTINGS)
        print("빠른 모드: 작은 무작위 GPT를 씁니다(정확도는 의미가 없습니다).")
    device = get_device(args.device)
    model = build_model(args.weights, args.model_size, args.models_dir, args.trainable_layers, args.seed)
    model.to(device)
    classifier = ClassifierView(model, args.trainable_token_pos, args.average_embeddings)

    tokenizer = tiktoken.get_encoding("gpt2")
    model_context_length = model.pos_emb.num_embeddings
    train_loader, val_loader, test_loader = create_spam_dataloaders(
        args.data_dir, tokenizer, batch_size=args.batch_size,
        max_length=input_length(args.context_length, model_context_length), context_length=model_context_length,
    )
    num_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    position = "평균(패딩 제외)" if args.average_embeddings else args.trainable_token_pos
    print(f"장치: {device} | 가중치: {args.weights} ({args.model_size}) | 훈련할 파라미터: {num_trainable:,}개 | "
          f"입력 길이: {train_loader.dataset.max_length} 토큰 | 분류 위치: {position}")

    set_seed(args.seed)
    optimizer = torch.optim.AdamW(
        (p for p in model.parameters() if p.requires_grad), lr=args.lr, weight_decay=args.weight_decay
    )
    start = time.time()
    train_classifier_simple(
        classifier, train_loader, val_loader, optimizer, device, num_epochs=settings["num_epochs"],
        eval_freq=settings["eval_freq"], eval_iter=settings["eval_iter"], max_steps=settings["max_steps"],
    )
    print(f"훈련 시간: {(time.time() - start) / 60:.2f}분")
    accuracies = {
        name: calc_accuracy_loader(loader, classifier, device, num_batches=settings["num_eval_batches"])
        for name, loader in (("train", train_loader), ("validation", val_loader), ("test", test_loader))
    }
    print(f"훈련 정확도: {accuracies['train'] * 100:.2f}% | 검증 정확도: {accuracies['validation'] * 100:.2f}% | "
          f"테스트 정확도: {accuracies['test'] * 100:.2f}%")
    return accuracies


if __name__ == "__main__":
    main()
