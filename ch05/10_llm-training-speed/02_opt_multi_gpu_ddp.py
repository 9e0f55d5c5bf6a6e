"""5장 보너스: 최적화한 훈련을 여러 GPU(또는 여러 CPU 프로세스)에 DistributedDataParallel(DDP)로 나눠 돌린다.

프로세스는 ``torchrun`` 이 띄운다. 프로세스마다 모델 사본을 하나씩 들고, ``DistributedSampler`` 가 나눠 준 서로 다른
배치로 순전파·역전파를 한 뒤, DDP 가 역전파 중에 그레이디언트를 모든 프로세스의 평균으로 맞춘다(all-reduce). 그래서
옵티마이저 스텝 뒤에도 모든 사본의 가중치가 같고, 한 스텝에 (프로세스 수 x 배치) 개의 샘플을 훈련한다.
GPU 가 있으면 프로세스마다 GPU 하나와 NCCL 백엔드를, 없으면 CPU 와 gloo 백엔드를 쓴다(CPU 에서는 코어를 나눠 쓰므로
빨라지지 않는다. 여러 GPU 에서 쓰는 코드를 GPU 없이 시험해 보는 용도다).

    torchrun --nproc_per_node=2 02_opt_multi_gpu_ddp.py                 # GPU 2개(또는 CPU 프로세스 2개)
    torchrun --nproc_per_node=2 02_opt_multi_gpu_ddp.py --quick --device cpu
    python -m torch.distributed.run --standalone --nproc_per_node 2 02_opt_multi_gpu_ddp.py --quick

끝나면 0번 프로세스가 모든 프로세스의 가중치 체크섬을 모아 같은지 확인하고, 전체 초당 훈련 토큰을 출력한다.
"""

import contextlib
import datetime
import os
import time

import torch
import torch.distributed as dist
from speed_utils import (
    add_common_arguments,
    add_optimization_arguments,
    auto_flag_reasons,
    build_optimized,
    resolve_flags,
    run_settings,
    tf32_matmul,
)
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from llm_from_scratch.appendix_a import close_process_group
from llm_from_scratch.ch02 import GPTDatasetV1, load_the_verdict
from llm_from_scratch.ch05 import calc_loss_batch
from llm_from_scratch.utils import QUICK, ArgumentParser, positive_int, synchronize

LAUNCH_HINT = "torchrun --nproc_per_node=2 02_opt_multi_gpu_ddp.py"


def parse_args(argv=None):
    parser = ArgumentParser(description="최적화한 훈련을 DDP 로 여러 프로세스에 나눠 돌린다(torchrun 으로 실행).")
    add_common_arguments(parser)
    add_optimization_arguments(parser)
    parser.add_argument("--epochs", type=positive_int, default=None, help="에포크 수(기본: 1, quick 3)")
    return parser.parse_args(argv)


def read_torchrun_env(name):
    """torchrun 이 프로세스마다 정해 주는 환경 변수(RANK, LOCAL_RANK, WORLD_SIZE)를 정수로 읽는다."""
    value = os.environ.get(name)
    if value is None:
        raise SystemExit(f"환경 변수 {name} 가 없습니다. 이 스크립트는 torchrun 으로 실행하세요: {LAUNCH_HINT}")
    return int(value)


def make_distributed_loader(context_length, batch_size, data_dir, seed=123, pin_memory=False):
    """"The Verdict" 앞 90%를 겹치지 않는 샘플로 자르고, 프로세스마다 서로 다른 몫을 주는 로더를 만든다."""
    import tiktoken

    # 머신마다 한 프로세스(LOCAL_RANK 0)만 파일을 받아 두고, 나머지는 그 뒤에 읽는다(같은 .part 에 함께 쓰지 않게)
    first = int(os.environ.get("LOCAL_RANK", "0")) == 0
    if not first:
        dist.barrier()
    text = load_the_verdict(data_dir)
    if first:
        dist.barrier()
    dataset = GPTDatasetV1(
        text[: int(0.9 * len(text))], tiktoken.get_encoding("gpt2"), context_length, stride=context_length
    )
    # 샘플 수가 프로세스 수로 나눠떨어지지 않으면 남는 것을 버려서 모든 프로세스가 같은 수의 스텝을 돈다
    sampler = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, pin_memory=pin_memory)
    if len(loader) == 0:
        raise SystemExit(
            f"프로세스가 {dist.get_world_size()}개면 프로세스마다 샘플이 {len(sampler)}개뿐이라 배치 {batch_size}를 "
            "만들 수 없습니다. --batch-size 나 --context-length 를 줄이거나 프로세스 수를 줄이세요."
        )
    return loader


def weight_checksum(model):
    """가중치 전체의 float64 체크섬 세 개(합, 제곱합, 위치를 곱한 합). 사본이 같으면 세 값이 비트까지 같다."""
    flat = torch.cat([p.detach().double().flatten().cpu() for p in model.parameters()])
    position = torch.arange(flat.numel(), dtype=torch.float64) / flat.numel()
    return torch.stack([flat.sum(), (flat * flat).sum(), (flat * position).sum()])


