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
    chunked 전송 도중 끊김, ``/no-range/…`` 는 Range 를 무시하는 서버, 그 밖은 404."""

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


@pytest.mark.parametrize(
    "cached", [CONTENT[:-1], b"y" + CONTENT[1:]], ids=["wrong-size", "same-size-wrong-hash"]
)
def test_corrupt_cached_file_is_fetched_again(server, tmp_path, cached):
    destination = tmp_path / "data.bin"
    destination.write_bytes(cached)
    _download(server.url("/files/data.bin"), destination, expected_size=len(CONTENT), sha256=CONTENT_SHA256)
    assert server.requests == [("/files/data.bin", None)]
    assert destination.read_bytes() == CONTENT


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
    """새 클론에 ../shared 가 없어도 되도록, 저장소의 data/ 에 책의 데이터 파일과 GPT-2 토크나이저 파일이 있다."""
    for name, info in DATA_FILES.items():
        path = download.REPO_DATA_DIR / name
        assert path.is_file(), f"{path} 가 없습니다"
        assert file_sha256(path) == info["sha256"]
    for relative, info in download.TIKTOKEN_GPT2_FILES.items():
        assert file_sha256(download.REPO_DATA_DIR / relative) == info["sha256"]


def test_no_project_file_refers_to_the_shared_folder():
    """코드·테스트·CI·문서 어디에서도 저장소 밖의 ../shared 를 가리키지 않는다(새 클론에는 그 폴더가 없다)."""
    root = Path(__file__).resolve().parent.parent
    skip_dirs = {".git", "__pycache__", ".ipynb_checkpoints", "build", "dist", "outputs", "data"}
    suffixes = {".py", ".md", ".ipynb", ".toml", ".txt", ".cfg", ".ini", ".yml", ".yaml", ".json", ".sh", ""}
    pattern = re.compile(r"\.\./shared|shared/data")
    offenders = []
    for path in root.rglob("*"):
        parts = set(path.relative_to(root).parts)
        if parts & skip_dirs or any(p.endswith(".egg-info") for p in parts) or not path.is_file():
            continue
        is_text = path.suffix in suffixes and path != Path(__file__).resolve()
        if is_text and pattern.search(path.read_text(encoding="utf-8", errors="ignore")):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []
