"""Project Gutenberg 책(.txt) 폴더를 사전 훈련용 큰 텍스트 파일 몇 개로 합친다.

- 폴더를 아래까지 훑어 ``.txt`` 파일을 모두 읽는다(UTF-8, 안 되면 --fallback-encoding). BOM 이 있는 UTF-16 책은
  UTF-16 으로 읽고, 읽은 글에 NUL 문자가 남는 책(BOM 없는 UTF-16 등)은 어느 파일인지 알리고 건너뛴다.
- 앞부분의 문자 대부분이 ASCII 인 책만 영어 책으로 보고 남긴다(간단한 문자 검사).
- Project Gutenberg 의 머리말·꼬리말을 ``*** START OF ... ***``, ``*** END OF ... ***`` 표시 줄로 찾아 잘라 낸다.
- 빈 줄이 여럿 이어지면 하나로 줄인다.
- 책들을 ``<|endoftext|>`` 로 이어 붙여, 각각 --max-size-mb 이하인 ``combined_1.txt``, ``combined_2.txt``, … 로 쓴다.

    python prepare_dataset.py --data-dir gutenberg/data/raw --max-size-mb 500 --output-dir gutenberg_preprocessed
"""

import codecs
import re
import sys
from pathlib import Path

from tqdm import tqdm

from llm_from_scratch.utils import ArgumentParser

EOT = "<|endoftext|>"
_START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n(?:[ \t\r\f\v]*\n)*")


def is_english(text, threshold=0.9, sample_chars=10_000):
    """앞 ``sample_chars`` 글자 가운데 ASCII 문자의 비율이 ``threshold`` 이상이면 영어 책으로 본다."""
    sample = text[:sample_chars]
    if not sample.strip():
        return False
    return sum(ch.isascii() for ch in sample) / len(sample) >= threshold


def strip_gutenberg_boilerplate(text):
    """START/END 표시 줄 사이의 본문만 남긴다. 표시가 없으면 그 쪽은 자르지 않는다.

    Returns:
        (본문, 두 표시를 모두 찾았는지)
    """
    start = _START.search(text)
    end = _END.search(text, start.end() if start else 0)
    body = text[start.end() if start else 0 : end.start() if end else len(text)]
    return body.strip(), bool(start and end)


