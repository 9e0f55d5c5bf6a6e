"""채팅 UI 네 개를 진짜 ``chainlit run --headless`` 로 띄우고, 진짜 헤드리스 브라우저(데비안의 chromium 을
playwright 로 조종)로 페이지를 열어 메시지를 입력한 뒤 답이 페이지에 나타나는지 확인한다.

- 서버는 빠른 모드(LLMFS_QUICK=1, 체크포인트 없음 → 작은 무작위 모델)와 오프라인(LLMFS_OFFLINE=1)으로,
  127.0.0.1 의 빈 포트에서 돈다. chainlit 이 만드는 설정 파일(.chainlit/, chainlit.md)은 임시 폴더에 생긴다.
- 브라우저는 서버 밖으로 나가는 요청(웹 글꼴 등)을 모두 막는다.
- 서버 네 개는 한꺼번에 띄우고, 브라우저는 이 모듈 전체에서 하나만 쓴다.
- chromium 이 없으면 건너뛴다(CI 에서는 .ci/install-browser 가 설치한다).
"""

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
APPS = {
    "app_orig": REPO / "ch05" / "06_user_interface" / "app_orig.py",
    "app_own": REPO / "ch05" / "06_user_interface" / "app_own.py",
    "spam": REPO / "ch06" / "04_user_interface" / "app.py",
    "instruct": REPO / "ch07" / "06_user_interface" / "app.py",
}
CHROMIUM = next((path for path in ("/usr/bin/chromium", shutil.which("chromium") or "") if Path(path).is_file()), None)
STARTUP_TIMEOUT = 180  # 2코어 머신에서 torch 와 chainlit 을 가져오는 데 1분 넘게 걸릴 수 있다
REPLY_TIMEOUT = 120

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium 이 없습니다(데비안: apt-get install chromium, CI: .ci/install-browser)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="playwright 가 설치되어 있지 않습니다"),
]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(app_path, work_dir):
    work_dir.mkdir()
    port = _free_port()
    env = {
        **os.environ,
        "LLMFS_QUICK": "1",
        "LLMFS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
        "OMP_NUM_THREADS": "1",
        "CHAINLIT_APP_ROOT": str(work_dir),
        # 저장소에 누가 만들어 둔 체크포인트가 있어도 늘 빠른 모드의 작은 무작위 모델로 뜨게 한다
        "LLMFS_CHAT_CHECKPOINT_DIR": str(work_dir / "no-checkpoints"),
    }
    log = open(work_dir / "server.log", "w")  # noqa: SIM115 (서버가 끝날 때 닫는다)
    process = subprocess.Popen(
        [sys.executable, "-m", "chainlit", "run", str(app_path), "--headless", "--host", "127.0.0.1", "--port", str(port)],
        cwd=work_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return {"process": process, "url": f"http://127.0.0.1:{port}", "log": log, "log_path": work_dir / "server.log"}


def _wait_until_serving(server):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server["process"].poll() is not None:
            pytest.fail(f"chainlit 서버가 일찍 끝났습니다:\n{server['log_path'].read_text()}")
        try:
            with urllib.request.urlopen(server["url"], timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"chainlit 서버가 {STARTUP_TIMEOUT}초 안에 뜨지 않았습니다:\n{server['log_path'].read_text()}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("chainlit")
    started = {name: _start_server(path, root / name) for name, path in APPS.items()}
    yield started
    for server in started.values():
        server["process"].terminate()
        try:
            server["process"].wait(timeout=10)
        except subprocess.TimeoutExpired:
            server["process"].kill()
            server["process"].wait()
        server["log"].close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def chat(browser, server, text):
    """페이지를 열어 안내문을 기다린 뒤 ``text`` 를 입력하고, 답이 다 오면 (안내문, 답)을 돌려준다."""
    _wait_until_serving(server)
    page = browser.new_page(locale="ko-KR")
    base = server["url"]
    # 서버 밖(웹 글꼴, CDN)으로는 나가지 않는다
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base) else route.abort())
    try:
        page.goto(base, wait_until="domcontentloaded")
        assistant = page.locator("[data-step-type=assistant_message]")
        assistant.first.wait_for(timeout=REPLY_TIMEOUT * 1000)  # 빠른 모드 안내문: 세션이 연결되었다
        notice = assistant.first.inner_text()
        page.locator("#chat-input").click()
        page.keyboard.type(text)
        page.keyboard.press("Enter")
        user_message = page.locator("[data-step-type=user_message]").filter(has_text=text)
        user_message.wait_for(timeout=REPLY_TIMEOUT * 1000)
        assistant.nth(1).wait_for(timeout=REPLY_TIMEOUT * 1000)
        # 스트리밍이 끝날 때까지(텍스트가 더 바뀌지 않을 때까지) 기다린다
        previous, reply = None, assistant.nth(1).inner_text()
        deadline = time.monotonic() + REPLY_TIMEOUT
        while reply != previous and time.monotonic() < deadline:
            time.sleep(1.0)
            previous, reply = reply, assistant.nth(1).inner_text()
        return notice, reply
    finally:
        page.close()


def _expected_reply(name, text, tmp_path):
    """같은 앱을 이 프로세스에서 (가짜 chainlit 으로, 같은 빈 체크포인트 폴더로) 읽어 같은 입력에 낼 답을 계산한다."""
    import types

    fake = types.ModuleType("chainlit")
    fake.on_chat_start = fake.on_message = lambda func: func
    fake.Message = object
    saved = sys.modules.get("chainlit")
    sys.modules["chainlit"] = fake
    sys.path.insert(0, str(APPS["app_orig"].parent))
    saved_dir = os.environ.get("LLMFS_CHAT_CHECKPOINT_DIR")
    os.environ["LLMFS_CHAT_CHECKPOINT_DIR"] = str(tmp_path / "no-checkpoints")
    try:
        spec = importlib.util.spec_from_file_location(f"browser_expected_{name}", APPS[name])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return "".join(module.reply_pieces(text))
    finally:
        if saved_dir is None:
            os.environ.pop("LLMFS_CHAT_CHECKPOINT_DIR")
        else:
            os.environ["LLMFS_CHAT_CHECKPOINT_DIR"] = saved_dir
        sys.path.remove(str(APPS["app_orig"].parent))
        if saved is None:
            sys.modules.pop("chainlit")
        else:
            sys.modules["chainlit"] = saved


def _words(text):
    return " ".join(text.split())


@pytest.mark.parametrize("name", ["app_orig", "app_own", "instruct"])
def test_generating_app_streams_reply_into_the_page(servers, browser, name, tmp_path):
    text = "Every effort moves you"
    notice, reply = chat(browser, servers[name], text)
    assert "빠른 모드" in notice and "작은 무작위 모델" in notice
    expected = _expected_reply(name, text, tmp_path)
    assert expected.strip() and _words(reply) == _words(expected)


def test_spam_app_shows_korean_label_in_the_page(servers, browser):
    notice, reply = chat(browser, servers["spam"], "You won a free cruise! Reply WIN to claim.")
    assert "빠른 모드" in notice and "review_classifier.pth" in notice
    assert reply.strip() in {"스팸", "스팸 아님"}
