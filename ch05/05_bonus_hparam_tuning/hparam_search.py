"""The Verdict 로 GPT 모델을 훈련하며 하이퍼파라미터를 격자 탐색(또는 무작위 탐색)한다.

설정마다 부록 D 의 ``train_model``(워밍업 + 코사인 감쇠 + 그레이디언트 클리핑)로 새 모델을 훈련하고, 검증 손실이 가장 낮은
설정을 찾는다. 결과는 설정이 끝날 때마다 CSV 에 한 줄씩 덧붙이므로, 중간에 멈췄다가 다시 실행하면 끝난 설정은 건너뛴다.
Ctrl-C 로 멈추면 그때까지 가장 좋은 설정을 출력한다.

    python hparam_search.py                       # 참고 격자 전체(12,960개): CPU 로는 며칠이 걸린다
    python hparam_search.py --random 50           # 격자에서 무작위로 50개
    python hparam_search.py --max-configs 3 --debug   # 작은 모델로 세 설정만(몇 초)
"""

import contextlib
import csv
import io
import itertools
import math
import random
import sys
import time
from pathlib import Path

import tiktoken
import torch
from tqdm import tqdm

from llm_from_scratch.appendix_d import train_model
from llm_from_scratch.ch02 import create_dataloader_v1
from llm_from_scratch.ch04 import GPT_CONFIG_124M, GPTModel
from llm_from_scratch.ch05 import calc_loss_loader
from llm_from_scratch.download import download_data_file
from llm_from_scratch.utils import QUICK, ArgumentParser, get_device, set_seed

# 참고 격자: 4·3·3·3·4·2·3·5 = 12,960개 설정
HPARAM_GRID = {
    "batch_size": [2, 4, 8, 16],
    "drop_rate": [0.0, 0.1, 0.2],
    "warmup_iters": [10, 20, 30],
    "weight_decay": [0.1, 0.01, 0.0],
    "peak_lr": [0.0001, 0.0005, 0.001, 0.005],
    "initial_lr": [0.00005, 0.0001],
    "min_lr": [0.00005, 0.00001, 0.0001],
    "n_epochs": [5, 10, 15, 20, 25],
}

MODEL_CONFIG = {**GPT_CONFIG_124M, "context_length": 256}  # 5장처럼 124M 구조에 문맥 길이 256
DEBUG_CONFIG = {**MODEL_CONFIG, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 1}
DEBUG_TEXT_CHARS = 2_000
RESULT_COLUMNS = [*HPARAM_GRID, "train_loss", "val_loss", "best_val_loss", "seconds", "status"]


