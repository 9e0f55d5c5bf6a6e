"""한국어 텍스트로 책의 GPTModel 을 사전 훈련한다: 한국어로 훈련한 BPE, 5장의 train_model_simple 그대로.

- 입력은 UTF-8 텍스트 파일 하나다(기본: 저장소의 data/korean/constitution.txt, 대한민국헌법).
  줄바꿈은 파이썬이 텍스트를 읽을 때처럼 ``\\n`` 으로 맞추고, 맨 앞의 BOM 은 뺀다.
  여러 문서를 이어 붙였다면 문서 사이에 ``<|endoftext|>`` 를 넣어 경계를 표시할 수 있다.
- 글자 기준으로 앞 90%는 훈련, 뒤 10%는 검증에 쓴다. BPE 토크나이저도 훈련 부분으로만 배운다.
- ``--tokenizer gpt2`` 면 같은 모델을 GPT-2 의 토크나이저(tiktoken)로 훈련해 토크나이저의 값을 비교할 수 있다.
- 끝나면 검증 손실, 혼잡도(perplexity), 글자당 손실, 온도별 생성 문장을 출력하고, ``--output-dir`` 에
  model.pth(가중치), model-config.json(모델 설정), loss.pdf 와 (BPE 면) tokenizer-vocab.json, tokenizer-merges.json 을 저장한다.
  이 파일들이 이미 있으면 ``--overwrite`` 를 주지 않는 한 덮어쓰지 않고 멈춘다.

    python pretrain_korean.py                                  # 대한민국헌법으로 (CPU 에서 1분 안팎)
    python pretrain_korean.py --input 내글.txt --output-dir 내모델 --epochs 20
    python pretrain_korean.py --tokenizer gpt2 --epochs 1      # 같은 모델을 GPT-2 토크나이저로(에포크가 수십 배 오래 걸린다)
    python pretrain_korean.py --quick                          # 아주 작은 설정으로 몇 초 만에 (LLMFS_QUICK=1 과 같음)
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch.utils.data import DataLoader

from llm_from_scratch.bpe import BPETokenizerSimple
from llm_from_scratch.ch02 import GPTDatasetV1
from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch05 import (
    calc_loss_loader,
    generate,
    plot_losses,
    text_to_token_ids,
    token_ids_to_text,
    train_model_simple,
)
from llm_from_scratch.download import REPO_DATA_DIR, get_gpt2_encoding
from llm_from_scratch.utils import (
    QUICK,
    device_name,
    get_device,
    nonempty_text,
    nonnegative_float,
    positive_float,
    positive_int,
    set_seed,
    writable_dir,
)

DEFAULT_INPUT = REPO_DATA_DIR / "korean" / "constitution.txt"
SPECIAL = "<|endoftext|>"

# 헌법(약 1만 7천 자)에 맞춘 작은 GPT. 어휘 크기는 토크나이저가 정한다
MODEL_CONFIG = {"context_length": 128, "emb_dim": 128, "n_heads": 4, "n_layers": 4, "drop_rate": 0.1, "qkv_bias": False}
# 빠른 모드: 같은 코드 경로를 아주 작은 모델과 텍스트 앞부분으로
QUICK_CONFIG = {**MODEL_CONFIG, "context_length": 32, "emb_dim": 32, "n_heads": 2, "n_layers": 2}
QUICK_MAX_CHARS = 3_000

OUTPUT_FILES = {"bpe": ["model.pth", "model-config.json", "loss.pdf", "tokenizer-vocab.json", "tokenizer-merges.json"],
                "gpt2": ["model.pth", "model-config.json", "loss.pdf"]}


def read_korean_text(path):
    """UTF-8 텍스트 파일을 읽는다. 줄바꿈은 ``\\n`` 으로 맞추고 맨 앞의 BOM 은 뺀다.

    UTF-8 이 아니면 처음 어긋난 바이트의 위치와 바꾸는 방법을 알리는 ValueError 를 낸다.
    """
    path = Path(path)
    if not path.is_file():
        what = "폴더입니다" if path.is_dir() else "없습니다"
        raise ValueError(f"입력 파일 {str(path)!r} 가 {what}. UTF-8 로 저장한 텍스트 파일의 경로를 주세요.")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"입력 파일 {str(path)!r} 는 UTF-8 텍스트가 아닙니다({error.start + 1:,}번째 바이트 {data[error.start]:#04x}). "
            "한글 윈도의 메모장 등으로 만든 CP949(EUC-KR) 파일이면 UTF-8 로 다시 저장하세요"
            f"(예: iconv -f cp949 -t utf-8 {path.name} > {path.stem}-utf8.txt)."
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ValueError(f"입력 파일 {str(path)!r} 가 비어 있습니다. 훈련할 한국어 텍스트를 담아 주세요.")
    return text


def split_train_val(text, val_fraction=0.1):
    """글자 기준으로 앞부분(훈련)과 뒷부분(검증)으로 나눈다(5장처럼 섞지 않는다)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction 은 0과 1 사이여야 합니다(받은 값: {val_fraction!r}).")
    split = int((1 - val_fraction) * len(text))
    return text[:split], text[split:]


