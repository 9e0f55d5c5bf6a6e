"""모든 장이 함께 쓰는 파일 내려받기 도구.

- 이미 받아 둔 파일(캐시)이 있고 크기·해시가 맞으면 다시 받지 않는다.
- 기본 URL이 실패하면 백업 URL을 시도한다.
- 받는 중에는 ``<파일>.part`` 에 쓰고, 크기·해시를 확인한 뒤에야 원래 이름으로 바꾼다(원자적 쓰기).
  그래서 끊긴 다운로드나 크기가 틀린 파일이 완성된 파일처럼 남는 일은 없다.
  ``.part`` 는 다음 실행에서 HTTP Range 요청으로 이어 받는 데만 쓰고, 그대로 믿지는 않는다.
- 환경 변수 ``LLMFS_DATA_MIRROR`` 가 폴더를 가리키면 인터넷 대신 그 폴더에서 파일 이름으로 찾아 복사한다.
- 그다음에는 저장소가 함께 싣고 다니는 사본(``data/`` 폴더, ``REPO_DATA_DIR``)에서 찾는다.
  그래서 인터넷이 없는 새 클론에서도 책의 작은 데이터 파일과 GPT-2 토크나이저 파일을 쓸 수 있다.
- 환경 변수 ``LLMFS_OFFLINE=1`` 이면 네트워크에 절대 나가지 않는다(테스트가 이것으로 인터넷 접근을 막는다).
  tiktoken 도 마찬가지다: 오프라인에서 tiktoken 이 URL 을 읽으려 하면 캐시를 준비하는 법을 알리는 오류를 낸다.

규칙 하나(모든 장이 이 도구를 거치므로 여기 한 곳에만 쓴다):
  목적지 이름에 이미 있는 파일은, 이 도구가 방금 받아 확인한 것이 아니면 사용자의 것이다. 절대 지우거나 덮어쓰지 않는다.
  기대한 크기·해시와 다르면 호출마다 고른다: ``user_file="use"`` 면 사용자의 데이터(직접 고친 지시 데이터, 자기 텍스트)로
  보고 그렇다고 알린 뒤 그대로 쓰고, ``user_file="refuse"`` 면 파일 이름과 원본을 받는 법(먼저 옮겨 두기)을 알리는
  오류로 멈춘다. 지우는 것은 이 도구가 만든 ``.part`` 파일뿐이다.
  크기도 해시도 모르는 파일은 ``Content-Length`` 가 맞거나 ``validate`` 콜백(JSON, safetensors 머리글 등을 읽어 봄)을
  통과해야만 원래 이름을 얻는다. 손상된 다운로드는 절대 원래 이름을 얻지 못한다.
"""

import hashlib
import http.client
import json
import os
import shutil
import struct
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

__all__ = [
    "DATA_FILES",
    "REPO_DATA_DIR",
    "DownloadError",
    "download_data_file",
    "download_file",
    "ensure_tiktoken_cache",
    "file_sha256",
    "get_gpt2_encoding",
    "install_tiktoken_offline_guard",
    "is_offline",
    "local_data_dirs",
    "mirror_dir",
    "prepare_tiktoken_cache",
    "tiktoken_cache_dir",
    "validate_json",
    "validate_safetensors",
    "validate_tf_checkpoint_index",
    "validate_utf8_text",
]

# 저장소에 함께 든 데이터 파일 사본(출처·라이선스는 data/README.md). 편집 가능 모드로 설치했을 때 여기 있다.
REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data"

CHUNK_SIZE = 1 << 16
TIMEOUT_SECONDS = 60

