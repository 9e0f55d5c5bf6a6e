"""부록 A.9.3: DistributedDataParallel(DDP)로 훈련하기 — torchrun으로 띄우는 판.

프로세스는 torchrun이 띄우고, 각 프로세스에 ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``를
환경 변수로 알려 준다. 이 스크립트는 그 값을 읽어 ``llm_from_scratch.appendix_a``의 ``ddp_train``을 부른다.
GPU가 있으면 NCCL, 없으면 gloo 백엔드를 쓴다. 책처럼 머신(노드) 하나에서 돌리는 것을 전제로 ``LOCAL_RANK``를
프로세스 번호로 쓴다. 아주 작은 작업이라 따로 줄인 QUICK 모드는 없다.

    torchrun --nproc_per_node=2 DDP-script-torchrun.py
    python -m torch.distributed.run --standalone --nproc_per_node 2 DDP-script-torchrun.py --device cpu
"""

import os

import torch

from llm_from_scratch.appendix_a import ddp_train
from llm_from_scratch.utils import ArgumentParser, positive_int


def parse_args():
    parser = ArgumentParser(description="장난감 데이터로 DDP 훈련을 해 본다(torchrun 판).")
    parser.add_argument(
        "--device",
        choices=("auto", "cuda", "cpu"),
        default="auto",
        help="auto: CUDA 가 있으면 GPU(NCCL), 없으면 CPU(gloo) (기본값: auto)",
    )
    parser.add_argument("--num-epochs", type=positive_int, default=3, help="에포크 수, 1 이상(기본값: 3)")
    return parser.parse_args()


def read_env_int(name):
    """torchrun이 정해 주는 환경 변수를 정수로 읽는다."""
    value = os.environ.get(name)
    if value is None:
        raise SystemExit(
            f"환경 변수 {name} 가 없습니다. 이 스크립트는 torchrun 으로 실행하세요: "
            "torchrun --nproc_per_node=2 DDP-script-torchrun.py"
        )
    return int(value)


def main():
    args = parse_args()
    device_type = args.device
    if device_type == "auto":
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda 를 골랐지만 이 머신에서는 CUDA 를 쓸 수 없습니다. --device cpu 를 쓰세요.")
    if args.num_epochs < 1:
        raise SystemExit(f"--num-epochs 는 1 이상이어야 합니다(받은 값: {args.num_epochs}).")

    rank = read_env_int("LOCAL_RANK")
    world_size = read_env_int("WORLD_SIZE")
    ddp_train(rank, world_size, args.num_epochs, device_type)


if __name__ == "__main__":
    main()
