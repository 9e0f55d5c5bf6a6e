"""6장에서 미세 튜닝한 스팸 분류기(gpt_class_finetune.py 가 저장하는 review_classifier.pth)를 쓰는 chainlit 앱.

실행: 먼저 ``python ../01_main-chapter-code/gpt_class_finetune.py --output-dir .`` 로 분류기를 만들고,
이 폴더에서 ``chainlit run app.py``. 문자 메시지를 입력하면 "스팸" 또는 "스팸 아님"으로 답한다.
"""

import importlib.util
from pathlib import Path

import chainlit as cl
import tiktoken
import torch

from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch06 import classify_review
from llm_from_scratch.utils import QUICK, get_device

HERE = Path(__file__).resolve().parent


def _load_chat_utils():
    # 세 채팅 앱이 함께 쓰는 도구는 5장 UI 폴더에 있다(복사하지 않고 경로로 읽는다)
    path = HERE.parents[1] / "ch05" / "06_user_interface" / "chat_utils.py"
    spec = importlib.util.spec_from_file_location("chat_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chat_utils = _load_chat_utils()

CHECKPOINT = "review_classifier.pth"
SEARCH_DIRS = chat_utils.checkpoint_dirs(HERE, HERE.parent / "01_main-chapter-code")
TRAIN_SCRIPT = "python ../01_main-chapter-code/gpt_class_finetune.py --output-dir ."
# 책의 훈련 세트에서 가장 긴 메시지가 120 토큰이라, 분류기는 이 길이로 채운 입력으로 훈련되었다
TRAIN_MAX_LENGTH = 120
LABELS_KO = {"spam": "스팸", "not spam": "스팸 아님"}


def load_model():
    """분류기를 한 번만 읽는다. Returns: (모델 또는 None, 채팅을 시작할 때 보여 줄 안내문 또는 None)."""
    path = chat_utils.find_checkpoint(CHECKPOINT, SEARCH_DIRS)
    if path is None:
        if QUICK:
            model = chat_utils.tiny_random_model()
            model.out_head = torch.nn.Linear(model.out_head.in_features, 2)
            return model.eval(), chat_utils.quick_notice(CHECKPOINT, TRAIN_SCRIPT)
        return None, (
            f"미세 튜닝한 분류기 `{CHECKPOINT}`을(를) 찾지 못했습니다. 이 폴더에서 `{TRAIN_SCRIPT}`를 실행해 "
            "분류기를 만든 뒤 앱을 다시 시작하세요."
        )
    try:
        state_dict = chat_utils.load_state_dict(path)
        cfg = chat_utils.config_from_state_dict(state_dict)
        model = GPTModel(cfg)
        model.out_head = torch.nn.Linear(cfg["emb_dim"], state_dict["out_head.weight"].shape[0])
        model.load_state_dict(state_dict)
    except ValueError as error:  # 잘린 파일, HTML 페이지, GPTModel 의 가중치가 아닌 파일
        return None, f"{error} 다시 만들려면 `{TRAIN_SCRIPT}`를 실행하세요."
    return model.eval(), None


DEVICE = get_device()
TOKENIZER = tiktoken.get_encoding("gpt2")
MODEL, NOTICE = load_model()
if MODEL is not None:
    MODEL.to(DEVICE)


def classify(text):
    """메시지 하나를 분류해 "스팸" 또는 "스팸 아님"을 돌려준다."""
    label = classify_review(text, MODEL, TOKENIZER, DEVICE, max_length=TRAIN_MAX_LENGTH)
    return LABELS_KO[label]


@cl.on_chat_start
async def on_chat_start():
    if NOTICE:
        await cl.Message(content=NOTICE).send()


@cl.on_message
async def on_message(message: cl.Message):
    if MODEL is None:
        await cl.Message(content=NOTICE).send()
        return
    # 분류기의 답은 레이블 하나이므로 한 조각으로 보낸다
    await chat_utils.send_streamed(cl.Message(content=""), [classify(message.content)])
