"""llm_from_scratch 패키지가 저장소 밖의 폴더에서도 import 되고, 보통의 휠로도 빌드·설치되는지 본다."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["ch02", "ch03", "ch04", "ch05", "ch06", "ch07", "appendix_a", "appendix_d", "appendix_e", "bpe", "llama", "dpo"]
MODULES = ["llm_from_scratch", "llm_from_scratch.download", "llm_from_scratch.utils"] + [
    f"llm_from_scratch.{name}" for name in SUBPACKAGES
]

# 휠 빌드에 필요한 것(파이썬 소스, pyproject.toml, README.md)만 복사하고, 빌드 산출물과 데이터·노트북은 뺀다
_SOURCE_SUFFIXES = {".py", ".toml", ".md"}
_SKIPPED_DIRS = {".git", "build", "dist", "__pycache__", ".ipynb_checkpoints", "tests", "setup", "outputs"}


def _python(args, cwd, env=None):
    return subprocess.run(
        [sys.executable, *args], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_import_from_unrelated_folder(tmp_path):
    result = _python(["-c", "import llm_from_scratch.ch02, llm_from_scratch.ch07, llm_from_scratch.appendix_e"], tmp_path)
    assert result.returncode == 0, result.stderr


def _ignore_non_sources(folder, names):
    ignored = []
    for name in names:
        if (Path(folder) / name).is_dir():
            if name in _SKIPPED_DIRS or name.endswith(".egg-info"):
                ignored.append(name)
        elif Path(name).suffix not in _SOURCE_SUFFIXES:
            ignored.append(name)
    return ignored


def test_wheel_builds_installs_and_imports(tmp_path):
    # 저장소 안에서 빌드하면 build/ 에 남은 옛 파일이 휠에 섞일 수 있으므로, 깨끗한 사본에서 빌드한다
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT, source, ignore=_ignore_non_sources)
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "target", tmp_path / "elsewhere"
    elsewhere.mkdir()

    build = _python(
        ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(source)],
        tmp_path,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = wheels.glob("llm_from_scratch-*.whl")

    install = _python(["-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)], tmp_path)
    assert install.returncode == 0, install.stdout + install.stderr
    installed = sorted(p.parent.name for p in (target / "llm_from_scratch").glob("*/__init__.py"))
    assert installed == sorted(SUBPACKAGES)

    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    print(importlib.import_module(name).__file__)\n"
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = _python(["-c", code, *MODULES], elsewhere, env=env)
    assert result.returncode == 0, result.stderr
    files = [Path(line) for line in result.stdout.splitlines()]
    assert len(files) == len(MODULES)
    for name, file in zip(MODULES, files):
        assert file.is_relative_to(target), f"{name} 을 휠이 아닌 {file} 에서 가져왔습니다"
    assert files[MODULES.index("llm_from_scratch.ch04")] == target / "llm_from_scratch" / "ch04" / "__init__.py"
