"""6장 요약: 분류를 위해 미세 튜닝하기(스팸 분류).

SMS 스팸 데이터 준비(내려받기·안전한 압축 풀기·균형 맞추기·분할), ``SpamDataset``과 데이터 로더,
마지막 토큰으로 계산하는 분류 손실·정확도, 간단한 분류 훈련 루프, 그래프, ``classify_review``를 담는다.

이름에 주의: ``calc_loss_batch``, ``calc_loss_loader``, ``evaluate_model``은 책의 6장 이름 그대로지만
5장(``llm_from_scratch.ch05``)의 다음 토큰 예측 손실과 다르다. 여기서는 출력 시퀀스 전체가 아니라
토큰 하나(기본: 마지막 토큰)의 로짓으로 클래스 레이블을 맞히는 크로스 엔트로피를 쓴다.
그래서 ``from llm_from_scratch.ch06 import calc_loss_batch``는 분류용 함수를 준다.
"""

import functools
import shutil
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from llm_from_scratch import ch05
from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch05 import (
    download_and_load_gpt2,
    gpt2_config_from_hparams,
    load_weights_into_gpt,
    plot_train_val,
)
from llm_from_scratch.download import download_data_file

__all__ = [
    "EXTRACTED_DIR",
    "LABEL_MAP",
    "SPAM_DATA_FILE",
    "SpamDataset",
    "add_classification_head",
    "calc_accuracy_loader",
    "calc_loss_batch",
    "calc_loss_loader",
    "classify_review",
    "create_balanced_dataset",
    "create_spam_dataloaders",
    "download_and_unzip_spam_data",
    "evaluate_model",
    "load_pretrained_gpt2",
    "plot_values",
    "prepare_spam_data",
    "random_split",
    "read_spam_collection",
    "safe_extract_zip",
    "train_classifier_simple",
]

EXTRACTED_DIR = "sms_spam_collection"  # 압축을 푸는 폴더(책과 같은 이름)
SPAM_DATA_FILE = "SMSSpamCollection.tsv"  # 압축 안의 SMSSpamCollection을 이 이름으로 바꾼다
LABEL_MAP = {"ham": 0, "spam": 1}
TRAINABLE_LAYER_CHOICES = ("last_block", "all", "none")


# ---------------------------------------------------------------------------
# 6.2 데이터셋 준비
# ---------------------------------------------------------------------------


