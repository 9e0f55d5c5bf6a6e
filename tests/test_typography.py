"""한국어판의 표기: 조사는 앞말에 붙여 쓰고(`GPT-2는`), 용어는 책의 것을 쓴다(../GLOSSARY 규칙을 옮긴 것).

노트북의 마크다운 셀과 저장소의 모든 .md 파일을 본다. 코드 블록은 빼고, 인라인 코드는 남겨서
`` `GPTModel` 을 `` 처럼 띄어 쓴 조사도 찾는다.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PARTICLES = r"(?:은|는|이|가|을|를|의|와|과|로|으로|에서|에)"
END = r"(?=[\s.,:;!?)\]]|$)"
DETACHED = re.compile(r"[A-Za-z0-9`)\]] " + PARTICLES + END, re.MULTILINE)
ATTACHED = re.compile(r"[A-Za-z0-9`)\]]" + PARTICLES + END, re.MULTILINE)
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
}


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
    return re.sub(r"https?://\S+", " ", text)


DOCUMENTS = _files("*.ipynb") + _files("*.md")
IDS = [p.relative_to(REPO_ROOT).as_posix() for p in DOCUMENTS]


@pytest.mark.parametrize("path", DOCUMENTS, ids=IDS)
def test_particles_attach_to_latin_words_and_code(path):
    text = _prose(path)
    detached = DETACHED.findall(text)
    total = len(detached) + len(ATTACHED.findall(text))
    if total == 0:
        return
    examples = [m.group(0) for m in DETACHED.finditer(text)][:8]
    assert len(detached) / total <= MAX_DETACHED_SHARE, (
        f"조사를 띄어 쓴 곳이 {len(detached)}/{total}군데입니다(허용 {MAX_DETACHED_SHARE:.0%}). 예: {examples}"
    )


@pytest.mark.parametrize("path", DOCUMENTS, ids=IDS)
def test_uses_the_books_terms(path):
    text = _prose(path)
    found = {word: AVOIDED[word] for word in AVOIDED if word in text}
    assert not found, f"책의 용어로 바꾸세요: {found}"
