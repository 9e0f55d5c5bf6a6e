"""한국어판의 표기: 조사는 앞말에 붙여 쓰고, 용어는 책의 것을 쓴다.

노트북의 마크다운 셀과 저장소의 모든 .md 파일을 본다. 코드 블록은 빼고, 인라인 코드는 남겨서
`` `GPTModel` 을 `` 처럼 띄어 쓴 조사도 찾는다. 규칙(한국어판과 그 공식 노트북의 표기)은 이렇다.

- 조사는 라틴 문자, 숫자, 코드 뒤에서도 앞말에 붙인다: `GPT-2는`, `LLM을`, `` `GPTModel`을 ``, `124M보다`,
  `GPT-2처럼`, `GPU에서의`, `**78%**로`. 은/는, 이/가, 을/를, 와/과, 로/으로는 소리 내어 읽는 대로 고른다.
  띄어 쓴 곳은 문서마다 붙여 쓴 곳을 합친 수의 3% 이하만 허용한다(`A 는`처럼 일부러 띄운 예시가 있을 수 있다).
- 용어는 ``AVOIDED``의 왼쪽 대신 오른쪽(책의 말)을 쓴다. 책의 절 제목(``tests/data/book_map.json``)은 판이 쓴
  그대로 두므로 이 검사에서 뺀다(예: 판의 `연습문제 7.3: 원본 Alpaca 데이터셋에서 파인튜닝`).
- 책의 장과 부록 노트북에서 장 요약의 제목은 `요약`이다(`## 정리`가 아니다).
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOK_MAP = json.loads((REPO_ROOT / "tests" / "data" / "book_map.json").read_text(encoding="utf-8"))
BOOK_HEADINGS = {s["heading"] for entry in BOOK_MAP["notebooks"].values() for s in entry["sections"]}
PARTICLES = (
    r"(?:은|는|이|가|을|를|의|와|과|로|으로|에서의|에서|에게|에|처럼|보다|까지|부터|만|이나|라는|이라는|입니다|이고)"
)
END = r"(?=[\s.,:;!?)\]]|$)"
BEFORE = r"[A-Za-z0-9`)\]%]"  # 라틴 문자, 숫자, 인라인 코드, 괄호, 퍼센트 뒤
DETACHED = re.compile(BEFORE + " " + PARTICLES + END, re.MULTILINE)
ATTACHED = re.compile(BEFORE + PARTICLES + END, re.MULTILINE)
MAX_DETACHED_SHARE = 0.03

# 책이 쓰지 않는 말 → 책의 말
AVOIDED = {
    "컨텍스트 벡터": "문맥 벡터",
    "컨텍스트 길이": "문맥 길이",
    "퍼플렉서티": "혼잡도",
    "톱-k": "탑-k",
    "보폭": "스트라이드",
    "그래디언트": "그레이디언트",
    "웜업": "워밍업",
    "탐욕적 디코딩": "그리디 디코딩",
    "파인튜닝": "미세 튜닝",
    "프리트레이닝": "사전 훈련",
    "명령어 미세 튜닝": "지시 미세 튜닝",
    "자기 어텐션": "셀프 어텐션",
    "인과 어텐션": "코잘 어텐션",
    "레이어 정규화": "층 정규화",
    "지름길 연결": "숏컷 연결",
    "교차 엔트로피": "크로스 엔트로피",
    "에폭": "에포크",
    "절편": "편향",
    "선형층": "선형 층",
    "출력층": "출력 층",
    "은닉층": "은닉 층",
    "top-k 샘플링": "탑-k 샘플링",
    "학습 가능한 가중치": "훈련 가능한 가중치",
    "가중치를 공유": "가중치 묶기(weight tying)",
    "스트라이드이": "스트라이드가",
    "연습 문제": "연습문제",
    "연습문제 풀이": "연습문제 해답",
}
SUMMARY_CALLED_JEONGNI = re.compile(r"^#{1,6} 정리\s*$", re.MULTILINE)


def _files(pattern):
    try:
        names = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", pattern],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.split("\n")
        paths = [REPO_ROOT / n for n in names if n]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in REPO_ROOT.rglob(pattern) if ".git" not in p.parts]
    return sorted(p for p in paths if p.is_file() and ".ipynb_checkpoints" not in p.parts)


def _prose(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # 링크 주소
    text = _strip_bold(text)
    return re.sub(r"https?://\S+", " ", text)


def _strip_bold(text: str) -> str:
    """굵게 표시를 지운다: `**78%** 로`도 `78% 로`로 본다."""
    return re.sub(r"\*\*(.+?)\*\*", r"\1", text)


DOCUMENTS = _files("*.ipynb") + _files("*.md")
IDS = [p.relative_to(REPO_ROOT).as_posix() for p in DOCUMENTS]


def test_there_are_documents_to_check():
    """파일을 하나도 못 찾거나 글을 못 읽으면(경로·git 문제) 검사가 조용히 통과하지 않게 한다."""
    assert len(DOCUMENTS) >= 50, f"검사할 노트북과 .md 파일이 {len(DOCUMENTS)}개뿐입니다"
    assert set(BOOK_MAP["notebooks"]) <= set(IDS), "책 지도의 노트북을 찾지 못했습니다"
    empty = [i for i, p in zip(IDS, DOCUMENTS) if not _prose(p).strip()]
    assert not empty, f"글이 없는 문서입니다: {empty}"
    counted = sum(len(ATTACHED.findall(_prose(p))) + len(DETACHED.findall(_prose(p))) for p in DOCUMENTS)
    assert counted > 1000, f"조사를 {counted}곳에서만 찾았습니다. 검사가 글을 제대로 읽는지 확인하세요"


def test_detector_sees_the_issues_examples():
    text = _strip_bold("GPT-2 처럼, 124M 보다, **78%** 로, GPU 에서의 계산")
    assert DETACHED.findall(text) == ["2 처럼", "M 보다", "% 로", "U 에서의"]
    assert not DETACHED.findall("GPT-2처럼 124M보다 78%로 GPU에서의 계산. 2 이상, 이 저장소")


@pytest.mark.parametrize("path", DOCUMENTS, ids=IDS)
def test_particles_attach_to_latin_words_and_code(path):
    text = _prose(path)
    detached = DETACHED.findall(text)
    total = len(detached) + len(ATTACHED.findall(text))
    if total == 0:  # 라틴 문자나 코드 뒤에 조사가 한 번도 없는 짧은 문서
        return
    examples = [m.group(0) for m in DETACHED.finditer(text)][:8]
    assert len(detached) / total <= MAX_DETACHED_SHARE, (
        f"조사를 띄어 쓴 곳이 {len(detached)}/{total}군데입니다(허용 {MAX_DETACHED_SHARE:.0%}). 예: {examples}"
    )


@pytest.mark.parametrize("path", DOCUMENTS, ids=IDS)
def test_uses_the_books_terms(path):
    text = "\n".join(line for line in _prose(path).split("\n") if line.strip() not in BOOK_HEADINGS)
    found = {word: AVOIDED[word] for word in AVOIDED if word in text}
    assert not found, f"책의 용어로 바꾸세요: {found}"
    if path.relative_to(REPO_ROOT).as_posix() in BOOK_MAP["notebooks"]:  # 책의 장과 부록의 노트북
        assert not SUMMARY_CALLED_JEONGNI.search(text), "장 요약의 제목은 `요약`으로 쓰세요(`정리`가 아니라)"
