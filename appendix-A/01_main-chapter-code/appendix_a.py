"""부록 A 요약: 파이토치 소개.

A.5의 다층 신경망(``NeuralNetwork``), A.6의 작은 데이터셋(``ToyDataset``)과 그 데이터(``toy_data``),
A.7의 정확도 계산(``compute_accuracy``), A.9.3의 DistributedDataParallel(DDP) 훈련(``ddp_setup``,
``prepare_dataset``, ``ddp_train``)을 담는다. 두 DDP 스크립트(``DDP-script.py``, ``DDP-script-torchrun.py``)는
프로세스를 띄우는 방법만 다르고, 각 프로세스가 하는 일은 여기 있는 ``ddp_train`` 하나다.
"""

import gc
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

if dist.is_available():
    # DDP가 처음 만들어질 때 이 모듈을 불러오는데, 그 함수들의 기본 인수(group=group.WORLD)가 그 순간의 기본 그룹을
    # 영영 붙잡는다. 그룹을 만들기 전에 미리 불러 두면 기본값이 None이 되어 close_process_group()이 그룹을 다 닫는다.
    import torch.distributed.nn

__all__ = [
    "NeuralNetwork",
    "ToyDataset",
    "close_process_group",
    "compute_accuracy",
    "ddp_setup",
    "ddp_train",
    "prepare_dataset",
    "toy_data",
]

# 한 프로세스가 죽었을 때 나머지가 집합 통신에서 끝없이 기다리지 않도록 하는 제한 시간
DDP_TIMEOUT = timedelta(seconds=60)


