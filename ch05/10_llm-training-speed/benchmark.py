"""5장 보너스: 훈련 속도 비교표를 한 번에 만든다.

같은 실행, 같은 머신에서 세 가지를 같은 설정(GPT-2 124M 구조, 문맥 256, 배치 2)과 같은 훈련 스텝으로 잰다.

1. 기준선: 4장 ``GPTModel`` + 5장 AdamW
2. 최적화: ``fast_gpt.FastGPTModel`` + 켠 최적화 스위치(``01_optimized.py`` 와 같은 스위치)
3. transformers: Hugging Face ``GPT2LMHeadModel`` (같은 구조, 출력층을 묶지 않음, Trainer 기본값인 fused AdamW)

그리고 초당 훈련 토큰, 서로의 비율, 모델 FLOP 활용률(MFU = 6 x 파라미터 x 초당 토큰 / 같은 실행에서 잰
행렬 곱 최대 FLOP/s)을 표로 출력한다.

    python benchmark.py             # 124M 설정(조용한 2코어 CPU 에서 몇 분)
    python benchmark.py --quick     # 작은 모델로 몇 초 만에
    python benchmark.py --repeats 3 # 세 구성을 번갈아 세 번 재서 각자 가장 빠른 값을 쓴다
"""

import gc
import platform
from importlib.metadata import version

import torch
from speed_utils import (
    LEARNING_RATE,
    WEIGHT_DECAY,
    add_common_arguments,
    add_optimization_arguments,
    make_train_loader,
    matmul_params,
    measure_matmul_peak_flops,
    resolve_flags,
    run_settings,
    time_training,
    train_baseline,
    train_optimized,
)

from llm_from_scratch.machine import print_machine_summary
from llm_from_scratch.utils import QUICK, ArgumentParser, get_device, positive_int

# 목표: 최적화한 경로가 transformers 이상, 기준선의 1.2배 이상
TARGET_VS_TRANSFORMERS = 1.0
TARGET_VS_BASELINE = 1.2


class HFLogits(torch.nn.Module):
    """transformers 모델의 출력에서 로짓만 꺼내, 5장의 ``calc_loss_batch`` 에 그대로 넣을 수 있게 한다."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, in_idx):
        return self.model(input_ids=in_idx, use_cache=False).logits


def hf_gpt2_config(cfg):
    """책의 설정 딕셔너리와 같은 구조의 ``GPT2Config`` (출력층은 GPTModel 처럼 임베딩과 묶지 않는다)."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=cfg["vocab_size"],
        n_positions=cfg["context_length"],
        n_embd=cfg["emb_dim"],
        n_layer=cfg["n_layers"],
        n_head=cfg["n_heads"],
        resid_pdrop=cfg["drop_rate"],
        embd_pdrop=cfg["drop_rate"],
        attn_pdrop=cfg["drop_rate"],
        layer_norm_epsilon=1e-5,
        activation_function="gelu_new",
        tie_word_embeddings=False,
    )


def train_transformers(settings, device, flags, data_dir="."):
    """transformers ``GPT2LMHeadModel`` 을 같은 데이터·스텝·autocast 로 잰다(옵티마이저는 fused AdamW)."""
    from transformers import GPT2LMHeadModel

    torch.manual_seed(123)
    model = HFLogits(GPT2LMHeadModel(hf_gpt2_config(settings["cfg"]))).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY, fused=True)
    loader = make_train_loader(
        settings["cfg"]["context_length"], settings["batch_size"], data_dir, pin_memory=flags["pin_memory"]
    )
    return time_training(
        model,
        optimizer,
        loader,
        device,
        warmup_steps=settings["warmup_steps"],
        timed_steps=settings["timed_steps"],
        autocast_dtype=torch.bfloat16 if flags["bf16"] else None,
        non_blocking=flags["pin_memory"],
    )


def cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "알 수 없음"