# 책의 코드가 내려받는 작은 공개 데이터 파일들 (크기·해시는 원본과 같은 사본으로 확인했다)
DATA_FILES = {
    "the-verdict.txt": {
        "url": "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch02/01_main-chapter-code/the-verdict.txt",
        "size": 20_479,
        "sha256": "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f",
        "user_file": "use",  # 자기 텍스트로 바꿔 훈련할 수 있다
    },
    "sms+spam+collection.zip": {
        "url": "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
        "backup_url": "https://f001.backblazeb2.com/file/LLMs-from-scratch/sms%2Bspam%2Bcollection.zip",
        "size": 207_990,
        "sha256": "754f6de67cd5e0e6dccd5cc2a8b75971096c3a19727c8fde0dd555f4cf671aca",
        "user_file": "refuse",  # 압축 파일은 원본만 믿는다
    },
    "instruction-data.json": {
        "url": "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/01_main-chapter-code/instruction-data.json",
        "size": 203_524,
        "sha256": "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
        "user_file": "use",  # 직접 고치거나 늘린 지시 데이터
    },
    "instruction-data-with-preference.json": {
        "url": "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/04_preference-tuning-with-dpo/instruction-data-with-preference.json",
        "size": 386_968,
        "sha256": "305315abf14f65fa42c01a0877572f832606571c2a7d49f152ac1d758b16756e",
        "user_file": "use",
    },
}

# tiktoken 이 gpt2 인코딩을 캐시하는 파일 이름(내려받는 URL의 sha1)과 내용의 크기·sha256
TIKTOKEN_GPT2_FILES = {
    "gpt2/vocab.bpe": {
        "cache_name": "6d1cbeee0f20b3d9449abfede4726ed8212e3aee",
        "size": 456_318,
        "sha256": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    },
    "gpt2/encoder.json": {
        "cache_name": "6c7ea1a7e38e3a7f062df639a5b80947f075ffe6",
        "size": 1_042_301,
        "sha256": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    },
}


class DownloadError(RuntimeError):
    """파일을 받지 못했을 때. 메시지에 URL, 원인, 손으로 둘 위치가 들어 있다."""


def is_offline() -> bool:
    """``LLMFS_OFFLINE`` 이 켜져 있으면 True: 네트워크 접근을 하지 않는다."""
    return os.environ.get("LLMFS_OFFLINE", "0").strip().lower() not in ("", "0", "false", "no", "off")


def mirror_dir() -> Path | None:
    """``LLMFS_DATA_MIRROR`` 가 가리키는 미러 폴더(없으면 None)."""
    value = os.environ.get("LLMFS_DATA_MIRROR", "").strip()
    return Path(value).expanduser() if value else None


def _mirror_hint(file_name: str) -> str:
    """오류 메시지의 미러 안내. ``LLMFS_DATA_MIRROR`` 가 없는 폴더를 가리키면 그 값을 밝힌다(설정하라는 말 대신)."""
    mirror = mirror_dir()
    if mirror is None:
        return f"파일을 모아 둔 폴더를 환경 변수 LLMFS_DATA_MIRROR 로 알려 주세요(파일 이름 {file_name!r} 로 찾습니다)."
    if not mirror.is_dir():
        what = "폴더가 아니라 파일입니다" if mirror.exists() else "없는 폴더입니다"
        return (
            f"환경 변수 LLMFS_DATA_MIRROR 가 가리키는 {mirror} 은(는) {what}. 미러 폴더의 경로를 바로잡으세요"
            f"(그 안에서 파일 이름 {file_name!r} 로 찾습니다)."
        )
    return f"LLMFS_DATA_MIRROR 폴더 {mirror} 에도 {file_name!r} 이(가) 없습니다. 그 폴더에 파일을 넣어도 됩니다."


def local_data_dirs() -> list[Path]:
    """인터넷보다 먼저 찾아볼 폴더들: ``LLMFS_DATA_MIRROR``, 그다음 저장소의 ``data/``."""
    folders = [mirror_dir(), REPO_DATA_DIR]
    return [folder for folder in folders if folder is not None and folder.is_dir()]


