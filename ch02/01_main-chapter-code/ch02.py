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


def _split(text):
    return [item.strip() for item in re.split(SPLIT_PATTERN, text) if item.strip()]


def _join(tokens):
    text = " ".join(tokens)
    return re.sub(r'\s+([,.:;?!"()\'])', r"\1", text)  # 구두점 앞의 공백을 없앤다


class SimpleTokenizerV1:
    """어휘 사전(단어 -> ID)으로 텍스트를 토큰 ID로 바꾸고 되돌린다. 모르는 단어는 KeyError."""

    def __init__(self, vocab):
        self.str_to_int = vocab
        self.int_to_str = {i: s for s, i in vocab.items()}

    def encode(self, text):
        return [self.str_to_int[token] for token in _split(text)]

    def decode(self, ids):
        return _join([self.int_to_str[i] for i in ids])


class SimpleTokenizerV2(SimpleTokenizerV1):
    """V1 에 더해, 사전에 없는 단어를 ``<|unk|>`` 로 바꾼다."""

    def encode(self, text):
        tokens = [token if token in self.str_to_int else "<|unk|>" for token in _split(text)]
        return [self.str_to_int[token] for token in tokens]


class GPTDatasetV1(Dataset):
    """긴 텍스트를 ``max_length`` 토큰짜리 입력과 한 칸 밀린 타깃으로 자른다(``stride`` 만큼씩 이동)."""

    def __init__(self, txt, tokenizer, max_length, stride):
        if max_length < 1 or stride < 1:
            raise ValueError(f"max_length 와 stride 는 1 이상이어야 합니다(max_length={max_length}, stride={stride}).")
        token_ids = tokenizer.encode(txt, allowed_special={"<|endoftext|>"})
        if len(token_ids) <= max_length:
            raise ValueError(
                f"텍스트가 너무 짧습니다: 토큰이 {len(token_ids)}개인데, 입력 하나(max_length={max_length})와 "
                f"타깃을 만들려면 {max_length + 1}개 이상이 필요합니다."
            )
        self.input_ids = []
        self.target_ids = []
        for i in range(0, len(token_ids) - max_length, stride):
            self.input_ids.append(torch.tensor(token_ids[i : i + max_length]))
            self.target_ids.append(torch.tensor(token_ids[i + 1 : i + max_length + 1]))

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, idx):
        return self.input_ids[idx], self.target_ids[idx]


def create_dataloader_v1(txt, batch_size=4, max_length=256, stride=128, shuffle=True, drop_last=True, num_workers=0):
    """GPT-2 BPE 토크나이저로 ``GPTDatasetV1`` 을 만들고 DataLoader 로 감싼다."""
    if batch_size < 1:
        raise ValueError(f"batch_size 는 1 이상이어야 합니다(받은 값: {batch_size}).")
    tokenizer = tiktoken.get_encoding("gpt2")
    dataset = GPTDatasetV1(txt, tokenizer, max_length, stride)
    if drop_last and len(dataset) < batch_size:
        raise ValueError(
            f"샘플이 {len(dataset)}개뿐이라 batch_size={batch_size} 배치를 하나도 만들 수 없습니다(drop_last=True). "
            "텍스트를 늘리거나 batch_size, max_length, stride 를 줄이세요."
        )
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=num_workers)


def load_the_verdict(folder="."):
    """이디스 워튼의 단편 "The Verdict" 를 (필요하면 내려받아) 문자열로 돌려준다."""
    path = download_data_file("the-verdict.txt", folder)
    return path.read_text(encoding="utf-8")
