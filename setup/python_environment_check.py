"""설치된 파이썬과 패키지가 ``requirements.txt`` 의 요구 버전을 만족하는지 점검한다.

터미널에서:

    python setup/python_environment_check.py              # 저장소의 requirements.txt 로 점검
    python setup/python_environment_check.py 다른파일.txt   # 다른 요구 사항 파일로 점검

패키지마다 ``[OK]`` 나 ``[FAIL]`` 을 한 줄씩 출력하고, 하나라도 ``[FAIL]`` 이면 0이 아닌 종료 코드로 끝난다.
환경 표시(``; sys_platform == "darwin"`` 같은 조건)가 이 머신에 맞지 않는 줄은 ``[SKIP]`` 으로 표시한다.
"""

import argparse
import platform
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version
except ImportError:  # packaging 이 따로 설치되지 않은 환경이라도 pip 안에 든 사본은 있다
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
    from pip._vendor.packaging.version import InvalidVersion, Version

__all__ = ["MIN_PYTHON", "CheckResult", "check_python", "check_requirements", "main"]

DEFAULT_REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"
MIN_PYTHON = (3, 10)

# pip 처럼, 줄 처음이나 공백 뒤의 # 부터는 주석이다
_COMMENT = re.compile(r"(^|\s)#.*$")


@dataclass(frozen=True)
class CheckResult:
    """패키지 하나의 점검 결과. ``status`` 는 "OK", "FAIL", "SKIP" 중 하나."""

    name: str
    status: str
    installed: str | None
    required: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "FAIL"

    def __str__(self) -> str:
        installed = f"설치됨 {self.installed}" if self.installed else "설치되지 않음"
        required = f"필요 {self.required}" if self.required else "버전 제한 없음"
        details = required if self.status == "SKIP" else f"{installed}, {required}"
        line = f"[{self.status}] {self.name} ({details})"
        return f"{line}: {self.reason}" if self.reason else line


def _requirement_lines(path: Path):
    """요구 사항 파일에서 패키지 줄만 (줄 번호, 내용)으로 돌려준다: 주석, 빈 줄, ``-e``·``--옵션`` 줄은 건너뛴다."""
    pending, start = "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = _COMMENT.sub("", raw).strip()
        if not pending:
            start = number
        if line.endswith("\\"):  # 다음 줄로 이어진다
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line and not line.startswith("-"):
            yield start, line


def _check_one(line: str, number: int) -> CheckResult:
    try:
        requirement = Requirement(line)
    except InvalidRequirement as error:
        return CheckResult(line, "FAIL", None, "", f"{number}번째 줄을 요구 사항으로 읽을 수 없습니다({error})")

    required = str(requirement.specifier)
    if requirement.marker is not None and not requirement.marker.evaluate():
        return CheckResult(requirement.name, "SKIP", None, required, f"이 환경에는 필요 없습니다({requirement.marker})")
    try:
        installed = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        return CheckResult(requirement.name, "FAIL", None, required, "패키지가 설치되어 있지 않습니다")
    try:
        version = Version(installed)
    except InvalidVersion:
        return CheckResult(requirement.name, "FAIL", installed, required, "설치된 버전 문자열을 해석할 수 없습니다")
    if not requirement.specifier.contains(version, prereleases=True):
        return CheckResult(requirement.name, "FAIL", installed, required, "설치된 버전이 요구 범위를 벗어납니다")
    return CheckResult(requirement.name, "OK", installed, required)


def check_requirements(path=DEFAULT_REQUIREMENTS) -> list[CheckResult]:
    """요구 사항 파일의 패키지마다 설치 여부와 버전을 점검해 ``CheckResult`` 목록으로 돌려준다.

    Args:
        path: ``requirements.txt`` 경로(기본값: 이 저장소의 것).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"요구 사항 파일을 찾을 수 없습니다: {str(path)!r}. requirements.txt 의 경로를 주세요.")
    return [_check_one(line, number) for number, line in _requirement_lines(path)]


def check_python(minimum=MIN_PYTHON) -> CheckResult:
    """지금 쓰는 파이썬이 ``minimum`` 버전 이상인지 점검한다."""
    installed = platform.python_version()
    required = ">=" + ".".join(map(str, minimum))
    if sys.version_info[:2] < tuple(minimum):
        return CheckResult("python", "FAIL", installed, required, "파이썬을 새 버전으로 설치하세요")
    return CheckResult("python", "OK", installed, required)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="설치된 파이썬과 패키지가 requirements.txt 의 요구 버전을 만족하는지 점검합니다.",
    )
    parser.add_argument(
        "requirements",
        nargs="?",
        default=str(DEFAULT_REQUIREMENTS),
        help="점검할 요구 사항 파일(기본값: 이 저장소의 requirements.txt)",
    )
    args = parser.parse_args(argv)

    try:
        results = [check_python(), *check_requirements(args.requirements)]
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    for result in results:
        print(result)

    failed = [result.name for result in results if not result.ok]
    if failed:
        print(
            f"\n{len(failed)}개 항목이 요구 사항을 만족하지 않습니다: {', '.join(failed)}\n"
            "저장소 폴더에서 `pip install -r requirements.txt` 를 다시 실행하세요(안내: setup/02_installing-python-libraries/README.md)."
        )
        return 1
    print("\n모든 항목이 요구 사항을 만족합니다.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