def file_sha256(path) -> str:
    """파일의 sha256 16진 문자열."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _url_file_name(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])


def _problem_with(path: Path, expected_size, expected_sha256) -> str | None:
    """파일이 기대한 크기·해시와 다르면 그 이유를, 맞으면 None 을 돌려준다."""
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        return f"크기가 {size:,} 바이트인데 {expected_size:,} 바이트여야 합니다"
    if expected_sha256 is not None and file_sha256(path) != expected_sha256.lower():
        return "sha256 해시가 기대한 값과 다릅니다"
    return None


def _validation_problem(path: Path, validate) -> str | None:
    """``validate(path)`` 가 예외를 내거나 False 를 돌려주면 그 이유를, 통과하면 None 을 돌려준다."""
    if validate is None:
        return None
    try:
        ok = validate(path)
    except Exception as error:  # noqa: BLE001 — 검사 함수가 내는 오류는 무엇이든 '파일이 온전하지 않다'는 뜻이다
        return f"내용을 확인하지 못했습니다: {error}"
    return "내용을 확인하지 못했습니다" if ok is False else None


# ---------------------------------------------------------------------------
# 크기·해시를 모르는 파일을 믿기 전에 읽어 보는 검사 함수들(``validate=``)
# ---------------------------------------------------------------------------


def validate_utf8_text(path) -> None:
    """UTF-8 텍스트인지 확인한다. 아니면 ValueError."""
    try:
        Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"UTF-8 텍스트가 아닙니다({error.start} 바이트째). UTF-8 로 저장해 주세요"
        ) from None


def validate_json(path) -> None:
    """UTF-8 JSON 으로 읽히는지 확인한다. 아니면 ValueError(줄·열 번호 포함)."""
    validate_utf8_text(path)
    try:
        json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"JSON 으로 읽을 수 없습니다({error.lineno}번째 줄, {error.colno}번째 열: {error.msg})") from None


def validate_safetensors(path) -> None:
    """safetensors 머리글(8바이트 길이 + JSON)을 읽고, 텐서 데이터가 파일 끝까지 정확히 들어 있는지 확인한다."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"safetensors 파일이 너무 짧습니다({size} 바이트)")
        (header_size,) = struct.unpack("<Q", head)
        if header_size > min(size - 8, 100_000_000):
            raise ValueError(f"safetensors 머리글 길이({header_size:,})가 파일 크기({size:,} 바이트)와 맞지 않습니다")
        try:
            header = json.loads(f.read(header_size).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError("safetensors 머리글이 JSON 이 아닙니다") from None
    if not isinstance(header, dict):
        raise ValueError("safetensors 머리글이 JSON 객체가 아닙니다")  # noqa: TRY004
    ends = [info["data_offsets"][1] for key, info in header.items() if key != "__metadata__"]
    expected = 8 + header_size + max(ends, default=0)
    if size != expected:
        raise ValueError(f"머리글로는 {expected:,} 바이트여야 하는데 {size:,} 바이트입니다(잘렸거나 덧붙은 파일)")


# TensorFlow 체크포인트 색인(.index)은 LevelDB 테이블 형식이고, 마지막 8바이트가 이 매직 넘버다
_TF_TABLE_MAGIC = 0xDB4775248B80FB57


def validate_tf_checkpoint_index(path) -> None:
    """TensorFlow 체크포인트 색인 파일(``model.ckpt.index``)의 끝(푸터)이 온전한지 확인한다."""
    path = Path(path)
    size = path.stat().st_size
    if size < 48:
        raise ValueError(f"체크포인트 색인이 너무 짧습니다({size} 바이트)")
    with open(path, "rb") as f:
        f.seek(size - 8)
        (magic,) = struct.unpack("<Q", f.read(8))
    if magic != _TF_TABLE_MAGIC:
        raise ValueError("체크포인트 색인의 끝이 TensorFlow 테이블 형식이 아닙니다(잘렸거나 다른 파일)")


# ---------------------------------------------------------------------------
# 내려받기
# ---------------------------------------------------------------------------

USER_FILE_CHOICES = ("use", "refuse")


def _finish(part: Path, destination: Path, expected_size, expected_sha256, validate, source: str) -> Path:
    """이 도구가 만든 임시 파일을 확인하고 나서야 원래 이름으로 옮긴다. 틀리면 임시 파일만 지우고 오류를 낸다."""
    problem = _problem_with(part, expected_size, expected_sha256) or _validation_problem(part, validate)
    if problem:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{source} 에서 받은 파일을 버렸습니다: {problem}.")
    os.replace(part, destination)
    return destination


def _copy_from_mirror(candidates, destination: Path, expected_size, expected_sha256, validate) -> Path | None:
    """미러 폴더나 저장소의 ``data/`` 에 같은 이름의 파일이 있으면 확인해서 복사한다."""
    for folder in local_data_dirs():
        for name in candidates:
            source = folder / name
            if source.is_file() and source.resolve() != destination.resolve():
                part = destination.with_name(destination.name + ".part")
                shutil.copyfile(source, part)
                return _finish(part, destination, expected_size, expected_sha256, validate, f"로컬 사본 {source}")
    return None


def _fetch(url: str, part: Path, expected_size, show_progress: bool, desc: str, headers=None) -> bool:
    """URL 을 ``part`` 에 받는다. ``part`` 가 이미 있으면 Range 요청으로 이어 받는다.

    Returns:
        받은 크기를 확인할 수 있었는지(``Content-Length``·기대 크기와 맞았거나, 끝 표시가 있는 chunked 전송).
    """
    start = part.stat().st_size if part.exists() else 0
    if expected_size is not None and start >= expected_size:
        part.unlink()  # 이어 받을 것이 없거나 너무 크다: 처음부터 다시 받는다
        start = 0
    request = urllib.request.Request(url, headers={"User-Agent": "llm-from-scratch", **(headers or {})})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if start and error.code == 416:
            # 이어 받을 범위가 서버의 파일에 없다: .part 가 이 파일의 앞부분이 아니므로 처음부터 받는다
            part.unlink()
            return _fetch(url, part, expected_size, show_progress, desc, headers)
        raise
    with response:
        if start and response.status != 206:
            start = 0  # 서버가 이어 받기를 지원하지 않는다
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else expected_size
        with open(part, "ab" if start else "wb") as f, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, desc=desc, disable=not show_progress
        ) as bar:
            for chunk in iter(lambda: response.read(CHUNK_SIZE), b""):
                f.write(chunk)
                bar.update(len(chunk))
        # chunked 전송은 끝 표시(크기 0인 조각)까지 읽어야 끝나므로, 여기까지 왔으면 온전하다
        framed = bool(getattr(response, "chunked", False))
    received = part.stat().st_size
    if total is not None and received != total:
        raise DownloadError(f"연결이 중간에 끊겼습니다({received:,} / {total:,} 바이트).")
    return total is not None or framed


