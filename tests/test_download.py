"""공용 내려받기 도구(llm_from_scratch.download)가 캐시·백업 URL·미러·오프라인·이어 받기를 제대로 다루는지 본다.

네트워크 대신 127.0.0.1 에 띄운 작은 HTTP 서버를 쓰고, 실패한 뒤에는 목적지에 아무 파일도 남지 않는지 확인한다.
"""

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llm_from_scratch import download
from llm_from_scratch.download import (
    DATA_FILES,
    DownloadError,
    download_data_file,
    download_file,
    file_sha256,
    is_offline,
    prepare_tiktoken_cache,
)

# 읽기 단위(64 KiB) 여러 개에 걸치는 288,000 바이트. 반복되는 무늬가 없어서 조각이 어긋나게 이어지면 해시가 바뀐다
CONTENT = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(9000))
CONTENT_SHA256 = hashlib.sha256(CONTENT).hexdigest()


class _FileServer(ThreadingHTTPServer):
    """경로마다 정해진 방식으로 응답하고, 받은 요청(경로, Range 헤더)을 기록하는 시험용 서버."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    """``/files/…`` 는 Range 를 지원하는 정상 파일, ``/drop/…`` 은 본문 도중 끊김, ``/chunked-drop/…`` 은
    chunked 전송 도중 끊김, ``/no-range/…`` 는 Range 를 무시하는 서버, ``/close-drop/…``·``/close-full/…`` 는
    Content-Length 없이 연결을 닫아 끝내는 서버(도중에 끊김 / 온전함), 그 밖은 404."""

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        kind = self.path.split("/")[1]
        if kind == "files":
            self._send_file(self.headers.get("Range"))
        elif kind == "no-range":
            self._send_file(None)
        elif kind == "drop":
            self.send_response(200)
            self.send_header("Content-Length", str(len(CONTENT)))
            self.end_headers()
            self.wfile.write(CONTENT[: len(CONTENT) // 3])
            self.close_connection = True
        elif kind == "chunked-drop":
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = CONTENT[:1000]
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.close_connection = True
        elif kind in ("close-drop", "close-full"):
            # Content-Length 도 chunked 도 없이 연결을 닫아 끝을 알리는 서버: 끊겨도 받는 쪽은 알 수 없다
            self.send_response(200)
            self.end_headers()
            self.wfile.write(CONTENT[: len(CONTENT) // 3] if kind == "close-drop" else CONTENT)
            self.close_connection = True
        else:
            self.send_error(404)

    def _send_file(self, range_header):
        start = 0
        if range_header:
            start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1))
            if start >= len(CONTENT):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(CONTENT)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = CONTENT[start:]
        self.send_response(206 if range_header else 200)
        if range_header:
            self.send_header("Content-Range", f"bytes {start}-{len(CONTENT) - 1}/{len(CONTENT)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # 테스트 출력에 접속 기록을 찍지 않는다
        pass


@pytest.fixture
def online(monkeypatch):
    """네트워크를 허용한다(LLMFS_OFFLINE 해제, 미러 없음)."""
    monkeypatch.delenv("LLMFS_OFFLINE", raising=False)
    monkeypatch.delenv("LLMFS_DATA_MIRROR", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # 프록시가 설정된 머신에서도 곧바로 접속한다


@pytest.fixture
def server(online):
    """127.0.0.1 의 빈 포트에 시험용 서버를 띄운다."""
    httpd = _FileServer()
    # 짧은 poll 간격: 테스트가 끝날 때 shutdown() 이 기본값(0.5초)만큼 기다리지 않게 한다
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def no_network(monkeypatch):
    """소켓으로 어딘가에 연결하려는 순간 테스트를 실패시킨다."""

    def refuse(*args, **kwargs):
        pytest.fail(f"네트워크 연결을 시도했습니다: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _download(url, destination=None, **kwargs):
    return download_file(url, destination, show_progress=False, **kwargs)


def _assert_error_explains(message: str, url: str, destination: Path):
    assert url in message
    assert str(destination.resolve()) in message  # 손으로 둘 위치
    assert "LLMFS_DATA_MIRROR" in message


def test_good_file_is_downloaded_and_verified(server, tmp_path):
    destination = tmp_path / "sub" / "data.bin"
    path = _download(
        server.url("/files/data.bin"), destination, expected_size=len(CONTENT), sha256=CONTENT_SHA256.upper()
    )
    assert path == destination
    assert destination.read_bytes() == CONTENT
    assert not destination.with_name("data.bin.part").exists()
    assert server.requests == [("/files/data.bin", None)]


def test_default_destination_is_url_file_name_in_cwd(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _download(server.url("/files/sms%2Bspam.zip"))
    assert path == Path("sms+spam.zip")
    assert (tmp_path / "sms+spam.zip").read_bytes() == CONTENT


@pytest.mark.parametrize(
    ("kwargs", "cause"),
    [
        ({"expected_size": len(CONTENT) + 1}, f"{len(CONTENT):,} 바이트인데 {len(CONTENT) + 1:,} 바이트"),
        ({"sha256": "0" * 64}, "sha256"),
    ],
    ids=["wrong-size", "wrong-sha256"],
)
def test_wrong_size_or_hash_leaves_nothing_behind(server, tmp_path, kwargs, cause):
    destination = tmp_path / "data.bin"
    url = server.url("/files/data.bin")
    with pytest.raises(DownloadError) as excinfo:
        _download(url, destination, **kwargs)
    message = str(excinfo.value)
    assert cause in message
    _assert_error_explains(message, url, destination)
    assert not destination.exists()
    assert not destination.with_name("data.bin.part").exists()  # 틀린 내용은 이어 받기에도 쓰지 않는다


def test_dropped_connection_keeps_nothing_at_destination_and_resumes_later(server, tmp_path):
    destination = tmp_path / "data.bin"
    part = tmp_path / "data.bin.part"
    url = server.url("/drop/data.bin")
    with pytest.raises(DownloadError) as excinfo:
        _download(url, destination, expected_size=len(CONTENT), sha256=CONTENT_SHA256)
    message = str(excinfo.value)
    assert "끊겼습니다" in message
    _assert_error_explains(message, url, destination)
    assert not destination.exists()
    received = len(CONTENT) // 3
    assert part.read_bytes() == CONTENT[:received]  # 받은 앞부분만 .part 에 남는다

    _download(server.url("/files/data.bin"), destination, expected_size=len(CONTENT), sha256=CONTENT_SHA256)
    assert server.requests[-1] == ("/files/data.bin", f"bytes={received}-")
    assert destination.read_bytes() == CONTENT
    assert not part.exists()


def test_dropped_chunked_transfer_raises_download_error(server, tmp_path):
    destination = tmp_path / "data.bin"
    url = server.url("/chunked-drop/data.bin")
    with pytest.raises(DownloadError) as excinfo:
        _download(url, destination)
    _assert_error_explains(str(excinfo.value), url, destination)
    assert not destination.exists()


def test_resume_sends_range_and_completes_part_file(server, tmp_path):
    destination = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(CONTENT[:70_000])
    _download(server.url("/files/data.bin"), destination, expected_size=len(CONTENT), sha256=CONTENT_SHA256)
    assert server.requests == [("/files/data.bin", "bytes=70000-")]
    assert destination.read_bytes() == CONTENT


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    destination = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(CONTENT[:70_000])
    _download(server.url("/no-range/data.bin"), destination, sha256=CONTENT_SHA256)
    assert server.requests == [("/no-range/data.bin", "bytes=70000-")]
    assert destination.read_bytes() == CONTENT


def test_part_file_longer_than_server_file_is_discarded(server, tmp_path):
    """크기를 모르는 채로 서버 파일보다 긴 .part 가 남아 있으면(416 응답) 처음부터 다시 받는다."""
    destination = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(b"x" * (len(CONTENT) + 10))
    _download(server.url("/files/data.bin"), destination)
    assert server.requests == [("/files/data.bin", f"bytes={len(CONTENT) + 10}-"), ("/files/data.bin", None)]
    assert destination.read_bytes() == CONTENT


def test_corrupt_part_file_is_not_trusted(server, tmp_path):
    """.part 의 앞부분이 틀리면 이어 받은 결과의 해시가 틀리므로 버리고, 다음 실행은 처음부터 받는다."""
    destination = tmp_path / "data.bin"
    part = tmp_path / "data.bin.part"
    part.write_bytes(b"\0" * 70_000)
    url = server.url("/files/data.bin")
    with pytest.raises(DownloadError, match="sha256"):
        _download(url, destination, expected_size=len(CONTENT), sha256=CONTENT_SHA256)
    assert not destination.exists()
    assert not part.exists()

    _download(url, destination, expected_size=len(CONTENT), sha256=CONTENT_SHA256)
    assert server.requests[-1] == ("/files/data.bin", None)
    assert destination.read_bytes() == CONTENT


def test_backup_url_is_used_when_primary_is_404(server, tmp_path):
    destination = tmp_path / "data.bin"
    path = _download(
        server.url("/missing/data.bin"),
        destination,
        backup_url=server.url("/files/data.bin"),
        expected_size=len(CONTENT),
        sha256=CONTENT_SHA256,
    )
    assert path.read_bytes() == CONTENT
    assert [request[0] for request in server.requests] == ["/missing/data.bin", "/files/data.bin"]


def test_error_lists_every_failed_url(server, tmp_path):
    destination = tmp_path / "data.bin"
    primary, backup = server.url("/missing/data.bin"), server.url("/also-missing/data.bin")
    with pytest.raises(DownloadError) as excinfo:
        _download(primary, destination, backup_url=backup)
    message = str(excinfo.value)
    assert f"{primary}: HTTP Error 404" in message
    assert f"{backup}: HTTP Error 404" in message
    _assert_error_explains(message, primary, destination)
    assert not destination.exists()


def test_unreachable_server_gives_download_error(online, tmp_path):
    destination = tmp_path / "data.bin"
    with socket.socket() as probe:  # 방금 비운 포트에는 아무도 듣고 있지 않다
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/data.bin"
    with pytest.raises(DownloadError) as excinfo:
        _download(url, destination)
    _assert_error_explains(str(excinfo.value), url, destination)
    assert not destination.exists()


def test_cached_file_is_used_without_network(server, tmp_path, no_network):
    destination = tmp_path / "data.bin"
    destination.write_bytes(CONTENT)
    path = _download(server.url("/files/data.bin"), destination, expected_size=len(CONTENT), sha256=CONTENT_SHA256)
    assert path == destination
    assert server.requests == []


def _tree(folder: Path) -> dict:
    """폴더 안 모든 파일의 상대 경로 -> sha256 (전후가 바이트 단위로 같은지 비교하는 데 쓴다)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(
    "cached", [CONTENT[:-1], b"y" + CONTENT[1:]], ids=["wrong-size", "same-size-wrong-hash"]
)
def test_different_file_at_destination_is_the_users_and_is_never_replaced(server, tmp_path, cached):
    """목적지의 파일이 원본과 달라도 지우거나 덮어쓰지 않는다: 기본(refuse)은 파일 이름과 원본 받는 법을 알리며 멈춘다."""
    destination = tmp_path / "data.bin"
    destination.write_bytes(cached)
    before = _tree(tmp_path)
    url = server.url("/files/data.bin")
    with pytest.raises(DownloadError) as excinfo:
        _download(url, destination, expected_size=len(CONTENT), sha256=CONTENT_SHA256)
    message = str(excinfo.value)
    assert str(destination.resolve()) in message
    assert "지우거나 덮어쓰지 않았습니다" in message
    assert "다른 곳으로 옮긴 뒤" in message and url in message
    assert _tree(tmp_path) == before
    assert server.requests == []  # 원본을 받으러 가지도 않는다


