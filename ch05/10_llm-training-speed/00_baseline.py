"""5장 보너스: 기준선 훈련 속도.

4장의 ``GPTModel`` 을 5장의 훈련 루프(``zero_grad`` -> ``calc_loss_batch`` -> ``backward`` -> AdamW ``step``)
그대로 훈련하며 초당 훈련 토큰 수를 잰다. 기본값은 GPT-2 124M 구조, 문맥 256, 배치 2 (5장의 설정)이다.

    python 00_baseline.py            # 124M 설정
    python 00_baseline.py --quick    # 작은 모델로 몇 초 만에
"""


from speed_utils import add_common_arguments, format_result, run_settings, train_baseline

from llm_from_scratch.utils import QUICK, ArgumentParser, get_device


def parse_args(argv=None):
    parser = ArgumentParser(description="5장 훈련 루프의 기준선 훈련 속도(초당 토큰)를 잰다.")
    add_common_arguments(parser)
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
    print(f"장치: {device}")
    result = train_baseline(settings, device, args.data_dir)
    print(format_result("기준선(5장 루프)", result, settings))
    return result


if __name__ == "__main__":
    main()
