"""7장 보너스가 함께 쓰는 LLM 서비스 도구: Ollama·OpenAI 호환 API 클라이언트, 심판(judge), 연습용 가짜 서버.

- Ollama: 채팅은 7장의 ``query_model`` 을 그대로 쓰고, 채팅 템플릿을 거치지 않는 생성(``/api/generate`` 의
  ``raw``)만 여기서 더한다(Magpie 방식 데이터 생성에 필요하다).
- OpenAI 호환 API: ``openai`` 패키지의 클라이언트. 키는 환경 변수 ``OPENAI_API_KEY`` 나 ``config.json`` 에서 읽는다.
- 심판: ``OllamaJudge``, ``OpenAIJudge`` 가 7장의 채점 프롬프트(``format_scoring_prompt``)와 점수 읽기
  (``parse_score``)로 응답을 0~100점으로 매긴다.
- 가짜 서버: ``FakeOllamaServer``, ``FakeOpenAIServer`` 는 127.0.0.1 의 빈 포트에서 스레드로 도는 작은 HTTP 서버다.
  진짜 서비스가 없는 곳(테스트, QUICK 모드)에서 클라이언트 코드를 그대로 돌려 보게 한다. 답은 넘겨준 함수가 만든다.

다른 폴더의 노트북은 ``sys.path`` 에 이 폴더(``../03_model-evaluation``)를 더해 가져온다.
"""

import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tqdm import tqdm

from llm_from_scratch.ch07 import DEFAULT_OLLAMA_URL, check_if_running, format_scoring_prompt, parse_score, query_model

DEFAULT_OLLAMA_GENERATE_URL = "http://localhost:11434/api/generate"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"

OLLAMA_MISSING = (
    "Ollama 서버({url})에 연결할 수 없습니다. https://ollama.com 에서 Ollama를 설치하고 "
    "'ollama serve'로 서버를, 'ollama pull {model}'로 모델을 준비한 뒤 다시 실행하세요."
)
OPENAI_KEY_MISSING = (
    "OpenAI API 키가 없습니다. 환경 변수 OPENAI_API_KEY 를 설정하거나, 이 폴더의 config.json 에 "
    '{"OPENAI_API_KEY": "sk-..."} 형식으로 적으세요(config.json 은 저장소에 올리지 마세요).'
)


# ---------------------------------------------------------------------------
# Ollama
# ---------------------------------------------------------------------------


def ollama_available(url=DEFAULT_OLLAMA_URL):
    """``url`` 의 Ollama 서버가 응답하면 True (7장의 ``check_if_running``)."""
    return check_if_running(url)


def require_ollama(url=DEFAULT_OLLAMA_URL, model="llama3"):
    """Ollama 서버가 없으면 무엇을 하라는 한국어 메시지와 함께 ``ConnectionError`` 를 낸다."""
    if not ollama_available(url):
        raise ConnectionError(OLLAMA_MISSING.format(url=url, model=model))


def ollama_chat(prompt, model="llama3", url=DEFAULT_OLLAMA_URL, seed=123, temperature=0.0, timeout=600):
    """Ollama 채팅 API 로 프롬프트 하나를 보내고 답을 돌려준다(7장의 ``query_model``)."""
    return query_model(prompt, model=model, url=url, seed=seed, temperature=temperature, timeout=timeout)


def ollama_generate_raw(prompt, model="llama3", url=DEFAULT_OLLAMA_GENERATE_URL, seed=123, temperature=1.0,
                        num_predict=256, timeout=600):
    """채팅 템플릿을 씌우지 않고(``raw``) 프롬프트를 그대로 이어 쓰게 한다. 줄마다 오는 JSON 조각을 잇는다.

    Magpie 방식처럼 템플릿의 일부(사용자 차례의 머리말)만 보내야 할 때 쓴다.
    """
    payload = {
        "model": model, "prompt": prompt, "raw": True,
        "options": {"seed": seed, "temperature": temperature, "num_predict": num_predict},
    }
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST"
    )
    pieces = []
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            for raw_line in response:
                line = raw_line.decode("utf-8").strip()
                if not line:
                    continue
                chunk = json.loads(line)
                if "error" in chunk:
                    raise RuntimeError(f"Ollama가 오류를 돌려주었습니다: {chunk['error']}")
                pieces.append(chunk.get("response", ""))
                if chunk.get("done"):
                    break
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", errors="replace").strip()
        raise RuntimeError(f"Ollama({url})가 HTTP {error.code}로 답했습니다: {detail}") from error
    except urllib.error.URLError as error:
        raise ConnectionError(OLLAMA_MISSING.format(url=url, model=model)) from error
    return "".join(pieces)


