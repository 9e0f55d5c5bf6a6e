"""4장 정리 스크립트: GPT 모델을 만들고, 훈련하지 않은 상태로 프롬프트 뒤에 토큰을 이어 붙인다.

    python ch04/01_main-chapter-code/gpt.py
    python ch04/01_main-chapter-code/gpt.py --prompt "Every effort moves you" --max-new-tokens 20

가중치가 무작위이므로 이어지는 텍스트는 뜻이 없다. 5장에서 훈련하면 달라진다.
"""


import torch

from llm_from_scratch.ch04 import GPT_CONFIG_124M, GPTModel, generate_text_simple
from llm_from_scratch.download import get_gpt2_encoding
from llm_from_scratch.utils import QUICK, ArgumentParser, device_name, get_device, nonempty_text, nonnegative_int

# --quick(또는 LLMFS_QUICK=1)일 때 쓰는 아주 작은 설정: 모든 코드 경로를 몇 초 안에 돈다
TINY_CONFIG = {**GPT_CONFIG_124M, "context_length": 64, "emb_dim": 64, "n_heads": 4, "n_layers": 2}


def main():
    parser = ArgumentParser(description="훈련하지 않은 GPT 모델로 프롬프트 뒤에 토큰을 생성한다.")
    parser.add_argument("--prompt", type=nonempty_text, default="Hello, I am", help="시작 문장 (기본: %(default)s)")
    parser.add_argument(
        "--max-new-tokens", type=nonnegative_int, default=10, help="새로 만들 토큰 수, 0 이상 (기본: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=123, help="가중치 초기화 시드 (기본: %(default)s)")
    parser.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda, mps, auto (기본: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="아주 작은 모델로 빠르게 확인")
    args = parser.parse_args()

    cfg = TINY_CONFIG if args.quick or QUICK else GPT_CONFIG_124M
    device = get_device(args.device)
    torch.manual_seed(args.seed)
    model = GPTModel(cfg).to(device)
    model.eval()  # 드롭아웃을 끈다

    tokenizer = get_gpt2_encoding()
    # 프롬프트의 <|endoftext|> 는 5장 text_to_token_ids 처럼 문서 끝 토큰(50256) 하나로 인코딩한다
    encoded = tokenizer.encode(args.prompt, allowed_special={"<|endoftext|>"})
    encoded_tensor = torch.tensor(encoded, device=device).unsqueeze(0)

    num_params = sum(p.numel() for p in model.parameters())
    print(f"모델: emb_dim {cfg['emb_dim']}, 층 {cfg['n_layers']}개, 헤드 {cfg['n_heads']}개, 매개변수 {num_params:,}개")
    print(f"입력 텍스트: {args.prompt!r}")
    print(f"인코딩된 입력: {encoded}")
    print(f"입력 텐서 모양: {list(encoded_tensor.shape)}")

    out = generate_text_simple(model, encoded_tensor, args.max_new_tokens, cfg["context_length"])
    out_ids = out.squeeze(0).tolist()
    print(f"출력 토큰 ID: {out_ids}")
    print(f"출력 길이: {len(out_ids)}")
    print(f"출력 텍스트: {tokenizer.decode(out_ids)!r}")


if __name__ == "__main__":
    main()
