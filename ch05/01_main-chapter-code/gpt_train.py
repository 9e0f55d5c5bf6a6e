"""5장 훈련 스크립트: GPT-2 124M 구조(문맥 256)를 "The Verdict" 로 사전 훈련한다.

기본값은 책과 같다: 학습률 5e-4, 가중치 감쇠 0.1, 에포크 10, 배치 2, 훈련 90% / 검증 10%.
끝나면 ``--output-dir`` 에 가중치(model.pth)와 손실 그래프(loss.pdf)를 저장한다.

    python gpt_train.py                     # 책의 설정 (CPU 에서는 수십 분 걸릴 수 있다)
    python gpt_train.py --quick             # 아주 작은 모델로 모든 단계를 몇 초 만에 (LLMFS_QUICK=1 과 같음)
"""

import time
from pathlib import Path

import tiktoken
import torch

from llm_from_scratch.ch02 import create_dataloader_v1, load_the_verdict
from llm_from_scratch.ch04 import GPT_CONFIG_124M, GPTModel
from llm_from_scratch.ch05 import plot_losses, train_model_simple
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

# 책의 5장 설정: 124M 구조에 문맥 길이만 256 으로 줄인다
GPT_CONFIG = {**GPT_CONFIG_124M, "context_length": 256}

# 빠른 모드: 같은 코드 경로를 아주 작은 모델로
QUICK_CONFIG = {**GPT_CONFIG, "context_length": 64, "emb_dim": 32, "n_heads": 2, "n_layers": 2}


def main(argv=None):
    parser = ArgumentParser(description='GPT 모델을 "The Verdict" 로 사전 훈련한다(책 5.2절).')
    parser.add_argument("--epochs", type=positive_int, default=None, help="에포크 수, 1 이상 (기본: 10, 빠른 모드 1)")
    parser.add_argument("--learning-rate", type=positive_float, default=5e-4, help="AdamW 학습률, 0보다 큼 (기본: 5e-4)")
    parser.add_argument("--weight-decay", type=nonnegative_float, default=0.1, help="AdamW 가중치 감쇠 (기본: 0.1)")
    parser.add_argument("--batch-size", type=positive_int, default=2, help="배치 크기, 1 이상 (기본: 2)")
    parser.add_argument("--device", type=device_name, default=None, help="auto, cpu, cuda, mps (기본: 자동 선택)")
    parser.add_argument(
        "--data-dir",
        default=".",
        help="the-verdict.txt 를 둘 폴더. 직접 고친 the-verdict.txt 가 있으면 그것으로 훈련한다 (기본: 현재 폴더)",
    )
    parser.add_argument(
        "--output-dir", type=writable_dir, default=".", help="model.pth 와 loss.pdf 를 저장할 폴더 (기본: 현재 폴더)"
    )
    parser.add_argument("--quick", action="store_true", default=QUICK, help="작은 모델, 1 에포크로 빠르게 돌린다")
    parser.add_argument(
        "--overwrite", action="store_true", help="--output-dir 에 이미 있는 model.pth 를 덮어쓴다 (기본: 멈추고 알린다)"
    )
    args = parser.parse_args(argv)
    refuse_to_overwrite(parser, [Path(args.output_dir) / "model.pth"], args.overwrite)

    cfg = QUICK_CONFIG if args.quick else GPT_CONFIG
    num_epochs = args.epochs if args.epochs is not None else (1 if args.quick else 10)
    device = get_device(args.device)
    output_dir = Path(args.output_dir)

    text = load_the_verdict(args.data_dir)
    split_idx = int(0.90 * len(text))
    set_seed(123)
    loader_args = {"batch_size": args.batch_size, "max_length": cfg["context_length"], "stride": cfg["context_length"]}
    try:
        train_loader = create_dataloader_v1(text[:split_idx], drop_last=True, shuffle=True, **loader_args)
        val_loader = create_dataloader_v1(text[split_idx:], drop_last=False, shuffle=False, **loader_args)
    except ValueError as error:  # 너무 짧은 텍스트 등: 훈련을 시작하기 전에 알린다
        parser.error(f"{Path(args.data_dir) / 'the-verdict.txt'} 로 데이터 로더를 만들 수 없습니다: {error}")
    if len(train_loader) == 0 or len(val_loader) == 0:
        parser.error(
            f"텍스트가 너무 짧습니다({len(text):,}자): 훈련·검증 세트에 각각 문맥 길이 {cfg['context_length']} 토큰짜리 "
            f"배치(--batch-size {args.batch_size})가 하나 이상 있어야 합니다. 더 긴 텍스트나 더 작은 --batch-size 를 쓰세요."
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    print(f"장치: {device}, 훈련 배치 {len(train_loader)}개, 검증 배치 {len(val_loader)}개, 에포크 {num_epochs}")

    model = GPTModel(cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    tokenizer = tiktoken.get_encoding("gpt2")

    start = time.time()
    train_losses, val_losses, tokens_seen = train_model_simple(
        model,
        train_loader,
        val_loader,
        optimizer,
        device,
        num_epochs=num_epochs,
        eval_freq=5,
        eval_iter=1 if args.quick else 5,
        start_context="Every effort moves you",
        tokenizer=tokenizer,
    )
    print(f"훈련 시간: {(time.time() - start) / 60:.2f}분")

    torch.save(model.state_dict(), output_dir / "model.pth")
    epochs_seen = torch.linspace(0, num_epochs, len(train_losses))
    plot_losses(epochs_seen, tokens_seen, train_losses, val_losses, save_path=output_dir / "loss.pdf")
    print(f"저장: {output_dir / 'model.pth'}, {output_dir / 'loss.pdf'}")


if __name__ == "__main__":
    main()
