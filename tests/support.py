"""테스트가 함께 쓰는 도우미: 폴더 지문, 한글 확인, 파일에서 모듈 읽기, 가짜 Ollama 서버, GPT-2 가 transformers 와 같은지 보는 검사.

``tests/conftest.py`` 가 이 폴더를 ``sys.path`` 에 넣으므로 테스트 파일에서 ``from support import ...`` 로 쓴다
(pytest 는 ``--import-mode=importlib`` 로 돌아 테스트 폴더를 스스로 경로에 넣지 않는다).
"""

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

from llm_from_scratch.ch05 import generate

# ---------------------------------------------------------------------------
# 파일과 글자
# ---------------------------------------------------------------------------
HANGUL = range(0xAC00, 0xD7A4)


def tree(folder: Path) -> dict:
    """폴더 안 모든 파일의 상대 경로 -> sha256. 전후 비교로 '바이트 단위로 그대로'를 확인한다."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def korean(text: str) -> bool:
    """한글 음절이 하나라도 있는지(오류 메시지가 한국어인지 볼 때 쓴다)."""
    return any(ord(ch) in HANGUL for ch in text)


REPO_ROOT = Path(__file__).resolve().parent.parent


def project_files(pattern: str) -> list[Path]:
    """저장소의 파일(git 이 추적하거나 무시하지 않는 새 파일). git 저장소가 아니면(CI 가 파일만 옮긴 폴더) 폴더를 훑는다."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", pattern],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.split("\n")
        files = [REPO_ROOT / name for name in out if name]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in REPO_ROOT.rglob(pattern) if ".git" not in p.parts]
    skip = {".ipynb_checkpoints", "build", "dist", "outputs", "node_modules"}
    return sorted(p for p in files if p.is_file() and not (set(p.relative_to(REPO_ROOT).parts) & skip))


class FakeClock:
    """``time`` 모듈 대신 넣는 시계: ``perf_counter()`` 가 정해 둔 시각을 차례로 돌려준다(벽시계 없이 계산식만 확인한다)."""

    def __init__(self, *readings):
        self.readings = iter(readings)

    def perf_counter(self):
        return next(self.readings)


def load_module(path, name):
    """패키지가 아닌 폴더의 스크립트를 모듈로 읽는다(``sys.modules`` 에 ``name`` 으로 등록)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------
# 가짜 Ollama 서버(127.0.0.1)
# ---------------------------------------------------------------------------


def _words(text):
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def judge_reply(prompt):
    """가짜 심판의 점수: 책의 채점 프롬프트에서 정답과 응답을 찾아, 정답 단어 중 응답에 든 비율(0~100)을 답한다.

    받은 내용만으로 정해지므로, 정답과 같은 응답이 틀린 응답보다 반드시 높은 점수를 받는다.
    채점 프롬프트가 아니면 "50" 을 답한다.
    """
    reference = re.search(r"The reference answer is `(.*?)`\.", prompt, re.DOTALL)
    answer = re.search(r"Rate the following answer `(.*?)` on a scale", prompt, re.DOTALL)
    if reference is None or answer is None:
        return "50"
    expected = _words(reference.group(1))
    if not expected:
        return "0"
    return str(round(100 * len(expected & _words(answer.group(1))) / len(expected)))


class FakeOllama:
    """Ollama 흉내: ``GET /`` 에 "Ollama is running", ``POST .../api/chat`` 에 줄마다 JSON 조각(NDJSON)을 보낸다.

    ``reply(prompt)`` 가 마지막 사용자 메시지에 대한 답을 만든다(기본: ``judge_reply``). 고장 난 서버를 흉내 내려면
    ``raw_reply`` 에 보낼 바이트를, 늦은 서버는 ``delay`` 에 초를 둔다. 받은 JSON 본문은 ``requests`` 에 쌓인다.
    """

    def __init__(self, reply=judge_reply):
        self.reply = reply
        self.raw_reply = None
        self.delay = 0.0
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                fake._send(self, b"Ollama is running", "text/plain")

            def do_POST(self):
                if not self.path.endswith("/api/chat"):
                    self.send_error(404)
                    return
                payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                fake.requests.append(payload)
                if fake.delay:
                    time.sleep(fake.delay)
                if fake.raw_reply is not None:
                    fake._send(self, fake.raw_reply, "application/x-ndjson")
                    return
                text = fake.reply(payload["messages"][-1]["content"])
                model = payload.get("model")
                pieces = [text[i : i + 3] for i in range(0, len(text), 3)]  # 여러 조각으로 나눠 보낸다
                lines = [{"model": model, "message": {"role": "assistant", "content": p}, "done": False} for p in pieces]
                lines.append({"model": model, "message": {"role": "assistant", "content": ""}, "done": True})
                fake._send(self, "".join(json.dumps(line) + "\n" for line in lines).encode(), "application/x-ndjson")

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    @property
    def root(self):
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self):
        return f"{self.root}/api/chat"

    @staticmethod
    def _send(handler, body, content_type):
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # 제한 시간이 지나 클라이언트가 먼저 끊었다
            pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


# ---------------------------------------------------------------------------
# GPT-2: 우리 GPTModel 이 transformers 의 GPT2LMHeadModel 과 같은 계산을 하는지
# ---------------------------------------------------------------------------


def assert_same_as_transformers_gpt2(gpt, hf_model, prompt, context_size, new_tokens=8):
    """같은 가중치를 실은 두 모델의 로짓이 같고, 그리디 생성이 같은 토큰을 낸다."""
    with torch.no_grad():
        ours = gpt(prompt)
        theirs = hf_model(prompt).logits
    assert ours.abs().max() > 0.1  # 모든 값이 0 근처라서 저절로 맞는 일이 없도록
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)

    greedy = generate(gpt, prompt[:1], new_tokens, context_size)
    hf_greedy = hf_model.generate(
        prompt[:1], attention_mask=torch.ones_like(prompt[:1]), max_new_tokens=new_tokens, do_sample=False,
        pad_token_id=50256,
    )
    assert greedy.tolist() == hf_greedy.tolist()