def parse_args(argv=None):
    parser = ArgumentParser(description="기준선, 최적화, transformers 의 훈련 속도를 한 표로 비교한다.")
    add_common_arguments(parser)
    add_optimization_arguments(parser)
    parser.add_argument("--repeats", type=positive_int, default=1, help="세 구성을 번갈아 잴 횟수(각자 가장 빠른 값을 쓴다)")
    parser.add_argument(
        "--ablation", action="store_true", help="최적화 경로에서 스위치를 하나씩 뒤집은 구성도 재서 따로 표로 보인다"
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.repeats < 1:
        raise ValueError(f"--repeats 는 1 이상이어야 합니다(받은 값: {args.repeats}).")
    quick = args.quick or QUICK
    settings = run_settings(
        quick,
        batch_size=args.batch_size,
        context_length=args.context_length,
        timed_steps=args.steps,
        warmup_steps=args.warmup_steps,
    )
    device = get_device(args.device)
    flags = resolve_flags(args, device)
    cfg = settings["cfg"]

    print(f"장치: {device} ({cpu_name() if device.type == 'cpu' else torch.cuda.get_device_name(device)})")
    print(f"PyTorch {torch.__version__}, transformers {version('transformers')}, CPU 스레드 {torch.get_num_threads()}")
    print_machine_summary(device)
    print(
        f"설정: emb_dim {cfg['emb_dim']}, 층 {cfg['n_layers']}, 헤드 {cfg['n_heads']}, 문맥 {cfg['context_length']}, "
        f"배치 {settings['batch_size']}, 드롭아웃 {cfg['drop_rate']}, 준비 스텝 {settings['warmup_steps']}, "
        f"잰 스텝 {settings['timed_steps']}, 반복 {args.repeats}"
    )
    print("최적화 경로에서 켠 스위치:", ", ".join(name for name, on in flags.items() if on) or "없음")

    matmul_size = 256 if quick else 2048
    peak_fp32 = measure_matmul_peak_flops(device, torch.float32, size=matmul_size)
    peak = measure_matmul_peak_flops(device, torch.bfloat16, size=matmul_size) if flags["bf16"] else peak_fp32
    print(f"행렬 곱 최대치({matmul_size}x{matmul_size}, 실측): fp32 {peak_fp32 / 1e9:,.1f} GFLOP/s", end="")
    print(f", bf16 {peak / 1e9:,.1f} GFLOP/s" if flags["bf16"] else "")

    baseline_label, optimized_label, hf_label = (
        "기준선 (GPTModel, 5장 루프)",
        "최적화 (FastGPTModel)",
        "transformers GPT2LMHeadModel",
    )
    runs = {
        baseline_label: lambda: train_baseline(settings, device, args.data_dir),
        optimized_label: lambda: train_optimized(settings, device, flags, args.data_dir),
        hf_label: lambda: train_transformers(settings, device, flags, args.data_dir),
    }
    # 기준선은 늘 fp32, 나머지 둘은 bf16 autocast 를 켰으면 bf16 최대치와 비교한다
    peaks = {baseline_label: peak_fp32, optimized_label: peak, hf_label: peak}
    best = {}
    for repeat in range(args.repeats):
        for label, run in runs.items():
            result = run()
            gc.collect()  # 다음 구성을 만들기 전에 이전 모델과 옵티마이저 상태를 놓아준다
            print(
                f"  [{repeat + 1}/{args.repeats}] {label}: {result['tokens_per_s']:,.0f} 토큰/초, "
                f"마지막 손실 {result['last_loss']:.3f}"
            )
            if label not in best or result["tokens_per_s"] > best[label]["tokens_per_s"]:
                best[label] = result

    baseline, optimized, hf = (best[label]["tokens_per_s"] for label in runs)
    flops_per_token = 6 * matmul_params(cfg)

    print()
    print("| 구성 | 초당 훈련 토큰 | 기준선 대비 | transformers 대비 | MFU |")
    print("|---|---:|---:|---:|---:|")
    for label in runs:
        tokens_per_s = best[label]["tokens_per_s"]
        mfu = flops_per_token * tokens_per_s / peaks[label]
        print(
            f"| {label} | {tokens_per_s:,.0f} | {tokens_per_s / baseline:.2f}x | {tokens_per_s / hf:.2f}x | {mfu:.1%} |"
        )
    print()
    print(f"MFU = 6 x {matmul_params(cfg):,} (행렬 곱 파라미터) x 초당 토큰 / 행렬 곱 최대치")
    for name, ratio, target in (
        ("최적화 / transformers", optimized / hf, TARGET_VS_TRANSFORMERS),
        ("최적화 / 기준선", optimized / baseline, TARGET_VS_BASELINE),
    ):
        print(f"{name}: {ratio:.2f}x (목표 {target:.1f}x 이상: {'달성' if ratio >= target else '미달'})")
    if args.ablation:
        print_ablation(settings, device, flags, optimized, args.data_dir)
    return best


def print_ablation(settings, device, flags, optimized_tokens_per_s, data_dir):
    """스위치를 하나씩 뒤집어(켠 것은 끄고, 끈 것은 켜고) 최적화 경로와 비교한다.

    compile 은 뒤집지 않는다(CPU 에서는 컴파일 시간이 벤치마크 전체보다 길다). ``--compile on`` 으로 따로 잰다.
    """
    print()
    print("| 뒤집은 스위치 | 초당 훈련 토큰 | 최적화 기본 대비 |")
    print("|---|---:|---:|")
    for name in flags:
        if name == "compile" or (name == "pin_memory" and device.type != "cuda"):
            continue  # pinned 메모리는 CUDA 에서만 켤 수 있다
        flipped = {**flags, name: not flags[name]}
        result = train_optimized(settings, device, flipped, data_dir)
        gc.collect()
        change = ("끔: " if flags[name] else "켬: ") + name
        tokens_per_s = result["tokens_per_s"]
        print(f"| {change} | {tokens_per_s:,.0f} | {tokens_per_s / optimized_tokens_per_s:.2f}x |")


if __name__ == "__main__":
    main()
