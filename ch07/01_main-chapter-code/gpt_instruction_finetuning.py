"""7장 스크립트: 사전 훈련된 GPT-2 medium(355M)을 지시 데이터셋으로 미세 튜닝한다.

노트북 7.2~7.7절을 한 번에 실행한다: 데이터 내려받기와 85/10/5 분할, 데이터 로더(배치 8), GPT-2 적재,
AdamW(lr 5e-5, 가중치 감쇠 0.1)로 2 에포크 훈련, 손실 그래프 저장, 테스트 세트 응답 생성,
``instruction-data-with-response.json`` 과 ``gpt2-medium355M-sft.pth`` 저장.

    python gpt_instruction_finetuning.py                 # 책과 같은 설정(가중치 1.4GB 를 내려받는다)
    python gpt_instruction_finetuning.py --quick         # 작은 무작위 체크포인트로 몇 스텝만(LLMFS_QUICK=1 과 같음)

채점은 ``ollama_evaluate.py`` 로 한다.
"""

import argparse
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import tiktoken
import torch

from llm_from_scratch.ch05 import (
    GPT2_SIZES,
    calc_loss_loader,
    plot_losses,
    train_model_simple,
    write_synthetic_gpt2_checkpoint,
)
from llm_from_scratch.ch07 import (
    create_instruction_loaders,
    format_prompt,
    generate_responses,
    load_gpt2_model,
    load_instruction_data,
    model_file_name,
    split_instruction_data,
)
from llm_from_scratch.utils import (
    QUICK,
    ArgumentParser,
    device_name,
    get_device,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    refuse_to_overwrite,
    set_seed,
    writable_dir,
)

# 빠른 모드에서 쓰는 예제 수(훈련 / 검증 / 테스트), 배치 크기, 에포크 수, 생성 길이, 학습률.
# 무작위로 시작하는 작은 모델은 책의 학습률로는 몇 스텝 안에 손실이 거의 움직이지 않아 더 크게 잡는다.
QUICK_SETTINGS = {
    "num_train": 16,
    "num_val": 4,
    "num_test": 2,
    "batch_size": 4,
    "num_epochs": 1,
    "max_new_tokens": 8,
    "lr": 1e-3,
}
EVAL_FREQ = 5  # 몇 스텝마다 손실을 기록할지
EVAL_ITER = 5  # 손실을 추정할 때 쓰는 배치 수


