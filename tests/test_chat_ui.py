"""채팅 UI(5장 app_orig/app_own, 6장 스팸 분류기, 7장 지시 모델)의 메시지 처리 함수를 직접 부르는 테스트.

chainlit 을 가져오는 데만 몇 초가 걸리므로 여기서는 데코레이터와 ``Message`` 만 흉내 낸 가짜 모듈을 쓴다.
진짜 chainlit 서버와 브라우저로 확인하는 테스트는 test_chat_ui_browser.py 에 있다.
"""

import asyncio
import importlib.util
import sys
import types
from pathlib import Path
from typing import ClassVar

import pytest
import tiktoken
import torch

from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch05 import generate, text_to_token_ids
from llm_from_scratch.ch07 import format_input

REPO = Path(__file__).resolve().parents[1]
CH05_UI = REPO / "ch05" / "06_user_interface"
APPS = {
    "app_orig": CH05_UI / "app_orig.py",
    "app_own": CH05_UI / "app_own.py",
    "spam": REPO / "ch06" / "04_user_interface" / "app.py",
    "instruct": REPO / "ch07" / "06_user_interface" / "app.py",
}


class FakeMessage:
    """chainlit.Message 흉내: 흘려보낸 조각과 보낸 메시지를 기록한다."""

    sent: ClassVar[list] = []

    def __init__(self, content=""):
        self.content = content
        self.tokens = []

    async def stream_token(self, token):
        self.tokens.append(token)
        self.content += token

    async def send(self):
        FakeMessage.sent.append(self)
        return self


def _fake_chainlit():
    module = types.ModuleType("chainlit")
    module.Message = FakeMessage
    module.on_chat_start = lambda func: func
    module.on_message = lambda func: func
    return module


def load_app(name, monkeypatch, tmp_path, quick=True):
    """가짜 chainlit 으로 앱 모듈을 새로 읽는다(모델도 이때 한 번 읽힌다).

    저장소에 누가 만들어 둔 체크포인트가 있어도 결과가 같도록, 체크포인트는 빈 임시 폴더에서만 찾게 한다.
    """
    monkeypatch.setenv("LLMFS_CHAT_CHECKPOINT_DIR", str(tmp_path / "no-checkpoints"))
    monkeypatch.setitem(sys.modules, "chainlit", _fake_chainlit())
    monkeypatch.syspath_prepend(str(CH05_UI))  # chainlit run 처럼 앱 폴더를 sys.path 에 둔다
    monkeypatch.setattr("llm_from_scratch.utils.QUICK", quick)
    spec = importlib.util.spec_from_file_location(f"chat_app_{name}", APPS[name])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    FakeMessage.sent = []
    return module


def run(coroutine):
    return asyncio.run(coroutine)


def test_quick_mode_without_checkpoint_starts_tiny_model_with_korean_notice(monkeypatch, tmp_path):
    app = load_app("app_orig", monkeypatch, tmp_path)
    assert isinstance(app.MODEL, GPTModel) and app.MODEL.pos_emb.num_embeddings == 64
    run(app.on_chat_start())
    notice = FakeMessage.sent[0].content
    assert "빠른 모드" in notice and "작은 무작위 모델" in notice and "gpt_download.py" in notice


def test_reply_streams_token_by_token_and_model_is_not_reloaded(monkeypatch, tmp_path):
    app = load_app("app_orig", monkeypatch, tmp_path)
    # 메시지마다 모델을 다시 읽으면 이 함수가 불려 실패한다
    monkeypatch.setattr(app, "load_model", lambda: pytest.fail("메시지마다 모델을 다시 읽었습니다"))
    run(app.on_message(FakeMessage("Every effort moves you")))
    run(app.on_message(FakeMessage("Every effort moves you")))
    first, second = FakeMessage.sent
    assert len(first.tokens) >= 5 and first.content == "".join(first.tokens)
    assert second.content == first.content  # 메시지마다 같은 시드로 샘플링한다
    assert first.content == "".join(app.reply_pieces("Every effort moves you"))


def test_stream_text_matches_chapter_5_generate_with_greedy_decoding():
    chat_utils = _chat_utils()
    model = chat_utils.tiny_random_model()
    tokenizer = tiktoken.get_encoding("gpt2")
    ids = text_to_token_ids("Hello, I am", tokenizer)
    pieces = list(chat_utils.stream_text(model, tokenizer, ids, 8))
    expected = generate(model, ids, 8, context_size=64)[0, ids.shape[1]:].tolist()
    assert len(pieces) == 8 and "".join(pieces) == tokenizer.decode(expected)