def _how_to_get_canonical(url: str, destination: Path) -> str:
    return (
        f"원본을 쓰려면 이 파일을 다른 곳으로 옮긴 뒤(예: {destination.name} -> {destination.name}.mine) 다시 "
        f"실행하세요. 그러면 LLMFS_DATA_MIRROR 폴더나 저장소의 data/ 사본, 또는 {url} 에서 원본을 받습니다."
    )


def _existing_file(destination: Path, url: str, expected_size, sha256, validate, user_file: str) -> Path:
    """목적지에 이미 있는 파일을 다룬다. 그 파일은 사용자의 것이므로 절대 지우거나 덮어쓰지 않는다."""
    if not destination.is_file():
        raise DownloadError(
            f"{destination.resolve()} 자리에 파일이 아닌 것(폴더 등)이 있어 받지 않았습니다. 옮기거나 다른 폴더를 고르세요."
        )
    problem = _problem_with(destination, expected_size, sha256)
    if problem is None:
        # 해시가 맞으면 더 볼 것이 없다. 해시를 모르면 읽어 보고 믿는다.
        unreadable = None if sha256 is not None else _validation_problem(destination, validate)
        if unreadable is None:
            return destination
        raise DownloadError(
            f"이미 있는 {destination.resolve()} 를 믿을 수 없습니다: {unreadable}. 잘렸거나 손상된 파일일 수 있지만 "
            f"사용자의 파일일 수도 있어 지우거나 덮어쓰지 않았습니다. {_how_to_get_canonical(url, destination)}"
        )
    if user_file == "use":
        unreadable = _validation_problem(destination, validate)
        if unreadable is not None:
            raise DownloadError(
                f"{destination.resolve()} 는 원본과 다르고({problem}) {unreadable}. 고친 파일이면 형식을 바로잡아 "
                f"주세요. 지우거나 덮어쓰지 않았습니다. {_how_to_get_canonical(url, destination)}"
            )
        print(
            f"알림: {destination} 는 원본과 다릅니다({problem}). 사용자가 고친 데이터로 보고 그대로 씁니다. "
            f"{_how_to_get_canonical(url, destination)}"
        )
        return destination
    raise DownloadError(
        f"{destination.resolve()} 가 이미 있지만 원본과 다릅니다({problem}). 사용자의 파일일 수 있어 지우거나 "
        f"덮어쓰지 않았습니다. {_how_to_get_canonical(url, destination)}"
    )


