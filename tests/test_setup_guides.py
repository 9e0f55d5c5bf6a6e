"""설치 안내 폴더 세 곳: 파이썬·가상 환경, 패키지 설치, 도커 개발 컨테이너."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]
SETUP = REPO_ROOT / "setup"
DOCKER = SETUP / "03_optional-docker-environment" / ".devcontainer"


@pytest.mark.parametrize(
    ("folder", "must_mention"),
    [
        ("01_optional-python-setup-preferences", ["python -m venv", "uv venv", "uv pip install -r requirements.txt",
                                                  "uv sync", "uv run pytest", "jupyter lab", "uv add",
                                                  "conda create", "pixi install", "pixi run"]),
        ("02_installing-python-libraries", ["pip install -r requirements.txt", "CPU", "CUDA",
                                            "python_environment_check.py"]),
        ("03_optional-docker-environment", ["devcontainer.json", "Dockerfile", "--gpus"]),
    ],
)
def test_setup_guides_exist_and_cover_their_topics(folder, must_mention):
    text = (SETUP / folder / "README.md").read_text(encoding="utf-8")
    for phrase in must_mention:
        assert phrase in text, f"{folder}/README.md에 {phrase!r}가 없습니다"
    setup_readme = (SETUP / "README.md").read_text(encoding="utf-8")
    assert f"{folder}/" in setup_readme, "setup/README.md가 이 안내를 가리켜야 합니다"


def test_devcontainer_json_parses_and_builds_from_the_dockerfile():
    config = json.loads((DOCKER / "devcontainer.json").read_text(encoding="utf-8"))
    assert config["build"]["dockerfile"] == "Dockerfile"
    assert (DOCKER / config["build"]["dockerfile"]).is_file()
    # 빌드 문맥(devcontainer.json 기준의 상대 경로)에 requirements.txt 가 있어야 Dockerfile 의 COPY 가 된다.
    # README 대로 .devcontainer 를 저장소 맨 위로 옮기면 문맥 ".." 은 저장소 맨 위다.
    assert config["build"]["context"] == ".."
    assert (REPO_ROOT / "requirements.txt").is_file()
    assert "pip install" in config["postCreateCommand"] and "-e ." in config["postCreateCommand"]


def test_dockerfile_installs_cpu_torch_first_then_requirements():
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.1\d", text, re.MULTILINE)
    torch_line = text.index("whl/cpu")
    requirements_line = text.index("COPY requirements.txt")
    assert torch_line < requirements_line, "CPU torch 를 requirements.txt 보다 먼저 설치해야 합니다"
    assert re.search(r"pip install .*-r /tmp/requirements", text)


def _docker_daemon_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], check=False, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _docker_daemon_available(), reason="도커 데몬이 없는 머신이라 이미지를 만들어 보지 않습니다")
def test_docker_image_builds(tmp_path):
    result = subprocess.run(
        ["docker", "build", "-q", "-f", str(DOCKER / "Dockerfile"), "-t", "llm-from-scratch-test", str(REPO_ROOT)],
        check=False, capture_output=True, text=True, timeout=3600,
    )
    assert result.returncode == 0, result.stderr[-2000:]


PYTHON_GUIDE = SETUP / "01_optional-python-setup-preferences" / "README.md"


def _pyproject():
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_uv_and_pixi_guides_name_exactly_the_extras_pyproject_defines():
    text = PYTHON_GUIDE.read_text(encoding="utf-8")
    defined = set(_pyproject()["project"]["optional-dependencies"])
    # uv 절의 표 첫 칸(| `이름` |)과 명령의 --extra 이름
    in_table = set(re.findall(r"^\| `([a-z][a-z0-9_-]*)` \|", text, re.MULTILINE))
    in_commands = set(re.findall(r"--extra ([a-z][a-z0-9_-]*)", text))
    assert in_table == defined, f"안내의 extra 표 {sorted(in_table)} 가 pyproject.toml 의 {sorted(defined)} 와 다릅니다"
    assert in_commands and in_commands <= defined, f"없는 extra 를 쓰는 명령이 있습니다: {sorted(in_commands - defined)}"
    # pixi.toml 예시의 extras 도 pyproject.toml 에 있는 이름이어야 한다
    [pixi_extras] = re.findall(r"llm-from-scratch = \{[^}]*extras = \[([^\]]*)\]", text)
    assert set(re.findall(r'"([\w-]+)"', pixi_extras)) <= defined
    assert _pyproject()["project"]["name"] == "llm-from-scratch"


def _registry_reachable(url):
    """레지스트리 호스트에 TCP 로 닿는지 새 프로세스에서 본다(이 테스트 프로세스의 소켓은 pytest-socket 이 막는다)."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    probe = f"import socket; socket.create_connection(({parsed.hostname!r}, {port}), timeout=5).close()"
    try:
        return subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _uv_registry_skip_reason():
    if shutil.which("uv") is None:
        return "uv 가 설치되어 있지 않아 pyproject.toml 을 uv 로 풀어 보지 않습니다(uv 는 requirements.txt 에 없습니다)"
    index = os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL") or "https://pypi.org/simple"
    if os.environ.get("UV_OFFLINE") or not _registry_reachable(index):
        return f"패키지 레지스트리({index})에 닿지 않아 uv 로 의존성을 풀어 보지 않습니다(네트워크를 막은 테스트 환경)"
    return None


