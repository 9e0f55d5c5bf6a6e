"""prepare_dataset.py 가 만든 combined_N.txt 파일들로 GPT 모델을 사전 훈련한다(5장 훈련 루프의 긴 버전).

- 기본 모델은 GPT-2 124M(문맥 길이 1024), 옵티마이저는 AdamW(weight_decay 0.1).
- 파일을 하나씩 읽어 90%로 훈련, 10%로 평가한다. --eval-freq 스텝마다 손실을, --print-sample-iter 스텝마다 생성 문장을 출력한다.
- --save-ckpt-freq 스텝마다 체크포인트(모델, 옵티마이저, 난수 상태, 어디까지 읽었는지)를 임시 파일에 쓴 뒤 이름을 바꿔(원자적으로) 저장한다.
- --resume 체크포인트로 멈춘 자리(같은 파일, 같은 배치)부터 같은 스텝 번호로 이어서 훈련한다.
- Ctrl-C 로 멈추면 그 자리의 체크포인트를 남긴다.
- 부록 D 의 세 기능을 옵션으로 켤 수 있다(기본은 모두 꺼져 있어 일정한 학습률, 클리핑 없음):
  --warmup-steps(--initial-lr 에서 --lr 까지 선형 워밍업), --min-lr(그 뒤 코사인 감쇠로 --min-lr 까지),
  --grad-clip(그레이디언트 전체 노름의 상한, 부록 D 처럼 워밍업이 끝난 스텝부터). 학습률은 부록 D 의
  ``lr_at_step`` 으로 정하므로, 스케줄을 켜면 훈련 전에 전체 스텝 수를 세려고 파일을 한 번 토큰화한다.
  train_log.csv 에는 평가한 스텝의 학습률(lr)과 옵티마이저가 쓴(클리핑 뒤) 그레이디언트 노름(grad_norm)도 남긴다.
- 이번 실행이 쓰지 않은 모델 파일(이전 훈련의 model_pg_final.pth 등)과 다른 훈련의 train_log.csv 는 덮어쓰지 않는다:
  훈련을 시작하기 전에 멈추고 알린다(--overwrite 를 주면 덮어쓴다). 입력 파일이 모두 UTF-8 인지도 먼저 확인한다.

    python pretraining_simple.py --data-dir gutenberg_preprocessed --n-epochs 1 --batch-size 4 --output-dir model_checkpoints
    python pretraining_simple.py --data-dir gutenberg_preprocessed --resume model_checkpoints/model_pg_100000.pth
    python pretraining_simple.py --data-dir gutenberg_preprocessed --debug   # 작은 모델로 빠르게(LLMFS_QUICK=1 과 같음)
    python pretraining_simple.py --data-dir gutenberg_preprocessed --warmup-steps 2000 --min-lr 5e-5 --grad-clip 1.0
"""

import codecs
import csv
import math
import os
import re
import sys
import time
from pathlib import Path

import tiktoken
import torch
from tqdm import tqdm

from llm_from_scratch.appendix_d import global_grad_norm, lr_at_step
from llm_from_scratch.ch02 import create_dataloader_v1
from llm_from_scratch.ch04 import GPT_CONFIG_124M, GPTModel
from llm_from_scratch.ch05 import calc_loss_batch, evaluate_model, generate, text_to_token_ids, token_ids_to_text
from llm_from_scratch.utils import QUICK, ArgumentParser, get_device

DEBUG_CONFIG = {**GPT_CONFIG_124M, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2}
LOG_COLUMNS = ["step", "epoch", "file", "tokens_seen", "train_loss", "val_loss", "lr", "grad_norm", "seconds"]
START_CONTEXT = "Every effort moves you"


