"""노트북 첫 코드 셀(Colab 준비)과 맨 위 "Colab에서 열기" 배지를 만들고 넣는 도구.

    python tools/colab.py 노트북.ipynb [...]   # 없으면 넣고, 있으면 지금 규칙대로 고친다

Colab 셀은 ``google.colab`` 이 있을 때만 저장소를 복제·설치하고 노트북의 폴더로 옮겨 가며, 다른 곳에서는 아무 일도
하지 않는다(테스트 명령도 이 셀을 실행한다). 저장소 주소는 ``pyproject.toml`` 의 ``[project.urls] Repository`` 한 곳에 있다.
tests/test_notebooks.py 가 모든 노트북이 이 규칙을 따르는지 확인한다.
"""

import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLAB_MARKER = "# Colab에서 열었을 때만"
BADGE_MARKER = "colab-badge.svg"


def repository_url() -> str:
    """``pyproject.toml`` 의 ``[project.urls] Repository`` (파이썬 3.10에는 tomllib 이 없어 한 줄만 읽는다)."""
    text = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^Repository = "([^"]+)"', text, re.MULTILINE).group(1)


def colab_cell_source(notebook: Path) -> str:
    """노트북 하나의 Colab 준비 셀 내용."""
    folder = notebook.resolve().parent.relative_to(REPO_ROOT).as_posix()
    url = repository_url()
    return (
        f"{COLAB_MARKER} 저장소를 받아 설치하고 이 노트북의 폴더로 옮겨 갑니다. 다른 곳에서는 아무 일도 하지 않습니다.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f"    !git clone --depth 1 {url}.git /content/llm-from-scratch\n"
        "    %cd /content/llm-from-scratch\n"
        '    %pip install --quiet -e ".[hf]"\n'
        "    import site\n"
        "\n"
        "    site.main()  # 방금 설치한 llm_from_scratch 패키지를 이 커널에서 바로 가져올 수 있게 한다\n"
        f"    %cd /content/llm-from-scratch/{folder}"
    )


def badge_markdown(notebook: Path) -> str:
    """맨 위 마크다운 셀에 넣을 "Colab에서 열기" 배지."""
    relative = notebook.resolve().relative_to(REPO_ROOT).as_posix()
    github = repository_url().removeprefix("https://github.com/")
    return (
        f"[![Colab에서 열기](https://colab.research.google.com/assets/{BADGE_MARKER})]"
        f"(https://colab.research.google.com/github/{github}/blob/main/{relative})"
    )


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def apply(notebook: Path) -> None:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    cells = nb["cells"]
    # 배지: 첫 마크다운 셀의 맨 앞
    first_md = next((c for c in cells if c["cell_type"] == "markdown"), None)
    if first_md is None:
        first_md = {"cell_type": "markdown", "metadata": {}, "source": []}
        cells.insert(0, first_md)
    text = "".join(first_md["source"])
    kept = [line for line in text.split("\n") if BADGE_MARKER not in line]
    first_md["source"] = _lines(badge_markdown(notebook) + "\n\n" + "\n".join(kept).lstrip("\n"))
    # Colab 셀: 첫 코드 셀
    source = colab_cell_source(notebook)
    code_cells = [c for c in cells if c["cell_type"] == "code"]
    if code_cells and COLAB_MARKER in "".join(code_cells[0]["source"]):
        code_cells[0]["source"] = _lines(source)
    else:
        cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": _lines(source)}
        if nb.get("nbformat_minor", 0) >= 5:
            cell["id"] = "colab-setup"
        # 제목 마크다운 바로 다음(설명 셀보다 앞)에 둔다
        index = 1 if cells[0]["cell_type"] == "markdown" else 0
        cells.insert(index, cell)
    notebook.write_text(json.dumps(nb, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    for name in sys.argv[1:]:
        apply(Path(name))
        print("고침:", name)
