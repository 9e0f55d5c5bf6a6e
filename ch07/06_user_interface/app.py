"""7장에서 지시를 따르도록 미세 튜닝한 모델(gpt2-medium355M-sft.pth)과 대화하는 chainlit 앱.

실행: 먼저 ``python ../01_main-chapter-code/gpt_instruction_finetuning.py --output-dir .`` 로 모델을 만들고,
이 폴더에서 ``chainlit run app.py``. 입력한 문장을 지시(instruction)로 삼아 훈련 때와 똑같은 Alpaca 형식
프롬프트를 만들고, 생성한 텍스트에서 응답 부분만 골라 한 토큰씩 보여 준다.
"""

import importlib.util
from pathlib import Path

import chainlit as cl
import tiktoken

from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch05 import text_to_token_ids
from llm_from_scratch.ch07 import extract_response, format_input, model_file_name
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

CHECKPOINT = model_file_name("355M")  # gpt2-medium355M-sft.pth
SEARCH_DIRS = chat_utils.checkpoint_dirs(HERE, HERE.parent / "01_main-chapter-code")
TRAIN_SCRIPT = "python ../01_main-chapter-code/gpt_instruction_finetuning.py --output-dir ."
RESPONSE_MARKER = "### Response:"
MAX_NEW_TOKENS = 20 if QUICK else 256
END_OF_TEXT_ID = 50256  # <|endoftext|>: 응답이 끝났다는 표시(7장 훈련 데이터의 끝 토큰)


def load_model():
    """모델을 한 번만 읽는다. Returns: (모델 또는 None, 채팅을 시작할 때 보여 줄 안내문 또는 None)."""
    path = chat_utils.find_checkpoint(CHECKPOINT, SEARCH_DIRS)
    if path is None:
        if QUICK:
            return chat_utils.tiny_random_model(), chat_utils.quick_notice(CHECKPOINT, TRAIN_SCRIPT)
        return None, (
            f"미세 튜닝한 모델 `{CHECKPOINT}`을(를) 찾지 못했습니다. 이 폴더에서 `{TRAIN_SCRIPT}`를 실행해 "
            "모델을 만든 뒤 앱을 다시 시작하세요."
        )
    try:
        state_dict = chat_utils.load_state_dict(path)
        model = GPTModel(chat_utils.config_from_state_dict(state_dict))
        model.load_state_dict(state_dict)
    except ValueError as error:  # 잘린 파일, HTML 페이지, GPTModel 의 가중치가 아닌 파일
        return None, f"{error} 다시 만들려면 `{TRAIN_SCRIPT}`를 실행하세요."
    return model.eval(), None


DEVICE = get_device()
TOKENIZER = tiktoken.get_encoding("gpt2")
MODEL, NOTICE = load_model()
if MODEL is not None:
    MODEL.to(DEVICE)


def build_prompt(instruction):
    """훈련 때와 같은 Alpaca 형식 프롬프트(입력 필드 없이 지시만)."""
    return format_input({"instruction": instruction, "input": ""})


def reply_pieces(instruction):
    """응답을 한 토큰씩 내놓는다. 프롬프트와 ``### Response:`` 표시는 ``extract_response`` 로 뗀다.

    모델이 응답 표시를 다 쓰기 전(표시의 앞부분만 나온 동안)에는 아무것도 내놓지 않는다.
    그리디 디코딩이며 ``<|endoftext|>`` 가 나오면 멈춘다(7장과 같다).
    """
    prompt = build_prompt(instruction)
    token_ids = text_to_token_ids(prompt, TOKENIZER).to(DEVICE)
    generated, sent = "", ""
    for piece in chat_utils.stream_text(MODEL, TOKENIZER, token_ids, MAX_NEW_TOKENS, eos_id=END_OF_TEXT_ID):
        generated += piece
        if RESPONSE_MARKER.startswith(generated.strip()):
            continue
        response = extract_response(prompt + generated, prompt)
        if response.startswith(sent) and len(response) > len(sent):
            yield response[len(sent):]
            sent = response


@cl.on_chat_start
async def on_chat_start():
    if NOTICE:
        await cl.Message(content=NOTICE).send()


@cl.on_message
async def on_message(message: cl.Message):
    if MODEL is None:
        await cl.Message(content=NOTICE).send()
        return
    await chat_utils.send_streamed(cl.Message(content=""), reply_pieces(message.content))