def download_file(
    url: str,
    destination=None,
    *,
    backup_url: str | None = None,
    expected_size: int | None = None,
    sha256: str | None = None,
    mirror_names=(),
    show_progress: bool = True,
    user_file: str = "refuse",
    validate=None,
    headers: dict | None = None,
) -> Path:
    """파일 하나를 받아 ``destination`` 에 두고 그 경로를 돌려준다.

    Args:
        url: 기본 URL.
        destination: 저장할 파일 경로(기본값: 현재 폴더에 URL의 파일 이름으로).
        backup_url: 기본 URL이 실패했을 때 시도할 URL.
        expected_size: 바이트 단위 크기(알면). 다르면 받은 파일을 버린다.
        sha256: 내용의 sha256(알면). 다르면 받은 파일을 버린다.
        mirror_names: 미러 폴더에서 먼저 찾아볼 상대 경로들. 그다음에 URL의 파일 이름으로 찾는다.
        show_progress: tqdm 진행 막대를 보일지.
        user_file: 목적지에 원본과 다른 파일이 이미 있을 때: "use" 면 사용자의 데이터로 보고 알린 뒤 쓰고,
            "refuse"(기본) 면 오류로 멈춘다. 어느 쪽이든 그 파일은 지우거나 덮어쓰지 않는다.
        validate: 받은 파일(그리고 이미 있는 파일)을 믿기 전에 읽어 보는 함수 ``validate(path)``.
            예외를 내거나 False 를 돌려주면 손상된 것으로 본다(예: ``validate_json``, ``validate_safetensors``).
            크기도 해시도 모르고 서버가 ``Content-Length`` 도 주지 않으면, 이 함수 없이는 받은 파일을 믿지 않는다.
        headers: 요청에 더할 HTTP 헤더(예: Hugging Face 토큰 ``{"Authorization": "Bearer ..."}``).
    """
    if user_file not in USER_FILE_CHOICES:
        raise ValueError(f"user_file 은 'use' 나 'refuse' 여야 합니다(받은 값: {user_file!r}).")
    file_name = _url_file_name(url)
    destination = Path(destination) if destination is not None else Path(file_name)
    how_to_fix = f"{url} 에서 파일을 직접 받아 {destination.resolve()} 에 두세요. 또는 {_mirror_hint(file_name)}"

    if destination.exists() or destination.is_symlink():
        return _existing_file(destination, url, expected_size, sha256, validate, user_file)
    destination.parent.mkdir(parents=True, exist_ok=True)

    try:
        copied = _copy_from_mirror([*mirror_names, file_name], destination, expected_size, sha256, validate)
    except DownloadError as error:
        raise DownloadError(f"{error} {how_to_fix}") from None
    if copied is not None:
        return copied

    if is_offline():
        raise DownloadError(f"오프라인 모드(LLMFS_OFFLINE=1)라서 {url} 을 내려받지 않았습니다. {how_to_fix}")

    part = destination.with_name(destination.name + ".part")
    errors = []
    for candidate in [url, backup_url] if backup_url else [url]:
        try:
            size_confirmed = _fetch(candidate, part, expected_size, show_progress, desc=file_name, headers=headers)
            if not size_confirmed and sha256 is None and validate is None:
                part.unlink(missing_ok=True)
                raise DownloadError(
                    "서버가 크기(Content-Length)를 알려 주지 않았고 확인할 크기·해시·검사 함수도 없어, 끝까지 받았는지 "
                    "알 수 없는 파일을 버렸습니다"
                )
            return _finish(part, destination, expected_size, sha256, validate, candidate)
        except (urllib.error.URLError, OSError, http.client.HTTPException, DownloadError, ValueError) as error:
            # HTTPError 는 상태 코드까지 보이도록 통째로, 나머지 URLError 는 원인(reason)만 적는다
            reason = error if isinstance(error, urllib.error.HTTPError) else getattr(error, "reason", None) or error
            errors.append(f"  - {candidate}: {reason}")
    raise DownloadError("파일을 받지 못했습니다.\n" + "\n".join(errors) + f"\n{how_to_fix}")


