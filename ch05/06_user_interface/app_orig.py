"""OpenAI의 사전 훈련된 GPT-2 124M과 대화하는 chainlit 앱(5장의 가중치 로더 사용).

실행: 이 폴더에서 ``chainlit run app_orig.py`` (처음에는 가중치 약 500 MB를 gpt2/124M 에 내려받는다).
GPT-2는 지시를 따르도록 미세 튜닝되지 않은 모델이므로, 입력한 문장을 이어 쓴다.
"""

from pathlib import Path

import chainlit as cl
import tiktoken
import torch
from chat_utils import checkpoint_dirs, quick_notice, send_streamed, stream_text, tiny_random_model

from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch05 import (
    download_and_load_gpt2,
    gpt2_config_from_hparams,
    load_weights_into_gpt,
    text_to_token_ids,
)
from llm_from_scratch.utils import QUICK, get_device

MODEL_SIZE = "124M"
MODELS_DIR = checkpoint_dirs(Path(__file__).resolve().parent)[0] / "gpt2"
DOWNLOAD_SCRIPT = f"python ../01_main-chapter-code/gpt_download.py --model-size {MODEL_SIZE} --models-dir gpt2"
MAX_NEW_TOKENS = 20 if QUICK else 50
TEMPERATURE = 0.8
TOP_K = 40
SEED = 123  # 같은 입력에는 같은 답을 낸다


def load_model():
    """모델을 한 번만 읽는다. Returns: (모델 또는 None, 채팅을 시작할 때 보여 줄 안내문 또는 None)."""
    checkpoint_ready = (MODELS_DIR / MODEL_SIZE / "model.ckpt.index").is_file()
    if QUICK and not checkpoint_ready:
        return tiny_random_model(), quick_notice(f"gpt2/{MODEL_SIZE}", DOWNLOAD_SCRIPT)
    try:
        settings, params = download_and_load_gpt2(MODEL_SIZE, MODELS_DIR)
    except (RuntimeError, OSError, ImportError, ValueError) as error:  # 내려받기 실패, TensorFlow 없음, 깨진 체크포인트
        return None, (
            f"GPT-2 {MODEL_SIZE} 가중치를 불러오지 못했습니다({error}). "
            f"이 폴더에서 `{DOWNLOAD_SCRIPT}`를 실행해 가중치를 받은 뒤 앱을 다시 시작하세요."
        )
    model = GPTModel(gpt2_config_from_hparams(settings))
    load_weights_into_gpt(model, params)
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