def test_user_file_use_keeps_the_users_data_and_says_so(server, tmp_path, capsys, no_network):
    destination = tmp_path / "data.bin"
    destination.write_bytes(b"my own data")
    before = _tree(tmp_path)
    path = _download(
        server.url("/files/data.bin"), destination, expected_size=len(CONTENT), sha256=CONTENT_SHA256, user_file="use"
    )
    assert path == destination
    assert _tree(tmp_path) == before
    out = capsys.readouterr().out
    assert "원본과 다릅니다" in out and "그대로 씁니다" in out and str(destination) in out


def test_user_file_choice_is_checked():
    with pytest.raises(ValueError, match="'keep'"):
        download_file("http://example.invalid/x", user_file="keep")


@pytest.mark.parametrize(
    ("name", "content", "cause"),
    [
        ("instruction-data.json", '[{"instruction": "a", "input": "", "output": "b"}]', None),
        ("instruction-data.json", '[{"instruction": "a",\n "output": }]', "JSON 으로 읽을 수 없습니다(2번째 줄"),
        ("instruction-data.json", '[{"instruction": "caf\xe9"}]'.encode("latin-1"), "UTF-8"),
        ("the-verdict.txt", "my own story, not the verdict.", None),
        ("the-verdict.txt", "caf\xe9".encode("cp949", errors="replace") + b"\xff", "UTF-8"),
        ("sms+spam+collection.zip", b"PK\x03\x04 not the real zip", "원본과 다릅니다"),
    ],
    ids=["edited-json", "broken-json", "latin1-json", "own-text", "non-utf8-text", "other-zip"],
)
def test_users_data_files_are_used_or_refused_never_replaced(tmp_path, no_network, capsys, name, content, cause):
    """텍스트·지시 데이터는 사용자의 것으로 보고 쓰되(읽히는지는 확인), 압축 파일은 원본이 아니면 멈춘다."""
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    before = _tree(tmp_path)
    if cause is None:
        assert download_data_file(name, tmp_path) == path
        assert "사용자가 고친 데이터로 보고 그대로 씁니다" in capsys.readouterr().out
    else:
        with pytest.raises(DownloadError) as excinfo:
            download_data_file(name, tmp_path)
        assert cause in str(excinfo.value)
        assert str(path.resolve()) in str(excinfo.value)
        assert "지우거나 덮어쓰지 않았습니다" in str(excinfo.value)
    assert _tree(tmp_path) == before