def safe_extract_zip(zip_path, target_dir):
    """ZIP 파일을 ``target_dir`` 에 푼다. 폴더 밖에 놓일 항목(``../``, 절대 경로)이 하나라도 있으면 거부한다.

    하나라도 수상하거나, ZIP 이 아니거나, CRC 가 틀린 항목이 있으면 아무것도 풀지 않고 ``ValueError`` 를 낸다.
    임시 폴더에 모두 푼 뒤에야 옮기므로, 도중에 실패해도 반쯤 풀린 파일이 남지 않는다.
    """
    target = Path(target_dir).resolve()
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as error:
        raise ValueError(
            f"{zip_path} 는 온전한 ZIP 파일이 아닙니다({error}). 이 파일을 다른 곳으로 옮긴 뒤 다시 실행해 원본을 받으세요."
        ) from None
    with archive:
        for member in archive.namelist():
            destination = (target / member).resolve()
            if destination != target and not destination.is_relative_to(target):
                raise ValueError(
                    f"압축 파일 {Path(zip_path).name} 의 항목 {member!r} 은 대상 폴더 밖에 풀리게 되어 있어 "
                    "압축을 풀지 않았습니다. 믿을 수 있는 원본 파일인지 확인하세요."
                )
        try:
            bad_member = archive.testzip()  # 모든 항목을 읽어 CRC 를 확인한다
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            bad_member = f"? ({error})"
        if bad_member is not None:
            raise ValueError(
                f"압축 파일 {zip_path} 의 항목 {bad_member!r} 가 손상되었습니다(CRC 불일치). 아무것도 풀지 않았습니다. "
                "이 파일을 다른 곳으로 옮긴 뒤 다시 실행해 원본을 받으세요."
            )
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unzip-", dir=target))
        try:
            archive.extractall(staging)
            for item in staging.iterdir():
                item.replace(target / item.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # 이 함수가 만든 임시 폴더만 지운다
    return Path(target_dir)


def download_and_unzip_spam_data(folder="."):
    """SMS 스팸 모음을 ``folder`` 에 받아 풀고, 데이터 파일 경로(``sms_spam_collection/SMSSpamCollection.tsv``)를 돌려준다.

    이미 풀어 둔 파일이 있으면 다시 받지 않는다. 내려받기는 공용 도구(UCI 주소, 실패하면 백업 주소)가 맡는다.
    """
    folder = Path(folder)
    extracted = folder / EXTRACTED_DIR
    data_file = extracted / SPAM_DATA_FILE
    if data_file.is_file():
        print(f"{data_file.relative_to(folder)} 이(가) 이미 있어 내려받지 않습니다.")
        return data_file
    zip_path = download_data_file("sms+spam+collection.zip", folder)
    safe_extract_zip(zip_path, extracted)
    (extracted / "SMSSpamCollection").replace(data_file)
    print(f"데이터를 {data_file.relative_to(folder)} 에 저장했습니다.")
    return data_file


def read_spam_collection(data_file):
    """탭으로 구분된 SMS 스팸 모음을 책과 같은 방식으로 읽는다(열 이름: Label, Text)."""
    df = pd.read_csv(data_file, sep="\t", header=None, names=["Label", "Text"])
    if len(df) == 0:
        raise ValueError(
            f"{Path(data_file).resolve()} 이(가) 비어 있습니다(메시지 0개). 내려받다 끊긴 파일일 수 있습니다. "
            "이 파일을 다른 곳으로 옮긴 뒤 다시 실행하면 새로 받습니다."
        )
    return df


def create_balanced_dataset(df, random_state=123):
    """햄(ham)을 스팸 개수만큼만 무작위로 뽑아(언더샘플링) 두 클래스의 수를 맞춘다."""
    num_spam = int((df["Label"] == "spam").sum())
    if num_spam == 0:
        raise ValueError("데이터에 스팸(spam) 메시지가 하나도 없어 균형을 맞출 수 없습니다.")
    ham_subset = df[df["Label"] == "ham"].sample(num_spam, random_state=random_state)
    return pd.concat([ham_subset, df[df["Label"] == "spam"]])


def random_split(df, train_frac, validation_frac, random_state=123):
    """행을 섞은 뒤 훈련·검증·테스트로 나눈다. 테스트 세트는 남은 행 전부다."""
    if not (0 < train_frac and 0 <= validation_frac and train_frac + validation_frac <= 1):
        raise ValueError(
            f"train_frac({train_frac})은 0보다 크고, validation_frac({validation_frac})은 0 이상이며, "
            "둘의 합은 1 이하여야 합니다."
        )
    df = df.sample(frac=1, random_state=random_state).reset_index(drop=True)
    train_end = int(len(df) * train_frac)
    validation_end = train_end + int(len(df) * validation_frac)
    return df[:train_end], df[train_end:validation_end], df[validation_end:]


def prepare_spam_data(folder=".", train_frac=0.7, validation_frac=0.1):
    """6.2 절 전체: 내려받기 -> 균형 맞추기 -> 레이블 숫자로 바꾸기 -> 분할 -> CSV 세 개 저장.

    Returns:
        ``folder`` 안의 train.csv, validation.csv, test.csv 경로 튜플.
    """
    folder = Path(folder)
    df = read_spam_collection(download_and_unzip_spam_data(folder))
    balanced_df = create_balanced_dataset(df)
    balanced_df["Label"] = balanced_df["Label"].map(LABEL_MAP)
    paths = tuple(folder / name for name in ("train.csv", "validation.csv", "test.csv"))
    for part, path in zip(random_split(balanced_df, train_frac, validation_frac), paths, strict=True):
        part.to_csv(path, index=None)
    return paths


# ---------------------------------------------------------------------------
# 6.3 데이터 로더
# ---------------------------------------------------------------------------


class SpamDataset(Dataset):
    """CSV(열: Text, Label)의 문자열을 토큰화하고 같은 길이로 채우거나(padding) 자른다.

    Args:
        csv_file: Text, Label 열이 있는 CSV 파일.
        tokenizer: ``encode`` 메서드가 있는 토크나이저(tiktoken gpt2).
        max_length: 모든 시퀀스의 길이. None 이면 이 데이터셋에서 가장 긴 텍스트의 길이를 쓰고,
            주어지면 더 긴 텍스트를 이 길이로 자른다.
        pad_token_id: 채울 토큰 ID(GPT-2의 ``<|endoftext|>`` = 50256).
        num_classes: 클래스 수. Label 값은 0 이상 ``num_classes`` 미만이어야 한다.
    """

    def __init__(self, csv_file, tokenizer, max_length=None, pad_token_id=50256, num_classes=2):
        try:
            self.data = pd.read_csv(csv_file)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
            raise ValueError(
                f"{Path(csv_file).name}을(를) CSV로 읽지 못했습니다({type(error).__name__}). "
                "Text, Label 열이 있는 UTF-8 CSV 파일인지 확인하세요(6.2절의 train.csv처럼)."
            ) from None
        missing = [column for column in ("Text", "Label") if column not in self.data.columns]
        if missing:
            raise ValueError(
                f"{Path(csv_file).name}에 {', '.join(missing)} 열이 없습니다. "
                f"Text와 Label 열이 필요합니다(있는 열: {list(self.data.columns)})."
            )
        if len(self.data) == 0:
            raise ValueError(
                f"{Path(csv_file).name}에 머리글(Text, Label)만 있고 데이터 행이 없습니다. "
                "prepare_spam_data()로 CSV를 다시 만들거나 메시지 행을 넣으세요."
            )
        if not pd.api.types.is_integer_dtype(self.data["Label"]):
            raise ValueError(
                f"{Path(csv_file).name}의 Label 열은 정수 클래스 번호(예: ham 0, spam 1)여야 합니다"
                f"(읽은 값의 예: {self.data['Label'].head(3).tolist()})."
            )
        bad_labels = sorted(set(self.data["Label"]) - set(range(num_classes)))
        if bad_labels:
            raise ValueError(
                f"{Path(csv_file).name}의 Label 값 {bad_labels[:5]}이(가) 클래스 범위(0 이상 {num_classes} 미만) 밖입니다."
            )
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length는 1 이상이어야 합니다(받은 값: {max_length}).")
        # 빈 텍스트는 pandas가 NaN으로 읽는다: 빈 문자열로 되돌린다
        texts = ["" if pd.isna(text) else str(text) for text in self.data["Text"]]
        self.encoded_texts = [tokenizer.encode(text) for text in texts]

        if max_length is None:
            # 모두 빈 텍스트여도 모델에 넣을 수 있게 길이는 최소 1로 둔다
            self.max_length = max(1, self._longest_encoded_length())
        else:
            self.max_length = max_length
            self.encoded_texts = [encoded[: self.max_length] for encoded in self.encoded_texts]

        self.encoded_texts = [
            encoded + [pad_token_id] * (self.max_length - len(encoded)) for encoded in self.encoded_texts
        ]

    def __getitem__(self, index):
        encoded = self.encoded_texts[index]
        label = self.data.iloc[index]["Label"]
        return torch.tensor(encoded, dtype=torch.long), torch.tensor(label, dtype=torch.long)

    def __len__(self):
        return len(self.data)

    def _longest_encoded_length(self):
        return max((len(encoded) for encoded in self.encoded_texts), default=0)


def create_spam_dataloaders(
    folder, tokenizer, batch_size=8, max_length=None, context_length=None, num_workers=0, seed=123
):
    """``folder``의 train/validation/test CSV로 세 데이터 로더를 만든다.

    검증·테스트 세트는 훈련 세트와 같은 길이(``max_length``, None 이면 가장 긴 훈련 텍스트)로 맞춘다.
    ``context_length`` (모델의 문맥 길이)가 주어지면 그보다 긴 텍스트는 그 길이로 자른다.
    훈련 로더만 섞고 마지막의 덜 찬 배치를 버린다(책과 같다).

    Returns:
        (train_loader, val_loader, test_loader)
    """
    folder = Path(folder)
    if max_length is not None and context_length is not None:
        max_length = min(max_length, context_length)
    train_dataset = SpamDataset(folder / "train.csv", tokenizer, max_length=max_length)
    if context_length is not None and train_dataset.max_length > context_length:
        train_dataset = SpamDataset(folder / "train.csv", tokenizer, max_length=context_length)
    val_dataset = SpamDataset(folder / "validation.csv", tokenizer, max_length=train_dataset.max_length)
    test_dataset = SpamDataset(folder / "test.csv", tokenizer, max_length=train_dataset.max_length)
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        train_dataset, batch_size, shuffle=True, num_workers=num_workers, drop_last=True, generator=generator
    )
    val_loader = DataLoader(val_dataset, batch_size, num_workers=num_workers)
    test_loader = DataLoader(test_dataset, batch_size, num_workers=num_workers)
    return train_loader, val_loader, test_loader


