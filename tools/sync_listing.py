"""모듈의 정의(클래스·함수)를 노트북의 같은 이름 정의가 있는 코드 셀에 옮겨 쓴다(목록 테스트가 둘을 비교한다).

    python tools/sync_listing.py NOTEBOOK MODULE NAME [NAME ...]

모듈을 고친 뒤 노트북의 목록 셀을 맞출 때 쓴다. 바뀐 셀의 출력은 지우므로, 노트북은 run_notebooks.py로 다시 실행한다.
"""

import ast
import importlib
import inspect
import json
import sys
from pathlib import Path


def _node_span(source: str, name: str):
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            return start, node.end_lineno
    return None


def sync(notebook: Path, module_name: str, names: list[str]) -> None:
    module = importlib.import_module(module_name)
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for name in names:
        # 패키지(__init__)가 다시 내보내는 이름이면 그 정의가 있는 파일을 읽는다
        module_source = Path(inspect.getsourcefile(getattr(module, name, module))).read_text(encoding="utf-8")
        module_lines = module_source.splitlines()
        span = _node_span(module_source, name)
        if span is None:
            raise SystemExit(f"{module_name}에 {name} 정의가 없습니다.")
        new_def = module_lines[span[0] - 1: span[1]]
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            try:
                cell_span = _node_span(source, name)
            except SyntaxError:  # 셀 매직(%env 등)이 있는 셀에는 목록이 없다
                continue
            if cell_span is None:
                continue
            lines = source.split("\n")
            lines[cell_span[0] - 1: cell_span[1]] = new_def
            cell["source"] = "\n".join(lines).splitlines(keepends=True)
            cell["outputs"], cell["execution_count"] = [], None
            print(f"{notebook}: {name} 을(를) {module_name} 의 정의로 바꿨습니다.")
            break
        else:
            raise SystemExit(f"{notebook}에 {name} 정의가 있는 코드 셀이 없습니다.")
    notebook.write_text(json.dumps(nb, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    sync(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
