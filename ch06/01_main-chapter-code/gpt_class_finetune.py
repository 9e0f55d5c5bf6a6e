"""GPT-2 124M 을 SMS 스팸 분류기로 미세 튜닝하는 스크립트(6장 전체를 한 번에).

기본값은 책과 같다: OpenAI GPT-2 124M 가중치, 마지막 트랜스포머 블록·최종 층 정규화·새 출력 헤드만 훈련,
AdamW(lr 5e-5, weight decay 0.1), 5 에포크, 배치 8. 끝나면 정확도를 출력하고 review_classifier.pth 와
loss-plot.pdf, accuracy-plot.pdf 를 저장한다.

연습문제 6.1–6.3 은 옵션으로 고른다:
  --context-length model    가장 긴 훈련 텍스트 대신 모델의 문맥 길이(1024)까지 채운다(6.1)
  --trainable-layers all    모든 층을 훈련한다(6.2)
  --use-token first         마지막 토큰 대신 첫 번째 토큰으로 분류한다(6.3)

빠른 모드(--quick 또는 LLMFS_QUICK=1)는 작은 합성 GPT-2 체크포인트(무작위 가중치)와 몇 스텝만으로
모든 코드 경로를 돌린다. 이때의 정확도는 의미가 없다.
"""

import math
import time
from pathlib import Path

import tiktoken
import torch

from llm_from_scratch.ch05 import write_synthetic_gpt2_checkpoint
from llm_from_scratch.ch06 import (
    add_classification_head,
    calc_accuracy_loader,
    create_spam_dataloaders,
    load_pretrained_gpt2,
    plot_values,
    prepare_spam_data,
    train_classifier_simple,
)
from llm_from_scratch.utils import (
    QUICK,
    ArgumentParser,
    device_name,
    get_device,
    nonnegative_float,
    positive_float,
    positive_int,
    refuse_to_overwrite,
    set_seed,
    writable_dir,
)

TOKEN_POSITIONS = {"last": -1, "first": 0}
MODEL_FILE = "review_classifier.pth"

# 빠른 모드의 작업량: 몇 스텝만 훈련하고, 정확도는 배치 몇 개로만 잰다
QUICK_SETTINGS = {"num_epochs": 1, "max_steps": 4, "eval_freq": 2, "eval_iter": 1, "num_eval_batches": 4}