# ---------------------------------------------------------------------------
# 6.4–6.5 사전 훈련된 모델 불러오기, 분류 헤드 붙이기
# ---------------------------------------------------------------------------


def load_pretrained_gpt2(models_dir="gpt2", model_size="124M"):
    """OpenAI GPT-2 가중치를 받아(이미 있으면 그대로) ``GPTModel``에 적재하고 (모델, 설정)을 돌려준다.

    드롭아웃은 0, ``qkv_bias``는 True 다(OpenAI 가중치의 구조). 모델은 평가 모드로 돌려준다.
    """
    settings, params = download_and_load_gpt2(model_size=model_size, models_dir=models_dir)
    cfg = gpt2_config_from_hparams(settings)
    model = GPTModel(cfg)
    load_weights_into_gpt(model, params)
    model.eval()
    return model, cfg


def add_classification_head(model, num_classes=2, trainable_layers="last_block", seed=123):
    """출력 층을 ``num_classes`` 개 로짓을 내는 새 선형 층으로 바꾸고, 훈련할 층을 고른다.

    Args:
        model: ``GPTModel`` (제자리에서 바뀐다).
        num_classes: 클래스 수(스팸 분류는 2).
        trainable_layers: "last_block" 이면 책처럼 새 헤드, 마지막 트랜스포머 블록, 최종 층 정규화만 훈련한다.
            "all" 이면 모든 층을(연습문제 6.2), "none" 이면 새 헤드만 훈련한다.
        seed: 새 헤드의 초기화 시드.
    """
    if trainable_layers not in TRAINABLE_LAYER_CHOICES:
        raise ValueError(
            f"trainable_layers는 {', '.join(TRAINABLE_LAYER_CHOICES)} 중 하나여야 합니다(받은 값: {trainable_layers!r})."
        )
    for param in model.parameters():
        param.requires_grad = trainable_layers == "all"
    torch.manual_seed(seed)
    old_head = model.out_head
    model.out_head = torch.nn.Linear(old_head.in_features, num_classes).to(old_head.weight.device)
    if trainable_layers == "last_block":
        for module in (model.trf_blocks[-1], model.final_norm):
            for param in module.parameters():
                param.requires_grad = True
    return model


