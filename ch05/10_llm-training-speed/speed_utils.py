"""5장 보너스: 훈련 속도를 재는 공용 도구(세 스크립트가 함께 쓴다).

데이터는 5장과 같이 "The Verdict" 의 앞 90%를 문맥 길이만큼 겹치지 않게 자른 배치이고, 한 스텝은 5장의
훈련 루프와 같다: ``zero_grad`` -> ``calc_loss_batch`` -> ``backward`` -> ``step``.
"""

import argparse
import contextlib
import time

import psutil
import tiktoken
import torch
from fast_gpt import FastGPTModel

from llm_from_scratch.ch02 import create_dataloader_v1, load_the_verdict
from llm_from_scratch.ch04 import GPT_CONFIG_124M, GPTModel
from llm_from_scratch.ch05 import calc_loss_batch, train_model_simple
from llm_from_scratch.machine import native_bf16
from llm_from_scratch.utils import device_name, nonnegative_int, positive_int, synchronize

__all__ = [
    "BENCHMARK_SETTINGS",
    "OPTIMIZATION_FLAGS",
    "QUICK_SETTINGS",
    "add_common_arguments",
    "add_optimization_arguments",
    "auto_flag_reasons",
    "build_optimized",
    "format_memory",
    "format_result",
    "make_train_loader",
    "resolve_flags",
    "run_settings",
    "time_training",
    "time_with_flags",
    "train_baseline",
    "train_full",
    "train_optimized",
]

# 책의 5장 설정: GPT-2 124M 구조, 문맥 256, 배치 2, 드롭아웃 0.1
BENCHMARK_SETTINGS = {
    "cfg": {**GPT_CONFIG_124M, "context_length": 256},
    "batch_size": 2,
    "warmup_steps": 1,
    "timed_steps": 4,
}

# 테스트와 --quick 용: 모든 코드 경로를 몇 초 안에 지나가는 작은 모델
QUICK_SETTINGS = {
    "cfg": {**GPT_CONFIG_124M, "context_length": 32, "emb_dim": 64, "n_heads": 4, "n_layers": 2},
    "batch_size": 2,
    "warmup_steps": 1,
    "timed_steps": 2,
}


# 책의 5장 옵티마이저 설정
LEARNING_RATE = 0.0004
WEIGHT_DECAY = 0.1

# 최적화 스위치: 이름 -> (기본값, 설명). "auto" 는 장치를 보고 정한다(이유와 측정은 README).
OPTIMIZATION_FLAGS = {
    "sdpa": (True, "어텐션을 F.scaled_dot_product_attention 커널 하나로 계산한다"),
    "fused_adamw": (True, "AdamW 의 파라미터 갱신을 fused 커널 하나로 한다"),
    "native_layernorm": (True, "층 정규화를 F.layer_norm 커널로 계산한다"),
    "native_gelu": (True, "GELU 를 F.gelu(approximate='tanh') 커널로 계산한다"),
    "pad_vocab": (True, "어휘 크기를 64의 배수(50,257 -> 50,304)로 늘린다"),
    "bf16": (
        "auto",
        "bfloat16 autocast 로 순전파를 계산한다(auto: bf16 행렬 곱을 하드웨어로 하는 CUDA GPU 와 AMX-BF16/AVX512-BF16 CPU)",
    ),
    "tf32": ("auto", "CUDA 의 fp32 행렬 곱을 TF32 텐서 코어로 계산한다(auto: CUDA 에서만)"),
    "compile": ("auto", "torch.compile 로 모델을 컴파일한다(auto: CUDA 에서만)"),
    "pin_memory": ("auto", "배치를 pinned 메모리에 두고 non_blocking 으로 복사한다(auto: CUDA 에서만)"),
}


