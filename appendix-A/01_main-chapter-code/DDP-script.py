"""부록 A.9.3: DistributedDataParallel(DDP)로 훈련하기 — torch.multiprocessing.spawn으로 프로세스를 띄우는 판.

GPU가 있으면 GPU 하나당 프로세스 하나(NCCL 백엔드), 없으면 CPU 프로세스 여러 개(gloo 백엔드)로 돈다.
각 프로세스가 하는 일(그룹 참여, DistributedSampler, 훈련, 정확도 출력)은 ``llm_from_scratch.appendix_a``의
``ddp_train``에 있다. 훈련 데이터가 샘플 5개뿐인 아주 작은 작업이라 따로 줄인 QUICK 모드는 없다.

    python DDP-script.py                             # GPU 개수만큼(GPU가 없으면 CPU 프로세스 2개)
    python DDP-script.py --device cpu --world-size 2
"""

# 목록 A.12 분산 훈련을 위한 준비. 프로세스 그룹에 참여하는 ddp_setup과 데이터를 나누는 prepare_dataset은
# llm_from_scratch.appendix_a에 있고, 이 스크립트는 0번 프로세스의 주소와 포트를 정한다(find_free_port).
import os
import socket

import torch
import torch.multiprocessing as mp

from llm_from_scratch.appendix_a import ddp_train
from llm_from_scratch.utils import ArgumentParser, positive_int

PORT_ATTEMPTS = 3  # 고른 포트를 그 사이 다른 프로그램이 가져가면 새 포트로 다시 시도하는 횟수


def find_free_port():
    """지금 비어 있는 localhost 포트 번호를 하나 고른다."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def parse_args():
    parser = ArgumentParser(description="장난감 데이터로 DDP 훈련을 해 본다(mp.spawn 판).")
    parser.add_argument(
        "--device",
        choices=("auto", "cuda", "cpu"),
        default="auto",
        help="auto: CUDA 가 있으면 GPU(NCCL), 없으면 CPU(gloo) (기본값: auto)",
    )
    parser.add_argument(
        "--world-size",
        type=positive_int,
        default=None,
        help="프로세스 수(기본값: GPU 면 GPU 개수, CPU 면 2)",
    )
    parser.add_argument("--num-epochs", type=positive_int, default=3, help="에포크 수, 1 이상(기본값: 3)")
    return parser.parse_args()


# 목록 A.13 DistributedDataParallel로 훈련하기: 프로세스를 GPU(또는 CPU) 수만큼 띄운다.
# 프로세스마다 하는 일(DDP로 감싼 모델 훈련, 정확도 출력)은 llm_from_scratch.appendix_a의 ddp_train에 있다.
def main():
    args = parse_args()
    device_type = args.device
    if device_type == "auto":
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda 를 골랐지만 이 머신에서는 CUDA 를 쓸 수 없습니다. --device cpu 를 쓰세요.")

    world_size = args.world_size
    if world_size is None:
        world_size = torch.cuda.device_count() if device_type == "cuda" else 2
    if world_size < 1:
        raise SystemExit(f"--world-size 는 1 이상이어야 합니다(받은 값: {world_size}).")
    if device_type == "cuda" and world_size > torch.cuda.device_count():
        raise SystemExit(
            f"--world-size {world_size} 는 GPU 개수({torch.cuda.device_count()})보다 많습니다. "
            "GPU 하나에 프로세스 하나씩이므로 GPU 개수 이하로 정하세요."
        )
    if args.num_epochs < 1:
        raise SystemExit(f"--num-epochs 는 1 이상이어야 합니다(받은 값: {args.num_epochs}).")

    # 모든 프로세스가 같은 주소·포트로 0번 프로세스를 찾아간다(직접 정해 두었으면 그 값을 쓴다)
    os.environ.setdefault("MASTER_ADDR", "localhost")
    port_given = "MASTER_PORT" in os.environ

    print(f"PyTorch {torch.__version__}, 장치 {device_type}, 프로세스 {world_size}개", flush=True)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        if not port_given:
            os.environ["MASTER_PORT"] = str(find_free_port())
        try:
            # spawn은 ddp_train(rank, *args)를 프로세스마다 부르며 rank를 0, 1, … 로 채워 준다
            mp.spawn(ddp_train, args=(world_size, args.num_epochs, device_type), nprocs=world_size)
            return
        except mp.ProcessRaisedException as error:
            # 고른 포트를 0번 프로세스가 열기 전에 다른 프로그램이 가져갔다(EADDRINUSE): 훈련 전이므로 새 포트로 다시 띄운다
            if port_given or "EADDRINUSE" not in str(error) or attempt == PORT_ATTEMPTS:
                raise
            print(f"포트 {os.environ['MASTER_PORT']}를 다른 프로그램이 먼저 썼습니다. 새 포트로 다시 시작합니다.", flush=True)


if __name__ == "__main__":
    main()
