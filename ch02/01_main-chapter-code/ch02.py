"""2장 요약: 텍스트 데이터 다루기.

토큰화(정규식 토크나이저 두 가지)와 슬라이딩 윈도 데이터셋/데이터 로더를 담는다.
"""

import re

import tiktoken
import torch
from torch.utils.data import DataLoader, Dataset

from llm_from_scratch.download import download_data_file

__all__ = [
    "SPLIT_PATTERN",
    "GPTDatasetV1",
    "SimpleTokenizerV1",
    "SimpleTokenizerV2",
    "create_dataloader_v1",
    "load_the_verdict",
]

# 구두점, 두 개짜리 대시(--), 공백에서 텍스트를 나눈다(구분자도 토큰으로 남긴다)
SPLIT_PATTERN = r'([,.:;?_!"()\']|--|\s)'


class SimpleTokenizerV1:
    """어휘 사전(토큰 -> ID)으로 텍스트를 토큰 ID로 바꾸고 되돌린다. 사전에 없는 토큰은 KeyError."""

    def __init__(self, vocab):
        self.str_to_int = vocab  # 토큰 -> ID
        self.int_to_str = {i: s for s, i in vocab.items()}  # ID -> 토큰

    def encode(self, text):
        preprocessed = re.split(SPLIT_PATTERN, text)
        preprocessed = [item.strip() for item in preprocessed if item.strip()]
        unknown = [item for item in preprocessed if item not in self.str_to_int]
        if unknown:
            raise KeyError(
                f"어휘 사전에 없는 토큰입니다: {unknown[:5]}. 모르는 단어를 <|unk|>로 바꾸는 "
                "SimpleTokenizerV2를 쓰거나, 이 단어가 든 텍스트로 어휘 사전을 다시 만드세요."
            )
        return [self.str_to_int[s] for s in preprocessed]

    def decode(self, ids):
        unknown = [i for i in ids if i not in self.int_to_str]
        if unknown:
            raise KeyError(
                f"어휘 사전에 없는 토큰 ID입니다: {unknown[:5]}. 이 사전의 ID는 {len(self.int_to_str)}개입니다."
            )
        text = " ".join([self.int_to_str[i] for i in ids])
        # 구두점 앞에 붙은 공백을 없앤다
        return re.sub(r'\s+([,.:;?!"()\'])', r"\1", text)


class SimpleTokenizerV2(SimpleTokenizerV1):
    """V1에 더해, 사전에 없는 토큰을 ``<|unk|>``로 바꾼다(decode는 V1과 같다)."""

    def __init__(self, vocab):
        if "<|unk|>" not in vocab:
            raise ValueError(
                "어휘 사전에 <|unk|> 토큰이 없습니다. 사전을 만들 때 "
                'all_tokens.extend(["<|endoftext|>", "<|unk|>"])처럼 특수 토큰을 더하세요.'
            )
        super().__init__(vocab)

    def encode(self, text):
        preprocessed = re.split(SPLIT_PATTERN, text)
        preprocessed = [item.strip() for item in preprocessed if item.strip()]
        preprocessed = [item if item in self.str_to_int else "<|unk|>" for item in preprocessed]
        return [self.str_to_int[s] for s in preprocessed]


class GPTDatasetV1(Dataset):
    """긴 텍스트를 ``max_length`` 토큰짜리 입력과 한 칸 밀린 타깃으로 자른다(``stride``만큼씩 이동)."""

    def __init__(self, txt, tokenizer, max_length, stride):
        for name, value in (("max_length", max_length), ("stride", stride)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}는 1 이상의 정수여야 합니다(받은 값: {value!r}).")
        self.input_ids = []
        self.target_ids = []

        try:
            token_ids = tokenizer.encode(txt, allowed_special={"<|endoftext|>"})
        except ValueError as err:  # tiktoken: 허용하지 않은 특수 토큰이 텍스트에 있다
            raise ValueError(
                f"텍스트에 허용하지 않은 특수 토큰이 있습니다({err}). 문서 경계는 <|endoftext|>로만 표시하세요."
            ) from err
        if len(token_ids) <= max_length:
            raise ValueError(
                f"텍스트가 너무 짧습니다: 토큰이 {len(token_ids)}개인데, 입력 하나(max_length={max_length})와 "
                f"타깃을 만들려면 {max_length + 1}개 이상이 필요합니다."
            )

        # 슬라이딩 윈도: stride 간격으로 창을 옮기며 max_length 토큰씩 자른다
        for i in range(0, len(token_ids) - max_length, stride):
            input_chunk = token_ids[i : i + max_length]
            target_chunk = token_ids[i + 1 : i + max_length + 1]
            self.input_ids.append(torch.tensor(input_chunk))
            self.target_ids.append(torch.tensor(target_chunk))

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, idx):
        return self.input_ids[idx], self.target_ids[idx]


def create_dataloader_v1(txt, batch_size=4, max_length=256, stride=128, shuffle=True, drop_last=True, num_workers=0):
    """GPT-2 BPE 토크나이저로 ``GPTDatasetV1``을 만들고 ``DataLoader``로 감싼다."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size는 1 이상의 정수여야 합니다(받은 값: {batch_size!r}).")
    tokenizer = tiktoken.get_encoding("gpt2")
    dataset = GPTDatasetV1(txt, tokenizer, max_length, stride)
    if drop_last and len(dataset) < batch_size:
        raise ValueError(
            f"샘플이 {len(dataset)}개뿐이라 batch_size={batch_size} 배치를 하나도 만들 수 없습니다(drop_last=True). "
            "텍스트를 늘리거나 batch_size, max_length, stride를 줄이세요."
        )
    dataloader = DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=num_workers
    )
    return dataloader


def load_the_verdict(folder="."):
    """이디스 워튼의 단편 "The Verdict"를 (필요하면 내려받아) 문자열로 돌려준다."""
    path = download_data_file("the-verdict.txt", folder)
    return path.read_text(encoding="utf-8")