def build_parser(description=None):
    """미세 튜닝 스크립트들이 함께 쓰는 명령줄 옵션(설명을 주지 않으면 이 스크립트의 설명을 쓴다)."""
    parser = ArgumentParser(
        description=description or __doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-size", default="355M", choices=GPT2_SIZES, help="GPT-2 크기 (기본: 355M, 책)")
    parser.add_argument("--models-dir", default="gpt2", help="GPT-2 체크포인트를 둘 폴더 (기본: gpt2)")
    parser.add_argument("--data-dir", default=".", help="instruction-data.json 을 받아 둘 폴더 (기본: 현재 폴더)")
    parser.add_argument(
        "--output-dir", type=writable_dir, default=".", help="json, pth, 그래프를 저장할 폴더 (기본: 현재 폴더)"
    )
    parser.add_argument("--device", type=device_name, default=None, help="auto, cpu, cuda, mps (기본: 자동 선택)")
    parser.add_argument("--num-epochs", type=positive_int, default=2, help="에포크 수, 1 이상 (기본: 2)")
    parser.add_argument("--lr", type=positive_float, default=5e-5, help="학습률, 0보다 큼 (기본: 5e-5)")
    parser.add_argument("--weight-decay", type=nonnegative_float, default=0.1, help="가중치 감쇠 (기본: 0.1)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="배치 크기, 1 이상 (기본: 8)")
    parser.add_argument(
        "--max-new-tokens", type=nonnegative_int, default=256, help="응답으로 생성할 최대 토큰 수, 0 이상 (기본: 256)"
    )
    parser.add_argument(
        "--quick",
        "--test-mode",
        action="store_true",
        default=QUICK,
        help="작은 무작위 체크포인트와 몇십 개 예제로 모든 단계를 빠르게 실행한다 (LLMFS_QUICK=1, 원서의 --test_mode 와 같음)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="--output-dir 에 이미 있는 모델(.pth)과 응답 JSON 을 덮어쓴다 (기본: 훈련 전에 멈추고 알린다)",
    )
    return parser


def output_paths(args, suffix=""):
    """``run`` 이 ``--output-dir`` 에 쓸 모델 파일과 응답 JSON 의 경로."""
    output_dir = Path(args.output_dir)
    return [output_dir / model_file_name(args.model_size, suffix), output_dir / f"instruction-data-with-response{suffix}.json"]


def refuse_existing_outputs(parser, args, suffixes=("",)):
    """이번 실행이 쓸 모델·응답 파일이 이미 있으면 훈련 전에 멈춘다(``--overwrite`` 면 덮어쓴다)."""
    paths = [path for suffix in suffixes for path in output_paths(args, suffix)]
    refuse_to_overwrite(parser, paths, getattr(args, "overwrite", False))


def apply_quick_settings(args):
    """빠른 모드면 에포크 수·생성 길이·학습률을 작게 바꾸고 알린다(예제 수는 ``run`` 이 줄인다)."""
    if not args.quick:
        return
    for key in ("batch_size", "num_epochs", "max_new_tokens", "lr"):
        setattr(args, key, QUICK_SETTINGS[key])
    print(
        f"빠른 모드: 예제 {QUICK_SETTINGS['num_train']}/{QUICK_SETTINGS['num_val']}/{QUICK_SETTINGS['num_test']}개, "
        f"배치 {args.batch_size}, {args.num_epochs} 에포크, 학습률 {args.lr}, "
        "무작위 가중치의 작은 GPT-2 로 실행합니다(결과는 의미가 없습니다)."
    )


def prepare_model(args, device):
    """GPT-2 체크포인트를 읽어 모델을 만든다. 빠른 모드면 먼저 작은 무작위 체크포인트를 만든다."""
    models_dir = Path(args.models_dir)
    if args.quick:
        models_dir = Path(args.output_dir) / "gpt2-synthetic"
        write_synthetic_gpt2_checkpoint(models_dir, args.model_size)
        print(f"빠른 모드: 진짜 가중치 대신 {models_dir.name}/{args.model_size} 의 작은 무작위 체크포인트를 씁니다.")
    model, cfg = load_gpt2_model(args.model_size, models_dir, device)
    print(
        f"GPT-2 {args.model_size} 적재: 임베딩 {cfg['emb_dim']}, 층 {cfg['n_layers']}, 헤드 {cfg['n_heads']}, "
        f"문맥 길이 {cfg['context_length']}"
    )
    return model, cfg


def finetune(model, train_loader, val_loader, tokenizer, device, args, start_context):
    """책의 훈련 루프로 미세 튜닝하고 전후 손실을 출력한다. (훈련 손실들, 검증 손실들, 본 토큰 수들)을 돌려준다."""
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=EVAL_ITER)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=EVAL_ITER)
    print(f"미세 튜닝 전: 훈련 손실 {train_loss:.3f}, 검증 손실 {val_loss:.3f}")

    set_seed(123)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=args.weight_decay)
    start_time = time.time()
    train_losses, val_losses, tokens_seen = train_model_simple(
        model,
        train_loader,
        val_loader,
        optimizer,
        device,
        num_epochs=args.num_epochs,
        eval_freq=EVAL_FREQ,
        eval_iter=EVAL_ITER,
        start_context=start_context,
        tokenizer=tokenizer,
    )
    print(f"훈련 시간: {(time.time() - start_time) / 60:.2f}분")

    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=EVAL_ITER)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=EVAL_ITER)
    print(f"미세 튜닝 후: 훈련 손실 {train_loss:.3f}, 검증 손실 {val_loss:.3f}")
    return train_losses, val_losses, tokens_seen