def save_checkpoint(path, model, optimizer, state, config):
    """임시 파일에 저장한 뒤 이름을 바꾼다. 저장 중에 멈춰도 반쯤 쓴 체크포인트가 남지 않는다."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(
        {
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
            "rng_state": torch.get_rng_state(),
            "config": config,
            **state,
        },
        tmp,
    )
    os.replace(tmp, path)
    return path


def check_utf8_files(files, chunk_size=1 << 20):
    """모든 입력 파일이 UTF-8 로 읽히는지 훈련 전에 확인한다. 아니면 파일과 위치를 밝힌 메시지로 멈춘다."""
    for path in files:
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset = 0
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(chunk_size), b""):
                    decoder.decode(chunk)
                    offset += len(chunk)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError as error:
            sys.exit(
                f"{path} 은(는) UTF-8 텍스트가 아닙니다({offset + error.start + 1:,}번째 바이트 {error.object[error.start:error.start + 4]!r}). "
                "훈련을 시작하지 않았습니다. prepare_dataset.py 로 다시 만들거나 UTF-8 로 바꿔 저장하세요."
            )


_CHECKPOINT_NAME = re.compile(r"model_pg_(?:(?P<final>final)|(?P<step>\d+)(?P<interrupted>_interrupted)?)\.pth")


def files_this_run_would_overwrite(output_dir, resume_path=None, resume_step=0):
    """``output_dir`` 에 있는 파일 가운데 이번 실행이 같은 이름으로 쓸 수 있는 것들(이번 실행이 쓰지 않은 파일).

    처음부터 훈련하면 체크포인트 전부와 train_log.csv, 이어서 훈련하면 멈춘 스텝보다 뒤의 체크포인트와
    model_pg_final.pth, 그리고 체크포인트와 다른 폴더의 train_log.csv 가 해당한다.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    resume = Path(resume_path).resolve() if resume_path else None
    found = []
    for path in sorted(output_dir.glob("model_pg_*.pth")):
        match = _CHECKPOINT_NAME.fullmatch(path.name)
        if match is None or path.resolve() == resume:
            continue
        if resume is None or match["final"] or int(match["step"]) > resume_step or (
            match["interrupted"] and int(match["step"]) == resume_step
        ):
            found.append(path)
    log_path = output_dir / "train_log.csv"
    if log_path.exists() and (resume is None or resume.parent != output_dir.resolve() or not _is_our_log(log_path)):
        found.append(log_path)
    return found


def _is_our_log(path):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return next(csv.reader(f), None) == LOG_COLUMNS
    except (OSError, UnicodeDecodeError):
        return False


def file_loaders(path, config, batch_size, seed, epoch, file_index):
    """파일 하나의 훈련·검증 로더. 섞는 순서는 (시드, 에포크, 파일)로 정해져 이어서 훈련할 때 같은 순서가 된다."""
    text = path.read_text(encoding="utf-8")
    split = int(0.9 * len(text))
    context = config["context_length"]
    torch.manual_seed(seed + 10_007 * epoch + file_index)
    train_loader = create_dataloader_v1(text[:split], batch_size=batch_size, max_length=context, stride=context,
                                        shuffle=True, drop_last=True)
    val_loader = create_dataloader_v1(text[split:], batch_size=batch_size, max_length=context, stride=context,
                                      shuffle=False, drop_last=False)
    return train_loader, val_loader


def count_train_steps(files, config, batch_size, n_epochs):
    """전체 훈련 스텝 수: ``file_loaders`` 의 훈련 로더가 파일마다 내는 배치 수(drop_last)의 합 × 에포크 수.

    ``create_dataloader_v1`` 과 같이 텍스트의 앞 90% 를 GPT-2 BPE 로 토큰화하고, ``context_length`` 간격의 창
    ``len(range(0, 토큰 수 - 문맥 길이, 문맥 길이))`` 개를 ``batch_size`` 로 나눈 몫을 센다. 데이터셋은 만들지 않는다.
    """
    tokenizer = tiktoken.get_encoding("gpt2")
    context = config["context_length"]
    per_epoch = 0
    for path in tqdm(files, desc="스텝 수 세기", unit="개", leave=False):
        text = path.read_text(encoding="utf-8")
        n_tokens = len(tokenizer.encode(text[:int(0.9 * len(text))], allowed_special={"<|endoftext|>"}))
        per_epoch += len(range(0, n_tokens - context, context)) // batch_size
    return per_epoch * n_epochs


def uses_lr_schedule(args):
    """워밍업이나 코사인 감쇠를 켰는지. 둘 다 끄면 학습률은 --lr 로 일정하다(예전 동작)."""
    return args.warmup_steps > 0 or args.min_lr is not None


