"""KV 캐시 생성 속도 측정: 캐시 없음, KV 캐시, transformers 의 캐시 생성을 같은 가중치로 한 번에 잰다.

    python ch04/03_kv-cache/benchmark.py            # 124M 설정, 새 토큰 200개, CPU
    python ch04/03_kv-cache/benchmark.py --quick    # 아주 작은 모델로 모든 경로만 확인
    python ch04/03_kv-cache/benchmark.py --bf16 off # 가중치를 float32 로(기본 auto: bf16 행렬 곱을 하드웨어로 하면 bf16)

가중치는 무작위다. transformers 의 ``GPT2LMHeadModel`` 을 시드로 초기화하고, 5장의
``load_hf_weights_into_gpt`` 로 같은 가중치를 우리 모델에 옮긴다.
"""

import time

import tiktoken
import torch
from gpt_with_kv_cache import GPTModelWithKVCache, generate_text_simple_cached
from transformers import GPT2Config, GPT2LMHeadModel

from llm_from_scratch.ch04 import GPT_CONFIG_124M, generate_text_simple
from llm_from_scratch.ch05 import load_hf_weights_into_gpt
from llm_from_scratch.machine import print_machine_summary, resolve_bf16
from llm_from_scratch.utils import QUICK, ArgumentParser, device_name, get_device, nonempty_text, positive_int

TINY_CONFIG = {**GPT_CONFIG_124M, "context_length": 64, "emb_dim": 64, "n_heads": 4, "n_layers": 2}
WARMUP_TOKENS = 3


