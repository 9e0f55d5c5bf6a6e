"""5장에서 직접 사전 훈련한 모델(gpt_train.py 가 저장하는 model.pth)과 대화하는 chainlit 앱.

실행: 먼저 ``python ../01_main-chapter-code/gpt_train.py --output-dir .`` 로 model.pth 를 만들고,
이 폴더에서 ``chainlit run app_own.py``. 짧은 소설 한 편으로 훈련한 모델이라 그 소설 같은 문장을 이어 쓴다.
"""

from pathlib import Path

import chainlit as cl
import tiktoken
import torch
from chat_utils import (
    checkpoint_dirs,
    config_from_state_dict,
    find_checkpoint,
    load_state_dict,
    quick_notice,
    send_streamed,
    stream_text,
    tiny_random_model,
)

from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch05 import text_to_token_ids
from llm_from_scratch.utils import QUICK, get_device

HERE = Path(__file__).resolve().parent
CHECKPOINT = "model.pth"
# 이 폴더, 그다음 gpt_train.py 를 기본값으로 실행했을 때 저장되는 폴더에서 찾는다
SEARCH_DIRS = checkpoint_dirs(HERE, HERE.parent / "01_main-chapter-code")
TRAIN_SCRIPT = "python ../01_main-chapter-code/gpt_train.py --output-dir ."
MAX_NEW_TOKENS = 20 if QUICK else 50
TEMPERATURE = 0.8
TOP_K = 40
SEED = 123


def load_model():
    """모델을 한 번만 읽는다. Returns: (모델 또는 None, 채팅을 시작할 때 보여 줄 안내문 또는 None)."""
    path = find_checkpoint(CHECKPOINT, SEARCH_DIRS)
    if path is None:
        if QUICK:
            return tiny_random_model(), quick_notice(CHECKPOINT, TRAIN_SCRIPT)
        return None, (
            f"훈련한 모델 `{CHECKPOINT}`을(를) 찾지 못했습니다. 이 폴더에서 `{TRAIN_SCRIPT}`를 실행해 "
            "모델을 만든 뒤 앱을 다시 시작하세요."
        )
    try:
        state_dict = load_state_dict(path)
        model = GPTModel(config_from_state_dict(state_dict))
        model.load_state_dict(state_dict)
    except ValueError as error:  # 잘린 파일, HTML 페이지, GPTModel 의 가중치가 아닌 파일
        return None, f"{error} 다시 만들려면 `{TRAIN_SCRIPT}`를 실행하세요."
    return model.eval(), None


DEVICE = get_device()
TOKENIZER = tiktoken.get_encoding("gpt2")
MODEL, NOTICE = load_model()
if MODEL is not None:
    MODEL.to(DEVICE)


def reply_pieces(prompt):
    """입력 문장을 이어 쓰는 텍스트를 한 토큰씩 내놓는다."""
    torch.manual_seed(SEED)
    token_ids = text_to_token_ids(prompt, TOKENIZER).to(DEVICE)
    yield from stream_text(
        MODEL, TOKENIZER, token_ids, MAX_NEW_TOKENS, temperature=TEMPERATURE, top_k=TOP_K, eos_id=50256
    )


@cl.on_chat_start
async def on_chat_start():
    if NOTICE:
        await cl.Message(content=NOTICE).send()


@cl.on_message
async def on_message(message: cl.Message):
    if MODEL is None:
        await cl.Message(content=NOTICE).send()
        return
    await send_streamed(cl.Message(content=""), reply_pieces(message.content))