def train(args, files, config, device):
    tokenizer = tiktoken.get_encoding("gpt2")
    total_steps = None
    if uses_lr_schedule(args):
        total_steps = count_train_steps(files, config, args.batch_size, args.n_epochs)
        if args.warmup_steps >= total_steps:
            raise SystemExit(f"--warmup-steps {args.warmup_steps} 가 전체 훈련 스텝 수({total_steps:,})보다 작지 않습니다. "
                             f"워밍업 뒤에 훈련할 스텝이 남도록 {total_steps - 1:,} 이하로 주세요.")
        min_lr = args.lr if args.min_lr is None else args.min_lr
        print(f"학습률 스케줄: 전체 {total_steps:,}스텝, 워밍업 {args.warmup_steps:,}스텝({args.initial_lr:g} → {args.lr:g}), "
              + (f"코사인 감쇠 → {min_lr:g}" if args.min_lr is not None else "그 뒤 일정"))
    torch.manual_seed(args.seed)
    model = GPTModel(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
    state = {"global_step": 0, "tokens_seen": 0, "epoch": 0, "file_index": 0, "batch_in_file": 0}
    resume_rng = None
    if args.resume:
        checkpoint = torch.load(args.resume, map_location=device, weights_only=True)
        model.load_state_dict(checkpoint["model_state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
        state = {key: checkpoint[key] for key in state}
        resume_rng = checkpoint["rng_state"]
        if state["epoch"] < args.n_epochs and state["file_index"] >= len(files):
            raise SystemExit(f"체크포인트는 파일 {state['file_index'] + 1}번째에서 멈췄는데 --data-dir 에 파일이 {len(files)}개뿐입니다. "
                             "처음 훈련한 것과 같은 폴더를 주세요.")
        print(f"{Path(args.resume).name} 에서 이어서 훈련합니다: 스텝 {state['global_step']:,}, "
              f"에포크 {state['epoch'] + 1}, 파일 {state['file_index'] + 1}, 배치 {state['batch_in_file']}")

    output_dir = Path(args.output_dir)
    conflicts = files_this_run_would_overwrite(output_dir, args.resume, state["global_step"])
    if conflicts and not args.overwrite:
        names = ", ".join(path.name for path in conflicts[:3]) + (f" 외 {len(conflicts) - 3}개" if len(conflicts) > 3 else "")
        raise SystemExit(
            f"{output_dir} 에 이번 실행이 덮어쓰게 될 파일({names})이 있습니다. 다른 훈련의 결과일 수 있어 훈련을 "
            "시작하지 않았습니다. 다른 --output-dir 를 주거나, 덮어써도 되면 --overwrite 를 주세요."
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    log_path = output_dir / "train_log.csv"
    append = log_path.exists() and log_path not in conflicts  # 이어서 훈련하는 같은 훈련의 기록
    if append and log_path.stat().st_size and not log_path.read_bytes().endswith(b"\n"):
        with open(log_path, "a", encoding="utf-8") as f:
            f.write("\n")  # 잘린 마지막 줄에 다음 줄을 이어 붙이지 않는다
    log_file = open(log_path, "a" if append else "w", newline="", encoding="utf-8")  # noqa: SIM115 (훈련 내내 열어 둔다)
    log = csv.DictWriter(log_file, fieldnames=LOG_COLUMNS)
    if not append:
        log.writeheader()
    written = set()

    def checkpoint_path(name):
        return output_dir / f"model_pg_{name}.pth"

    def save(name):
        """체크포인트를 저장한다. 이번 실행이 쓰지 않은 같은 이름의 파일이 있으면 새 이름(…-2.pth)으로 쓴다."""
        path = checkpoint_path(name)
        number = 2
        while path.exists() and path not in written and not args.overwrite:
            path = checkpoint_path(f"{name}-{number}")
            number += 1
        written.add(path)
        return save_checkpoint(path, model, optimizer, state, config)

    start_time = time.perf_counter()
    units = [(epoch, index) for epoch in range(args.n_epochs) for index in range(len(files))]
    units = units[units.index((state["epoch"], state["file_index"])):] if state["epoch"] < args.n_epochs else []
    try:
        for epoch, file_index in tqdm(units, desc="파일", unit="개"):
            train_loader, val_loader = file_loaders(files[file_index], config, args.batch_size, args.seed, epoch,
                                                    file_index)
            skip = state["batch_in_file"] if (epoch, file_index) == (state["epoch"], state["file_index"]) else 0
            state.update(epoch=epoch, file_index=file_index, batch_in_file=skip)
            batches = iter(train_loader)  # 섞는 순서가 여기서 정해진다
            for _ in range(skip):
                next(batches)
            if resume_rng is not None:
                torch.set_rng_state(resume_rng)  # 드롭아웃 등이 멈춘 자리와 같은 난수를 쓰게 한다
                resume_rng = None
            model.train()
            bar = tqdm(batches, total=len(train_loader), initial=skip, desc=f"에포크 {epoch + 1} {files[file_index].name}",
                       unit="배치", leave=False)
            for input_batch, target_batch in bar:
                optimizer.zero_grad()
                if total_steps is not None:
                    # 부록 D 의 스케줄: 스텝 번호는 0 부터(아직 올리기 전의 global_step)
                    lr = lr_at_step(min(state["global_step"], total_steps - 1), total_steps, args.warmup_steps,
                                    args.lr, args.initial_lr, min_lr)
                    for param_group in optimizer.param_groups:
                        param_group["lr"] = lr
                loss = calc_loss_batch(input_batch, target_batch, model, device)
                loss.backward()
                # 부록 D 처럼 워밍업이 끝난 스텝부터 자른다(워밍업 중에는 학습률이 작아 업데이트도 작다)
                if args.grad_clip is not None and state["global_step"] >= args.warmup_steps:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=args.grad_clip)
                optimizer.step()
                state["global_step"] += 1
                state["batch_in_file"] += 1
                state["tokens_seen"] += input_batch.numel()
                step = state["global_step"]

                if step % args.eval_freq == 0:
                    train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, args.eval_iter)
                    lr_used = optimizer.param_groups[0]["lr"]
                    grad_norm = global_grad_norm(model)  # 옵티마이저가 쓴 그레이디언트(클리핑 뒤)의 노름
                    log.writerow({"step": step, "epoch": epoch + 1, "file": files[file_index].name,
                                  "tokens_seen": state["tokens_seen"], "train_loss": f"{train_loss:.6f}",
                                  "val_loss": f"{val_loss:.6f}", "lr": f"{lr_used:.9g}", "grad_norm": f"{grad_norm:.6g}",
                                  "seconds": f"{time.perf_counter() - start_time:.1f}"})
                    log_file.flush()
                    tqdm.write(f"에포크 {epoch + 1} (스텝 {step:06d}): 훈련 손실 {train_loss:.3f}, 검증 손실 {val_loss:.3f}, "
                               f"학습률 {lr_used:.3g}")
                if step % args.print_sample_iter == 0:
                    model.eval()
                    idx = text_to_token_ids(START_CONTEXT, tokenizer).to(device)
                    out = generate(model, idx, max_new_tokens=10 if args.debug else 50,
                                   context_size=config["context_length"])
                    tqdm.write(f"생성(스텝 {step}): {token_ids_to_text(out, tokenizer)!r}")
                    model.train()
                if step % args.save_ckpt_freq == 0:
                    path = save(step)
                    tqdm.write(f"체크포인트를 저장했습니다: {path}")
                if args.max_steps is not None and step >= args.max_steps:
                    path = save(step)
                    print(f"--max-steps {args.max_steps} 에 닿아 멈춥니다. 이어서 하려면 --resume {path}")
                    return state
            state["batch_in_file"] = 0
        state.update(epoch=args.n_epochs, file_index=0, batch_in_file=0)
        path = save("final")
        print(f"훈련을 마쳤습니다: {state['global_step']:,}스텝, 토큰 {state['tokens_seen']:,}개, "
              f"{time.perf_counter() - start_time:.0f}초. 모델: {path}")
    except KeyboardInterrupt:
        path = save(f"{state['global_step']}_interrupted")
        print(f"\n중단했습니다. 이어서 하려면 --resume {path}")
        sys.exit(130)
    finally:
        log_file.close()
    return state


def parse_args(argv=None):
    parser = ArgumentParser(description="Project Gutenberg 텍스트로 GPT 모델을 사전 훈련합니다.")
    parser.add_argument("--data-dir", default="gutenberg_preprocessed", help="combined_N.txt 파일들이 든 폴더")
    parser.add_argument("--output-dir", default="model_checkpoints", help="체크포인트와 train_log.csv 를 쓸 폴더")
    parser.add_argument("--n-epochs", type=int, default=1, help="에포크 수 (기본: 1)")
    parser.add_argument("--batch-size", type=int, default=4, help="배치 크기 (기본: 4)")
    parser.add_argument("--lr", type=float, default=5e-4,
                        help="AdamW 학습률, 스케줄을 켜면 워밍업이 끝났을 때의 최대 학습률 (기본: 0.0005)")
    parser.add_argument("--warmup-steps", type=int, default=0,
                        help="--initial-lr 에서 --lr 까지 학습률을 선형으로 올릴 스텝 수(부록 D.1) (기본: 0, 워밍업 없음)")
    parser.add_argument("--initial-lr", type=float, default=3e-5,
                        help="워밍업을 시작하는 학습률, --warmup-steps 가 1 이상일 때만 씁니다 (기본: 부록 D 처럼 0.00003)")
    parser.add_argument("--min-lr", type=float, default=None,
                        help="워밍업 뒤 코사인 감쇠(부록 D.2)로 마지막 스텝에 닿을 학습률. 주지 않으면 감쇠 없이 --lr 로 일정합니다")
    parser.add_argument("--grad-clip", type=float, default=None,
                        help="그레이디언트 전체 노름의 상한(부록 D.3, 예: 1.0). 워밍업이 끝난 스텝부터 적용합니다 (기본: 클리핑 없음)")
    parser.add_argument("--eval-freq", type=int, default=100, help="몇 스텝마다 손실을 평가할지 (기본: 100)")
    parser.add_argument("--eval-iter", type=int, default=1, help="평가에 쓸 배치 수 (기본: 1)")
    parser.add_argument("--print-sample-iter", type=int, default=1000, help="몇 스텝마다 생성 문장을 보일지 (기본: 1000)")
    parser.add_argument("--save-ckpt-freq", type=int, default=100_000, help="몇 스텝마다 체크포인트를 저장할지 (기본: 100000)")
    parser.add_argument("--max-steps", type=int, default=None, help="이 스텝에서 체크포인트를 저장하고 멈춥니다 (기본: 끝까지)")
    parser.add_argument("--resume", default=None, help="이어서 훈련할 체크포인트(.pth)")
    parser.add_argument("--overwrite", action="store_true",
                        help="--output-dir 에 이전 훈련의 체크포인트·train_log.csv 가 있어도 덮어씁니다 (기본: 멈추고 알림)")
    parser.add_argument("--seed", type=int, default=123, help="난수 시드 (기본: 123)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (기본: 자동 선택)")
    parser.add_argument("--debug", action="store_true", default=QUICK,
                        help="아주 작은 모델로 빠르게 코드 경로만 확인합니다 (LLMFS_QUICK=1 과 같음)")
    args = parser.parse_args(argv)
    for name in ("n_epochs", "batch_size", "eval_freq", "eval_iter", "print_sample_iter", "save_ckpt_freq"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} 는 1 이상이어야 합니다(받은 값: {getattr(args, name)}).")
    if args.max_steps is not None and args.max_steps < 1:
        parser.error(f"--max-steps 는 1 이상이어야 합니다(받은 값: {args.max_steps}).")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        parser.error(f"--lr 은 0보다 큰 유한한 수여야 합니다(받은 값: {args.lr}).")
    if args.warmup_steps < 0:
        parser.error(f"--warmup-steps 는 0 이상이어야 합니다(받은 값: {args.warmup_steps}). 워밍업을 끄려면 0 을 주세요.")
    if not (0 <= args.initial_lr <= args.lr):
        parser.error(f"--initial-lr 은 0 이상 --lr({args.lr:g}) 이하여야 합니다(받은 값: {args.initial_lr}). "
                     "워밍업은 작은 학습률에서 --lr 까지 올라갑니다.")
    if args.min_lr is not None and not (0 <= args.min_lr <= args.lr):
        parser.error(f"--min-lr 은 0 이상 --lr({args.lr:g}) 이하여야 합니다(받은 값: {args.min_lr}). "
                     "코사인 감쇠는 --lr 에서 --min-lr 로 내려갑니다.")
    if args.grad_clip is not None and not (args.grad_clip > 0 and math.isfinite(args.grad_clip)):
        parser.error(f"--grad-clip 은 0보다 큰 유한한 수여야 합니다(받은 값: {args.grad_clip}). 클리핑을 끄려면 옵션을 빼세요.")
    if not Path(args.data_dir).is_dir():
        parser.error(f"--data-dir {args.data_dir} 폴더가 없습니다. 먼저 prepare_dataset.py 를 실행하세요.")
    if args.resume and not Path(args.resume).is_file():
        parser.error(f"--resume {args.resume} 파일이 없습니다.")
    existing = files_this_run_would_overwrite(args.output_dir)
    if existing and not args.resume and not args.overwrite:
        parser.error(f"{args.output_dir} 에 이미 이전 훈련의 파일({existing[0].name} 등)이 있습니다. 덮어쓰지 않습니다. "
                     "--resume 으로 이어서 하거나 다른 --output-dir 를 주세요(덮어써도 되면 --overwrite).")
    return args


def main(argv=None):
    args = parse_args(argv)
    files = sorted(Path(args.data_dir).glob("*.txt"), key=lambda p: (len(p.name), p.name))
    if not files:
        sys.exit(f"{args.data_dir} 에 .txt 파일이 없습니다. 먼저 prepare_dataset.py 를 실행하세요.")
    check_utf8_files(files)
    config = DEBUG_CONFIG if args.debug else GPT_CONFIG_124M
    device = get_device(args.device)
    shape = f"임베딩 {config['emb_dim']}, 층 {config['n_layers']}, 헤드 {config['n_heads']}, 문맥 {config['context_length']}"
    print(f"파일 {len(files)}개, 장치 {device}, 모델: {shape}" + (" (디버그 모드)" if args.debug else ""))
    train(args, files, config, device)


if __name__ == "__main__":
    main()