def main(argv=None):
    args = parse_args(argv)
    rank, local_rank, world_size = (read_torchrun_env(name) for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    quick = args.quick or QUICK
    settings = run_settings(quick, batch_size=args.batch_size, context_length=args.context_length)
    epochs = args.epochs or (3 if quick else 1)

    use_cuda = args.device in (None, "auto", "cuda") and torch.cuda.is_available()
    if args.device == "cuda" and not use_cuda:
        raise SystemExit("--device cuda 를 골랐지만 이 머신에서는 CUDA 를 쓸 수 없습니다. --device cpu 를 쓰세요.")
    if args.device == "mps":
        raise SystemExit("DDP 는 MPS 를 지원하지 않습니다. --device cpu 를 쓰세요.")
    if use_cuda:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))  # 프로세스들이 코어를 나눠 쓴다
    flags = resolve_flags(args, device)
    dist.init_process_group(
        backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world_size, timeout=datetime.timedelta(minutes=10)
    )
    try:
        train(args, settings, device, flags, epochs, rank, world_size)
        # 모든 프로세스가 끝난 뒤 함께 그룹을 닫는다(먼저 닫은 프로세스가 다른 프로세스의 종료를 깨뜨리지 않게)
        dist.barrier()
    finally:
        close_process_group()  # 부록 A: gloo 작업 스레드까지 끝낸 뒤 파이썬이 종료되게


def train(args, settings, device, flags, epochs, rank, world_size):
    cfg = settings["cfg"]
    loader = make_distributed_loader(
        cfg["context_length"], settings["batch_size"], args.data_dir, pin_memory=flags["pin_memory"]
    )
    model, optimizer = build_optimized(settings, device, flags)  # 같은 시드라 모든 사본이 같은 가중치로 시작한다
    ddp_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    train_model = torch.compile(ddp_model) if flags["compile"] else ddp_model
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16) if flags["bf16"] else contextlib.nullcontext()
    )
    if rank == 0:
        print(f"프로세스 {world_size}개, 장치 {device.type}, 백엔드 {dist.get_backend()}")
        for reason in auto_flag_reasons(args, device):
            print("자동 선택 -", reason)
        print("켠 최적화:", ", ".join(name for name, on in flags.items() if on) or "없음")
        print(
            f"에포크 {epochs}, 에포크당 스텝 {len(loader)}, 스텝당 샘플 {world_size} x {settings['batch_size']} "
            f"(문맥 {cfg['context_length']})"
        )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    tokens = 0
    start = time.perf_counter()
    with tf32_matmul(flags["tf32"]):
        for epoch in range(epochs):
            loader.sampler.set_epoch(epoch)  # 에포크마다 다르게 섞되, 모든 프로세스가 같은 순서로 나눈다
            loss_sum = torch.zeros((), device=device)
            for input_batch, target_batch in loader:
                non_blocking = flags["pin_memory"]
                input_batch = input_batch.to(device, non_blocking=non_blocking)
                target_batch = target_batch.to(device, non_blocking=non_blocking)
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    loss = calc_loss_batch(input_batch, target_batch, train_model, device)
                loss.backward()  # DDP 가 여기서 모든 프로세스의 그레이디언트를 평균한다
                optimizer.step()
                loss_sum += loss.detach()
                tokens += input_batch.numel() * world_size
            dist.all_reduce(loss_sum)  # 에포크 평균 손실: 모든 프로세스의 모든 배치에 대한 평균
            if rank == 0:
                print(f"에포크 {epoch + 1}/{epochs}: 평균 훈련 손실 {loss_sum.item() / (len(loader) * world_size):.3f}")
    synchronize(device)
    seconds = time.perf_counter() - start

    checksums = [torch.zeros(3, dtype=torch.float64) for _ in range(world_size)]
    dist.all_gather_object(checksums, weight_checksum(model))
    if rank == 0:
        for other, checksum in enumerate(checksums):
            print(f"프로세스 {other} 가중치 체크섬: {', '.join(f'{value:.12e}' for value in checksum.tolist())}")
        if not all(torch.equal(checksum, checksums[0]) for checksum in checksums):
            raise RuntimeError("프로세스마다 가중치가 다릅니다. DDP 의 그레이디언트 동기화가 빠진 곳이 있는지 확인하세요.")
        print(f"모든 프로세스({world_size}개)의 가중치가 같습니다.")
        print(f"전체 초당 훈련 토큰 {tokens / seconds:,.0f} ({seconds:.1f}초, 토큰 {tokens:,}개)")
    if device.type == "cuda":
        peak = torch.tensor(torch.cuda.max_memory_allocated(device) / 1e9, device=device)
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
        if rank == 0:
            print(f"GPU 최대 할당(프로세스 중 가장 큰 값): {peak.item():.2f} GB")


if __name__ == "__main__":
    main()
