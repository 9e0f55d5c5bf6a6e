"""4장 보너스: GPT 모델의 FLOPs 를 세고, 모델 FLOPs 활용률(MFU)과 들어가는 최대 배치 크기를 구한다.

- ``count_forward_flops``: ``torch.utils.flop_counter.FlopCounterMode`` 로 순전파 FLOPs 를 센다. 모델을 메타 장치
  (모양만 있고 데이터는 없는 장치)에 만들면 1.5B 모델도 메모리와 계산 없이 바로 센다.
- ``analytic_linear_flops``, ``analytic_attention_flops``: 같은 값을 식으로 계산한다.
- ``train_tokens_per_second``: 훈련 단계(순전파+역전파+AdamW 또는 SGD)의 초당 토큰 수.
- MFU 의 분모(행렬 곱 최대 FLOP/s)와 식은 5장 훈련 속도 보너스와 함께 쓰는 ``llm_from_scratch.mfu`` 에 있다.
- ``activation_bytes_per_sample``, ``estimate_max_batch``: 메모리 어림으로 최대 배치 크기(CPU),
  ``find_max_batch_cuda``: 실제로 늘려 보며 찾기(CUDA).
"""

import time
from collections import Counter

import torch
from torch.utils.flop_counter import FlopCounterMode

from llm_from_scratch.ch04 import GPT2_MODEL_CONFIGS, GPT_CONFIG_124M, GPTModel

__all__ = [
    "activation_bytes_per_sample",
    "analytic_attention_flops",
    "analytic_linear_flops",
    "count_forward_flops",
    "estimate_max_batch",
    "find_max_batch_cuda",
    "gpt2_config",
    "train_tokens_per_second",
]


def gpt2_config(name, **overrides):
    """``GPT2_MODEL_CONFIGS`` 의 이름(예: ``"gpt2-small (124M)"``)으로 전체 설정을 만든다. 드롭아웃은 0."""
    if name not in GPT2_MODEL_CONFIGS:
        raise KeyError(f"알 수 없는 모델 크기 {name!r} 입니다. 가능한 이름: {', '.join(GPT2_MODEL_CONFIGS)}")
    return {**GPT_CONFIG_124M, **GPT2_MODEL_CONFIGS[name], "drop_rate": 0.0, **overrides}


def _check_sizes(batch_size, num_tokens, cfg):
    if batch_size < 1 or num_tokens < 1:
        raise ValueError(
            f"batch_size 와 num_tokens 는 1 이상이어야 합니다(batch_size={batch_size}, num_tokens={num_tokens})."
        )
    if num_tokens > cfg["context_length"]:
        raise ValueError(f"num_tokens {num_tokens} 가 모델의 context_length {cfg['context_length']} 보다 깁니다.")


def analytic_linear_flops(cfg, batch_size, num_tokens):
    """선형 층(쿼리·키·값·출력 투영, 피드 포워드, 출력 헤드)의 순전파 FLOPs = 2·B·T·(12·L·d² + d·V).

    곱하기와 더하기를 하나씩 센다(행렬 곱 (m×k)·(k×n) = 2·m·k·n). 블록 하나의 선형 층 가중치는
    4·d²(어텐션) + 8·d²(피드 포워드) = 12·d² 개다.
    """
    d, n_layers, vocab = cfg["emb_dim"], cfg["n_layers"], cfg["vocab_size"]
    return 2 * batch_size * num_tokens * (12 * n_layers * d * d + d * vocab)


def analytic_attention_flops(cfg, batch_size, num_tokens):
    """어텐션 점수(Q·Kᵀ)와 문맥 벡터(가중치·V) 행렬 곱의 FLOPs = 4·B·L·T²·d (마스크로 가려지는 절반도 계산한다)."""
    return 4 * batch_size * cfg["n_layers"] * num_tokens * num_tokens * cfg["emb_dim"]


