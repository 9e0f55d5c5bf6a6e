"""Llama 3.2 모양 모델의 KV 캐시 생성 속도: 이 구현(generate_cached)과 transformers generate(use_cache=True).

    python ch05/07_gpt_to_llama/benchmark.py              # 줄인 Llama 3.2 모양(무작위 가중치), CPU
    python ch05/07_gpt_to_llama/benchmark.py --quick      # 아주 작은 모델로 모든 경로만 확인(몇 초)
    python ch05/07_gpt_to_llama/benchmark.py --emb-dim 2048 --n-layers 16 --hidden-dim 8192 --vocab-size 128256
                                                           # 진짜 Llama 3.2 1B 크기(메모리 약 6 GB, 느림)

transformers 의 ``LlamaForCausalLM`` 을 시드로 초기화하고 ``load_weights_into_llama`` 로 같은 가중치를 우리
``Llama3Model`` 에 옮긴다. 두 방식을 번갈아 ``--repeats`` 번 재고 중앙값을 쓴다. 두 방식이 만든 토큰이 같은지도 출력한다.
"""

import argparse
import statistics
import time

import torch
from tqdm import tqdm

from llm_from_scratch.llama import LLAMA32_CONFIG_1B, Llama3Model, generate_cached, load_weights_into_llama
from llm_from_scratch.machine import print_machine_summary, resolve_bf16
from llm_from_scratch.utils import ArgumentParser

WARMUP_TOKENS = 3


def reduced_config(args):
    """Llama 3.2 1B 설정에서 크기만 줄인 설정(GQA 비율, RoPE 기저·주파수 조정, 가중치 묶기는 그대로)."""
    return {
        **LLAMA32_CONFIG_1B,
        "vocab_size": args.vocab_size,
        "context_length": args.context_length,
        "emb_dim": args.emb_dim,
        "n_heads": args.n_heads,
        "n_kv_groups": args.n_kv_groups,
        "n_layers": args.n_layers,
        "hidden_dim": args.hidden_dim,
        "dtype": torch.float32,
    }