def add_common_arguments(parser):
    """세 스크립트가 함께 쓰는 명령줄 인자(설정 크기, 장치, 데이터 폴더)."""
    parser.add_argument(
        "--quick", action="store_true", help="작은 모델로 몇 초 만에 모든 경로를 돈다(LLMFS_QUICK=1 과 같다)"
    )
    parser.add_argument(
        "--device", type=device_name, default=None, help="auto, cpu, cuda, mps (기본: 자동 선택, 환경 변수 LLMFS_DEVICE)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=None, help="배치 크기(기본 2)")
    parser.add_argument("--context-length", type=positive_int, default=None, help="문맥 길이(기본 256)")
    parser.add_argument("--steps", type=positive_int, default=None, help="시간을 재는 훈련 스텝 수(기본 4)")
    parser.add_argument("--warmup-steps", type=nonnegative_int, default=None, help="재기 전에 버리는 스텝 수(기본 1)")
    parser.add_argument("--data-dir", default=".", help="the-verdict.txt 를 받아 둘 폴더(기본: 현재 폴더)")


def add_optimization_arguments(parser):
    """최적화 스위치마다 ``--이름`` / ``--no-이름`` (auto 가 있는 것은 ``--이름 {auto,on,off}``)."""
    for name, (default, help_text) in OPTIMIZATION_FLAGS.items():
        option = "--" + name.replace("_", "-")
        if default == "auto":
            parser.add_argument(option, choices=("auto", "on", "off"), default="auto", help=help_text)
        else:
            parser.add_argument(option, action=argparse.BooleanOptionalAction, default=default, help=help_text)


def resolve_flags(args_or_flags, device):
    """명령줄 값(또는 딕셔너리)의 ``auto``/``on``/``off`` 를 이 장치에서 쓸 True/False 로 바꾼다.

    ``auto`` 는 bf16 만 하드웨어를 보고(``llm_from_scratch.machine.native_bf16``), 나머지는 CUDA 인지만 본다.
    왜 그렇게 골랐는지는 ``auto_flag_reasons`` 가 말해 준다.
    """
    raw = args_or_flags if isinstance(args_or_flags, dict) else vars(args_or_flags)
    flags = {}
    for name, (default, _) in OPTIMIZATION_FLAGS.items():
        value = raw.get(name, default)
        if value == "auto":
            value = native_bf16(device)[0] if name == "bf16" else device.type == "cuda"
        elif value in ("on", "off"):
            value = value == "on"
        flags[name] = bool(value)
    for name in ("pin_memory", "tf32"):
        if flags[name] and device.type != "cuda":
            raise ValueError(
                f"{name} 는 CUDA 에서만 의미가 있습니다(지금 장치: {device.type}). --{name.replace('_', '-')} auto 나 "
                "off 를 쓰세요."
            )
    if flags["bf16"] and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("이 GPU 는 bfloat16 을 지원하지 않습니다. --bf16 auto 나 off 를 쓰세요.")
    return flags


def auto_flag_reasons(args_or_flags, device):
    """``auto`` 로 둔 스위치마다 켜고 끈 이유를 한 줄씩 돌려준다(스크립트가 출력한다)."""
    raw = args_or_flags if isinstance(args_or_flags, dict) else vars(args_or_flags)
    reasons = []
    for name, (default, _) in OPTIMIZATION_FLAGS.items():
        if raw.get(name, default) != "auto":
            continue
        if name == "bf16":
            on, why = native_bf16(device)
        else:
            on, why = device.type == "cuda", ("CUDA 장치입니다" if device.type == "cuda" else "CUDA 에서만 켭니다")
        reasons.append(f"{name}: auto -> {'켬' if on else '끔'} ({why})")
    return reasons


@contextlib.contextmanager
def tf32_matmul(enabled):
    """``enabled`` 이면 안에서만 fp32 행렬 곱을 TF32 로 계산하게 하고, 나올 때 원래 설정으로 되돌린다."""
    previous = torch.get_float32_matmul_precision()
    if enabled:
        torch.set_float32_matmul_precision("high")  # CUDA: TF32 텐서 코어(가수 10비트)로 fp32 행렬 곱
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def run_settings(quick, *, batch_size=None, context_length=None, timed_steps=None, warmup_steps=None):
    """기본(또는 quick) 설정에 명령줄에서 바꾼 값을 덮어쓴 새 딕셔너리."""
    settings = QUICK_SETTINGS if quick else BENCHMARK_SETTINGS
    settings = {**settings, "cfg": dict(settings["cfg"])}
    if context_length is not None:
        settings["cfg"]["context_length"] = context_length
    for key, value in (("batch_size", batch_size), ("timed_steps", timed_steps), ("warmup_steps", warmup_steps)):
        if value is not None:
            settings[key] = value
    for key, minimum in (("batch_size", 1), ("timed_steps", 1), ("warmup_steps", 0)):
        if settings[key] < minimum:
            raise ValueError(f"{key} 는 {minimum} 이상이어야 합니다(받은 값: {settings[key]}).")
    if settings["cfg"]["context_length"] < 1:
        raise ValueError(f"context_length 는 1 이상이어야 합니다(받은 값: {settings['cfg']['context_length']}).")
    return settings


def make_train_loader(context_length, batch_size, data_dir=".", pin_memory=False):
    """5장처럼 "The Verdict" 앞 90%로 훈련 로더를 만든다(보폭 = 문맥 길이, 마지막 모자란 배치는 버림)."""
    text = load_the_verdict(data_dir)
    train_text = text[: int(0.9 * len(text))]
    loader = create_dataloader_v1(
        train_text, batch_size=batch_size, max_length=context_length, stride=context_length, shuffle=True
    )
    if pin_memory:
        # 고정(pinned) 메모리에 둔 배치만 GPU로 비동기 복사(non_blocking)할 수 있다
        loader = torch.utils.data.DataLoader(
            loader.dataset, batch_size=batch_size, shuffle=True, drop_last=True, pin_memory=True
        )
    return loader


def _batches(loader):
    # 훈련 데이터가 몇 배치뿐이라 정해진 스텝 수를 채울 때까지 로더를 되풀이한다
    while True:
        yield from loader


def time_training(
    model, optimizer, loader, device, *, warmup_steps, timed_steps, autocast_dtype=None, non_blocking=False
):
    """5장의 훈련 스텝을 ``warmup_steps`` 번 돌린 뒤 ``timed_steps`` 번을 재서 결과를 딕셔너리로 돌려준다.

    Args:
        autocast_dtype: 예컨대 ``torch.bfloat16`` 이면 순전파와 손실을 그 정밀도의 autocast 안에서 계산한다.
        non_blocking: 배치를 장치로 비동기 복사한다(CUDA 에서 pinned 메모리와 함께 쓸 때만 효과가 있다).

    Returns:
        ``tokens_per_s`` (초당 훈련 토큰), ``seconds`` (잰 시간), ``warmup_seconds``, ``tokens``, ``last_loss``,
        ``peak_memory`` (바이트)와 ``memory_kind``: CUDA 면 훈련 중 GPU 에 가장 많이 할당된 양, CPU 면 훈련 중
        프로세스 상주 메모리(RSS)의 최댓값(모델·옵티마이저·데이터·파이썬까지 모두 포함).
    """
    model.train()
    autocast = (
        torch.autocast(device_type=device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    batches = _batches(loader)
    tokens = 0
    loss = None
    memory = _PeakMemory(device)

    def step():
        input_batch, target_batch = next(batches)
        input_batch = input_batch.to(device, non_blocking=non_blocking)
        target_batch = target_batch.to(device, non_blocking=non_blocking)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            step_loss = calc_loss_batch(input_batch, target_batch, model, device)
        step_loss.backward()
        optimizer.step()
        memory.sample()
        return step_loss, input_batch.numel()

    start = time.perf_counter()
    for _ in range(warmup_steps):
        step()
    synchronize(device)
    warmup_seconds = time.perf_counter() - start

    start = time.perf_counter()
    for _ in range(timed_steps):
        loss, n_tokens = step()
        tokens += n_tokens
    synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "tokens_per_s": tokens / seconds,
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
        "tokens": tokens,
        "last_loss": loss.item(),
        "peak_memory": memory.peak(),
        "memory_kind": memory.kind,
    }


class _PeakMemory:
    """훈련 중 메모리 최댓값: CUDA 는 파이토치 할당기의 통계, CPU 는 스텝마다 읽은 프로세스 RSS."""

    def __init__(self, device):
        self.device = device
        self.kind = "GPU 최대 할당" if device.type == "cuda" else "프로세스 RSS 최대"
        self.rss = 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def sample(self):
        if self.device.type != "cuda":
            self.rss = max(self.rss, psutil.Process().memory_info().rss)

    def peak(self):
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        return self.rss


def format_memory(result):
    """``time_training`` 결과의 메모리를 사람이 읽는 한 마디로: 예 ``"프로세스 RSS 최대 3.1 GB"``."""
    return f"{result['memory_kind']} {result['peak_memory'] / 1e9:.2f} GB"


def train_baseline(settings, device, data_dir="."):
    """기준선: 4장 ``GPTModel`` 과 5장의 AdamW(lr 0.0004, weight decay 0.1)를 그대로 잰다."""
    torch.manual_seed(123)
    model = GPTModel(settings["cfg"]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    loader = make_train_loader(settings["cfg"]["context_length"], settings["batch_size"], data_dir)
    return time_training(
        model,
        optimizer,
        loader,
        device,
        warmup_steps=settings["warmup_steps"],
        timed_steps=settings["timed_steps"],
    )


def build_optimized(settings, device, flags):
    """``flags`` 에서 켠 최적화로 모델과 옵티마이저를 만든다(속도 측정, 전체 훈련, DDP 스크립트가 함께 쓴다)."""
    torch.manual_seed(123)
    model = FastGPTModel(
        settings["cfg"],
        sdpa=flags["sdpa"],
        native_layernorm=flags["native_layernorm"],
        native_gelu=flags["native_gelu"],
        vocab_multiple=64 if flags["pad_vocab"] else 1,
    ).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY, fused=flags["fused_adamw"]
    )
    return model, optimizer


def time_with_flags(model, optimizer, settings, device, flags, data_dir="."):
    """만든 모델과 옵티마이저를 ``flags`` 의 데이터·정밀도 스위치(pinned 메모리, TF32, compile, bf16)로 잰다."""
    loader = make_train_loader(
        settings["cfg"]["context_length"], settings["batch_size"], data_dir, pin_memory=flags["pin_memory"]
    )
    # 컴파일은 첫 스텝(준비 스텝)에서 일어나므로 잰 시간에는 들어가지 않는다
    train_model = torch.compile(model) if flags["compile"] else model
    with tf32_matmul(flags["tf32"]):
        return time_training(
            train_model,
            optimizer,
            loader,
            device,
            warmup_steps=settings["warmup_steps"],
            timed_steps=settings["timed_steps"],
            autocast_dtype=torch.bfloat16 if flags["bf16"] else None,
            non_blocking=flags["pin_memory"],
        )


def train_optimized(settings, device, flags, data_dir="."):
    """``flags`` (``resolve_flags`` 의 결과)에서 켠 최적화만 적용해 같은 훈련 스텝을 잰다."""
    model, optimizer = build_optimized(settings, device, flags)
    return time_with_flags(model, optimizer, settings, device, flags, data_dir)


class AutocastForward(torch.nn.Module):
    """감싼 모델의 순전파만 autocast 안에서 계산하고 로짓은 float32 로 돌려준다.

    5장의 ``train_model_simple`` 을 고치지 않고 bf16 으로 돌리려고 쓴다: 손실과 역전파는 autocast 밖에서
    계산된다(파이토치가 권하는 방식). 그 밖의 속성(``tok_emb``, ``pos_emb`` 등)은 감싼 모델의 것을 그대로 보여 준다.
    """

    def __init__(self, model, device_type, dtype=torch.bfloat16):
        super().__init__()
        self.model = model
        self.device_type = device_type
        self.dtype = dtype

    def __getattr__(self, name):
        # 5장의 샘플 생성이 읽는 tok_emb, pos_emb 같은 속성은 감싼 모델의 것을 보여 준다
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)

    def forward(self, in_idx):
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            logits = self.model(in_idx)
        return logits.float()


# 책 5장 노트북의 훈련 설정(에포크 10, 5스텝마다 5배치로 평가, 에포크마다 샘플 생성)
FULL_RUN = {"num_epochs": 10, "eval_freq": 5, "eval_iter": 5, "start_context": "Every effort moves you"}


def train_full(settings, device, flags=None, data_dir=".", num_epochs=FULL_RUN["num_epochs"]):
    """5장의 훈련을 끝까지 돌린다: ``flags`` 가 None 이면 책의 ``GPTModel``, 아니면 최적화한 경로.

    데이터(앞 90% 훈련, 뒤 10% 검증), 시드, 옵티마이저, 평가 주기, 샘플 생성까지 5장 노트북과 같고, 루프는
    5장의 ``train_model_simple`` 그대로다. 최적화 경로는 모델·옵티마이저·autocast·TF32·compile 만 바꾼다
    (pinned 메모리는 5장 루프가 배치를 동기로 옮기므로 쓰지 않는다).

    Returns:
        ``seconds`` (평가와 샘플 생성을 포함한 벽시계), ``tokens`` (훈련한 토큰), ``tokens_per_s``,
        ``train_loss``, ``val_loss`` (마지막 평가), ``steps``.
    """
    cfg = settings["cfg"]
    text = load_the_verdict(data_dir)
    split = int(0.9 * len(text))
    loader_args = {"batch_size": settings["batch_size"], "max_length": cfg["context_length"],
                   "stride": cfg["context_length"]}
    torch.manual_seed(123)
    train_loader = create_dataloader_v1(text[:split], drop_last=True, shuffle=True, **loader_args)
    val_loader = create_dataloader_v1(text[split:], drop_last=False, shuffle=False, **loader_args)
    if flags is None:
        torch.manual_seed(123)
        model = GPTModel(cfg).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    else:
        model, optimizer = build_optimized(settings, device, flags)
        if flags["compile"]:
            model = torch.compile(model)
        if flags["bf16"]:
            model = AutocastForward(model, device.type)
    synchronize(device)
    start = time.perf_counter()
    with tf32_matmul(bool(flags and flags["tf32"])):
        train_losses, val_losses, _ = train_model_simple(
            model, train_loader, val_loader, optimizer, device, num_epochs, FULL_RUN["eval_freq"],
            FULL_RUN["eval_iter"], FULL_RUN["start_context"], tiktoken.get_encoding("gpt2"),
        )
    synchronize(device)
    seconds = time.perf_counter() - start
    tokens = num_epochs * len(train_loader) * settings["batch_size"] * cfg["context_length"]
    return {
        "seconds": seconds,
        "tokens": tokens,
        "tokens_per_s": tokens / seconds,
        "train_loss": train_losses[-1],
        "val_loss": val_losses[-1],
        "steps": num_epochs * len(train_loader),
    }


def format_result(label, result, settings):
    """한 줄 요약: 초당 토큰, 잰 스텝 수, 배치 모양, 마지막 손실."""
    cfg = settings["cfg"]
    return (
        f"{label}: 초당 훈련 토큰 {result['tokens_per_s']:,.0f} "
        f"(스텝 {settings['timed_steps']}번 {result['seconds']:.1f}초, 준비 스텝 {result['warmup_seconds']:.1f}초, "
        f"배치 {settings['batch_size']} x 문맥 {cfg['context_length']}, 마지막 손실 {result['last_loss']:.3f}, "
        f"{format_memory(result)})"
    )
