"""한국어판을 옆에 펴 둔 독자가 노트북에서 책과 같은 제목, 목록 번호, 그림을 만나는지 확인한다.

기준은 ``tests/data/book_map.json``이다. 한국어판 공식 노트북의 절 제목(그대로, 순서대로)과 그 아래 그림의
번호·주소, 책의 목록 번호와 그 목록을 담은 노트북(또는 스크립트)을 적어 두었다.

- 제목: 책의 제목이 한 번씩, 책의 순서대로 나온다. 책에 없는 절 번호를 단 제목은 없다(우리가 더한 절은 번호 없이).
- 목록: ``# 목록 N.M``이 그 목록을 담은 코드 셀의 첫 줄에 꼭 한 번 나온다. 다른 자리(둘째 줄 아래)에 쓰지 않는다.
- 그림: ``![그림 N-M: 설명](주소)``가 책의 순서대로, 책과 같은 절 아래에 나온다. 대체 텍스트는 한국어로 번호부터 쓴다.
  책이 코드로 그리는 그림(``drawn_figures``)은 우리 셀이 그리고 마크다운에서 번호를 밝힌다.
- 지어낸 번호: 본문과 코드에 나오는 ``목록 N.M``, ``그림 N-M``은 모두 책에 있는 번호다.
"""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOK_MAP = json.loads((REPO_ROOT / "tests" / "data" / "book_map.json").read_text(encoding="utf-8"))
NOTEBOOKS = BOOK_MAP["notebooks"]
SCRIPTS = BOOK_MAP["scripts"]
BOOK_LISTINGS = set(BOOK_MAP["listings"])
FIGURE_URLS = {
    url: number for entry in NOTEBOOKS.values() for section in entry["sections"] for number, url in section["figures"]
}
BOOK_FIGURES = {number for number in FIGURE_URLS.values() if number} | {
    number for entry in NOTEBOOKS.values() for number in entry.get("drawn_figures", [])
}

HEADING = re.compile(r"^#{1,6} \S.*$")
# 책의 번호를 단 제목: 절 번호(2.1, 3.5.2, A.9.1), 장 제목(2장:, 부록 A:, 챕터 6:), 연습문제 번호
NUMBERED_HEADING = re.compile(
    r"^#{1,6} (?:(?:\d+|[A-E])(?:\.\d+)+(?:\s|$)|(?:\d+장|부록 [A-E]|챕터 \d+):|연습문제 (?:\d+|[A-E])\.\d+)"
)
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
MARKER = re.compile(r"^# 목록 ((?:\d+|[A-E])\.\d+)(?=\s|$)")
ANY_MARKER = re.compile(r"^\s*# 목록 ", re.MULTILINE)
LISTING_MENTION = re.compile(r"목록 ((?:\d+|[A-E])\.\d+)")
FIGURE_MENTION = re.compile(r"그림 ((?:\d+|[A-E])-\d+)")
HANGUL = re.compile(r"[가-힣]")


def _cells(notebook):
    return json.loads((REPO_ROOT / notebook).read_text(encoding="utf-8"))["cells"]


def _markdown_lines(cells):
    """마크다운 셀의 줄을 차례로 돌려준다(``` 코드 블록 안의 줄은 뺀다)."""
    lines = []
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        fenced = False
        for line in "".join(cell["source"]).split("\n"):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif not fenced:
                lines.append(line)
    return lines


def _headings(lines):
    return [line.rstrip() for line in lines if HEADING.match(line)]


def _book_headings(entry):
    return [section["heading"] for section in entry["sections"]]


def _expected_outline(entry):
    """책의 제목과 그 아래 그림 주소를 책의 순서대로 늘어놓는다."""
    outline = []
    for section in entry["sections"]:
        outline.append(section["heading"])
        outline.extend(url for _, url in section["figures"])
    return outline


def _found_outline(lines, entry):
    """노트북에서 책의 제목과 책의 그림 주소만 나온 순서대로 모은다."""
    book_headings = set(_book_headings(entry))
    outline = []
    for line in lines:
        if line.rstrip() in book_headings:
            outline.append(line.rstrip())
        outline.extend(url for _, url in IMAGE.findall(line) if url in FIGURE_URLS)
    return outline


def invented_numbers(lines, code_sources, entry):
    """책에 없는 번호: 번호 달린 제목, ``목록 N.M``, ``그림 N-M`` 가운데 책 지도에 없는 것."""
    book_headings = set(_book_headings(entry))
    invented = [h for h in _headings(lines) if NUMBERED_HEADING.match(h) and h not in book_headings]
    text = "\n".join(lines + code_sources)
    invented += [f"목록 {n}" for n in LISTING_MENTION.findall(text) if n not in BOOK_LISTINGS]
    invented += [f"그림 {n}" for n in FIGURE_MENTION.findall(text) if n not in BOOK_FIGURES]
    return invented


def listing_markers(cells):
    """(코드 셀 첫 줄의 목록 번호들, 첫 줄이 아닌 곳에 쓴 목록 표시 수)."""
    first_lines, misplaced = [], 0
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        first, _, rest = source.partition("\n")
        match = MARKER.match(first)
        if match:
            first_lines.append(match.group(1))
        elif first.lstrip().startswith("# 목록"):
            misplaced += 1
        misplaced += len(ANY_MARKER.findall(rest))
    return first_lines, misplaced


NOTEBOOK_IDS = list(NOTEBOOKS)