def save_model(model, args, suffix=""):
    """미세 튜닝한 모델 가중치를 pth 로 저장하고 경로를 돌려준다(뒤의 단계가 실패해도 훈련 결과는 남는다)."""
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model_path = output_dir / model_file_name(args.model_size, suffix)
    torch.save(model.state_dict(), model_path)
    print(f"모델을 {model_path.name} 에 저장했습니다.")
    return model_path


def save_outputs(model, test_data, tokenizer, device, args, prompt_style="alpaca", suffix=""):
    """테스트 세트 응답을 생성해 json 으로 저장한다(모델은 그 전에 ``save_model`` 이 저장한다)."""
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = generate_responses(model, test_data, tokenizer, device, args.max_new_tokens, prompt_style)
    for entry in results[:3]:
        print(f"\n{'-' * 40}\n정답: {entry['output']}\n모델: {entry['model_response']}")

    json_path = output_dir / f"instruction-data-with-response{suffix}.json"
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=4)
    print(f"\n응답 {len(results)}개를 {json_path.name} 에 저장했습니다.")
    return results


def run(args, data, prompt_style="alpaca", mask_instructions=False, max_length=None, prepare_hook=None, suffix=""):
    """데이터 분할부터 저장까지 전 과정. 연습문제 스크립트는 옵션을 바꿔 이 함수를 부른다.

    Args:
        args: ``build_parser`` 로 읽은 옵션(``apply_quick_settings`` 를 거친 것).
        data: 지시 데이터 항목 리스트.
        prompt_style: "alpaca" 또는 "phi3".
        mask_instructions: 프롬프트 부분을 손실에서 뺄지(연습문제 7.2).
        max_length: 이보다 긴 예제를 자를 길이(기본: 모델의 문맥 길이, 그보다 길게는 두지 않는다).
        prepare_hook: 모델을 적재한 뒤 훈련 전에 모델을 바꾸는 함수(예: LoRA 층 넣기). 바뀐 모델을 돌려줘야 한다.
        suffix: 저장할 파일 이름 끝에 붙일 말.
    """
    limits = {"num_train": None, "num_val": None, "num_test": None}
    if args.quick:
        limits = {key: QUICK_SETTINGS[key] for key in limits}
    device = get_device(args.device)
    tokenizer = tiktoken.get_encoding("gpt2")

    train_data, val_data, test_data = split_instruction_data(data)
    print(f"훈련 {len(train_data)}개, 검증 {len(val_data)}개, 테스트 {len(test_data)}개")
    train_data = train_data[: limits["num_train"]]
    val_data = val_data[: limits["num_val"]]
    test_data = test_data[: limits["num_test"]]

    model, cfg = prepare_model(args, device)
    if prepare_hook is not None:
        model = prepare_hook(model).to(device)

    train_loader, val_loader, _ = create_instruction_loaders(
        train_data,
        val_data,
        test_data,
        tokenizer,
        device=device,
        batch_size=args.batch_size,
        allowed_max_length=min(max_length or cfg["context_length"], cfg["context_length"]),
        prompt_style=prompt_style,
        mask_instructions=mask_instructions,
    )
    print(f"훈련 배치 {len(train_loader)}개, 검증 배치 {len(val_loader)}개")

    start_context = format_prompt(val_data[0], prompt_style)
    train_losses, val_losses, tokens_seen = finetune(
        model, train_loader, val_loader, tokenizer, device, args, start_context
    )
    save_model(model, args, suffix)  # 그래프·응답 생성보다 먼저: 뒤에서 실패해도 훈련한 모델은 남는다
    epochs_seen = torch.linspace(0, args.num_epochs, len(train_losses))
    plot_path = Path(args.output_dir) / f"loss{suffix}-plot.pdf"
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    plt.close(plot_losses(epochs_seen, tokens_seen, train_losses, val_losses, save_path=plot_path))
    print(f"손실 그래프를 {plot_path.name} 에 저장했습니다.")

    return save_outputs(model, test_data, tokenizer, device, args, prompt_style, suffix)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    refuse_existing_outputs(parser, args)
    apply_quick_settings(args)
    run(args, load_instruction_data(args.data_dir))


if __name__ == "__main__":
    main()
