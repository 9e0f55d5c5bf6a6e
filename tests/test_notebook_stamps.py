"""저장된 노트북 출력이 지금 코드에서 나왔는지: ``tools/run_notebooks.py`` 가 남긴 실행 기록으로 확인한다.

코드 셀을 고치고 다시 실행하지 않으면 코드 해시가 달라져 여기서 실패한다. 출력을 손으로 지우거나 셀을 따로
다시 실행해도 실행 번호가 끊기므로 실패한다.
"""

import json
from pathlib import Path

import pytest
from support import load_module, project_files

REPO_ROOT = Path(__file__).resolve().parent.parent


RUNNER = load_module(REPO_ROOT / "tools" / "run_notebooks.py", "run_notebooks")
NOTEBOOKS = project_files("*.ipynb")
assert NOTEBOOKS, "노트북을 하나도 찾지 못했습니다"


def stamp_problems(notebook: dict) -> list[str]:
    """실행 기록과 저장된 출력이 맞지 않는 곳을 모두 돌려준다(없으면 빈 목록)."""
    stamp = notebook.get("metadata", {}).get(RUNNER.STAMP_KEY, {}).get("run")
    if not isinstance(stamp, dict):
        return ["실행 기록이 없습니다: python tools/run_notebooks.py 로 실행하세요"]
    problems = []
    if stamp.get("code_sha256") != RUNNER.code_sha256(notebook):
        problems.append("코드 셀이 저장된 실행 뒤에 바뀌었습니다(코드 해시가 다름)")
    if stamp.get("mode") != "default":
        problems.append(f"기본 모드가 아닌 {stamp.get('mode')!r} 모드로 실행한 출력입니다")
    skipped = set(stamp.get("skipped_cells", []))
    counts = []
    for index, cell in enumerate(notebook["cells"]):
        if cell.get("cell_type") != "code":
            continue
        count = cell.get("execution_count")
        if index in skipped:
            if count is not None or cell.get("outputs"):
                problems.append(f"셀 {index}: 건너뛴 셀인데 출력이나 실행 번호가 있습니다")
        elif count is None:
            problems.append(f"셀 {index}: 실행 기록에 없는데 실행되지 않았습니다")
        else:
            counts.append(count)
    if counts != list(range(1, len(counts) + 1)):
        problems.append(f"실행 번호가 1부터 빈틈없이 이어지지 않습니다: {counts[:15]}")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.relative_to(REPO_ROOT).as_posix() for p in NOTEBOOKS])
def test_saved_outputs_come_from_the_current_code(path):
    problems = stamp_problems(json.loads(path.read_text(encoding="utf-8")))
    assert problems == [], f"{path.relative_to(REPO_ROOT)}: " + "; ".join(problems)


def _stamped(cells):
    notebook = {"cells": cells, "metadata": {}}
    notebook["metadata"][RUNNER.STAMP_KEY] = {"run": {
        "code_sha256": RUNNER.code_sha256(notebook), "mode": "default", "skipped_cells": [],
    }}
    return notebook


def _code(source, count):
    return {"cell_type": "code", "source": source, "execution_count": count, "outputs": [], "metadata": {}}


def test_stamp_check_catches_edited_code_and_removed_runs():
    notebook = _stamped([_code("x = 1", 1), {"cell_type": "markdown", "source": "글"}, _code("print(x)", 2)])
    assert stamp_problems(notebook) == []

    notebook["cells"][2]["source"] = "print(x + 1)"
    assert any("코드 해시" in p for p in stamp_problems(notebook))

    gap = _stamped([_code("x = 1", 1), _code("print(x)", 3)])
    assert any("빈틈없이" in p for p in stamp_problems(gap))

    unrun = _stamped([_code("x = 1", 1), _code("print(x)", None)])
    assert any("실행되지 않았" in p for p in stamp_problems(unrun))


def test_code_hash_is_the_documented_one():
    """해시는 코드 셀 소스를 "\\n\\x00\\n" 으로 이은 것의 sha256 이다(문서와 훅이 같은 방법을 쓴다)."""
    import hashlib

    notebook = {"cells": [_code(["a = 1\n", "b = 2"], 1), {"cell_type": "markdown", "source": "x"}, _code("c", 2)]}
    expected = hashlib.sha256(b"a = 1\nb = 2\n\x00\nc").hexdigest()
    assert RUNNER.code_sha256(notebook) == expected
