"""IMDb 리뷰의 긍정/부정을 GPT-2 분류기로 미세 튜닝한다(6장의 데이터 로더·분류 헤드·훈련 루프를 그대로 쓴다).

먼저 ``python download_prepare_dataset.py`` 로 train/validation/test CSV를 만든 뒤:

    python train_gpt.py                                   # GPT-2 124M, 마지막 블록, 최대 256 토큰, 1 에포크
    python train_gpt.py --trainable-layers all --num-epochs 2

빠른 모드(--quick 또는 LLMFS_QUICK=1)는 작은 무작위 GPT로 몇 스텝만 돈다.
"""

import time
from pathlib import Path

import tiktoken
import torch

from llm_from_scratch.ch04 import GPT_CONFIG_124M, GPTModel
from llm_from_scratch.ch06 import (
    add_classification_head,
    calc_accuracy_loader,
    create_spam_dataloaders,
    load_pretrained_gpt2,
    train_classifier_simple,
)
from llm_from_scratch.utils import QUICK, ArgumentParser, get_device, set_seed

MODEL_SIZES = ("124M", "355M", "774M", "1558M")
QUICK_CONFIG = {**GPT_CONFIG_124M, "context_length": 64, "emb_dim": 32, "n_heads": 2, "n_layers": 2, "drop_rate": 0.0}
QUICK_SETTINGS = {"num_epochs": 1, "max_steps": 3, "eval_freq": 1, "eval_iter": 1, "num_eval_batches": 2}


def parse_args(argv=None):
    parser = ArgumentParser(description="IMDb 긍정/부정 분류: GPT-2 미세 튜닝(6장 코드 재사용).")
    parser.add_argument("--data-dir", default=".", help="train/validation/test.csv 가 있는 폴더(기본: 현재 폴더)")
    parser.add_argument("--model-size", default="124M", choices=MODEL_SIZES, help="GPT-2 크기(기본: 124M)")
    parser.add_argument("--models-dir", default="gpt2", help="GPT-2 가중치 폴더(기본: gpt2)")
    parser.add_argument("--trainable-layers", default="last_block", choices=("last_block", "all", "none"),
                        help="훈련할 층: last_block(기본), all, none(헤드만)")
    parser.add_argument("--context-length", type=int, default=256,
                        help="리뷰를 이 토큰 수로 자르고 채운다(기본: 256, 모델의 문맥 길이를 넘지 않음)")
    parser.add_argument("--num-epochs", type=int, default=1, help="에포크 수(기본: 1)")
    parser.add_argument("--batch-size", type=int, default=8, help="배치 크기(기본: 8)")
    parser.add_argument("--lr", type=float, default=5e-5, help="AdamW 학습률(기본: 5e-5)")
    parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay(기본: 0.1)")
    parser.add_argument("--eval-freq", type=int, default=200, help="손실을 평가할 스텝 간격(기본: 200)")
    parser.add_argument("--eval-iter", type=int, default=20, help="평가에 쓸 배치 수(기본: 20)")
    parser.add_argument("--max-steps", type=int, default=None, help="이 스텝 수만큼만 훈련한다")
    parser.add_argument("--device", default=None, help="cuda, mps, cpu 중 하나(기본: 자동 선택)")
    parser.add_argument("--quick", action="store_true", default=QUICK, help="작은 무작위 GPT로 몇 스텝만(LLMFS_QUICK=1)")
    args = parser.parse_args(argv)
    for name in ("context_length", "num_epochs", "batch_size", "eval_freq", "eval_iter"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} 는 1 이상이어야 합니다(받은 값: {getattr(args, name)}).")
    missing = [name for name in ("train.csv", "validation.csv", "test.csv") if not (Path(args.data_dir) / name).is_file()]
    if missing:
        parser.error(f"{args.data_dir} 에 {', '.join(missing)} 이(가) 없습니다. 먼저 download_prepare_dataset.py 를 실행하세요.")
    return args


def main(argv=None):
    """훈련하고 {"train": …, "validation": …, "test": …} 정확도를 돌려준다."""
    args = parse_args(argv)
    settings = {"num_epochs": args.num_epochs, "max_steps": args.max_steps, "eval_freq": args.eval_freq,
                "eval_iter": args.eval_iter, "num_eval_batches": None}
    if args.quick:
        settings.update(QUICK_SETTINGS)
    device = get_device(args.device)
    set_seed(123)
    if args.quick:
        model = GPTModel(QUICK_CONFIG)
        print("빠른 모드: 작은 무작위 GPT를 씁니다(정확도는 의미가 없습니다).")
    else:
        model, _cfg = load_pretrained_gpt2(args.models_dir, args.model_size)
    add_classification_head(model, num_classes=2, trainable_layers=args.trainable_layers)
    model.to(device)

    tokenizer = tiktoken.get_encoding("gpt2")
    context_length = model.pos_emb.num_embeddings
    train_loader, val_loader, test_loader = create_spam_dataloaders(
        args.data_dir, tokenizer, batch_size=args.batch_size, max_length=args.context_length,
        context_length=context_length,
    )
    num_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"장치: {device} | 훈련할 파라미터: {num_trainable:,}개 | 입력 길이: {train_loader.dataset.max_length} 토큰")

    optimizer = torch.optim.AdamW(
        (p for p in model.parameters() if p.requires_grad), lr=args.lr, weight_decay=args.weight_decay
    )
    start = time.time()
    train_classifier_simple(
        model, train_loader, val_loader, optimizer, device, num_epochs=settings["num_epochs"],
        eval_freq=settings["eval_freq"], eval_iter=settings["eval_iter"], max_steps=settings["max_steps"],
    )
    print(f"훈련 시간: {(time.time() - start) / 60:.2f}분")
    accuracies = {
        name: calc_accuracy_loader(loader, model, device, num_batches=settings["num_eval_batches"])
        for name, loader in (("train", train_loader), ("validation", val_loader), ("test", test_loader))
    }
    print(f"훈련 정확도: {accuracies['train'] * 100:.2f}% | 검증 정확도: {accuracies['validation'] * 100:.2f}% | "
          f"테스트 정확도: {accuracies['test'] * 100:.2f}%")
    return accuracies


if __name__ == "__main__":
    main()