def build_models(cfg, seed, device, dtype=torch.float32):
    """같은 무작위 가중치를 가진 (transformers 모델, 우리 KV 캐시 모델)을 ``dtype`` 으로 만든다."""
    hf_config = GPT2Config(
        vocab_size=cfg["vocab_size"],
        n_positions=cfg["context_length"],
        n_embd=cfg["emb_dim"],
        n_layer=cfg["n_layers"],
        n_head=cfg["n_heads"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    torch.manual_seed(seed)
    hf_model = GPT2LMHeadModel(hf_config).eval()
    hf_model.generation_config.eos_token_id = None  # 끝 토큰이 나와도 멈추지 않고 정확히 N개를 만든다
    hf_model.generation_config.pad_token_id = cfg["vocab_size"] - 1

    # GPT-2 체크포인트처럼 쿼리·키·값에 편향이 있다
    model = GPTModelWithKVCache({**cfg, "drop_rate": 0.0, "qkv_bias": True})
    load_hf_weights_into_gpt(model, hf_model.state_dict())
    return hf_model.to(device, dtype), model.to(device, dtype).eval()


def timed(fn, *args):
    """``fn(*args)`` 를 한 번 실행하고 (CPU 로 옮긴 결과, 걸린 초)를 돌려준다."""
    start = time.perf_counter()
    result = fn(*args).cpu()  # GPU 라면 여기서 계산이 끝나기를 기다린다
    return result, time.perf_counter() - start


def run_benchmark(cfg, prompt, max_new_tokens, seed, device, repeats=1, dtype=torch.float32):
    """세 방식으로 ``max_new_tokens`` 개를 만들고 방식마다 (이름, 초당 토큰, 생성 토큰)을 돌려준다.

    ``repeats`` 번 돌려 가장 빠른 값을 쓴다. 방식을 번갈아 돌리므로 다른 프로세스 때문에 생기는 부하의
    변화가 한 방식에만 몰리지 않는다.
    """
    hf_model, model = build_models(cfg, seed, device, dtype)
    tokenizer = tiktoken.get_encoding("gpt2")
    idx = torch.tensor([tokenizer.encode(prompt)], device=device)
    context_size = cfg["context_length"]

    def no_cache(n):
        return generate_text_simple(model, idx, n, context_size)

    def kv_cache(n):
        return generate_text_simple_cached(model, idx, n, context_size)

    def hf_cache(n):
        with torch.no_grad():
            return hf_model.generate(
                idx, attention_mask=torch.ones_like(idx), max_new_tokens=n, do_sample=False, use_cache=True
            )

    methods = [
        ("캐시 없음 (generate_text_simple)", no_cache),
        ("KV 캐시 (generate_text_simple_cached)", kv_cache),
        ("transformers generate(use_cache=True)", hf_cache),
    ]
    for _, fn in methods:
        fn(WARMUP_TOKENS)  # 첫 호출의 준비 비용(메모리 할당 등)을 측정에서 뺀다
    best_seconds = [float("inf")] * len(methods)
    new_tokens = [None] * len(methods)
    for _ in range(repeats):
        for i, (name, fn) in enumerate(methods):
            out, seconds = timed(fn, max_new_tokens)
            new_tokens[i] = out[0, idx.shape[1] :].tolist()
            if len(new_tokens[i]) != max_new_tokens:
                raise RuntimeError(
                    f"{name}: 새 토큰 {max_new_tokens}개를 기대했지만 {len(new_tokens[i])}개가 나왔습니다."
                )
            best_seconds[i] = min(best_seconds[i], seconds)
    return [
        (name, max_new_tokens / seconds, tokens)
        for (name, _), seconds, tokens in zip(methods, best_seconds, new_tokens, strict=True)
    ]


def main():
    parser = ArgumentParser(description="KV 캐시 생성 속도를 캐시 없음, transformers 와 비교한다.")
    parser.add_argument("--prompt", type=nonempty_text, default="Hello, I am", help="시작 문장 (기본: %(default)s)")
    parser.add_argument(
        "--max-new-tokens", type=positive_int, default=200, help="새로 만들 토큰 수, 1 이상 (기본: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=123, help="무작위 가중치의 시드 (기본: %(default)s)")
    parser.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda, mps, auto (기본: %(default)s)")
    parser.add_argument(
        "--num-threads", type=positive_int, default=None, help="PyTorch CPU 스레드 수 (기본: PyTorch 기본값)"
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=1, help="방식마다 반복 횟수, 가장 빠른 값을 쓴다 (기본: %(default)s)"
    )
    parser.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="가중치와 계산을 bfloat16 으로(auto: bf16 행렬 곱을 하드웨어로 하는 CUDA GPU 와 AMX-BF16/AVX512-BF16 CPU)",
    )
    parser.add_argument("--quick", action="store_true", help="아주 작은 모델과 토큰 20개로 빠르게 확인")
    args = parser.parse_args()

    quick = args.quick or QUICK
    max_new_tokens = 20 if quick else args.max_new_tokens
    if max_new_tokens < 1:
        parser.error(f"--max-new-tokens 는 1 이상이어야 합니다(받은 값: {max_new_tokens}).")
    if args.repeats < 1:
        parser.error(f"--repeats 는 1 이상이어야 합니다(받은 값: {args.repeats}).")
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    cfg = TINY_CONFIG if quick else GPT_CONFIG_124M
    device = get_device(args.device)
    bf16, why = resolve_bf16(args.bf16, device)
    dtype = torch.bfloat16 if bf16 else torch.float32

    print(
        f"모델: {'아주 작은 설정(quick)' if quick else 'GPT-2 124M 설정'}, 무작위 가중치, 장치: {device}, "
        f"CPU 스레드: {torch.get_num_threads()}"
    )
    print(f"정밀도: {'bfloat16' if bf16 else 'float32'} ({why})")
    print(f"프롬프트: {args.prompt!r}, 새 토큰: {max_new_tokens}개, 반복: {args.repeats}번", flush=True)
    print_machine_summary(device)
    results = run_benchmark(cfg, args.prompt, max_new_tokens, args.seed, device, args.repeats, dtype)

    width = max(len(name) for name, _, _ in results)
    for name, tokens_per_sec, _ in results:
        print(f"{name:<{width}}  {tokens_per_sec:9.1f} 토큰/초")
    (_, no_cache_tps, no_cache_tokens), (_, kv_tps, kv_tokens), (_, hf_tps, hf_tokens) = results
    print(f"KV 캐시 / 캐시 없음: {kv_tps / no_cache_tps:.2f}배")
    print(f"KV 캐시 / transformers: {kv_tps / hf_tps:.2f}배")
    print(
        f"생성된 토큰이 같은가: 캐시 없음 = KV 캐시 {'예' if kv_tokens == no_cache_tokens else '아니오'}, "
        f"KV 캐시 = transformers {'예' if kv_tokens == hf_tokens else '아니오'}"
    )
    if bf16 and not kv_tokens == no_cache_tokens == hf_tokens:
        print(
            "bfloat16 에서는 세 방식의 계산 순서(캐시로 나눠 계산, 커널)가 달라 반올림이 다르므로, 로짓이 거의 같은 두 "
            "토큰 사이에서 고르는 토큰이 갈릴 수 있습니다. --bf16 off 로 float32 에서 비교해 보세요."
        )


if __name__ == "__main__":
    main()
