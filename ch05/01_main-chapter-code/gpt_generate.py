"""5장 생성 스크립트: OpenAI GPT-2 사전 훈련 가중치를 불러와 프롬프트 뒤를 이어 쓴다(책 5.5절).

python gpt_generate.py --model-size 124M --prompt "Every effort moves you"
python gpt_generate.py --source hf          # TensorFlow 없이 Hugging Face safetensors 로
python gpt_generate.py --quick              # 작은 무작위 체크포인트로 코드 경로만 확인 (LLMFS_QUICK=1 과 같음)
"""

import json
from pathlib import Path

import tiktoken

from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch05 import (
    GPT2_HF_MODEL_NAMES,
    GPT2_SIZES,
    download_and_load_gpt2,
    generate,
    gpt2_config_from_hparams,
    load_gpt2_safetensors,
    load_hf_weights_into_gpt,
    load_weights_into_gpt,
    text_to_token_ids,
    token_ids_to_text,
    write_synthetic_gpt2_checkpoint,
    write_synthetic_gpt2_safetensors,
)
from llm_from_scratch.utils import (
    QUICK,
    ArgumentParser,
    device_name,
    get_device,
    nonempty_text,
    nonnegative_float,
    nonnegative_int,
    set_seed,
)

HF_NAME_FOR_SIZE = {size: name for name, size in GPT2_HF_MODEL_NAMES.items()}


def load_gpt2(model_size, source, models_dir, quick):
    """고른 크기·형식의 GPT-2 가중치를 실은 GPTModel 을 돌려준다. ``quick`` 이면 작은 무작위 체크포인트를 쓴다."""
    if source == "tf":
        if quick:
            write_synthetic_gpt2_checkpoint(models_dir, model_size)
        settings, params = download_and_load_gpt2(model_size, models_dir)
        model = GPTModel(gpt2_config_from_hparams(settings))
        load_weights_into_gpt(model, params)
        return model

    model_name = HF_NAME_FOR_SIZE[model_size]
    if quick:
        write_synthetic_gpt2_safetensors(Path(models_dir) / model_name / "model.safetensors")
    state_dict = load_gpt2_safetensors(model_name, models_dir)
    config = json.loads((Path(models_dir) / model_name / "config.json").read_text(encoding="utf-8"))
    model = GPTModel(gpt2_config_from_hparams(config))
    load_hf_weights_into_gpt(model, state_dict, config)
    return model


def main(argv=None):
    parser = ArgumentParser(description="OpenAI GPT-2 가중치로 텍스트를 생성한다(책 5.5절).")
    parser.add_argument("--model-size", default="124M", choices=GPT2_SIZES, help="모델 크기 (기본: 124M)")
    parser.add_argument(
        "--source",
        default="tf",
        choices=("tf", "hf"),
        help="tf: OpenAI TensorFlow 체크포인트(책), hf: Hugging Face safetensors (기본: tf)",
    )
    parser.add_argument("--prompt", type=nonempty_text, default="Every effort moves you", help="이어 쓸 문장")
    parser.add_argument("--max-new-tokens", type=nonnegative_int, default=25, help="새로 만들 토큰 수 (기본: 25)")
    parser.add_argument(
        "--temperature", type=nonnegative_float, default=1.5, help="온도, 0 이면 그리디 디코딩 (기본: 1.5)"
    )
    parser.add_argument(
        "--top-k", type=nonnegative_int, default=50, help="상위 k 개 토큰에서만 고른다, 0 이면 제한 없음 (기본: 50)"
    )
    parser.add_argument("--seed", type=int, default=123, help="난수 시드 (기본: 123)")
    parser.add_argument("--device", type=device_name, default=None, help="auto, cpu, cuda, mps (기본: 자동 선택)")
    parser.add_argument("--models-dir", default="gpt2", help="가중치를 둘 폴더 (기본: gpt2)")
    parser.add_argument(
        "--quick", action="store_true", default=QUICK, help="진짜 가중치 대신 작은 무작위 체크포인트를 쓴다"
    )
    args = parser.parse_args(argv)

    set_seed(args.seed)
    device = get_device(args.device)
    model = load_gpt2(args.model_size, args.source, args.models_dir, args.quick).to(device).eval()
    vocab_size = model.tok_emb.num_embeddings
    if args.top_k > vocab_size:
        parser.error(f"--top-k 는 0(제한 없음)이거나 1..{vocab_size}(어휘 크기) 사이여야 합니다(받은 값: {args.top_k}).")
    if args.quick:
        print("빠른 모드: 진짜 GPT-2 가 아니라 작은 무작위 체크포인트라서 생성된 문장은 의미가 없습니다.")

    tokenizer = tiktoken.get_encoding("gpt2")
    set_seed(args.seed)
    token_ids = generate(
        model,
        text_to_token_ids(args.prompt, tokenizer).to(device),
        max_new_tokens=args.max_new_tokens,
        context_size=model.pos_emb.num_embeddings,
        temperature=args.temperature,
        top_k=args.top_k or None,
    )
    print("출력 텍스트:\n", token_ids_to_text(token_ids.cpu(), tokenizer))


if __name__ == "__main__":
    main()