def _chat_utils():
    spec = importlib.util.spec_from_file_location("chat_utils_under_test", CH05_UI / "chat_utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_own_model_loads_saved_model_pth_and_missing_file_names_train_script(monkeypatch, tmp_path):
    from llm_from_scratch.ch05.gpt_train import QUICK_CONFIG

    app = load_app("app_own", monkeypatch, tmp_path)
    torch.manual_seed(0)
    trained = GPTModel(QUICK_CONFIG)
    torch.save(trained.state_dict(), tmp_path / "model.pth")
    monkeypatch.setattr(app, "SEARCH_DIRS", (tmp_path,))
    model, notice = app.load_model()
    assert notice is None and torch.equal(model.tok_emb.weight, trained.tok_emb.weight)

    monkeypatch.setattr(app, "SEARCH_DIRS", (tmp_path / "empty",))
    monkeypatch.setattr(app, "QUICK", False)
    model, notice = app.load_model()
    assert model is None and "gpt_train.py" in notice and "model.pth" in notice
    monkeypatch.setattr(app, "MODEL", None)
    monkeypatch.setattr(app, "NOTICE", notice)
    run(app.on_message(FakeMessage("Every effort")))
    assert FakeMessage.sent[-1].content == notice


@pytest.mark.parametrize(("spam_bias", "expected"), [(10.0, "스팸"), (-10.0, "스팸 아님")])
def test_spam_app_answers_in_korean_from_saved_classifier(monkeypatch, tmp_path, spam_bias, expected):
    chat_utils = _chat_utils()
    app = load_app("spam", monkeypatch, tmp_path)
    classifier = chat_utils.tiny_random_model()
    classifier.out_head = torch.nn.Linear(32, 2)
    with torch.no_grad():
        classifier.out_head.weight.zero_()
        classifier.out_head.bias.copy_(torch.tensor([0.0, spam_bias]))
    torch.save(classifier.state_dict(), tmp_path / "review_classifier.pth")
    monkeypatch.setattr(app, "SEARCH_DIRS", (tmp_path,))
    model, notice = app.load_model()
    monkeypatch.setattr(app, "MODEL", model)
    run(app.on_message(FakeMessage("You are a winner! Claim your prize now.")))
    assert notice is None and FakeMessage.sent[-1].content == expected


def test_spam_app_quick_mode_and_missing_checkpoint(monkeypatch, tmp_path):
    app = load_app("spam", monkeypatch, tmp_path)
    run(app.on_message(FakeMessage("Hi, are we still meeting today?")))
    assert FakeMessage.sent[-1].content in {"스팸", "스팸 아님"}
    monkeypatch.setattr(app, "SEARCH_DIRS", (tmp_path,))
    monkeypatch.setattr(app, "QUICK", False)
    model, notice = app.load_model()
    assert model is None and "gpt_class_finetune.py" in notice


def test_instruction_app_uses_training_prompt_and_extracts_response(monkeypatch, tmp_path):
    app = load_app("instruct", monkeypatch, tmp_path)
    prompt = app.build_prompt("Name a dwarf planet.")
    assert prompt == format_input({"instruction": "Name a dwarf planet.", "input": ""})
    assert prompt == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nName a dwarf planet."
    )
    # 모델이 응답 표시를 조각조각 쓰는 동안에는 아무것도 내보내지 않고, 표시 뒤의 응답만 흘려보낸다
    fake_pieces = ["\n\n###", " Resp", "onse:\n", "Pluto", " is", " one."]
    monkeypatch.setattr(app.chat_utils, "stream_text", lambda *args, **kwargs: iter(fake_pieces))
    run(app.on_message(FakeMessage("Name a dwarf planet.")))
    reply = FakeMessage.sent[-1]
    assert reply.content == "Pluto is one." and reply.tokens == ["Pluto", " is", " one."]


def test_instruction_app_missing_checkpoint_names_finetuning_script(monkeypatch, tmp_path):
    app = load_app("instruct", monkeypatch, tmp_path)
    assert app.CHECKPOINT == "gpt2-medium355M-sft.pth"
    monkeypatch.setattr(app, "SEARCH_DIRS", (tmp_path,))
    monkeypatch.setattr(app, "QUICK", False)
    model, notice = app.load_model()
    assert model is None and "gpt_instruction_finetuning.py" in notice