_VALIDATORS_BY_SUFFIX = {".json": validate_json, ".txt": validate_utf8_text}


def download_data_file(name: str, folder=".", *, user_file: str | None = None) -> Path:
    """책이 쓰는 공개 데이터 파일(``DATA_FILES`` 의 이름)을 ``folder`` 에 받아 경로를 돌려준다.

    ``folder`` 에 원본과 다른 같은 이름의 파일이 있으면 ``user_file`` 로 정한다(기본은 파일마다:
    텍스트·지시 데이터는 "use" 로 사용자의 데이터로 보고 쓰고, 압축 파일은 "refuse" 로 멈춘다).
    사용자의 파일로 쓸 때도 UTF-8 텍스트·JSON 으로 읽히는지는 확인한다.
    """
    if name not in DATA_FILES:
        raise KeyError(f"알 수 없는 데이터 파일 {name!r} 입니다. 가능한 이름: {', '.join(DATA_FILES)}")
    info = DATA_FILES[name]
    return download_file(
        info["url"],
        Path(folder) / name,
        backup_url=info.get("backup_url"),
        expected_size=info["size"],
        sha256=info["sha256"],
        user_file=user_file or info.get("user_file", "refuse"),
        validate=_VALIDATORS_BY_SUFFIX.get(Path(name).suffix),
    )


def prepare_tiktoken_cache(cache_dir, mirror=None) -> Path:
    """GPT-2 의 ``encoder.json``, ``vocab.bpe`` 를 tiktoken 캐시 이름으로 복사한다(크기·sha256 을 확인한 뒤에만).

    원본은 ``mirror`` 폴더(기본: ``LLMFS_DATA_MIRROR``, 그다음 저장소의 ``data/``)의 ``gpt2/`` 에서 찾는다.
    그다음 ``TIKTOKEN_CACHE_DIR=cache_dir`` 이면 ``tiktoken.get_encoding("gpt2")`` 가 네트워크 없이 동작한다.
    """
    folders = [Path(mirror)] if mirror is not None else local_data_dirs()
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for relative, info in TIKTOKEN_GPT2_FILES.items():
        target = cache_dir / info["cache_name"]
        if target.is_file() and _problem_with(target, info["size"], info["sha256"]) is None:
            continue
        sources = [folder / relative for folder in folders if (folder / relative).is_file()]
        if not sources:
            searched = ", ".join(str(folder) for folder in folders) or "(찾아볼 폴더 없음)"
            hint = f"GPT-2 의 {relative} 를 data/{relative} 에 두세요. 또는 {_mirror_hint(relative)}"
            if mirror is not None and not Path(mirror).is_dir():
                hint = f"미러로 준 {mirror} 은(는) 없는 폴더입니다. 경로를 바로잡으세요."
            raise DownloadError(f"tiktoken 캐시를 채울 {relative} 를 찾지 못했습니다(찾아본 곳: {searched}). {hint}")
        part = target.with_name(info["cache_name"] + ".part")
        shutil.copyfile(sources[0], part)
        _finish(part, target, info["size"], info["sha256"], None, f"로컬 사본 {sources[0]}")
    return cache_dir