def train_korean_bpe(train_text, vocab_size, pre_tokenizer=None):
    """훈련 텍스트로 바이트 수준 BPE 를 배운다. 마지막 ID 는 ``<|endoftext|>`` 다."""
    tokenizer = BPETokenizerSimple(pre_tokenizer=pre_tokenizer)
    return tokenizer.train(train_text, vocab_size=vocab_size, allowed_special={SPECIAL})


def vocab_size_of(tokenizer):
    """GPTModel 의 임베딩 크기로 쓸 어휘 크기(우리 BPE 와 tiktoken 모두)."""
    return len(tokenizer.vocab) if isinstance(tokenizer, BPETokenizerSimple) else tokenizer.n_vocab


def make_loaders(train_text, val_text, tokenizer, context_length, batch_size):
    """2장의 ``GPTDatasetV1`` 을 주어진 토크나이저로 만들고(창이 겹치지 않게 stride = 문맥 길이) 로더로 감싼다."""
    datasets = []
    for name, text in (("훈련", train_text), ("검증", val_text)):
        try:
            datasets.append(GPTDatasetV1(text, tokenizer, max_length=context_length, stride=context_length))
        except ValueError as error:
            raise ValueError(
                f"{name} 텍스트({len(text):,}자)로 문맥 길이 {context_length} 토큰짜리 샘플을 만들 수 없습니다: {error} "
                "더 긴 텍스트를 주거나 --context-length 를 줄이세요."
            ) from None
    if len(datasets[0]) < batch_size:
        raise ValueError(
            f"훈련 샘플이 {len(datasets[0])}개뿐이라 배치 크기 {batch_size}짜리 배치를 만들 수 없습니다. "
            "더 긴 텍스트를 주거나 --batch-size, --context-length 를 줄이세요."
        )
    train_loader = DataLoader(datasets[0], batch_size=batch_size, shuffle=True, drop_last=True)
    val_loader = DataLoader(datasets[1], batch_size=batch_size, shuffle=False, drop_last=False)
    return train_loader, val_loader


def tokens_per_char(tokenizer, text):
    """텍스트 한 글자에 드는 평균 토큰 수."""
    return len(tokenizer.encode(text, allowed_special={SPECIAL})) / len(text)


def loss_per_char(loss_per_token, tokens_per_character):
    """토큰당 손실(nat)을 글자당 손실로 바꾼다. 토크나이저가 달라도 비교할 수 있는 값이다."""
    return loss_per_token * tokens_per_character


def sample_texts(model, tokenizer, prompt, temperatures, max_new_tokens, top_k=None, seed=123):
    """온도마다 ``prompt`` 에 이어지는 텍스트를 생성한다(온도 0 은 그리디 디코딩). {온도: 텍스트}."""
    model.eval()
    device = next(model.parameters()).device
    context_size = model.pos_emb.weight.shape[0]
    idx = text_to_token_ids(prompt, tokenizer).to(device)
    samples = {}
    for temperature in temperatures:
        torch.manual_seed(seed)
        out = generate(model, idx, max_new_tokens, context_size, temperature=temperature,
                       top_k=top_k if temperature > 0 else None)
        samples[temperature] = token_ids_to_text(out, tokenizer)
    return samples