def build_models(cfg, seed, dtype=torch.float32):
    """같은 무작위 가중치를 가진 (transformers 모델, 우리 모델)을 ``dtype`` 으로 만든다."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()  # 줄인 문맥 길이가 원래 문맥 길이(8192)보다 짧다는 경고를 숨긴다

    freq = cfg["rope_freq"]
    hf_config = LlamaConfig(
        vocab_size=cfg["vocab_size"],
        hidden_size=cfg["emb_dim"],
        intermediate_size=cfg["hidden_dim"],
        num_hidden_layers=cfg["n_layers"],
        num_attention_heads=cfg["n_heads"],
        num_key_value_heads=cfg["n_kv_groups"],
        max_position_embeddings=cfg["context_length"],
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": cfg["rope_base"],
            "factor": freq["factor"],
            "low_freq_factor": freq["low_freq_factor"],
            "high_freq_factor": freq["high_freq_factor"],
            "original_max_position_embeddings": freq["original_context_length"],
        },
    )
    torch.manual_seed(seed)
    hf_model = LlamaForCausalLM(hf_config).eval()
    hf_model.generation_config.eos_token_id = None  # 끝 토큰이 나와도 멈추지 않고 정확히 N개를 만든다
    hf_model.generation_config.pad_token_id = 0
    # transformers 모델의 설정(config.json 과 같은 딕셔너리)을 함께 주어 헤드 배치가 맞는지 확인한다
    model = load_weights_into_llama(Llama3Model(cfg).eval(), cfg, hf_model.state_dict(), checkpoint_config=hf_config.to_dict())
    return hf_model.to(dtype), model.to(dtype)


def run_benchmark(cfg, prompt_tokens, max_new_tokens, seed, repeats, dtype=torch.float32):
    """두 방식으로 ``max_new_tokens`` 개를 만들고 방식마다 (이름, 초당 토큰들, CPU 초당 토큰들, 새 토큰)을 돌려준다.

    벽시계 시간과 함께 이 프로세스가 쓴 CPU 시간(``time.process_time``)도 잰다. 다른 작업과 CPU 를 나눠 쓰는
    머신에서는 기다린 시간이 벽시계 시간에 섞이지만 CPU 시간에는 섞이지 않는다.
    """
    hf_model, model = build_models(cfg, seed, dtype)
    idx = torch.randint(0, cfg["vocab_size"], (1, prompt_tokens), generator=torch.Generator().manual_seed(seed))

    def ours(n):
        return generate_cached(model, idx, n)

    def hf(n):
        with torch.inference_mode():
            return hf_model.generate(
                idx, attention_mask=torch.ones_like(idx), max_new_tokens=n, do_sample=False, use_cache=True
            )

    methods = [("이 구현 generate_cached", ours), ("transformers generate(use_cache=True)", hf)]
    for _, fn in methods:
        fn(WARMUP_TOKENS)  # 첫 호출의 준비 비용(메모리 할당 등)을 측정에서 뺀다
    wall_speeds, cpu_speeds = [[] for _ in methods], [[] for _ in methods]
    new_tokens = [None] * len(methods)
    for _ in tqdm(range(repeats), desc="측정", unit="회"):
        for i, (name, fn) in enumerate(methods):  # 번갈아 재서 부하의 변화가 한쪽에만 몰리지 않게 한다
            start, cpu_start = time.perf_counter(), time.process_time()
            out = fn(max_new_tokens)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            new_tokens[i] = out[0, prompt_tokens:].tolist()
            if len(new_tokens[i]) != max_new_tokens:
                raise RuntimeError(f"{name}: 새 토큰 {max_new_tokens}개를 기대했지만 {len(new_tokens[i])}개가 나왔습니다.")
            wall_speeds[i].append(max_new_tokens / seconds)
            cpu_speeds[i].append(max_new_tokens / cpu_seconds)
    return [
        (name, wall, cpu, tokens)
        for (name, _), wall, cpu, tokens in zip(methods, wall_speeds, cpu_speeds, new_tokens, strict=True)
    ]


def _positive(value):
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"1 이상의 정수여야 합니다(받은 값: {value}).")
    return number


def main(argv=None):
    parser = ArgumentParser(
        description="줄인 Llama 3.2 모양 모델(무작위 가중치, CPU)로 KV 캐시 생성 속도를 transformers 와 비교합니다."
    )
    parser.add_argument("--emb-dim", type=_positive, default=512, help="임베딩 차원 (기본: %(default)s, 1B 는 2048)")
    parser.add_argument("--n-heads", type=_positive, default=8, help="쿼리 헤드 수 (기본: %(default)s, 1B 는 32)")
    parser.add_argument("--n-kv-groups", type=_positive, default=2, help="키·값 헤드 수 (기본: %(default)s, 1B 는 8)")
    parser.add_argument("--n-layers", type=_positive, default=8, help="트랜스포머 블록 수 (기본: %(default)s, 1B 는 16)")
    parser.add_argument("--hidden-dim", type=_positive, default=2048, help="피드 포워드 차원 (기본: %(default)s, 1B 는 8192)")
    parser.add_argument("--vocab-size", type=_positive, default=32_000, help="어휘 크기 (기본: %(default)s, 1B 는 128256)")
    parser.add_argument("--context-length", type=_positive, default=1024, help="문맥 길이 (기본: %(default)s)")
    parser.add_argument("--prompt-tokens", type=_positive, default=16, help="프롬프트 토큰 수 (기본: %(default)s)")
    parser.add_argument("--max-new-tokens", type=_positive, default=128, help="새로 만들 토큰 수 (기본: %(default)s)")
    parser.add_argument("--repeats", type=_positive, default=5, help="방식마다 반복 횟수, 중앙값을 쓴다 (기본: %(default)s)")
    parser.add_argument("--num-threads", type=_positive, default=None, help="PyTorch CPU 스레드 수 (기본: PyTorch 기본값)")
    parser.add_argument("--seed", type=int, default=123, help="무작위 가중치와 프롬프트의 시드 (기본: %(default)s)")
    parser.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="가중치와 계산을 bfloat16 으로(auto: CPU 에 AMX-BF16/AVX512-BF16 이 있으면 bf16, 없으면 float32)",
    )
    parser.add_argument("--quick", action="store_true", help="아주 작은 모델과 토큰 8개로 모든 경로만 빠르게 확인")
    args = parser.parse_args(argv)

    if args.quick:
        args.emb_dim, args.n_heads, args.n_kv_groups, args.n_layers = 64, 4, 2, 2
        args.hidden_dim, args.vocab_size, args.max_new_tokens, args.repeats = 128, 256, 8, 1
    if args.emb_dim % args.n_heads or (args.emb_dim // args.n_heads) % 2:
        parser.error(f"--emb-dim({args.emb_dim})을 --n-heads({args.n_heads})로 나눈 헤드 차원은 짝수인 정수여야 합니다.")
    if args.n_heads % args.n_kv_groups:
        parser.error(f"--n-heads({args.n_heads})는 --n-kv-groups({args.n_kv_groups})로 나누어떨어져야 합니다.")
    if args.prompt_tokens + args.max_new_tokens > args.context_length:
        parser.error(
            f"--prompt-tokens({args.prompt_tokens})와 --max-new-tokens({args.max_new_tokens})의 합이 "
            f"--context-length({args.context_length})를 넘습니다."
        )
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)

    cfg = reduced_config(args)
    bf16, why = resolve_bf16(args.bf16, "cpu")
    dtype = torch.bfloat16 if bf16 else torch.float32
    print(
        f"모델: Llama 3.2 모양(emb_dim {cfg['emb_dim']}, 헤드 {cfg['n_heads']}, 키·값 헤드 {cfg['n_kv_groups']}, "
        f"층 {cfg['n_layers']}, hidden_dim {cfg['hidden_dim']}, 어휘 {cfg['vocab_size']:,}), 무작위 가중치, {'bfloat16' if bf16 else 'float32'}({why}), CPU "
        f"스레드 {torch.get_num_threads()}개"
    )
    print(f"프롬프트 {args.prompt_tokens} 토큰, 새 토큰 {args.max_new_tokens}개, 반복 {args.repeats}번(중앙값)", flush=True)
    print_machine_summary()
    results = run_benchmark(cfg, args.prompt_tokens, args.max_new_tokens, args.seed, args.repeats, dtype)

    width = max(len(name) for name, *_ in results)
    for name, wall, cpu, _ in results:
        print(
            f"{name:<{width}}  {statistics.median(wall):8.1f} 토큰/초, CPU 1초당 {statistics.median(cpu):8.1f} 토큰 "
            f"(측정값: {', '.join(f'{v:.1f}' for v in wall)})"
        )
    (_, ours_wall, ours_cpu, ours_tokens), (_, hf_wall, hf_cpu, hf_tokens) = results
    print(
        f"이 구현 / transformers: 벽시계 {statistics.median(ours_wall) / statistics.median(hf_wall):.2f}배, "
        f"CPU 시간 {statistics.median(ours_cpu) / statistics.median(hf_cpu):.2f}배"
    )
    print(f"두 방식이 만든 토큰이 같은가: {'예' if ours_tokens == hf_tokens else '아니오'}")


if __name__ == "__main__":
    main()
