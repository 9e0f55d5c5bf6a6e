"""저장된 노트북 출력을 만드는 유일한 도구: 노트북을 위에서 아래로 기본 모드로 실행하고 실행 기록을 남긴다.

    python tools/run_notebooks.py                      # 추적 중인 모든 노트북
    python tools/run_notebooks.py ch05/01_main-chapter-code/ch05.ipynb
    python tools/run_notebooks.py --quick ch04         # QUICK 모드(확인용; 저장소에 넣는 출력은 기본 모드로)

노트북마다 nbclient로 새 커널을 띄워 코드 셀을 차례로 실행하고(실행 번호는 1부터 빈틈없이), 출력과 함께
노트북 메타데이터 ``llm_from_scratch.run`` 에 실행 기록(코드 해시, 모드, 시각, 걸린 시간, CPU, 스레드 수,
부하 평균, torch 버전, 실행하지 않은 셀)을 적는다. ``tests/test_notebook_stamps.py`` 가 이 기록으로
저장된 출력이 지금 코드에서 나온 것인지 확인한다.

- 1분 부하 평균이 코어당 1.0을 넘으면 시작하지 않는다(``--force`` 로 강행하면 기록에 그렇다고 남는다).
- 속도를 재는 노트북(메타데이터 ``llm_from_scratch.measures_speed: true``) 앞에서는 앞 노트북이 남긴 부하가
  코어당 0.5 아래로 내려갈 때까지 몇 분까지 기다린다.
- ``needs-gpt2-weights`` 태그가 붙은 셀은 OpenAI GPT-2 가중치가 없으면 실행하지 않고 출력 없이 둔다
  (``--with-weights`` 를 주면 실행한다). 실행하지 않은 셀의 번호는 기록의 ``skipped_cells`` 에 남는다.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from llm_from_scratch.machine import cpu_model, load_average

REPO_ROOT = Path(__file__).resolve().parent.parent
SKIP_TAG = "needs-gpt2-weights"
STAMP_KEY = "llm_from_scratch"
MAX_LOAD_PER_CORE = 1.0  # 이보다 바쁜 머신에서 만든 출력(특히 시간 측정)은 독자의 진실이 아니다
QUIET_LOAD_PER_CORE = 0.5  # 속도를 재는 노트북은 이만큼 조용해질 때까지 기다린다
QUIET_WAIT_SECONDS = 300


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def code_sha256(notebook: dict) -> str:
    """코드 셀(Colab 셀 포함) 소스를 순서대로 ``"\\n\\x00\\n"`` 으로 이어 붙인 것의 sha256."""
    sources = [cell_source(c) for c in notebook["cells"] if c.get("cell_type") == "code"]
    return hashlib.sha256("\n\x00\n".join(sources).encode("utf-8")).hexdigest()


def tracked_notebooks(paths: list[str]) -> list[Path]:
    """인자로 받은 파일·폴더 아래의 노트북(git이 추적하거나 무시하지 않는 것)을 돌려준다."""
    targets = paths or ["."]
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *targets],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    found = sorted({REPO_ROOT / name for name in out if name.endswith(".ipynb")})
    missing = [p for p in targets if not (REPO_ROOT / p).exists() and not Path(p).exists()]
    if missing:
        raise SystemExit(f"오류: 없는 경로입니다: {', '.join(missing)}")
    if not found:
        raise SystemExit(f"오류: {', '.join(targets)} 아래에 노트북이 없습니다.")
    return [p for p in found if ".ipynb_checkpoints" not in p.parts]


def measures_speed(notebook: dict) -> bool:
    return bool(notebook.get("metadata", {}).get(STAMP_KEY, {}).get("measures_speed"))


def wait_until_quiet(cores: int) -> float:
    """부하가 코어당 QUIET_LOAD_PER_CORE 아래가 될 때까지 QUIET_WAIT_SECONDS 까지 기다리고 마지막 부하를 돌려준다."""
    line = QUIET_LOAD_PER_CORE * cores
    deadline = time.monotonic() + QUIET_WAIT_SECONDS
    load = load_average() or 0.0
    while load > line and time.monotonic() < deadline:
        print(f"  속도를 재는 노트북입니다. 1분 부하 평균({load:.2f})이 {line:.2f} 아래로 내려가기를 기다립니다...", flush=True)
        time.sleep(15)
        load = load_average() or 0.0
    return load


def run_notebook(path: Path, *, quick: bool, with_weights: bool, forced: bool, timeout: int) -> dict:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    skipped = [
        index for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and SKIP_TAG in cell.get("metadata", {}).get("tags", []) and not with_weights
    ]

    class SkippingClient(NotebookClient):
        """``skipped`` 셀은 실행하지 않고 출력 없이 둔다(실행 번호는 실행한 셀만 1, 2, 3, …)."""

        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            if cell_index in skipped:
                cell.outputs = []
                cell.execution_count = None
                cell.get("metadata", {}).pop("execution", None)
                return cell
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    env_backup = dict(os.environ)
    os.environ.pop("LLMFS_QUICK", None)
    if quick:
        os.environ["LLMFS_QUICK"] = "1"
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    load_start = load_average() or 0.0
    started = dt.datetime.now(dt.timezone.utc).astimezone()
    t0 = time.perf_counter()
    try:
        client = SkippingClient(
            notebook, timeout=timeout, kernel_name="python3", record_timing=True,
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    seconds = round(time.perf_counter() - t0, 1)

    stamp = {
        "code_sha256": code_sha256(notebook),
        "mode": "quick" if quick else "default",
        "started": started.isoformat(timespec="seconds"),
        "seconds": seconds,
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "load_avg_start": load_start,
        "load_avg_end": load_average() or 0.0,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "skipped_cells": skipped,
    }
    if forced:
        stamp["forced_despite_load"] = True
    notebook.metadata.setdefault(STAMP_KEY, {})["run"] = stamp
    nbformat.write(notebook, path)
    return stamp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", help="노트북 파일이나 폴더(없으면 추적 중인 모든 노트북)")
    parser.add_argument("--quick", action="store_true", help="QUICK 모드로 실행(확인용; 저장소에 넣을 출력은 기본 모드로)")
    parser.add_argument("--with-weights", action="store_true",
                        help=f"'{SKIP_TAG}' 태그 셀도 실행(OpenAI GPT-2 가중치를 받을 수 있을 때)")
    parser.add_argument("--force", action="store_true", help="머신이 바빠도 실행(기록에 그렇다고 남는다)")
    parser.add_argument("--timeout", type=int, default=3600, help="셀 하나의 시간 제한(초, 기본 3600)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout 은 양의 정수여야 합니다: {args.timeout}")

    notebooks = tracked_notebooks(args.paths)
    cores = os.cpu_count() or 1
    load = load_average() or 0.0
    if load > MAX_LOAD_PER_CORE * cores and not args.force:
        print(f"오류: 1분 부하 평균이 {load:.2f}로 코어 {cores}개의 한도 {MAX_LOAD_PER_CORE * cores:.1f}를 넘습니다. "
              "다른 작업을 멈추고 다시 실행하거나, 꼭 필요하면 --force 를 주세요.", file=sys.stderr)
        return 2

    print(f"{len(notebooks)}개 노트북, {'QUICK' if args.quick else '기본'} 모드, CPU: {cpu_model()}, 코어 {cores}개, "
          f"부하 {load:.2f}", flush=True)
    failures = []
    for path in notebooks:
        rel = path.relative_to(REPO_ROOT)
        if measures_speed(json.loads(path.read_text(encoding="utf-8"))):
            wait_until_quiet(cores)
        print(f"- {rel} ...", end=" ", flush=True)
        try:
            stamp = run_notebook(path, quick=args.quick, with_weights=args.with_weights, forced=args.force,
                                 timeout=args.timeout)
        except Exception as error:  # noqa: BLE001 — 한 노트북이 실패해도 나머지는 돈다; 실패한 노트북은 쓰지 않는다
            print(f"실패: {type(error).__name__}: {str(error)[-2000:]}", flush=True)
            failures.append(str(rel))
            continue
        print(f"{stamp['seconds']:.0f}초, 부하 {stamp['load_avg_start']:.2f} → {stamp['load_avg_end']:.2f}"
              + (f", 건너뛴 셀 {stamp['skipped_cells']}" if stamp["skipped_cells"] else ""), flush=True)
    if failures:
        print("실패한 노트북(저장하지 않았습니다):\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