# ---------------------------------------------------------------------------
# 6.6 손실과 정확도: 토큰 하나(기본: 마지막 토큰)의 로짓만 쓴다
# ---------------------------------------------------------------------------


def calc_accuracy_loader(data_loader, model, device, num_batches=None, token_idx=-1):
    """처음 ``num_batches`` 개 배치(기본: 전부)에서 분류 정확도(0~1)를 계산한다.

    ``token_idx``는 예측에 쓸 토큰 위치다. 마지막 토큰(-1)만 앞의 모든 토큰을 보므로 책은 -1을 쓴다
    (연습문제 6.3은 첫 번째 토큰 0과 비교한다).
    """
    model.eval()
    correct_predictions, num_examples = 0, 0
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i >= num_batches:
            break
        input_batch, target_batch = input_batch.to(device), target_batch.to(device)
        with torch.no_grad():
            logits = model(input_batch)[:, token_idx, :]
        predicted_labels = torch.argmax(logits, dim=-1)
        num_examples += predicted_labels.shape[0]
        correct_predictions += (predicted_labels == target_batch).sum().item()
    return correct_predictions / num_examples if num_examples else float("nan")


def calc_loss_batch(input_batch, target_batch, model, device, token_idx=-1):
    """배치 하나의 분류 손실: 토큰 ``token_idx``의 로짓과 클래스 레이블의 크로스 엔트로피.

    5장의 같은 이름 함수(모든 위치의 다음 토큰 손실)와 달리 위치 하나만 본다.
    """
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = model(input_batch)[:, token_idx, :]
    num_classes = logits.shape[-1]
    if target_batch.numel() and (target_batch.min() < 0 or target_batch.max() >= num_classes):
        raise ValueError(
            f"레이블은 0 이상 {num_classes}(분류 헤드의 클래스 수) 미만이어야 합니다(받은 레이블: {target_batch.tolist()})."
        )
    return torch.nn.functional.cross_entropy(logits, target_batch)


