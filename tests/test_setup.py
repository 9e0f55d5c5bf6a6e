"""환경 점검 스크립트(setup/python_environment_check.py)가 설치 상태를 올바르게 판정하는지 본다."""

import importlib.util
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "setup" / "python_environment_check.py"


def _load_check_module():
    spec = importlib.util.spec_from_file_location("python_environment_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _load_check_module()


def _requirements(tmp_path, text: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(text, encoding="utf-8")
    return path


def _run_script(*args, cwd):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], check=False, cwd=cwd, capture_output=True, text=True
    )


def test_repo_requirements_are_satisfied_here():
    results = check.check_requirements()
    failures = [str(result) for result in results if result.status == "FAIL"]
    assert failures == []
    by_name = {result.name: result for result in results}
    assert by_name["torch"].status == "OK"
    assert by_name["torch"].installed == metadata.version("torch")
    # 두 TensorFlow 줄의 환경 표시는 서로 배타적이라, 어느 플랫폼에서든 하나만 점검하고 하나는 건너뛴다
    assert sorted(by_name[name].status for name in ("tensorflow-cpu", "tensorflow")) == ["OK", "SKIP"]
    assert "llm-from-scratch" not in by_name and "." not in by_name  # `-e .` 줄은 건너뛴다


def test_comments_options_and_markers_are_handled(tmp_path):
    path = _requirements(
        tmp_path,
        "# 주석 줄\n"
        "-e .\n"
        "--extra-index-url https://example.invalid/simple\n"
        "\n"
        "pytest>=1.0  # 줄 끝 주석\n"
        "llmfs-not-on-this-python>=1.0; python_version < '3'\n"
        "pytest-xdist \\\n"
        "    >=1.0\n",
    )
    results = check.check_requirements(path)
    assert [(result.name, result.status) for result in results] == [
        ("pytest", "OK"),
        ("llmfs-not-on-this-python", "SKIP"),
        ("pytest-xdist", "OK"),
    ]
    assert results[0].installed == metadata.version("pytest")
    assert results[0].required == ">=1.0"
    assert str(results[0]) == f"[OK] pytest (설치됨 {metadata.version('pytest')}, 필요 >=1.0)"


def test_missing_package_fails_with_korean_reason(tmp_path):
    [result] = check.check_requirements(_requirements(tmp_path, "llmfs-no-such-package>=1.0\n"))
    assert result.status == "FAIL"
    assert not result.ok
    assert result.installed is None
    assert str(result) == "[FAIL] llmfs-no-such-package (설치되지 않음, 필요 >=1.0): 패키지가 설치되어 있지 않습니다"


@pytest.mark.parametrize("specifier", [">=999.0", "<1", "==0.0.1"])
def test_version_outside_the_range_fails(tmp_path, specifier):
    [result] = check.check_requirements(_requirements(tmp_path, f"pytest{specifier}\n"))
    assert result.status == "FAIL"
    assert result.installed == metadata.version("pytest")
    assert str(result).startswith(f"[FAIL] pytest (설치됨 {metadata.version('pytest')}, 필요 {specifier})")
    assert "요구 범위를 벗어납니다" in str(result)


def test_unreadable_line_fails_and_names_it(tmp_path):
    ok, bad = check.check_requirements(_requirements(tmp_path, "pytest\n\n이건 패키지가 아니다!\n"))
    assert ok.status == "OK"
    assert bad.status == "FAIL"
    assert bad.name == "이건 패키지가 아니다!"
    assert "3번째 줄" in bad.reason


def test_missing_requirements_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        check.check_requirements(tmp_path / "nope.txt")


def test_python_version_check():
    assert check.check_python().status == "OK"
    too_new = (sys.version_info.major, sys.version_info.minor + 1)
    result = check.check_python(too_new)
    assert result.status == "FAIL"
    assert f"필요 >={too_new[0]}.{too_new[1]}" in str(result)


def test_script_passes_for_repo_requirements_from_any_folder(tmp_path):
    result = _run_script(cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[FAIL]" not in result.stdout
    torch_floor = next(line.split(">=")[1].strip() for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
                       if line.startswith("torch>="))
    assert f"[OK] torch (설치됨 {metadata.version('torch')}, 필요 >={torch_floor})" in result.stdout
    assert result.stdout.splitlines()[0].startswith("[OK] python (설치됨 ")


def test_script_exits_nonzero_on_failure(tmp_path):
    path = _requirements(tmp_path, "pytest>=1.0\nllmfs-no-such-package\n")
    result = _run_script(path, cwd=tmp_path)
    assert result.returncode == 1
    assert "[OK] pytest" in result.stdout
    assert "[FAIL] llmfs-no-such-package (설치되지 않음, 버전 제한 없음)" in result.stdout
    assert "pip install -r requirements.txt" in result.stdout


def test_script_reports_missing_file(tmp_path):
    result = _run_script(tmp_path / "nope.txt", cwd=tmp_path)
    assert result.returncode == 2
    assert "nope.txt" in result.stderr


def test_script_help(tmp_path):
    result = _run_script("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage:")
    assert "requirements.txt" in result.stdout


def test_script_works_without_the_packaging_package(tmp_path):
    """packaging 을 import 할 수 없으면 pip 안의 사본으로 같은 결과를 낸다."""
    path = _requirements(tmp_path, "pytest>=999\n")
    code = (
        "import runpy, sys\n"
        "sys.modules['packaging'] = None\n"  # import packaging 이 실패하게 만든다
        f"sys.argv = ['python_environment_check.py', {str(path)!r}]\n"
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert f"[FAIL] pytest (설치됨 {metadata.version('pytest')}, 필요 >=999)" in result.stdout
