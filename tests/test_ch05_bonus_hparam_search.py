"""5장 보너스(하이퍼파라미터 탐색): 격자 크기, CSV 에 덧붙이고 다시 실행하면 건너뛰기, Ctrl-C 때 최선 출력."""

import csv
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "ch05" / "05_bonus_hparam_tuning" / "hparam_search.py"


@pytest.fixture(scope="module")
def search():
    spec = importlib.util.spec_from_file_location("hparam_search", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_reference_grid_has_12960_configurations(search):
    assert [len(v) for v in search.HPARAM_GRID.values()] == [4, 3, 3, 3, 4, 2, 3, 5]
    assert len(search.grid_configs()) == 12_960
    assert len({search.config_key(c) for c in search.grid_configs()}) == 12_960


def test_results_are_appended_and_a_rerun_skips_finished_configs(search, tmp_path, capsys):
    results = tmp_path / "results.csv"
    search.main(["--debug", "--max-configs", "2", "--results", str(results), "--device", "cpu"])
    out = capsys.readouterr().out
    assert "4 · 3 · 3 · 3 · 4 · 2 · 3 · 5 = 12,960개" in out and "가장 낮은 검증 손실" in out
    first = _rows(results)
    assert [row["n_epochs"] for row in first] == ["5", "10"]
    assert all(row["status"].startswith("완료") and float(row["val_loss"]) > 0 for row in first)

    search.main(["--debug", "--max-configs", "1", "--results", str(results), "--device", "cpu"])
    assert "이미 있는 설정 2개를 건너뜁니다" in capsys.readouterr().out
    rows = _rows(results)
    assert rows[:2] == first and rows[2]["n_epochs"] == "15"


def test_ctrl_c_prints_the_best_so_far_and_keeps_finished_rows(search, tmp_path, capsys, monkeypatch):
    results = tmp_path / "results.csv"
    calls = []

    def fake_train_one(config, *args, **kwargs):
        calls.append(config)
        if len(calls) == 3:
            raise KeyboardInterrupt
        loss = f"{5.0 - len(calls):.4f}"
        return {**config, "train_loss": loss, "val_loss": loss, "best_val_loss": loss, "seconds": "0.1", "status": "완료"}

    monkeypatch.setattr(search, "train_one", fake_train_one)
    with pytest.raises(SystemExit) as exit_info:
        search.main(["--random", "5", "--results", str(results), "--device", "cpu"])
    assert exit_info.value.code == 130
    out = capsys.readouterr().out
    assert "무작위 탐색: 그중 5개" in out and "가장 낮은 검증 손실 3.0000" in out
    assert len(_rows(results)) == 2


def test_bad_arguments_and_foreign_csv_are_refused(search, tmp_path):
    with pytest.raises(SystemExit):
        search.parse_args(["--max-configs", "0"])
    with pytest.raises(SystemExit):
        search.parse_args(["--random", "20000"])
    foreign = tmp_path / "mine.csv"
    foreign.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="다른 파일 이름"):
        search.read_done(foreign)
    assert foreign.read_text(encoding="utf-8") == "a,b\n1,2\n"