def calc_loss_loader(data_loader, model, device, num_batches=None, token_idx=-1):
    """처음 ``num_batches`` 개 배치(기본: 전부)의 평균 분류 손실. 배치가 없으면 nan.

    반복 구조는 5장의 ``calc_loss_loader``를 그대로 쓰고, 배치 손실만 위의 분류 손실로 바꾼다.
    """
    batch_loss = functools.partial(calc_loss_batch, token_idx=token_idx)
    return ch05.calc_loss_loader(data_loader, model, device, num_batches, batch_loss=batch_loss)


def evaluate_model(model, train_loader, val_loader, device, eval_iter, token_idx=-1):
    """5장의 ``evaluate_model``에 분류 손실을 넘겨 훈련·검증 손실을 ``eval_iter`` 개 배치로 추정한다."""
    batch_loss = functools.partial(calc_loss_batch, token_idx=token_idx)
    return ch05.evaluate_model(model, train_loader, val_loader, device, eval_iter, batch_loss=batch_loss)


# ---------------------------------------------------------------------------
# 6.7 미세 튜닝
# ---------------------------------------------------------------------------


def train_classifier_simple(
    model, train_loader, val_loader, optimizer, device, num_epochs, eval_freq, eval_iter, token_idx=-1, max_steps=None
):
    """책의 분류 훈련 루프. ``eval_freq`` 스텝마다 손실을, 에포크마다 정확도를 기록한다.

    5장 ``train_model_simple``과 구조가 같지만, 토큰 수 대신 본 샘플 수를 세고 텍스트 생성 대신 정확도를 잰다.

    Args:
        eval_iter: 손실·정확도를 추정할 때 쓸 배치 수.
        token_idx: 분류에 쓸 토큰 위치(기본: 마지막).
        max_steps: 주어지면 이 스텝 수만큼만 훈련하고 멈춘다(시간 재기·빠른 모드용).

    Returns:
        (훈련 손실 목록, 검증 손실 목록, 훈련 정확도 목록, 검증 정확도 목록, 본 샘플 수)
    """
    if eval_freq < 1:
        raise ValueError(f"eval_freq는 1 이상이어야 합니다(받은 값: {eval_freq}).")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps는 1 이상이거나 None 이어야 합니다(받은 값: {max_steps}).")
    train_losses, val_losses, train_accs, val_accs = [], [], [], []
    examples_seen, global_step = 0, -1

    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, device, token_idx)
            loss.backward()
            optimizer.step()
            examples_seen += input_batch.shape[0]
            global_step += 1

            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter, token_idx)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                print(f"에포크 {epoch + 1} (스텝 {global_step:06d}): 훈련 손실 {train_loss:.3f}, 검증 손실 {val_loss:.3f}")
            if max_steps is not None and global_step + 1 >= max_steps:
                break

        train_accuracy = calc_accuracy_loader(train_loader, model, device, num_batches=eval_iter, token_idx=token_idx)
        val_accuracy = calc_accuracy_loader(val_loader, model, device, num_batches=eval_iter, token_idx=token_idx)
        print(f"훈련 정확도: {train_accuracy * 100:.2f}% | 검증 정확도: {val_accuracy * 100:.2f}%")
        train_accs.append(train_accuracy)
        val_accs.append(val_accuracy)
        if max_steps is not None and global_step + 1 >= max_steps:
            print(f"max_steps={max_steps}에 이르러 훈련을 멈춥니다.")
            break

    return train_losses, val_losses, train_accs, val_accs, examples_seen