# ---------------------------------------------------------------------------
# OpenAI 호환 API
# ---------------------------------------------------------------------------


def load_openai_api_key(config_path="config.json"):
    """API 키: 환경 변수 ``OPENAI_API_KEY`` 가 먼저, 없으면 ``config_path`` 의 ``OPENAI_API_KEY`` 값."""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if key:
        return key
    path = Path(config_path)
    if path.is_file():
        try:
            key = str(json.loads(path.read_text(encoding="utf-8")).get("OPENAI_API_KEY", "")).strip()
        except (json.JSONDecodeError, AttributeError) as error:
            raise ValueError(f"{path} 를 읽지 못했습니다: {error}. " + OPENAI_KEY_MISSING) from error
        if key:
            return key
    raise RuntimeError(OPENAI_KEY_MISSING)


def make_openai_client(api_key=None, base_url=None, timeout=60.0, config_path="config.json"):
    """OpenAI(또는 호환 서버) 클라이언트. ``base_url`` 이 None 이면 OpenAI 의 주소, 재시도는 하지 않는다."""
    from openai import OpenAI

    api_key = api_key or load_openai_api_key(config_path)
    return OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)


def openai_chat(client, prompt, model=DEFAULT_OPENAI_MODEL, system=None, temperature=0.0, seed=123):
    """OpenAI 호환 채팅 API 에 프롬프트 하나를 보내고 답 텍스트를 돌려준다. 실패하면 한국어로 알린다."""
    import openai

    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    try:
        response = client.chat.completions.create(
            model=model, messages=messages, temperature=temperature, seed=seed
        )
    except openai.AuthenticationError as error:
        raise RuntimeError(f"API 키가 거부되었습니다({error.status_code}). 키를 확인하세요.") from error
    except openai.APIConnectionError as error:
        raise ConnectionError(
            f"OpenAI 호환 API({client.base_url})에 연결할 수 없습니다. 네트워크와 주소를 확인하세요."
        ) from error
    except openai.APIStatusError as error:
        raise RuntimeError(f"API가 HTTP {error.status_code}로 답했습니다: {error.message}") from error
    return response.choices[0].message.content


# ---------------------------------------------------------------------------
# LLM 심판: 서비스 종류마다 하나
# ---------------------------------------------------------------------------


class _Judge:
    """응답을 0~100점으로 매기는 심판의 공통 부분. 하위 클래스는 ``ask(prompt)`` 만 정한다."""

    def ask(self, prompt):
        raise NotImplementedError

    def score(self, entry, json_key="model_response"):
        """항목 하나의 ``json_key`` 응답 점수. 답을 점수로 읽을 수 없으면 None."""
        return parse_score(self.ask(format_scoring_prompt(entry, json_key)))

    def score_all(self, entries, json_key="model_response", show_progress=True):
        """항목마다 점수를 매긴다. 읽을 수 없는 답은 None 으로 남겨 항목과 점수의 순서가 어긋나지 않게 한다."""
        return [self.score(entry, json_key) for entry in tqdm(entries, desc=f"채점({json_key})",
                                                               disable=not show_progress)]


class OllamaJudge(_Judge):
    """Ollama 의 모델(책: llama3)로 채점하는 심판. 온도 0, 시드 고정이라 같은 답이 나온다."""

    def __init__(self, model="llama3", url=DEFAULT_OLLAMA_URL):
        self.model, self.url = model, url

    def ask(self, prompt):
        return ollama_chat(prompt, model=self.model, url=self.url)


class OpenAIJudge(_Judge):
    """OpenAI 호환 채팅 API 로 채점하는 심판(``client`` 는 ``make_openai_client`` 가 만든 것)."""

    def __init__(self, client, model=DEFAULT_OPENAI_MODEL):
        self.client, self.model = client, model

    def ask(self, prompt):
        return openai_chat(self.client, prompt, model=self.model)


def summarize_scores(scores):
    """점수 리스트(None 은 읽지 못한 답)의 요약: 개수, 평균, 읽지 못한 답의 수."""
    numbers = [s for s in scores if s is not None]
    mean = sum(numbers) / len(numbers) if numbers else float("nan")
    return {"count": len(numbers), "mean": mean, "unparsed": len(scores) - len(numbers)}


# ---------------------------------------------------------------------------
# 연습용 가짜 서버
# ---------------------------------------------------------------------------


