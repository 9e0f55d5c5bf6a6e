"""7장 연습문제 스크립트: 본문의 미세 튜닝을 한 가지씩 바꿔 실행한다.

- ``baseline``: 본문과 같은 설정(비교 기준)
- ``mask_instructions``: 지시·입력 부분의 토큰을 손실에서 뺀다(연습문제 7.2)
- ``phi3_prompt``: Alpaca 대신 Phi-3 형식 프롬프트(``<|user|>`` / ``<|assistant|>``)를 쓴다(연습문제 7.1)
- ``alpaca_52k``: 스탠퍼드 Alpaca 의 52k 지시 데이터로 훈련한다(연습문제 7.3)
- ``lora``: 모델을 얼리고 랭크 16, 알파 16 의 LoRA 층만 훈련한다(연습문제 7.4, 부록 E 의 코드를 쓴다)

    python exercise_experiments.py --exercise_solution lora
    python exercise_experiments.py --exercise_solution baseline mask_instructions --quick

결과는 ``instruction-data-with-response-<이름>.json``, ``gpt2-medium355M-sft-<이름>.pth``,
``loss-<이름>-plot.pdf`` 로 저장되고, ``ollama_evaluate.py --file ...`` 로 채점할 수 있다.
"""

import sys

from llm_from_scratch.appendix_e import replace_linear_with_lora
from llm_from_scratch.ch07 import load_alpaca_52k, load_instruction_data
from llm_from_scratch.ch07.gpt_instruction_finetuning import (
    apply_quick_settings,
    build_parser,
    refuse_existing_outputs,
    run,
)
from llm_from_scratch.download import DownloadError

EXERCISE_SOLUTIONS = ("baseline", "mask_instructions", "phi3_prompt", "alpaca_52k", "lora")
LORA_RANK = 16
LORA_ALPHA = 16
ALPACA_MAX_LENGTH = 512  # Alpaca 52k 에는 긴 예제가 많아 메모리를 아끼려고 이 길이에서 자른다


def count_trainable_parameters(model):
    """``requires_grad`` 가 켜진 파라미터 수."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def add_lora(model, rank=LORA_RANK, alpha=LORA_ALPHA):
    """모델의 모든 파라미터를 얼리고 모든 선형 층을 LoRA 층으로 바꾼다. 바뀐 모델을 돌려준다."""
    print(f"LoRA 적용 전 훈련 가능한 파라미터: {count_trainable_parameters(model):,}")
    for param in model.parameters():
        param.requires_grad = False
    replace_linear_with_lora(model, rank=rank, alpha=alpha)
    print(f"LoRA(랭크 {rank}, 알파 {alpha}) 적용 후 훈련 가능한 파라미터: {count_trainable_parameters(model):,}")
    return model


def load_alpaca_or_sample(data_dir, quick):
    """Alpaca 52k 를 받는다. 받을 수 없으면 빠른 모드에서는 작은 표본으로 대신하고, 아니면 오류로 끝낸다."""
    try:
        data = load_alpaca_52k(data_dir)
    except DownloadError as error:
        message = f"Alpaca 52k 데이터(alpaca_data.json)를 받을 수 없습니다.\n{error}"
        if not quick:
            sys.exit(f"{message}\n인터넷에 연결된 곳에서 다시 실행하거나, 파일을 받아 --data-dir 폴더에 두세요.")
        print(f"{message}\n빠른 모드이므로 대신 instruction-data.json 에서 뽑은 작은 표본을 Alpaca 데이터처럼 씁니다.")
        return load_instruction_data(data_dir)
    print(f"Alpaca 52k: {len(data):,}개 항목")
    return data


def run_exercise(name, args):
    """연습문제 하나를 실행하고 테스트 세트 응답(``model_response`` 가 더해진 항목들)을 돌려준다."""
    if name not in EXERCISE_SOLUTIONS:
        raise ValueError(f"알 수 없는 연습문제 {name!r} 입니다. 가능한 값: {', '.join(EXERCISE_SOLUTIONS)}")
    print(f"\n===== {name} =====")
    options = {"suffix": f"-{name}"}
    if name == "alpaca_52k":
        data = load_alpaca_or_sample(args.data_dir, args.quick)
        options["max_length"] = ALPACA_MAX_LENGTH
    else:
        data = load_instruction_data(args.data_dir)
    if name == "mask_instructions":
        options["mask_instructions"] = True
    elif name == "phi3_prompt":
        options["prompt_style"] = "phi3"
    elif name == "lora":
        options["prepare_hook"] = add_lora
    return run(args, data, **options)


def main(argv=None):
    parser = build_parser(__doc__)
    parser.add_argument(
        "--exercise_solution",
        nargs="+",
        default=["baseline"],
        choices=EXERCISE_SOLUTIONS,
        help="실행할 연습문제(여러 개를 주면 차례로 실행한다, 기본: baseline)",
    )
    args = parser.parse_args(argv)
    refuse_existing_outputs(parser, args, [f"-{name}" for name in args.exercise_solution])
    apply_quick_settings(args)
    for name in args.exercise_solution:
        run_exercise(name, args)


if __name__ == "__main__":
    main()