def plot_values(epochs_seen, examples_seen, train_values, val_values, label="loss", save_path=None):
    """훈련·검증 값(손실 또는 정확도)을 에포크 축(아래)과 본 샘플 수 축(위)에 함께 그린다(5장 그래프 함수를 쓴다)."""
    return plot_train_val(
        epochs_seen, examples_seen, train_values, val_values, label=label, seen_label="Examples seen",
        save_path=save_path,
    )


# ---------------------------------------------------------------------------
# 6.8 분류기로 쓰기
# ---------------------------------------------------------------------------


def classify_review(text, model, tokenizer, device, max_length=None, pad_token_id=50256, token_idx=-1):
    """문자열 하나를 분류해 "spam" 또는 "not spam"을 돌려준다.

    모델의 문맥 길이보다 긴 텍스트는 그 길이로 자르고, ``max_length`` 보다 짧으면 ``pad_token_id``로 채운다
    (훈련 때와 같은 길이로 맞추려는 것). 빈 텍스트도 패딩 토큰 하나 이상으로 채워 그대로 분류한다.

    Args:
        max_length: 입력 길이(보통 훈련 데이터셋의 ``max_length``). None 이면 채우지 않는다.
        token_idx: 분류에 쓸 토큰 위치(훈련 때와 같아야 한다).
    """
    if max_length is not None and not max_length >= 1:
        raise ValueError(f"max_length는 1 이상이거나 None이어야 합니다(받은 값: {max_length!r}).")
    if "<|endoftext|>" in text:
        raise ValueError(
            f"분류할 텍스트에 특수 토큰 문자열 '<|endoftext|>'이 들어 있습니다(텍스트: {text[:60]!r}). "
            "이 문자열을 지우거나 다른 글자로 바꾼 뒤 다시 분류하세요."
        )
    model.eval()
    supported_context_length = model.pos_emb.weight.shape[0]
    length = supported_context_length if max_length is None else min(max_length, supported_context_length)
    input_ids = tokenizer.encode(text)[:length]
    target_length = max(1, len(input_ids)) if max_length is None else length
    input_ids += [pad_token_id] * (target_length - len(input_ids))
    input_tensor = torch.tensor(input_ids, device=device).unsqueeze(0)
    with torch.no_grad():
        logits = model(input_tensor)[:, token_idx, :]
    predicted_label = torch.argmax(logits, dim=-1).item()
    return "spam" if predicted_label == 1 else "not spam"