class _FakeServer:
    """127.0.0.1 의 빈 포트에서 스레드로 도는 HTTP 서버. ``with`` 로 쓰거나 ``start()``/``stop()`` 한다.

    ``reply_fn(prompt)`` 이 답 텍스트를 만든다. 받은 요청의 JSON 본문은 ``requests`` 에 쌓인다.
    """

    def __init__(self, reply_fn):
        self.reply_fn = reply_fn
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # 요청마다 찍히는 로그를 끈다
                pass

            def do_GET(self):
                server._handle(self, "GET", None)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(body)
                server._handle(self, "POST", body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def root(self):
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @staticmethod
    def _send(handler, status, body, content_type="application/json"):
        data = body.encode("utf-8")
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def _chunks(text, size=3):
    """스트리밍 응답처럼 답을 단어 몇 개씩 나눈다."""
    words = re.split(r"(?<=\s)", text)
    return ["".join(words[i:i + size]) for i in range(0, len(words), size)] or [""]


class FakeOllamaServer(_FakeServer):
    """Ollama 흉내: ``GET /``, ``POST /api/chat`` (마지막 사용자 메시지), ``POST /api/generate`` (``prompt``).

    답은 진짜 Ollama처럼 줄마다 JSON 조각 하나씩(NDJSON) 나눠 보내고, 마지막 줄에 ``"done": true`` 를 단다.
    """

    @property
    def chat_url(self):
        return f"{self.root}/api/chat"

    @property
    def generate_url(self):
        return f"{self.root}/api/generate"

    def _handle(self, handler, method, body):
        if method == "GET" and handler.path == "/":
            return self._send(handler, 200, "Ollama is running", "text/plain")
        if method == "POST" and handler.path in ("/api/chat", "/api/generate"):
            chat = handler.path == "/api/chat"
            prompt = body["messages"][-1]["content"] if chat else body.get("prompt", "")
            lines = []
            for piece in _chunks(self.reply_fn(prompt)):
                content = {"message": {"role": "assistant", "content": piece}} if chat else {"response": piece}
                lines.append(json.dumps({"model": body.get("model"), **content, "done": False}))
            lines.append(json.dumps({"model": body.get("model"), "done": True,
                                     **({"message": {"role": "assistant", "content": ""}} if chat else {})}))
            return self._send(handler, 200, "\n".join(lines) + "\n", "application/x-ndjson")
        return self._send(handler, 404, json.dumps({"error": f"not found: {handler.path}"}))


class FakeOpenAIServer(_FakeServer):
    """OpenAI 채팅 API 흉내: ``POST /v1/chat/completions`` 만 답한다. ``Authorization`` 헤더가 없으면 401."""

    @property
    def base_url(self):
        return f"{self.root}/v1"

    def _handle(self, handler, method, body):
        if not handler.headers.get("Authorization", "").startswith("Bearer "):
            return self._send(handler, 401, json.dumps({"error": {"message": "missing API key", "type": "auth"}}))
        if method == "POST" and handler.path == "/v1/chat/completions":
            reply = self.reply_fn(body["messages"][-1]["content"])
            completion = {
                "id": f"chatcmpl-fake-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": reply}}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            }
            return self._send(handler, 200, json.dumps(completion))
        return self._send(handler, 404, json.dumps({"error": {"message": f"not found: {handler.path}"}}))


# ---------------------------------------------------------------------------
# 가짜 서버가 쓰는 연습용 답
# ---------------------------------------------------------------------------


def _words(text):
    return re.findall(r"[a-z0-9]+", text.lower())


def overlap_judge_reply(prompt):
    """연습용 심판의 답: 채점 프롬프트에서 정답과 응답을 찾아 단어 F1 점수(0~100)를 문자열로 돌려준다.

    진짜 LLM 심판의 판단이 아니라, 정답과 단어가 많이 겹칠수록 높은 점수를 주는 결정적인 규칙이다.
    정답의 숫자가 응답에 하나라도 없으면 절반으로 깎는다("10 cm"를 "3 cm"로 답한 경우).
    """
    reference = re.search(r"The reference answer is `(.*?)`\.", prompt, re.DOTALL)
    answer = re.search(r"Rate the following answer `(.*?)` on a scale", prompt, re.DOTALL)
    if reference is None or answer is None:
        return "50"
    ref_words, ans_words = _words(reference.group(1)), _words(answer.group(1))
    common = sum(min(ref_words.count(w), ans_words.count(w)) for w in set(ans_words))
    if common == 0:
        return "0"
    precision, recall = common / len(ans_words), common / len(ref_words)
    score = 100 * 2 * precision * recall / (precision + recall)
    if not {w for w in ref_words if w.isdigit()} <= set(ans_words):
        score /= 2
    return str(round(score))