def parse_args(argv=None):
    parser = ArgumentParser(description="GPT-2 를 SMS 스팸 분류기로 미세 튜닝한다(6장).")
    parser.add_argument("--quick", "--test-mode", action="store_true",
                        help="합성 체크포인트와 몇 스텝만으로 빠르게 돈다(LLMFS_QUICK=1, 원서의 --test_mode 와 같다)")
    parser.add_argument("--device", type=device_name, default=None, help="auto, cuda, mps, cpu 중 하나(기본: 자동 선택)")
    parser.add_argument(
        "--output-dir", type=writable_dir, default=".", help="데이터·모델·그래프를 저장할 폴더(기본: 현재 폴더)"
    )
    parser.add_argument(
        "--models-dir",
        default=None,
        help="GPT-2 가중치 폴더(기본: gpt2, 빠른 모드에서는 <output-dir>/gpt2-synthetic)",
    )
    parser.add_argument("--num-epochs", type=positive_int, default=5, help="에포크 수, 1 이상(기본: 5)")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="이 스텝 수만큼만 훈련한다(시간 재기용)")
    parser.add_argument("--lr", type=positive_float, default=5e-5, help="AdamW 학습률, 0보다 큼(기본: 5e-5)")
    parser.add_argument("--weight-decay", type=nonnegative_float, default=0.1, help="AdamW 가중치 감쇠(기본: 0.1)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="배치 크기(기본: 8)")
    parser.add_argument("--eval-freq", type=positive_int, default=50, help="손실을 평가할 스텝 간격(기본: 50)")
    parser.add_argument("--eval-iter", type=positive_int, default=5, help="평가에 쓸 배치 수(기본: 5)")
    parser.add_argument(
        "--context-length",
        choices=("longest", "model"),
        default="longest",
        help="패딩 길이: 가장 긴 훈련 텍스트(longest, 기본) 또는 모델의 문맥 길이(model, 연습문제 6.1)",
    )
    parser.add_argument(
        "--trainable-layers",
        choices=("last_block", "all"),
        default="last_block",
        help="훈련할 층: 마지막 블록+최종 층 정규화+헤드(last_block, 기본) 또는 전부(all, 연습문제 6.2)",
    )
    parser.add_argument(
        "--use-token",
        choices=tuple(TOKEN_POSITIONS),
        default="last",
        help="분류에 쓸 토큰: 마지막(last, 기본) 또는 첫 번째(first, 연습문제 6.3)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="--output-dir 에 이미 있는 review_classifier.pth 를 덮어쓴다(기본: 훈련 전에 멈추고 알린다)",
    )
    args = parser.parse_args(argv)
    refuse_to_overwrite(parser, [Path(args.output_dir) / MODEL_FILE], args.overwrite)
    return args


def main(argv=None):
    """스크립트 본체. 노트북에서도 ``main(["--quick", ...])`` 처럼 부를 수 있다.

    Returns:
        {"train": 훈련 정확도, "validation": 검증 정확도, "test": 테스트 정확도}
    """
    args = parse_args(argv)
    quick = args.quick or QUICK
    settings = {
        "num_epochs": args.num_epochs,
        "max_steps": args.max_steps,
        "eval_freq": args.eval_freq,
        "eval_iter": args.eval_iter,
        "num_eval_batches": None,
    }
    if quick:
        settings.update(QUICK_SETTINGS)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = get_device(args.device)
    token_idx = TOKEN_POSITIONS[args.use_token]

    # 1) 데이터: 내려받기, 균형 맞추기, 분할, CSV 저장
    prepare_spam_data(output_dir)

    # 2) 모델: 사전 훈련된 GPT-2 + 2 클래스 분류 헤드
    if args.models_dir is not None:
        models_dir = Path(args.models_dir)
    elif quick:
        models_dir = output_dir / "gpt2-synthetic"
        write_synthetic_gpt2_checkpoint(models_dir, "124M")
        print("빠른 모드: 무작위 가중치의 작은 합성 GPT-2 체크포인트를 씁니다(정확도는 의미가 없습니다).")
    else:
        models_dir = Path("gpt2")
    model, cfg = load_pretrained_gpt2(models_dir, "124M")
    add_classification_head(model, num_classes=2, trainable_layers=args.trainable_layers)
    model.to(device)
    num_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"장치: {device} | 훈련할 파라미터: {num_trainable:,}개")

    # 3) 데이터 로더: 가장 긴 훈련 텍스트 또는 모델의 문맥 길이까지 채운다
    tokenizer = tiktoken.get_encoding("gpt2")
    max_length = cfg["context_length"] if args.context_length == "model" else None
    train_loader, val_loader, test_loader = create_spam_dataloaders(
        output_dir, tokenizer, batch_size=args.batch_size, max_length=max_length, context_length=cfg["context_length"]
    )
    print(f"입력 길이: {train_loader.dataset.max_length} 토큰 | 배치 수(훈련/검증/테스트): "
          f"{len(train_loader)} / {len(val_loader)} / {len(test_loader)}")

    # 4) 미세 튜닝
    set_seed(123)
    optimizer = torch.optim.AdamW(
        (p for p in model.parameters() if p.requires_grad), lr=args.lr, weight_decay=args.weight_decay
    )
    start_time = time.time()
    train_losses, val_losses, train_accs, val_accs, examples_seen = train_classifier_simple(
        model,
        train_loader,
        val_loader,
        optimizer,
        device,
        num_epochs=settings["num_epochs"],
        eval_freq=settings["eval_freq"],
        eval_iter=settings["eval_iter"],
        token_idx=token_idx,
        max_steps=settings["max_steps"],
    )
    elapsed = time.time() - start_time
    # 훈련한 모델은 그래프·정확도처럼 나중에 실패할 수 있는 단계보다 먼저 저장한다
    model_path = output_dir / MODEL_FILE
    torch.save(model.state_dict(), model_path)
    print(f"모델을 {model_path.name} 로 저장했습니다.")
    steps_done = math.ceil(examples_seen / args.batch_size)
    print(f"훈련 시간: {elapsed / 60:.2f}분 ({steps_done} 스텝, 평가 포함)")
    full_steps = len(train_loader) * settings["num_epochs"]
    if settings["max_steps"] is not None and steps_done < full_steps:
        estimate = elapsed / steps_done * full_steps / 60
        print(f"참고: 전체 {full_steps} 스텝이면 이 속도로 많아야 약 {estimate:.1f}분입니다(짧은 실행은 평가 비중이 커서 길게 잡힙니다).")

    # 5) 그래프와 최종 정확도
    epochs_tensor = torch.linspace(0, settings["num_epochs"], len(train_losses))
    examples_tensor = torch.linspace(0, examples_seen, len(train_losses))
    plot_values(epochs_tensor, examples_tensor, train_losses, val_losses, "loss", output_dir / "loss-plot.pdf")
    epochs_tensor = torch.linspace(0, settings["num_epochs"], len(train_accs))
    examples_tensor = torch.linspace(0, examples_seen, len(train_accs))
    plot_values(epochs_tensor, examples_tensor, train_accs, val_accs, "accuracy", output_dir / "accuracy-plot.pdf")

    num_batches = settings["num_eval_batches"]
    accuracies = {
        name: calc_accuracy_loader(loader, model, device, num_batches=num_batches, token_idx=token_idx)
        for name, loader in (("train", train_loader), ("validation", val_loader), ("test", test_loader))
    }
    print(f"훈련 정확도: {accuracies['train'] * 100:.2f}%")
    print(f"검증 정확도: {accuracies['validation'] * 100:.2f}%")
    print(f"테스트 정확도: {accuracies['test'] * 100:.2f}%")

    print("그래프를 loss-plot.pdf, accuracy-plot.pdf 로 저장했습니다.")
    return accuracies


if __name__ == "__main__":
    main()
