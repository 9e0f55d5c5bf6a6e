"""5장 보너스: 훈련 속도 비교표를 한 번에 만든다.

같은 실행, 같은 머신에서 같은 설정(GPT-2 124M 구조, 문맥 256, 배치 2)과 같은 훈련 스텝으로 잰다.

1. 기준선: 4장 ``GPTModel`` + 5장 AdamW (늘 fp32)
2. 최적화: ``fast_gpt.FastGPTModel`` + 켠 최적화 스위치(``01_optimized.py`` 와 같은 스위치).
   bf16 을 켰으면 같은 경로를 fp32 로도 재서 bf16 이 얼마나 빨라졌는지 보인다.
3. transformers: Hugging Face ``GPT2LMHeadModel`` (같은 구조, 출력층을 묶지 않음, Trainer 기본값인 fused AdamW,
   최적화 경로와 같은 autocast)

그리고 초당 훈련 토큰, 서로의 비율, 모델 FLOP 활용률(MFU, ``llm_from_scratch.mfu``: 토큰당 훈련 FLOPs x 초당 토큰
/ 같은 실행에서 잰 행렬 곱 최대 FLOP/s), 훈련 중 메모리 최댓값을 표로 출력한다.

    python benchmark.py                   # 124M 설정(조용한 2코어 CPU 에서 몇 분)
    python benchmark.py --quick           # 작은 모델로 몇 초 만에
    python benchmark.py --repeats 3       # 구성들을 번갈아 세 번 재서 각자 가장 빠른 값을 쓴다
    python benchmark.py --larger-batch    # 최적화 경로를 배치 2, 4, 8 로 재서 초당 토큰과 메모리를 비교
    python benchmark.py --full            # 5장 훈련(10 에포크)을 기준선과 최적화 경로로 끝까지 돌려 벽시계 비교
"""

import gc
from importlib.metadata import version

import torch
from speed_utils import (
    FULL_RUN,
    LEARNING_RATE,
    WEIGHT_DECAY,
    add_common_arguments,
    add_optimization_arguments,
    auto_flag_reasons,
    format_memory,
    resolve_flags,
    run_settings,
    time_with_flags,
    train_baseline,
    train_full,
    train_optimized,
)

from llm_from_scratch.machine import cpu_model, print_machine_summary
from llm_from_scratch.mfu import matmul_peak_flops, model_flops_utilization, training_flops_per_token
from llm_from_scratch.utils import QUICK, ArgumentParser, get_device, positive_int

# 목표: 최적화한 경로가 transformers 의 1.1배 이상, 기준선의 1.2배 이상
TARGET_VS_TRANSFORMERS = 1.1
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
    """transformers ``GPT2LMHeadModel`` 을 같은 데이터·스텝·스위치로 잰다(옵티마이저는 fused AdamW)."""
    from transformers import GPT2LMHeadModel

    torch.manual_seed(123)
    model = HFLogits(GPT2LMHeadModel(hf_gpt2_config(settings["cfg"]))).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY, fused=True)
    # compile 은 최적화 경로와 같게 켜고 끈다(transformers 도 torch.compile 할 수 있다)
    return time_with_flags(model, optimizer, settings, device, flags, data_dir)


def parse_args(argv=None):
    parser = ArgumentParser(description="기준선, 최적화, transformers 의 훈련 속도를 한 표로 비교한다.")
    add_common_arguments(parser)
    add_optimization_arguments(parser)
    parser.add_argument("--repeats", type=positive_int, default=1, help="구성들을 번갈아 잴 횟수(각자 가장 빠른 값을 쓴다)")
    parser.add_argument(
        "--ablation", action="store_true", help="최적화 경로에서 스위치를 하나씩 뒤집은 구성도 재서 따로 표로 보인다"
    )
    parser.add_argument(
        "--larger-batch",
        nargs="*",
        type=positive_int,
        default=None,
        metavar="N",
        help="최적화 경로를 배치 크기 N 들로 재서 초당 토큰과 메모리를 비교한다(값 없이 쓰면 설정 배치의 1, 2, 4배)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help=f"5장 훈련({FULL_RUN['num_epochs']} 에포크, 평가와 샘플 생성 포함)을 기준선과 최적화 경로로 끝까지 돌린다",
    )
    parser.add_argument("--epochs", type=positive_int, default=None, help="--full 의 에포크 수(기본: 10, quick 2)")
    return parser.parse_args(argv)


