"""설치 안내 폴더 세 곳: 파이썬·가상 환경, 패키지 설치, 도커 개발 컨테이너."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SETUP = REPO_ROOT / "setup"
DOCKER = SETUP / "03_optional-docker-environment" / ".devcontainer"


@pytest.mark.parametrize(
    ("folder", "must_mention"),
    [
        ("01_optional-python-setup-preferences", ["python -m venv", "uv venv", "uv pip install -r requirements.txt",
                                                  "conda create", "pixi"]),
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