def test_data_file_user_file_can_be_refused_per_call(tmp_path, no_network):
    path = tmp_path / "instruction-data.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(DownloadError, match="원본과 다릅니다"):
        download_data_file("instruction-data.json", tmp_path, user_file="refuse")
    assert path.read_text(encoding="utf-8") == "[]"


def test_mirror_is_found_by_url_file_name(online, tmp_path, monkeypatch, no_network):
    """온라인이어도 미러에 파일이 있으면 네트워크 대신 미러를 쓴다."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "sms+spam.zip").write_bytes(CONTENT)
    monkeypatch.setenv("LLMFS_DATA_MIRROR", str(mirror))
    destination = tmp_path / "out" / "data.zip"
    _download("http://example.invalid/a/b/sms%2Bspam.zip", destination, sha256=CONTENT_SHA256)
    assert destination.read_bytes() == CONTENT
    assert not destination.with_name("data.zip.part").exists()


def test_mirror_names_are_tried_first(tmp_path, monkeypatch, no_network):
    mirror = tmp_path / "mirror"
    (mirror / "gpt2").mkdir(parents=True)
    (mirror / "gpt2" / "encoder.json").write_bytes(CONTENT)
    (mirror / "encoder.json").write_bytes(b"wrong file with the same name")
    monkeypatch.setenv("LLMFS_DATA_MIRROR", str(mirror))
    destination = tmp_path / "encoder.json"
    _download("http://example.invalid/encoder.json", destination, mirror_names=["gpt2/encoder.json"])
    assert destination.read_bytes() == CONTENT


def test_mirror_file_with_wrong_hash_is_rejected(tmp_path, monkeypatch, no_network):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "data.bin").write_bytes(b"z" + CONTENT[1:])
    monkeypatch.setenv("LLMFS_DATA_MIRROR", str(mirror))
    destination = tmp_path / "data.bin"
    url = "http://example.invalid/data.bin"
    with pytest.raises(DownloadError) as excinfo:
        _download(url, destination, expected_size=len(CONTENT), sha256=CONTENT_SHA256)
    message = str(excinfo.value)
    assert str(mirror / "data.bin") in message
    assert "sha256" in message
    _assert_error_explains(message, url, destination)
    assert not destination.exists()
    assert not destination.with_name("data.bin.part").exists()


def test_offline_mode_raises_before_opening_a_socket(server, tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("LLMFS_OFFLINE", "1")
    destination = tmp_path / "data.bin"
    url = server.url("/files/data.bin")
    with pytest.raises(DownloadError) as excinfo:
        _download(url, destination)
    message = str(excinfo.value)
    assert "LLMFS_OFFLINE=1" in message
    _assert_error_explains(message, url, destination)
    assert server.requests == []
    assert not destination.exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("yes", True), ("0", False), ("", False), ("off", False), ("False", False)],
)
def test_offline_switch_values(monkeypatch, value, expected):
    monkeypatch.setenv("LLMFS_OFFLINE", value)
    assert is_offline() is expected


@pytest.mark.parametrize("name", sorted(DATA_FILES))
def test_known_data_files_come_from_the_repository_copies(tmp_path, monkeypatch, name, no_network):
    """미러가 없어도 저장소의 data/ 사본에서 파일을 받아 크기와 해시를 확인한다."""
    monkeypatch.delenv("LLMFS_DATA_MIRROR", raising=False)
    assert is_offline()
    path = download_data_file(name, tmp_path)
    assert path == tmp_path / name
    assert path.stat().st_size == DATA_FILES[name]["size"]
    assert file_sha256(path) == DATA_FILES[name]["sha256"]


def test_unknown_data_file_name_is_a_clear_error():
    with pytest.raises(KeyError, match="the-verdict.txt"):
        download_data_file("the-verdict.text")


def test_empty_mirror_and_offline_tells_how_to_provide_the_file(tmp_path, monkeypatch, no_network):
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setenv("LLMFS_DATA_MIRROR", str(empty))
    monkeypatch.setattr(download, "REPO_DATA_DIR", tmp_path / "no-repo-copies")
    monkeypatch.setenv("LLMFS_OFFLINE", "1")
    folder = tmp_path / "data"
    with pytest.raises(DownloadError) as excinfo:
        download_data_file("the-verdict.txt", folder)
    message = str(excinfo.value)
    _assert_error_explains(message, DATA_FILES["the-verdict.txt"]["url"], folder / "the-verdict.txt")
    assert "'the-verdict.txt'" in message
    assert not (folder / "the-verdict.txt").exists()


def test_prepare_tiktoken_cache_needs_the_gpt2_files(tmp_path):
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    with pytest.raises(DownloadError, match="gpt2/"):
        prepare_tiktoken_cache(tmp_path / "cache", mirror=empty)


def test_tiktoken_gpt2_works_offline_from_prepared_cache(tmp_path):
    cache = prepare_tiktoken_cache(tmp_path / "tiktoken-cache")
    # 새 프로세스에서, 소켓 연결을 막은 채로 gpt2 인코딩을 연다
    code = (
        "import json, socket\n"
        "def refuse(*args, **kwargs):\n"
        "    raise SystemExit('네트워크 연결을 시도했습니다')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import tiktoken\n"
        "enc = tiktoken.get_encoding('gpt2')\n"
        "eot = enc.encode('<|endoftext|>', allowed_special={'<|endoftext|>'})\n"
        "print(json.dumps({'n_vocab': enc.n_vocab, 'eot': eot, 'hello': enc.decode(enc.encode('Hello, world'))}))\n"
    )
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"n_vocab": 50257, "eot": [50256], "hello": "Hello, world"}


def test_repository_carries_the_data_files_with_their_hashes():
    """새 클론에는 저장소 밖의 공유 데이터 폴더가 없으므로, 저장소의 data/ 에 책의 데이터 파일과 GPT-2 토크나이저 파일이 있다."""
    for name, info in DATA_FILES.items():
        path = download.REPO_DATA_DIR / name
        assert path.is_file(), f"{path} 가 없습니다"
        assert file_sha256(path) == info["sha256"]
    for relative, info in download.TIKTOKEN_GPT2_FILES.items():
        assert file_sha256(download.REPO_DATA_DIR / relative) == info["sha256"]


def test_no_project_file_refers_to_the_shared_folder():
    """코드·테스트·CI·문서 어디에서도 저장소 밖의 공유 데이터 폴더를 가리키지 않는다(새 클론에는 그 폴더가 없다)."""
    root = Path(__file__).resolve().parent.parent
    skip_dirs = {".git", "__pycache__", ".ipynb_checkpoints", "build", "dist", "outputs", "data"}
    suffixes = {".py", ".md", ".ipynb", ".toml", ".txt", ".cfg", ".ini", ".yml", ".yaml", ".json", ".sh", ""}
    pattern = re.compile(r"\.\./shared|shared[/]data")
    offenders = []
    for path in root.rglob("*"):
        parts = set(path.relative_to(root).parts)
        if parts & skip_dirs or any(p.endswith(".egg-info") for p in parts) or not path.is_file():
            continue
        is_text = path.suffix in suffixes and path != Path(__file__).resolve()
        if is_text and pattern.search(path.read_text(encoding="utf-8", errors="ignore")):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


# ---------------------------------------------------------------------------
# 크기·해시를 모르는 다운로드는 확인한 뒤에야 원래 이름을 얻는다
# ---------------------------------------------------------------------------


def test_download_without_size_or_hash_that_drops_never_gets_the_final_name(server, tmp_path):
    """Content-Length 도, 기대 크기·해시도, 검사 함수도 없으면 끝까지 받았는지 알 수 없으므로 믿지 않는다."""
    destination = tmp_path / "hparams.json"
    url = server.url("/close-drop/hparams.json")
    with pytest.raises(DownloadError) as excinfo:
        _download(url, destination)
    assert "Content-Length" in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []  # 원래 이름도, .part 도 남지 않는다


def test_validate_callback_rejects_a_damaged_download(server, tmp_path):
    destination = tmp_path / "model.safetensors"
    url = server.url("/close-full/model.safetensors")
    with pytest.raises(DownloadError) as excinfo:
        _download(url, destination, validate=download.validate_safetensors)
    assert "safetensors" in str(excinfo.value) and url in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []


def test_validate_callback_accepts_a_good_download_without_content_length(server, tmp_path):
    calls = []

    def validate(path):
        calls.append(path.name)
        assert path.read_bytes() == CONTENT

    destination = tmp_path / "data.bin"
    _download(server.url("/close-full/data.bin"), destination, validate=validate)
    assert calls == ["data.bin.part"]  # 원래 이름으로 바꾸기 전에 확인한다
    assert destination.read_bytes() == CONTENT


def test_existing_file_that_fails_validation_is_reported_not_deleted(tmp_path, no_network):
    destination = tmp_path / "config.json"
    destination.write_text('{"n_head": 12,', encoding="utf-8")
    before = _tree(tmp_path)
    with pytest.raises(DownloadError) as excinfo:
        _download("http://example.invalid/config.json", destination, validate=download.validate_json)
    message = str(excinfo.value)
    assert str(destination.resolve()) in message and "JSON" in message and "옮긴 뒤" in message
    assert _tree(tmp_path) == before


def test_safetensors_validator_checks_header_and_length(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    download.validate_safetensors(path)
    data = path.read_bytes()
    for name, broken in (("truncated", data[:-5]), ("garbage", b"\x10" + b"\0" * 7 + b"not json" * 2), ("empty", b"")):
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(broken)
        with pytest.raises(ValueError, match="safetensors|바이트"):
            download.validate_safetensors(bad)


def test_tf_index_validator_checks_the_table_footer(tmp_path):
    good = tmp_path / "good.index"
    good.write_bytes(b"\0" * 40 + (0xDB4775248B80FB57).to_bytes(8, "little"))
    download.validate_tf_checkpoint_index(good)
    bad = tmp_path / "bad.index"
    bad.write_bytes(good.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match="TensorFlow"):
        download.validate_tf_checkpoint_index(bad)


# ---------------------------------------------------------------------------
# 오프라인이면 tiktoken 도 네트워크에 나가지 않는다
# ---------------------------------------------------------------------------


def test_prepare_tiktoken_cache_rejects_a_source_with_the_wrong_hash(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "gpt2").mkdir(parents=True)
    (mirror / "gpt2" / "vocab.bpe").write_bytes((download.REPO_DATA_DIR / "gpt2" / "vocab.bpe").read_bytes())
    encoder = (download.REPO_DATA_DIR / "gpt2" / "encoder.json").read_bytes()
    (mirror / "gpt2" / "encoder.json").write_bytes(encoder.replace(b'"!"', b'"?"', 1))  # 크기는 같고 내용만 다르다
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="sha256"):
        prepare_tiktoken_cache(cache, mirror=mirror)
    info = download.TIKTOKEN_GPT2_FILES["gpt2/encoder.json"]
    assert not (cache / info["cache_name"]).exists()
    assert not (cache / (info["cache_name"] + ".part")).exists()


def test_offline_tiktoken_without_cache_gives_korean_error_instead_of_network(tmp_path):
    """캐시가 비어 있고 저장소 사본도 없을 때, 오프라인이면 tiktoken 은 인터넷 대신 준비하는 법을 알리는 오류를 낸다."""
    code = (
        "import socket\n"
        "def refuse(*args, **kwargs):\n"
        "    raise SystemExit('네트워크 연결을 시도했습니다')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from pathlib import Path\n"
        "from llm_from_scratch import download\n"
        "download.REPO_DATA_DIR = Path('no-such-folder')\n"
        "import shutil\n"
        "shutil.rmtree(download.tiktoken_cache_dir())  # import 가 채운 캐시를 비운다\n"
        "from llm_from_scratch.download import DownloadError, get_gpt2_encoding\n"
        "import tiktoken\n"
        "for get in (lambda: tiktoken.get_encoding('gpt2'), get_gpt2_encoding):\n"
        "    try:\n"
        "        get()\n"
        "    except DownloadError as error:\n"
        "        print('오류:', error)\n"
    )
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path / "empty-cache"), "LLMFS_OFFLINE": "1"}
    env.pop("LLMFS_DATA_MIRROR", None)
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("오류:")]
    assert len(lines) == 2
    for line in lines:
        assert "LLMFS_OFFLINE=1" in line and "prepare_tiktoken_cache" in line and "openaipublic" in line
