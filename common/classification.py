"""6장 보너스 분류 스크립트(추가 실험, IMDb)가 함께 쓰는 것: 분류에 쓸 위치 고르기와 ``--context-length`` 읽기.

6장은 마지막 토큰의 출력으로 분류한다. 보너스 실험은 첫 토큰, 패딩을 뺀 마지막 진짜 토큰, 모든 위치의 평균도 써 본다.
"""

import argparse

import torch

__all__ = ["PAD_TOKEN_ID", "TOKEN_POSITIONS", "ClassifierView", "parse_context_length", "select_logits"]

PAD_TOKEN_ID = 50256  # 6장처럼 <|endoftext|> 로 채운다
TOKEN_POSITIONS = ("first", "last", "flexible")


def _check_token_pos(token_pos):
    if token_pos not in TOKEN_POSITIONS:
        raise ValueError(f"token_pos 는 {', '.join(TOKEN_POSITIONS)} 중 하나여야 합니다(받은 값: {token_pos!r}).")


def select_logits(logits, input_batch, token_pos="last", average_embeddings=False, pad_token_id=PAD_TOKEN_ID,
                  average_padding=False):
    """(배치, 토큰, 클래스) 로짓에서 예제마다 한 줄을 고른다.

    ``average_embeddings`` 면 위치들의 평균을 쓴다(헤드가 선형이므로 출력 임베딩 평균에 헤드를 씌운 것과 같다).
    ``average_padding`` 이 참이면 원서처럼 패딩까지 모든 위치를, 아니면 진짜 토큰만 평균한다. 그 밖에는 첫 토큰
    (first), 마지막 위치(last), 패딩을 뺀 마지막 진짜 토큰(flexible)을 쓴다. 모두 패딩이면 첫 위치를 진짜로 본다.
    """
    _check_token_pos(token_pos)
    real = input_batch != pad_token_id
    real[~real.any(dim=1), 0] = True
    if average_embeddings:
        if average_padding:
            return logits.mean(dim=1)
        weights = real.to(logits.dtype).unsqueeze(-1)
        return (logits * weights).sum(dim=1) / weights.sum(dim=1)
    if token_pos == "first":
        return logits[:, 0, :]
    if token_pos == "last":
        return logits[:, -1, :]
    last_real = real.sum(dim=1) - 1
    return logits[torch.arange(logits.shape[0], device=logits.device), last_real, :]


class ClassifierView(torch.nn.Module):
    """고른 위치의 로짓만 (배치, 1, 클래스) 모양으로 내놓는 감싸개.

    6장의 ``train_classifier_simple`` 과 ``calc_accuracy_loader`` 는 마지막 위치를 읽으므로, 이 감싸개를 주면
    고치지 않고 그대로 쓸 수 있다.
    """

    def __init__(self, model, token_pos="last", average_embeddings=False, average_padding=False):
        super().__init__()
        _check_token_pos(token_pos)
        self.model = model
        self.token_pos = token_pos
        self.average_embeddings = average_embeddings
        self.average_padding = average_padding

    def forward(self, input_batch):
        logits = self.model(input_batch)
        return select_logits(
            logits, input_batch, self.token_pos, self.average_embeddings, average_padding=self.average_padding
        ).unsqueeze(1)


def parse_context_length(value):
    """``--context-length``: longest_training_example(줄여서 longest), model_context_length, 또는 양의 정수."""
    if value in ("longest_training_example", "longest"):
        return "longest_training_example"
    if value == "model_context_length":
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            "--context-length 는 longest_training_example(longest), model_context_length 또는 양의 정수여야 합니다"
            f"(받은 값: {value!r})."
        )
    return number
