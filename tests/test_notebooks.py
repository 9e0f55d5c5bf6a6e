"""모든 노트북과 문서에 걸친 규칙: Colab 첫 셀, QUICK 모드 안내, 상대 링크."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
from support import project_files

REPO_ROOT = Path(__file__).resolve().parent.parent


def _load_colab_tool():
    spec = importlib.util.spec_from_file_location("colab_tool", REPO_ROOT / "tools" / "colab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NOTEBOOKS = project_files("*.ipynb")
MARKDOWN_FILES = project_files("*.md")


def _ids(paths):
    return [p.relative_to(REPO_ROOT).as_posix() for p in paths]


def test_repository_url_is_defined_once_in_pyproject():
    url = _load_colab_tool().repository_url()
    assert url.startswith("https://github.com/")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_first_code_cell_sets_up_colab_and_top_has_badge(notebook):
    tool = _load_colab_tool()
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert "".join(first_code["source"]) == tool.colab_cell_source(notebook), (
        f"{notebook.name}의 첫 코드 셀이 Colab 준비 셀이 아닙니다. `python tools/colab.py {notebook}` 로 넣으세요."
    )
    first_markdown = next(c for c in cells if c["cell_type"] == "markdown")
    assert tool.badge_markdown(notebook) in "".join(first_markdown["source"])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_quick_settings_cell_says_how_to_turn_quick_mode_on(notebook):
    """QUICK 설정 셀이 있는 노트북은 그 위 마크다운에서 Jupyter 안에서 QUICK 모드를 켜는 법을 말한다."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and re.search(r"^\s*QUICK\s*=|import QUICK|import .*\bQUICK\b", source, re.MULTILINE):
            above = "".join(cells[index - 1]["source"]) if index else ""
            assert cells[index - 1]["cell_type"] == "markdown" and "%env LLMFS_QUICK=1" in above, (
                f"{notebook.name} 셀 {index}: QUICK 설정 셀 위 마크다운에 `%env LLMFS_QUICK=1` 안내가 없습니다"
            )
            break


_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<img[^>]*src=\"([^\"]+)\"|!\[[^\]]*\]\(([^)\s]+)\)")


def _relative_links(text: str) -> list[str]:
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)
    links = []
    for match in _LINK.finditer(text):
        target = next(g for g in match.groups() if g)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue
        links.append(target.split("#", 1)[0])
    return [link for link in links if link]


def _documents():
    for path in MARKDOWN_FILES:
        yield path, path.read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        yield path, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_every_relative_link_points_at_an_existing_file():
    broken = []
    for path, text in _documents():
        for link in _relative_links(text):
            target = (path.parent / urllib_unquote(link)).resolve()
            if not target.exists():
                broken.append(f"{path.relative_to(REPO_ROOT)} → {link}")
    assert broken == []


def urllib_unquote(link: str) -> str:
    from urllib.parse import unquote

    return unquote(link)