def grid_configs(grid=HPARAM_GRID):
    """격자의 모든 설정을 딕셔너리 목록으로(itertools.product 순서)."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def config_key(config):
    """CSV 한 줄과 설정을 맞춰 보는 열쇠(값을 문자열로 바꾼 튜플)."""
    return tuple(str(config[name]) for name in HPARAM_GRID)


def _row_problem(row):
    """결과 한 줄의 문제(없으면 None): 빠진 열, 남는 열, 격자에 없는 값, 숫자가 아닌 손실."""
    if None in row:
        return f"열이 {len(RESULT_COLUMNS)}개보다 많습니다(남는 값 {row[None]!r})"
    missing = [name for name in RESULT_COLUMNS if row[name] is None]
    if missing:
        return f"{', '.join(missing)} 열의 값이 없습니다(줄이 잘린 것으로 보입니다)"
    for name, values in HPARAM_GRID.items():
        if row[name] not in {str(value) for value in values}:
            return f"{name} 값 {row[name]!r} 이(가) 격자에 없습니다"
    status = row["status"]
    if status.startswith("완료"):
        for name in ("train_loss", "val_loss", "best_val_loss", "seconds"):
            try:
                float(row[name])
            except ValueError:
                return f"끝난 설정인데 {name} 값 {row[name]!r} 이(가) 숫자가 아닙니다"
    elif not status.startswith("건너뜀"):
        return f"status 값 {status!r} 은(는) '완료…' 나 '건너뜀…' 이 아닙니다"
    return None


def read_done(results_path):
    """이미 CSV 에 있는 설정의 열쇠와 행들. 파일의 열이 다르거나 망가진 줄이 있으면 몇 번째 줄인지 밝히고 멈춘다.

    마지막 줄이 줄바꿈 없이 끝나면(기록하다 끊긴 줄) 그 줄에 다음 결과를 이어 붙이지 않도록 멈춘다. 파일은 고치지 않는다.
    """
    if not results_path.exists():
        return set(), []
    keep = "파일은 그대로 두었습니다. 그 줄을 지우거나 고친 뒤 다시 실행하거나, --results 로 다른 파일 이름을 주세요."
    raw = results_path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.reason != "unexpected end of data":
            raise SystemExit(f"{results_path} 는 UTF-8 CSV 가 아닙니다({error.start + 1:,}번째 바이트). {keep}") from None
        text = raw[: error.start].decode("utf-8")  # 한글 글자 중간에서 잘렸다: 아래에서 잘린 줄로 알린다
    lines = text.split("\n")
    if text and lines[-1] != "":
        raise SystemExit(
            f"{results_path} 의 {len(lines)}번째 줄이 줄바꿈 없이 끝납니다(기록하다 끊긴 줄: {lines[-1][-60:]!r}). {keep}"
        )
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames != RESULT_COLUMNS:
        raise SystemExit(
            f"{results_path} 의 열(1번째 줄)이 이 스크립트의 결과 파일과 다릅니다. 그 파일은 그대로 두었습니다. "
            "--results 로 다른 파일 이름을 주세요."
        )
    rows = []
    for row in reader:
        problem = _row_problem(row)
        if problem is not None:
            raise SystemExit(f"{results_path} 의 {reader.line_num}번째 줄이 올바른 결과 줄이 아닙니다: {problem}. {keep}")
        rows.append(row)
    return {tuple(row[name] for name in HPARAM_GRID) for row in rows}, rows


def make_loaders(text, batch_size, context_length, train_ratio=0.95):
    split = int(train_ratio * len(text))
    torch.manual_seed(123)
    train_loader = create_dataloader_v1(text[:split], batch_size=batch_size, max_length=context_length,
                                        stride=context_length, shuffle=True, drop_last=True)
    val_loader = create_dataloader_v1(text[split:], batch_size=batch_size, max_length=context_length,
                                      stride=context_length, shuffle=False, drop_last=False)
    return train_loader, val_loader


def train_one(config, text, model_config, device, tokenizer, max_epochs=None):
    """설정 하나로 새 모델을 훈련하고 결과 딕셔너리를 돌려준다(워밍업이 전체 스텝보다 길면 건너뛴다).

    ``max_epochs`` 를 주면(디버그 모드) 에포크 수를 그만큼으로 줄이고 상태 열에 적는다.
    """
    train_loader, val_loader = make_loaders(text, config["batch_size"], model_config["context_length"])
    n_epochs = config["n_epochs"] if max_epochs is None else min(config["n_epochs"], max_epochs)
    total_steps = len(train_loader) * n_epochs
    row = {**config, "train_loss": "", "val_loss": "", "best_val_loss": "", "seconds": ""}
    if config["warmup_iters"] >= total_steps:
        return {**row, "status": f"건너뜀: 워밍업 {config['warmup_iters']}스텝 >= 전체 {total_steps}스텝"}
    if config["min_lr"] > config["peak_lr"]:
        return {**row, "status": "건너뜀: min_lr > peak_lr"}

    set_seed(123)
    model = GPTModel({**model_config, "drop_rate": config["drop_rate"]}).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["peak_lr"], weight_decay=config["weight_decay"])
    start = time.perf_counter()
    # train_model 은 평가할 때마다 손실과 생성 문장을 출력한다. 탐색 중에는 진행 막대만 보이도록 모은다
    with contextlib.redirect_stdout(io.StringIO()):
        _, val_losses, _, _ = train_model(
            model, train_loader, val_loader, optimizer, device, n_epochs=n_epochs,
            eval_freq=max(1, len(train_loader)), eval_iter=1, start_context="Every effort moves you",
            tokenizer=tokenizer, warmup_steps=config["warmup_iters"], initial_lr=config["initial_lr"],
            min_lr=config["min_lr"],
        )
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device)
        val_loss = calc_loss_loader(val_loader, model, device)
    return {
        **row,
        "train_loss": f"{train_loss:.4f}",
        "val_loss": f"{val_loss:.4f}",
        "best_val_loss": f"{min([*val_losses, val_loss]):.4f}",
        "seconds": f"{time.perf_counter() - start:.1f}",
        "status": "완료" if n_epochs == config["n_epochs"] else f"완료(디버그: 에포크 {n_epochs})",
    }


def best_row(rows):
    finished = [row for row in rows if row["status"].startswith("완료") and not math.isnan(float(row["val_loss"]))]
    return min(finished, key=lambda row: float(row["val_loss"]), default=None)


def print_best(rows, results_path):
    best = best_row(rows)
    if best is None:
        print("아직 끝난 설정이 없습니다.")
        return
    settings = ", ".join(f"{name}={best[name]}" for name in HPARAM_GRID)
    print(f"가장 낮은 검증 손실 {best['val_loss']} (훈련 손실 {best['train_loss']}): {settings}")
    print(f"모든 결과: {results_path}")


def parse_args(argv=None):
    parser = ArgumentParser(description="The Verdict 로 GPT 하이퍼파라미터를 격자 탐색(또는 무작위 탐색)합니다.")
    parser.add_argument("--results", default="hparam_results.csv",
                        help="결과를 덧붙일 CSV 파일 (기본: hparam_results.csv). 이미 있으면 끝난 설정을 건너뜁니다")
    parser.add_argument("--max-configs", type=int, default=None, help="이번 실행에서 훈련할 설정 수의 상한 (기본: 제한 없음)")
    parser.add_argument("--random", type=int, default=None, metavar="N",
                        help="격자 전체 대신 무작위로 고른 N개 설정만 탐색합니다")
    parser.add_argument("--seed", type=int, default=123, help="무작위 탐색에서 설정을 고르는 시드 (기본: 123)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (기본: 자동 선택)")
    parser.add_argument("--debug", action="store_true", default=QUICK,
                        help="작은 모델, 짧은 텍스트, 에포크 1로 빠르게 (LLMFS_QUICK=1 과 같음)")
    args = parser.parse_args(argv)
    n_configs = len(grid_configs())
    if args.max_configs is not None and args.max_configs < 1:
        parser.error(f"--max-configs 는 1 이상이어야 합니다(받은 값: {args.max_configs}).")
    if args.random is not None and not 1 <= args.random <= n_configs:
        parser.error(f"--random 은 1 이상 {n_configs:,} 이하여야 합니다(받은 값: {args.random}).")
    if Path(args.results).is_dir():
        parser.error(f"--results {args.results} 는 폴더입니다. CSV 파일 경로를 주세요.")
    return args


def main(argv=None):
    args = parse_args(argv)
    device = get_device(args.device)
    results_path = Path(args.results)
    configs = grid_configs()
    print(f"격자의 설정 수: {' · '.join(str(len(v)) for v in HPARAM_GRID.values())} = {len(configs):,}개")
    if args.random is not None:
        configs = random.Random(args.seed).sample(configs, args.random)
        print(f"무작위 탐색: 그중 {len(configs):,}개를 골랐습니다(시드 {args.seed}).")

    done, rows = read_done(results_path)
    todo = [config for config in configs if config_key(config) not in done]
    if len(todo) < len(configs):
        print(f"{results_path} 에 이미 있는 설정 {len(configs) - len(todo):,}개를 건너뜁니다.")
    if args.max_configs is not None:
        todo = todo[: args.max_configs]

    text = download_data_file("the-verdict.txt", results_path.parent)
    text = text.read_text(encoding="utf-8")
    model_config = MODEL_CONFIG
    if args.debug:
        model_config = DEBUG_CONFIG
        text = text[:DEBUG_TEXT_CHARS]
        print(f"디버그 모드: 작은 모델, The Verdict 앞부분 {DEBUG_TEXT_CHARS:,}자, 에포크 1로 훈련합니다(손실은 참고용).")
    tokenizer = tiktoken.get_encoding("gpt2")

    new_file = not results_path.exists()
    try:
        with open(results_path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
            if new_file:
                writer.writeheader()
            for config in tqdm(todo, desc="설정", unit="개"):
                row = train_one(config, text, model_config, device, tokenizer, max_epochs=1 if args.debug else None)
                writer.writerow(row)
                f.flush()  # 끝난 설정은 바로 파일에 남긴다(중간에 멈춰도 다시 훈련하지 않는다)
                rows.append(row)
                best = best_row(rows)
                if best is not None and best is row:
                    tqdm.write(f"새 최저 검증 손실 {row['val_loss']}: batch_size={row['batch_size']}, "
                               f"peak_lr={row['peak_lr']}, n_epochs={row['n_epochs']}")
    except KeyboardInterrupt:
        print("\n중단했습니다. 지금까지의 결과입니다.")
        print_best(rows, results_path)
        sys.exit(130)
    print_best(rows, results_path)


if __name__ == "__main__":
    main()
