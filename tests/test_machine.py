"""벤치마크가 표보다 먼저 출력하는 측정 환경(llm_from_scratch.machine)."""

import io
import os

from llm_from_scratch import machine


def test_summary_names_cpu_threads_and_load(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.25, 0.5, 0.75))
    out = io.StringIO()
    info = machine.print_machine_summary(file=out)
    text = out.getvalue()
    assert info["load_avg"] == 0.25
    assert f"CPU {machine.cpu_model()}" in text and "1분 부하 평균 0.25" in text
    assert f"파이토치 스레드 {info['threads']}개" in text
    assert "경고" not in text


def test_busy_machine_gets_a_korean_warning(monkeypatch):
    cores = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (cores * 3.0, 0.0, 0.0))
    out = io.StringIO()
    machine.print_machine_summary(file=out)
    assert f"경고: 부하 평균 {cores * 3.0:.2f}" in out.getvalue()
    assert "다시 재세요" in out.getvalue()


def test_unknown_load_is_said_not_invented(monkeypatch):
    def no_load():
        raise OSError("없음")

    monkeypatch.setattr(os, "getloadavg", no_load)
    out = io.StringIO()
    info = machine.print_machine_summary(file=out)
    assert info["load_avg"] is None and "1분 부하 평균 알 수 없음" in out.getvalue()
