"""5장 보너스: 최적화한 훈련 속도.

``fast_gpt.FastGPTModel`` (``GPTModel`` 과 같은 가중치, 더 빠른 커널)과 fused AdamW 등으로 기준선과 같은
훈련 스텝을 재서 초당 훈련 토큰 수를 출력한다. 최적화마다 스위치가 있어 하나씩 끄고 켜 볼 수 있다.

    python 01_optimized.py                    # 기본 스위치(auto 는 장치를 보고 고르고, 이유를 출력한다)
    python 01_optimized.py --no-sdpa          # SDPA 만 끄고
    python 01_optimized.py --bf16 on --compile on
"""


from speed_utils import (
    add_common_arguments,
    add_optimization_arguments,
    auto_flag_reasons,
    format_result,
    resolve_flags,
    run_settings,
    train_optimized,
)

from llm_from_scratch.utils import QUICK, ArgumentParser, get_device


def parse_args(argv=None):
    parser = ArgumentParser(description="최적화 스위치를 켜고 끄며 훈련 속도(초당 토큰)를 잰다.")
    add_common_arguments(parser)
    add_optimization_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    settings = run_settings(
        args.quick or QUICK,
        batch_size=args.batch_size,
        context_length=args.context_length,
        timed_steps=args.steps,
        warmup_steps=args.warmup_steps,
    )
    device = get_device(args.device)
    flags = resolve_flags(args, device)
    print(f"장치: {device}")
    for reason in auto_flag_reasons(args, device):
        print("자동 선택 -", reason)
    print("켠 최적화:", ", ".join(name for name, on in flags.items() if on) or "없음")
    result = train_optimized(settings, device, flags, args.data_dir)
    print(format_result("최적화", result, settings))
    return result


if __name__ == "__main__":
    main()