def count_forward_flops(cfg, batch_size, num_tokens, device="meta"):
    """``FlopCounterMode`` 로 센 순전파 FLOPs 와 연산별 내역(``{"aten.addmm": ..., ...}``)."""
    _check_sizes(batch_size, num_tokens, cfg)
    with torch.device(device):
        model = GPTModel(cfg).eval()
        idx = torch.zeros(batch_size, num_tokens, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(idx)
    by_op = Counter()
    for op, flops in counter.get_flop_counts()["Global"].items():
        by_op[str(op).removesuffix(".default")] += flops
    return counter.get_total_flops(), dict(by_op)


def train_tokens_per_second(cfg, batch_size, num_tokens, steps=2, warmup=1, device="cpu", seed=123, optimizer="adamw"):
    """훈련 단계(순전파, 크로스 엔트로피, 역전파, 가중치 갱신)를 돌려 초당 토큰 수를 잰다.

    ``optimizer="sgd"`` 는 상태가 없는 SGD 로 갱신한다. AdamW 의 상태 두 벌(파라미터 2배 메모리)이 메모리에 들어가지
    않는 큰 모델도 잴 수 있고, 행렬 곱 FLOPs(순전파·역전파)는 옵티마이저와 상관없이 같다.
    """
    _check_sizes(batch_size, num_tokens, cfg)
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps 는 1 이상, warmup 은 0 이상이어야 합니다(steps={steps}, warmup={warmup}).")
    if optimizer not in ("adamw", "sgd"):
        raise ValueError(f"optimizer 는 'adamw' 나 'sgd' 여야 합니다(받은 값: {optimizer!r}).")
    torch.manual_seed(seed)
    model = GPTModel(cfg).to(device).train()
    if optimizer == "adamw":
        update = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    else:
        update = torch.optim.SGD(model.parameters(), lr=1e-4)
    idx = torch.randint(0, cfg["vocab_size"], (batch_size, num_tokens + 1), device=device)
    inputs, targets = idx[:, :-1], idx[:, 1:]

    def step():
        update.zero_grad(set_to_none=True)
        logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        loss.backward()
        update.step()
        if inputs.device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size * num_tokens / (time.perf_counter() - start)


def activation_bytes_per_sample(cfg, num_tokens, dtype=torch.float32):
    """샘플 하나를 순전파할 때 역전파를 위해 저장되는 텐서의 바이트 수. 메타 장치에서 세므로 계산은 하지 않는다.

    같은 저장 공간을 쓰는 텐서(뷰 포함)는 한 번만 센다. 파라미터는 빼고 센다(따로 고정 메모리로 센다).
    """
    _check_sizes(1, num_tokens, cfg)
    with torch.device("meta"):
        model = GPTModel(cfg).to(dtype).train()
        idx = torch.zeros(1, num_tokens, dtype=torch.long)
    parameters = {p.untyped_storage()._cdata for p in model.parameters()}
    seen, total = set(), 0

    def pack(tensor):
        nonlocal total
        # 같은 저장 공간(뷰 포함)은 한 번만 센다. 메타 텐서도 저장 공간 객체는 있어서 구별할 수 있다
        storage = tensor.untyped_storage()
        if storage._cdata not in parameters and storage._cdata not in seen:
            seen.add(storage._cdata)
            total += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        logits = model(idx)
    # 크로스 엔트로피가 로짓의 소프트맥스를 한 벌 더 저장한다
    return total + logits.numel() * logits.element_size()


def estimate_max_batch(cfg, num_tokens, memory_bytes, dtype=torch.float32, optimizer="adamw"):
    """메모리 ``memory_bytes`` 에 들어가는 최대 배치 크기의 어림값과 그 내역.

    AdamW 훈련에는 파라미터, 그레이디언트, 옵티마이저 상태 두 벌 = 파라미터 4벌이 고정으로 들고(상태 없는 SGD 는
    2벌), 나머지를 샘플당 활성화 메모리로 나눈다. 임시 버퍼와 단편화는 빠져 있으므로 실제로는 이보다 조금 작다.
    """
    if optimizer not in ("adamw", "sgd"):
        raise ValueError(f"optimizer 는 'adamw' 나 'sgd' 여야 합니다(받은 값: {optimizer!r}).")
    with torch.device("meta"):
        num_params = sum(p.numel() for p in GPTModel(cfg).parameters())
    element = torch.empty(0, dtype=dtype).element_size()
    fixed = (4 if optimizer == "adamw" else 2) * num_params * element
    per_sample = activation_bytes_per_sample(cfg, num_tokens, dtype)
    max_batch = max(0, int((memory_bytes - fixed) // per_sample))
    return {"max_batch": max_batch, "fixed_bytes": fixed, "per_sample_bytes": per_sample, "num_params": num_params}


def find_max_batch_cuda(cfg, num_tokens, device="cuda", upper=4096):
    """CUDA 에서 훈련 단계를 실제로 돌려 보며 메모리 부족(OOM) 없이 되는 가장 큰 배치 크기를 찾는다(2배씩 늘린 뒤 이분 탐색)."""
    if not torch.cuda.is_available():
        raise RuntimeError("CUDA 를 쓸 수 없습니다. CPU 에서는 estimate_max_batch() 로 어림하세요.")

    def fits(batch_size):
        try:
            train_tokens_per_second(cfg, batch_size, num_tokens, steps=1, warmup=0, device=device)
            return True
        except torch.OutOfMemoryError:
            return False
        finally:
            torch.cuda.empty_cache()

    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= upper and fits(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low