def collapse_blank_lines(text):
    """빈 줄(공백만 있는 줄 포함)이 여럿 이어지면 빈 줄 하나로 줄이고, 줄바꿈을 \\n 으로 맞춘다."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _BLANK_LINES.sub("\n\n", text)


def read_book(path, fallback_encoding):
    """책 하나를 읽는다: BOM 을 보고 UTF-8/UTF-16 을 고르고, BOM 이 없으면 UTF-8, 안 되면 ``fallback_encoding``.

    읽은 글에 NUL 문자가 있으면(BOM 없는 UTF-16 을 latin-1 로 읽은 경우 등) 합친 파일을 망치지 않도록 ValueError.
    """
    data = Path(path).read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16")
    elif data.startswith(codecs.BOM_UTF8):
        text = data.decode("utf-8-sig")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode(fallback_encoding)
    if "\x00" in text:
        raise ValueError(
            f"NUL 문자가 {text.count(chr(0)):,}개 있습니다. BOM 이 없는 UTF-16 같은 다른 인코딩으로 보입니다. "
            "UTF-8 로 바꿔 저장한 뒤 다시 실행하세요"
        )
    return text


def combine_books(paths, output_dir, max_size_mb, fallback_encoding="latin1", threshold=0.9):
    """책들을 정리해 ``combined_N.txt`` 로 쓰고, 통계 딕셔너리를 돌려준다."""
    max_bytes = int(max_size_mb * 1024 * 1024)
    output_dir.mkdir(parents=True, exist_ok=True)
    stats = {"books": 0, "non_english": [], "unreadable": [], "no_markers": [], "files": []}
    current, current_bytes = [], 0
    separator_bytes = len(EOT.encode("utf-8"))

    def flush():
        nonlocal current, current_bytes
        if current:
            path = output_dir / f"combined_{len(stats['files']) + 1}.txt"
            path.write_text(EOT.join(current), encoding="utf-8")
            stats["files"].append(path)
        current, current_bytes = [], 0

    for path in tqdm(paths, desc="책", unit="권"):
        try:
            text = read_book(path, fallback_encoding)
        except (OSError, ValueError) as error:  # UnicodeDecodeError 도 ValueError 다
            stats["unreadable"].append(f"{path}: {error}")
            continue
        if not is_english(text, threshold):
            stats["non_english"].append(path.name)
            continue
        body, found = strip_gutenberg_boilerplate(text)
        if not found:
            stats["no_markers"].append(path.name)
        body = collapse_blank_lines(body)
        size = len(body.encode("utf-8"))
        if current and current_bytes + separator_bytes + size > max_bytes:
            flush()
        if size > max_bytes:
            tqdm.write(f"알림: {path.name} 은 혼자서 {size / 1024**2:.1f} MB 라 --max-size-mb 보다 큰 파일 하나가 됩니다.")
        current.append(body)
        current_bytes += size + (separator_bytes if len(current) > 1 else 0)
        stats["books"] += 1
    flush()
    return stats


def parse_args(argv=None):
    parser = ArgumentParser(description="Project Gutenberg 책들을 사전 훈련용 텍스트 파일로 정리해 합칩니다.")
    parser.add_argument("--data-dir", default="gutenberg/data/raw", help="책 .txt 파일이 든 폴더 (하위 폴더까지 찾음)")
    parser.add_argument("--max-size-mb", type=float, default=500, help="합친 파일 하나의 최대 크기(MB, 기본: 500)")
    parser.add_argument("--output-dir", default="gutenberg_preprocessed", help="combined_N.txt 를 쓸 폴더")
    parser.add_argument("--fallback-encoding", default="latin1", help="UTF-8 로 읽히지 않는 책에 쓸 인코딩 (기본: latin1)")
    parser.add_argument("--english-threshold", type=float, default=0.9,
                        help="영어 책으로 볼 ASCII 문자 비율의 하한 (기본: 0.9)")
    args = parser.parse_args(argv)
    if not Path(args.data_dir).is_dir():
        parser.error(f"--data-dir {args.data_dir} 폴더가 없습니다. README 의 방법으로 책을 받은 폴더를 주세요.")
    if args.max_size_mb <= 0:
        parser.error(f"--max-size-mb 는 0보다 커야 합니다(받은 값: {args.max_size_mb}).")
    if not 0 < args.english_threshold <= 1:
        parser.error(f"--english-threshold 는 0보다 크고 1 이하여야 합니다(받은 값: {args.english_threshold}).")
    existing = sorted(Path(args.output_dir).glob("combined_*.txt"))
    if existing:
        parser.error(f"{args.output_dir} 에 이미 {existing[0].name} 등이 있습니다. 덮어쓰지 않으니 다른 --output-dir 를 주세요.")
    return args


def main(argv=None):
    args = parse_args(argv)
    paths = sorted(p for p in Path(args.data_dir).rglob("*.txt") if p.is_file())
    if not paths:
        sys.exit(f"{args.data_dir} 에 .txt 파일이 없습니다.")
    print(f"책 파일 {len(paths):,}개를 찾았습니다.")
    stats = combine_books(paths, Path(args.output_dir), args.max_size_mb, args.fallback_encoding, args.english_threshold)
    print(f"남긴 책 {stats['books']:,}권, 영어가 아니라 건너뛴 책 {len(stats['non_english']):,}권, "
          f"읽지 못한 책 {len(stats['unreadable']):,}권")
    for problem in stats["unreadable"][:10]:
        print(f"  읽지 못한 책: {problem}")
    if stats["no_markers"]:
        print(f"START/END 표시가 없어 자르지 않은 책 {len(stats['no_markers']):,}권: {', '.join(stats['no_markers'][:5])}")
    for path in stats["files"]:
        print(f"  {path.name}: {path.stat().st_size / 1024**2:,.1f} MB")
    print(f"{len(stats['files'])}개 파일을 {args.output_dir} 에 썼습니다.")


if __name__ == "__main__":
    main()