def test_book_map_is_complete():
    """지도 자체: 책의 목록마다 담는 파일이 있고, 번호가 붙은 그림은 본문 노트북에 123개다."""
    homes = Counter(n for entry in NOTEBOOKS.values() for n in entry["listings"])
    homes.update(n for numbers in SCRIPTS.values() for n in numbers)
    assert set(homes) == BOOK_LISTINGS
    numbered = [number for number in FIGURE_URLS.values() if number]
    assert len(numbered) == len(set(numbered)) == 123
    assert all(url.startswith(BOOK_MAP["figure_base_url"]) for url in FIGURE_URLS)
    for path in list(NOTEBOOKS) + list(SCRIPTS):
        assert (REPO_ROOT / path).is_file(), path


@pytest.mark.parametrize("notebook", NOTEBOOK_IDS)
def test_headings_are_the_books_in_order(notebook):
    headings = _headings(_markdown_lines(_cells(notebook)))
    expected = _book_headings(NOTEBOOKS[notebook])
    missing = [h for h in expected if headings.count(h) != 1]
    assert not missing, f"{notebook}: 책의 제목이 없거나 두 번 이상 나옵니다(책 그대로 한 번씩 쓰세요): {missing}"
    in_order = [h for h in headings if h in expected]
    assert in_order == expected, f"{notebook}: 제목이 책의 순서가 아닙니다: {in_order}"


@pytest.mark.parametrize("notebook", NOTEBOOK_IDS)
def test_figures_sit_under_the_books_headings_in_order(notebook):
    entry = NOTEBOOKS[notebook]
    found = _found_outline(_markdown_lines(_cells(notebook)), entry)
    expected = _expected_outline(entry)
    assert found == expected, (
        f"{notebook}: 책의 제목과 그림의 순서가 책과 다릅니다.\n기대: {expected}\n실제: {found}"
    )


@pytest.mark.parametrize("notebook", NOTEBOOK_IDS)
def test_figure_alt_text_starts_with_the_books_number(notebook):
    bad = []
    for line in _markdown_lines(_cells(notebook)):
        for alt, url in IMAGE.findall(line):
            if not url.startswith(BOOK_MAP["figure_base_url"]):
                continue
            if url not in FIGURE_URLS:
                bad.append(f"책 지도에 없는 그림: {url}")
                continue
            number = FIGURE_URLS[url]
            if number:
                ok = alt.startswith(f"그림 {number}: ") and HANGUL.search(alt[len(f"그림 {number}: "):])
            else:  # 책이 번호 없이 싣는 그림
                ok = HANGUL.search(alt) and not FIGURE_MENTION.match(alt)
            if not ok:
                bad.append(f"{alt!r} ({url})")
    assert not bad, f"{notebook}: 그림의 대체 텍스트는 `그림 N-M: 한국어 설명`으로 쓰세요: {bad}"


@pytest.mark.parametrize("notebook", NOTEBOOK_IDS)
def test_drawn_figures_cite_their_number(notebook):
    prose = "\n".join(_markdown_lines(_cells(notebook)))
    missing = [n for n in NOTEBOOKS[notebook].get("drawn_figures", []) if f"그림 {n}" not in prose]
    assert not missing, f"{notebook}: 책이 코드로 그리는 그림의 번호를 그리는 셀 근처 마크다운에 밝히세요: {missing}"


@pytest.mark.parametrize("notebook", NOTEBOOK_IDS)
def test_each_listing_is_marked_once_on_the_first_line_of_its_cell(notebook):
    markers, misplaced = listing_markers(_cells(notebook))
    expected = NOTEBOOKS[notebook]["listings"]
    counts = Counter(markers)
    wrong = {n: counts[n] for n in set(expected) | set(counts) if counts[n] != (1 if n in expected else 0)}
    assert not wrong, f"{notebook}: `# 목록 N.M`은 책의 목록마다 한 번씩만 씁니다(번호: 횟수): {wrong}"
    assert misplaced == 0, f"{notebook}: `# 목록` 표시는 코드 셀의 첫 줄에만 씁니다({misplaced}곳)"
    assert markers == sorted(markers, key=expected.index), f"{notebook}: 목록이 책의 순서가 아닙니다: {markers}"


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_script_marks_its_listings_once(script):
    text = (REPO_ROOT / script).read_text(encoding="utf-8")
    markers = [m.group(1) for line in text.split("\n") if (m := MARKER.match(line))]
    assert markers == SCRIPTS[script], f"{script}: `# 목록` 주석이 {SCRIPTS[script]}와 달라요: {markers}"


@pytest.mark.parametrize("notebook", NOTEBOOK_IDS)
def test_no_invented_book_numbers(notebook):
    cells = _cells(notebook)
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    invented = invented_numbers(_markdown_lines(cells), code, NOTEBOOKS[notebook])
    assert not invented, f"{notebook}: 책에 없는 번호입니다. 번호를 빼거나 책의 번호로 고치세요: {invented}"


def test_checks_catch_an_invented_section_and_a_misplaced_marker():
    """검사 자체: 지어낸 절 번호, 없는 목록·그림 번호, 둘째 줄의 목록 표시를 잡아낸다."""
    entry = NOTEBOOKS["ch06/01_main-chapter-code/ch06.ipynb"]
    lines = ["## 6.7 지도 학습 데이터로 모델 미세 튜닝하기", "### 6.7.1 진짜 가중치 없이 그래프 그려 보기", "### 그래프 그려 보기"]
    code = ["# 목록 6.13 없는 목록\nx = 1", "# 그림 6-5는 책의 노트북에 없는 그림"]
    assert invented_numbers(lines, code, entry) == ["### 6.7.1 진짜 가중치 없이 그래프 그려 보기", "목록 6.13", "그림 6-5"]
    cells = [{"cell_type": "code", "source": ["# NBVAL_CHECK_OUTPUT\n", "# 목록 6.2 균형 잡힌 데이터셋\n"]}]
    assert listing_markers(cells) == ([], 1)