def tiktoken_cache_dir() -> Path | None:
    """tiktoken 이 쓰는 캐시 폴더(tiktoken 과 같은 규칙). 캐시를 끈 경우(빈 문자열)는 None."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        value = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        value = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        value = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return Path(value) if value else None


def ensure_tiktoken_cache() -> Path | None:
    """tiktoken 의 gpt2 인코딩이 인터넷 없이 동작하도록, 캐시에 없는 파일만 저장소 사본으로 채운다.

    이미 캐시에 있는 파일은 건드리지 않는다. 사본을 찾지 못하면 아무 일도 하지 않는다
    (그때 tiktoken 은 평소처럼 인터넷에서 받는다).
    """
    cache_dir = tiktoken_cache_dir()
    if cache_dir is None:
        return None
    try:
        return prepare_tiktoken_cache(cache_dir)
    except (DownloadError, OSError):
        return None


def _offline_tiktoken_error(blobpath: str) -> DownloadError:
    cache = tiktoken_cache_dir()
    where = f"TIKTOKEN_CACHE_DIR={cache}" if cache is not None else "TIKTOKEN_CACHE_DIR 가 빈 문자열(캐시 꺼짐)"
    return DownloadError(
        f"오프라인 모드(LLMFS_OFFLINE=1)라서 tiktoken 이 {blobpath} 를 내려받지 못하게 막았습니다"
        f"(tiktoken 캐시에 그 파일이 없습니다, {where}). 캐시를 준비하려면 GPT-2 의 encoder.json 과 vocab.bpe 를 "
        "저장소의 data/gpt2/ 나 LLMFS_DATA_MIRROR 폴더의 gpt2/ 에 두고 다음을 실행하세요: "
        "python -c \"from llm_from_scratch.download import prepare_tiktoken_cache, tiktoken_cache_dir; "
        "prepare_tiktoken_cache(tiktoken_cache_dir())\" "
        "(또는 인터넷에 연결된 곳에서 LLMFS_OFFLINE 없이 한 번 실행하면 tiktoken 이 캐시를 채웁니다)."
    )


def install_tiktoken_offline_guard() -> bool:
    """tiktoken 이 URL 을 읽는 함수를 감싸, ``LLMFS_OFFLINE`` 이 켜져 있으면 네트워크 대신 한국어 오류를 내게 한다.

    오프라인인지는 읽는 순간에 본다. 캐시에 있는 파일은 tiktoken 이 이 함수를 부르지 않고 읽으므로 영향이 없다.
    ``import llm_from_scratch`` 가 부른다. tiktoken 이 없으면 아무 일도 하지 않고 False 를 돌려준다.
    """
    try:
        import tiktoken.load as tiktoken_load
    except ImportError:
        return False
    original = tiktoken_load.read_file
    if getattr(original, "_llmfs_offline_guard", False):
        return True

    def read_file(blobpath):
        if is_offline() and "://" in str(blobpath):
            raise _offline_tiktoken_error(str(blobpath))
        return original(blobpath)

    read_file._llmfs_offline_guard = True
    tiktoken_load.read_file = read_file
    return True


def get_gpt2_encoding():
    """GPT-2 의 tiktoken 인코딩을 돌려준다. 캐시를 먼저 저장소 사본으로 채우고, 오프라인이면 네트워크에 나가지 않는다.

    오프라인인데 캐시를 채울 수 없으면 준비하는 법을 알리는 ``DownloadError`` 를 낸다.
    """
    import tiktoken

    install_tiktoken_offline_guard()
    ensure_tiktoken_cache()
    return tiktoken.get_encoding("gpt2")