class NeuralNetwork(torch.nn.Module):
    """은닉층이 두 개(30개, 20개 유닛)인 완전 연결 신경망. 출력은 로짓이다."""

    def __init__(self, num_inputs, num_outputs):
        super().__init__()
        for name, value in (("num_inputs", num_inputs), ("num_outputs", num_outputs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}는 1 이상의 정수여야 합니다(받은 값: {value!r}).")
        self.layers = torch.nn.Sequential(
            # 첫 번째 은닉층
            torch.nn.Linear(num_inputs, 30),
            torch.nn.ReLU(),
            # 두 번째 은닉층
            torch.nn.Linear(30, 20),
            torch.nn.ReLU(),
            # 출력층
            torch.nn.Linear(20, num_outputs),
        )

    def forward(self, x):
        return self.layers(x)


class ToyDataset(Dataset):
    """특성 텐서와 레이블 텐서를 묶어 (특성, 레이블) 쌍을 하나씩 돌려주는 데이터셋."""

    def __init__(self, X, y):
        if len(X) != len(y):
            raise ValueError(f"특성과 레이블의 개수가 같아야 합니다(특성 {len(X)}개, 레이블 {len(y)}개).")
        self.features = X
        self.labels = y

    def __getitem__(self, index):
        return self.features[index], self.labels[index]

    def __len__(self):
        return self.labels.shape[0]


def toy_data():
    """책의 작은 2차원 분류 데이터: 훈련 샘플 5개, 테스트 샘플 2개.

    Returns:
        (X_train, y_train, X_test, y_test)
    """
    X_train = torch.tensor([[-1.2, 3.1], [-0.9, 2.9], [-0.5, 2.6], [2.3, -1.1], [2.7, -1.5]])
    y_train = torch.tensor([0, 0, 0, 1, 1])
    X_test = torch.tensor([[-0.8, 2.8], [2.6, -1.6]])
    y_test = torch.tensor([0, 1])
    return X_train, y_train, X_test, y_test


def compute_accuracy(model, dataloader, device=None):
    """데이터 로더 전체에 대한 분류 정확도(0~1)를 계산한다.

    Args:
        model: 로짓을 출력하는 분류 모델.
        dataloader: (특성, 레이블) 배치를 내는 데이터 로더.
        device: 배치를 옮길 장치. None이면 모델 파라미터가 있는 장치를 쓴다.
    """
    if device is None:
        device = next(model.parameters()).device
    model.eval()
    correct, total_examples = 0, 0
    for features, labels in dataloader:
        features, labels = features.to(device), labels.to(device)
        with torch.no_grad():
            logits = model(features)
        predictions = torch.argmax(logits, dim=1)
        correct += (predictions == labels).sum().item()
        total_examples += labels.shape[0]
    if total_examples == 0:
        raise ValueError("데이터 로더가 배치를 하나도 내지 않아 정확도를 계산할 수 없습니다.")
    return correct / total_examples


def _print_line(text):
    """한 줄을 한 번의 쓰기로 출력한다. 여러 프로세스가 같은 출력을 쓸 때 줄이 서로 섞이지 않는다."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def ddp_setup(rank, world_size, backend):
    """현재 프로세스를 프로세스 그룹에 등록한다.

    주소와 포트는 환경 변수 ``MASTER_ADDR``, ``MASTER_PORT``에서 읽는다(스크립트나 torchrun이 정해 준다).

    Args:
        rank: 이 프로세스의 번호(0부터).
        world_size: 전체 프로세스 수.
        backend: GPU 면 ``"nccl"``, CPU 면 ``"gloo"``.
    """
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend는 'nccl' 또는 'gloo'여야 합니다(받은 값: {backend!r}).")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank는 0 이상 world_size({world_size}) 미만이어야 합니다(받은 값: {rank}).")
    if backend == "nccl":
        torch.cuda.set_device(rank)  # 프로세스마다 GPU 하나를 맡는다
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size, timeout=DDP_TIMEOUT)


def close_process_group():
    """프로세스 그룹을 닫고, 백엔드의 작업 스레드가 모두 끝날 때까지 기다린다.

    ``dist.destroy_process_group()``은 그룹을 목록에서 지울 뿐이라, DDP 모델이 아직 그룹을 쥐고 있으면 gloo(CPU)의
    작업 스레드가 파이썬이 끝날 때까지 살아 있다. 그 스레드가 마지막으로 지우는 역전파의 all-reduce 작업에는 파이썬
    객체가 딸려 있어 GIL이 필요한데, 그때 파이썬이 이미 종료 중이면 프로세스가
    ``terminate called without an active exception``으로 중단된다(CPU 두 개에서 열 번에 한 번쯤). 그래서 DDP 모델을
    다 쓴 뒤(모델을 만든 함수가 끝난 뒤) 부른다: 남은 순환 참조를 지우고 그룹의 마지막 참조를 놓으면, 파이토치가
    GIL을 내려놓은 채 작업 스레드가 끝나기를 기다린다. 이 모듈을 그룹을 만들기 전에 불러와야 한다(위의
    ``torch.distributed.nn`` 가져오기 참고).
    """
    group = dist.group.WORLD
    dist.destroy_process_group()
    gc.collect()  # DDP 모델과 리듀서가 순환 참조로 남아 있으면 여기서 지워져 group 이 마지막 참조가 된다
    del group  # 그룹이 사라지며 작업 스레드를 기다린다(이 동안 GIL을 놓으므로 스레드가 정리를 마칠 수 있다)


def prepare_dataset(batch_size=2):
    """훈련용 로더(DistributedSampler로 프로세스마다 데이터를 나눈다)와 평가용 로더 두 개를 만든다.

    프로세스 그룹이 만들어진 뒤에 불러야 한다(DistributedSampler가 프로세스 수를 묻는다).

    Returns:
        (train_loader, train_eval_loader, test_loader). 평가용 로더 두 개는 나누지 않은 전체 데이터를 본다.
    """
    X_train, y_train, X_test, y_test = toy_data()
    train_ds = ToyDataset(X_train, y_train)
    test_ds = ToyDataset(X_test, y_test)
    train_loader = DataLoader(
        dataset=train_ds,
        batch_size=batch_size,
        shuffle=False,  # 섞는 일은 DistributedSampler가 한다
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
        sampler=DistributedSampler(train_ds),
    )
    train_eval_loader = DataLoader(dataset=train_ds, batch_size=batch_size, shuffle=False)
    test_loader = DataLoader(dataset=test_ds, batch_size=batch_size, shuffle=False)
    return train_loader, train_eval_loader, test_loader


def ddp_train(rank, world_size, num_epochs=3, device_type="cuda"):
    """프로세스 하나가 하는 일: 그룹에 들어가 DDP로 ``NeuralNetwork(2, 2)``를 훈련하고 정확도를 출력한다.

    Args:
        rank: 이 프로세스의 번호. GPU를 쓰면 GPU 번호이기도 하다.
        world_size: 전체 프로세스 수.
        num_epochs: 에포크 수(책: 3).
        device_type: ``"cuda"``면 NCCL 백엔드와 GPU ``rank``를, ``"cpu"``면 gloo 백엔드를 쓴다.
    """
    if device_type not in ("cuda", "cpu"):
        raise ValueError(f"device_type은 'cuda' 또는 'cpu'여야 합니다(받은 값: {device_type!r}).")
    if device_type == "cpu":
        torch.set_num_threads(1)  # 프로세스 여러 개가 CPU 코어를 나눠 쓰므로 서로 다투지 않게 한다
    ddp_setup(rank, world_size, backend="nccl" if device_type == "cuda" else "gloo")
    try:
        _train_replica(rank, world_size, num_epochs, device_type)
        # 모든 프로세스가 끝난 뒤 함께 그룹을 닫는다. 먼저 끝난 프로세스가 그룹을 닫으면 아직 연결을 쓰는
        # 다른 프로세스가 종료하면서 중단(SIGABRT)될 수 있다.
        dist.barrier()
    finally:
        close_process_group()


def _train_replica(rank, world_size, num_epochs, device_type):
    """모델 사본 하나를 DDP로 훈련하고 정확도를 출력한다. 모델은 이 함수가 끝나면 사라진다."""
    device = torch.device("cuda", rank) if device_type == "cuda" else torch.device("cpu")
    label = f"[{device_type.upper()}{rank}]"
    train_loader, train_eval_loader, test_loader = prepare_dataset()
    if len(train_loader) == 0:
        raise ValueError(
            f"프로세스가 {world_size}개면 프로세스마다 훈련 샘플이 {len(train_loader.sampler)}개뿐이라 "
            f"크기 {train_loader.batch_size}인 배치를 만들 수 없습니다. 프로세스 수를 줄이세요."
        )

    torch.manual_seed(123)
    model = NeuralNetwork(num_inputs=2, num_outputs=2).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    # DDP가 0번 프로세스의 가중치를 모두에게 복사하고, backward 때 그레이디언트를 평균한다
    model = DDP(model, device_ids=[rank] if device_type == "cuda" else None)

    for epoch in range(num_epochs):
        train_loader.sampler.set_epoch(epoch)  # 에포크마다 다르게 섞는다
        model.train()
        for features, labels in train_loader:
            features, labels = features.to(device), labels.to(device)
            logits = model(features)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            _print_line(
                f"{label} 에포크 {epoch + 1:03d}/{num_epochs:03d} | 배치 크기 {labels.shape[0]:03d} "
                f"| 훈련 손실 {loss.item():.2f}"
            )

    train_acc = compute_accuracy(model, train_eval_loader, device=device)
    test_acc = compute_accuracy(model, test_loader, device=device)
    _print_line(f"{label} 훈련 정확도 {train_acc}")
    _print_line(f"{label} 테스트 정확도 {test_acc}")