def pretrain(train_text, val_text, tokenizer, config, *, epochs, batch_size, learning_rate, weight_decay, device,
             prompt, eval_freq=5, eval_iter=5, seed=123):
    """책의 ``GPTModel`` 을 5장의 ``train_model_simple`` 로 훈련하고 결과를 사전으로 돌려준다."""
    config = {**config, "vocab_size": vocab_size_of(tokenizer)}
    set_seed(seed)
    train_loader, val_loader = make_loaders(train_text, val_text, tokenizer, config["context_length"], batch_size)
    model = GPTModel(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    start = time.perf_counter()
    train_losses, val_losses, tokens_seen = train_model_simple(
        model, train_loader, val_loader, optimizer, device, num_epochs=epochs, eval_freq=eval_freq,
        eval_iter=eval_iter, start_context=prompt, tokenizer=tokenizer,
    )
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        val_loss = calc_loss_loader(val_loader, model, device)  # 검증 세트 전체
    val_tpc = tokens_per_char(tokenizer, val_text)
    return {
        "model": model, "config": config, "seconds": seconds, "train_losses": train_losses,
        "val_losses": val_losses, "tokens_seen": tokens_seen, "val_loss": val_loss,
        "perplexity": math.exp(val_loss), "val_tokens_per_char": val_tpc,
        "val_loss_per_char": loss_per_char(val_loss, val_tpc),
        "train_tokens": len(train_loader.dataset) * config["context_length"],
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def _save_atomically(path, save):
    tmp = path.with_name(path.name + ".tmp")
    save(tmp)
    os.replace(tmp, path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="한국어 텍스트(UTF-8)로 책의 GPTModel 을 사전 훈련합니다. 토크나이저는 그 텍스트로 배운 BPE 나 GPT-2 의 것입니다."
    )
    parser.add_argument("--input", default=str(DEFAULT_INPUT),
                        help="훈련할 UTF-8 텍스트 파일 (기본: 저장소의 data/korean/constitution.txt, 대한민국헌법)")
    parser.add_argument("--output-dir", type=writable_dir, default="outputs/korean-gpt",
                        help="model.pth, loss.pdf, 토크나이저 파일을 저장할 폴더 (기본: outputs/korean-gpt)")
    parser.add_argument("--overwrite", action="store_true", help="--output-dir 에 같은 이름의 파일이 있어도 덮어씁니다")
    parser.add_argument("--tokenizer", choices=["bpe", "gpt2"], default="bpe",
                        help="bpe: 입력 텍스트로 배운 BPE, gpt2: GPT-2 의 토크나이저 (기본: bpe)")
    parser.add_argument("--vocab-size", type=positive_int, default=None,
                        help="BPE 어휘 크기, <|endoftext|> 포함 258 이상 (기본: 1000, 빠른 모드 300)")
    parser.add_argument("--epochs", type=positive_int, default=None, help="에포크 수 (기본: 10, 빠른 모드 2)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="배치 크기 (기본: 4)")
    parser.add_argument("--context-length", type=positive_int, default=None,
                        help="문맥 길이(토큰) (기본: 128, 빠른 모드 32)")
    parser.add_argument("--learning-rate", type=positive_float, default=1e-3, help="AdamW 학습률 (기본: 0.001)")
    parser.add_argument("--weight-decay", type=nonnegative_float, default=0.1, help="AdamW 가중치 감쇠 (기본: 0.1)")
    parser.add_argument("--val-fraction", type=positive_float, default=0.1,
                        help="검증에 쓸 뒷부분의 비율, 0과 1 사이 (기본: 0.1)")
    parser.add_argument("--prompt", type=nonempty_text, default="대한민국은",
                        help="생성 문장의 시작 (기본: 대한민국은)")
    parser.add_argument("--temperatures", type=nonnegative_float, nargs="+", default=[0.0, 0.7, 1.2],
                        help="생성할 때의 온도들, 0 은 그리디 (기본: 0 0.7 1.2)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=60, help="생성할 토큰 수 (기본: 60)")
    parser.add_argument("--seed", type=int, default=123, help="난수 시드 (기본: 123)")
    parser.add_argument("--device", type=device_name, default=None, help="auto, cpu, cuda, mps (기본: 자동 선택)")
    parser.add_argument("--quick", action="store_true", default=QUICK,
                        help="아주 작은 모델과 텍스트 앞부분으로 모든 단계를 몇 초 만에 (LLMFS_QUICK=1 과 같음)")
    args = parser.parse_args(argv)

    if not args.val_fraction < 1:
        parser.error(f"--val-fraction 은 0과 1 사이여야 합니다(받은 값: {args.val_fraction}).")
    if args.vocab_size is not None and args.tokenizer == "gpt2":
        parser.error("--vocab-size 는 --tokenizer bpe 에서만 씁니다(GPT-2 의 어휘 크기는 50,257로 정해져 있습니다).")
    if args.vocab_size is not None and args.vocab_size < 258:
        parser.error(f"--vocab-size 는 바이트 256개, 병합 하나 이상, <|endoftext|> 를 담도록 258 이상이어야 합니다"
                     f"(받은 값: {args.vocab_size}).")
    try:
        args.text = read_korean_text(args.input)
    except ValueError as error:
        parser.error(str(error))

    output_dir = Path(args.output_dir)
    outputs = [output_dir / name for name in OUTPUT_FILES[args.tokenizer]]
    input_path = Path(args.input).resolve()
    if any(path.resolve() == input_path for path in outputs):
        parser.error(f"입력 파일 {args.input} 을 결과 파일이 덮어쓰게 됩니다. 다른 --output-dir 를 주세요.")
    existing = [path.name for path in outputs if path.exists()]
    if existing and not args.overwrite:
        parser.error(f"{output_dir} 에 이미 {', '.join(existing)} 가 있습니다. 덮어쓰지 않습니다. "
                     "다른 --output-dir 를 주거나, 덮어써도 되면 --overwrite 를 주세요.")
    return args


def main(argv=None):
    args = parse_args(argv)
    text = args.text[:QUICK_MAX_CHARS] if args.quick else args.text
    config = QUICK_CONFIG if args.quick else MODEL_CONFIG
    if args.context_length is not None:
        config = {**config, "context_length": args.context_length}
    epochs = args.epochs or (2 if args.quick else 10)
    device = get_device(args.device)
    train_text, val_text = split_train_val(text, args.val_fraction)

    if args.tokenizer == "bpe":
        vocab_size = args.vocab_size or (300 if args.quick else 1000)
        tokenizer = train_korean_bpe(train_text, vocab_size)
        name = f"한국어 BPE(어휘 {len(tokenizer.vocab):,}개)"
    else:
        tokenizer = get_gpt2_encoding()
        name = "GPT-2 토크나이저(어휘 50,257개)"
    print(f"텍스트 {len(text):,}자(훈련 {len(train_text):,}, 검증 {len(val_text):,}), {name}, "
          f"훈련 텍스트 글자당 토큰 {tokens_per_char(tokenizer, train_text):.2f}개, 장치 {device}")
    try:
        result = pretrain(train_text, val_text, tokenizer, config, epochs=epochs, batch_size=args.batch_size,
                          learning_rate=args.learning_rate, weight_decay=args.weight_decay, device=device,
                          prompt=args.prompt, eval_iter=1 if args.quick else 5, seed=args.seed)
    except ValueError as error:
        raise SystemExit(f"오류: {error}") from None

    print(f"훈련 시간 {result['seconds']:.1f}초, 파라미터 {result['parameters']:,}개")
    print(f"검증 손실 {result['val_loss']:.3f}(토큰당), 혼잡도 {result['perplexity']:.1f}, "
          f"글자당 손실 {result['val_loss_per_char']:.3f}")
    samples = sample_texts(result["model"], tokenizer, args.prompt, args.temperatures, args.max_new_tokens, top_k=50,
                           seed=args.seed)
    for temperature, sample in samples.items():
        print(f"--- 온도 {temperature:g} ---\n{sample}")

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    _save_atomically(output_dir / "model.pth", lambda tmp: torch.save(result["model"].state_dict(), tmp))
    config_json = json.dumps(result["config"], ensure_ascii=False, indent=1)
    _save_atomically(output_dir / "model-config.json", lambda tmp: tmp.write_text(config_json, encoding="utf-8"))
    epochs_seen = torch.linspace(0, epochs, len(result["train_losses"]))
    fig = plot_losses(epochs_seen, result["tokens_seen"], result["train_losses"], result["val_losses"])
    _save_atomically(output_dir / "loss.pdf", lambda tmp: fig.savefig(tmp, format="pdf"))
    plt.close(fig)
    saved = ["model.pth", "model-config.json", "loss.pdf"]
    if args.tokenizer == "bpe":
        vocab_tmp = output_dir / "tokenizer-vocab.json.tmp"
        merges_tmp = output_dir / "tokenizer-merges.json.tmp"
        tokenizer.save_vocab_and_merges(vocab_tmp, merges_tmp)
        os.replace(vocab_tmp, output_dir / "tokenizer-vocab.json")
        os.replace(merges_tmp, output_dir / "tokenizer-merges.json")
        saved += ["tokenizer-vocab.json", "tokenizer-merges.json"]
    print(f"저장: {output_dir} 에 {', '.join(saved)}")
    return result


if __name__ == "__main__":
    main()