def describe_device(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model() if device.type == "cpu" else device.type


def main(argv=None):
    args = parse_args(argv)
    if args.epochs is not None and not args.full:
        raise ValueError(f"--epochs {args.epochs} 는 --full 과 함께 쓸 때만 의미가 있습니다. --full 을 더하세요.")
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

    print(f"장치: {device} ({describe_device(device)})")
    print(f"PyTorch {torch.__version__}, transformers {version('transformers')}, CPU 스레드 {torch.get_num_threads()}")
    print_machine_summary(device)
    print(
        f"설정: emb_dim {cfg['emb_dim']}, 층 {cfg['n_layers']}, 헤드 {cfg['n_heads']}, 문맥 {cfg['context_length']}, "
        f"배치 {settings['batch_size']}, 드롭아웃 {cfg['drop_rate']}, 준비 스텝 {settings['warmup_steps']}, "
        f"잰 스텝 {settings['timed_steps']}, 반복 {args.repeats}"
    )
    for reason in auto_flag_reasons(args, device):
        print("자동 선택 -", reason)
    print("최적화 경로에서 켠 스위치:", ", ".join(name for name, on in flags.items() if on) or "없음")

    if args.full:
        return run_full(settings, device, flags, args.data_dir, args.epochs or (2 if quick else FULL_RUN["num_epochs"]))

    matmul_size = 256 if quick else 2048
    peak_fp32 = matmul_peak_flops(device, torch.float32, size=matmul_size)
    peak = matmul_peak_flops(device, torch.bfloat16, size=matmul_size) if flags["bf16"] else peak_fp32
    print(f"행렬 곱 최대치({matmul_size}x{matmul_size}, 실측): fp32 {peak_fp32 / 1e9:,.1f} GFLOP/s", end="")
    print(f", bf16 {peak / 1e9:,.1f} GFLOP/s" if flags["bf16"] else "")

    baseline_label, optimized_label, fp32_label, hf_label = (
        "기준선 (GPTModel, 5장 루프)",
        "최적화 (FastGPTModel)",
        "최적화, bf16 끔 (FastGPTModel fp32)",
        "transformers GPT2LMHeadModel",
    )
    runs = {
        baseline_label: (lambda: train_baseline(settings, device, args.data_dir), peak_fp32),
        optimized_label: (lambda: train_optimized(settings, device, flags, args.data_dir), peak),
    }
    if flags["bf16"]:  # bf16 이 얼마나 빨라졌는지 같은 실행에서 보이려고 fp32 로도 잰다
        fp32_flags = {**flags, "bf16": False}
        runs[fp32_label] = (lambda: train_optimized(settings, device, fp32_flags, args.data_dir), peak_fp32)
    runs[hf_label] = (lambda: train_transformers(settings, device, flags, args.data_dir), peak)
    best = {}
    for repeat in range(args.repeats):
        for label, (run, _) in runs.items():
            result = run()
            gc.collect()  # 다음 구성을 만들기 전에 이전 모델과 옵티마이저 상태를 놓아준다
            print(
                f"  [{repeat + 1}/{args.repeats}] {label}: {result['tokens_per_s']:,.0f} 토큰/초, "
                f"마지막 손실 {result['last_loss']:.3f}, {format_memory(result)}"
            )
            if label not in best or result["tokens_per_s"] > best[label]["tokens_per_s"]:
                best[label] = result

    flops_per_token = training_flops_per_token(cfg)
    baseline, optimized, hf = (best[label]["tokens_per_s"] for label in (baseline_label, optimized_label, hf_label))
    print()
    print("| 구성 | 초당 훈련 토큰 | 기준선 대비 | transformers 대비 | MFU | 메모리 최대 |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, (_, label_peak) in runs.items():
        tokens_per_s = best[label]["tokens_per_s"]
        mfu = model_flops_utilization(tokens_per_s, flops_per_token, label_peak)
        print(
            f"| {label} | {tokens_per_s:,.0f} | {tokens_per_s / baseline:.2f}x | {tokens_per_s / hf:.2f}x | "
            f"{mfu:.1%} | {best[label]['peak_memory'] / 1e9:.2f} GB |"
        )
    print()
    print(
        f"MFU = 토큰당 훈련 FLOPs {flops_per_token:,} (순전파의 3배, 행렬 곱만) x 초당 토큰 / 같은 정밀도의 행렬 곱 "
        f"최대치. 메모리: {best[baseline_label]['memory_kind']}"
    )
    for name, ratio, target in (
        ("최적화 / transformers", optimized / hf, TARGET_VS_TRANSFORMERS),
        ("최적화 / 기준선", optimized / baseline, TARGET_VS_BASELINE),
    ):
        print(f"{name}: {ratio:.2f}x (목표 {target:.1f}x 이상: {'달성' if ratio >= target else '미달'})")
    if flags["bf16"]:
        print(f"최적화 bf16 / 최적화 fp32: {optimized / best[fp32_label]['tokens_per_s']:.2f}x")
    if args.ablation:
        print_ablation(settings, device, flags, optimized, args.data_dir)
    if args.larger_batch is not None:
        sizes = args.larger_batch or [settings["batch_size"] * factor for factor in (1, 2, 4)]
        print_larger_batches(settings, device, flags, sizes, args.data_dir)
    return best


def print_larger_batches(settings, device, flags, batch_sizes, data_dir):
    """최적화 경로를 배치 크기만 바꿔 재서 초당 토큰과 메모리 최댓값을 표로 보인다.

    배치가 크면 행렬 곱이 커져 하드웨어를 더 잘 쓰지만(특히 GPU), 활성화 메모리가 배치에 비례해 는다.
    """
    print()
    print("| 배치 크기 | 초당 훈련 토큰 | 배치 첫 값 대비 | 메모리 최대 |")
    print("|---:|---:|---:|---:|")
    first = None
    for batch_size in batch_sizes:
        result = train_optimized({**settings, "batch_size": batch_size}, device, flags, data_dir)
        gc.collect()
        first = first or result["tokens_per_s"]
        print(
            f"| {batch_size} | {result['tokens_per_s']:,.0f} | {result['tokens_per_s'] / first:.2f}x | "
            f"{result['peak_memory'] / 1e9:.2f} GB |"
        )
    print(f"메모리: {result['memory_kind']}")


def run_full(settings, device, flags, data_dir, num_epochs):
    """5장 훈련을 끝까지 두 번(기준선, 최적화) 돌려 벽시계 시간, 초당 토큰, 마지막 손실을 비교한다."""
    results = {}
    for label, run_flags in (("기준선 (GPTModel, 5장 루프)", None), ("최적화 (FastGPTModel)", flags)):
        print(f"\n== {label}: {num_epochs} 에포크 ==")
        results[label] = train_full(settings, device, run_flags, data_dir, num_epochs)
        gc.collect()
    print()
    print("| 구성 | 벽시계 | 초당 훈련 토큰 | 마지막 훈련 손실 | 마지막 검증 손실 |")
    print("|---|---:|---:|---:|---:|")
    for label, result in results.items():
        print(
            f"| {label} | {result['seconds']:,.1f}초 | {result['tokens_per_s']:,.0f} | {result['train_loss']:.3f} | "
            f"{result['val_loss']:.3f} |"
        )
    baseline, optimized = results.values()
    saved = baseline["seconds"] - optimized["seconds"]
    print(
        f"\n{num_epochs} 에포크, 스텝 {baseline['steps']}번(토큰 {baseline['tokens']:,}개), 평가와 샘플 생성 포함: "
        f"최적화 경로가 {abs(saved):,.1f}초 {'덜' if saved >= 0 else '더'} 걸렸습니다"
        f"(기준선 시간 / 최적화 시간 = {baseline['seconds'] / optimized['seconds']:.2f}배)."
    )
    return results


def print_ablation(settings, device, flags, optimized_tokens_per_s, data_dir):
    """스위치를 하나씩 뒤집어(켠 것은 끄고, 끈 것은 켜고) 최적화 경로와 비교한다.

    compile 은 뒤집지 않는다(CPU 에서는 컴파일 시간이 벤치마크 전체보다 길다). ``--compile on`` 으로 따로 잰다.
    """
    print()
    print("| 뒤집은 스위치 | 초당 훈련 토큰 | 최적화 기본 대비 |")
    print("|---|---:|---:|")
    for name in flags:
        if name == "compile" or (name in ("pin_memory", "tf32") and device.type != "cuda"):
            continue  # pinned 메모리와 TF32 는 CUDA 에서만 켤 수 있다
        flipped = {**flags, name: not flags[name]}
        result = train_optimized(settings, device, flipped, data_dir)
        gc.collect()
        change = ("끔: " if flags[name] else "켬: ") + name
        tokens_per_s = result["tokens_per_s"]
        print(f"| {change} | {tokens_per_s:,.0f} | {tokens_per_s / optimized_tokens_per_s:.2f}x |")


if __name__ == "__main__":
    main()