def test_uv_resolves_the_projects_pyproject_against_the_registry(tmp_path):
    reason = _uv_registry_skip_reason()
    if reason:
        pytest.skip(reason)
    # uv 안내의 `uv sync --extra bonus --extra test` 가 풀어야 할 것과 같은 요구를 uv 로 풀어 본다
    result = subprocess.run(
        ["uv", "pip", "compile", str(REPO_ROOT / "pyproject.toml"), "--extra", "bonus", "--extra", "test",
         "--python", sys.executable, "--no-header", "-o", str(tmp_path / "resolved.txt")],
        check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = (tmp_path / "resolved.txt").read_text(encoding="utf-8")
    pinned = {line.split("==")[0].lower() for line in resolved.splitlines() if "==" in line}
    for name in ["torch", "tiktoken", "numpy", "scikit-learn", "chainlit", "pytest", "transformers"]:
        assert name in pinned, f"uv 가 푼 목록에 {name} 이 없습니다"


# ---------------------------------------------------------------------------
# 환경 점검(setup/python_environment_check.py): 안내 경로와 점검하는 패키지 목록
# ---------------------------------------------------------------------------


def _environment_check():
    spec = importlib.util.spec_from_file_location("setup_environment_check", SETUP / "python_environment_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_environment_check_failure_points_at_a_guide_that_exists(tmp_path, capsys):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("no-such-package-llmfs>=1.0\n", encoding="utf-8")
    assert _environment_check().main([str(requirements)]) == 1
    out = capsys.readouterr().out
    guides = re.findall(r"setup/[\w./-]+\.md", out)
    assert guides, f"실패 메시지가 설치 안내를 가리키지 않습니다: {out[-300:]}"
    for guide in guides:
        assert (REPO_ROOT / guide).is_file(), f"실패 메시지가 없는 파일 {guide} 을 가리킵니다"


def test_environment_check_checks_every_package_line_of_requirements_txt():
    # requirements.txt 를 따로 읽어 센 패키지 이름과, 점검이 실제로 본 이름이 같아야 한다(목록이 어긋나지 않게)
    expected = []
    for raw in (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            expected.append(re.match(r"[A-Za-z0-9._-]+", line).group(0).lower())
    checked = [result.name.lower() for result in _environment_check().check_requirements()]
    assert checked == expected
    assert len(checked) >= 23, f"requirements.txt 에서 {len(checked)}개만 읽었습니다"

