"""5장 보너스(Gutenberg 사전 훈련): 합성 말뭉치를 정리·합치고, 훈련을 멈췄다 이어 하면 끊김 없이 같은 손실로 이어진다."""

import csv
import importlib.util
from itertools import pairwise
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parents[1] / "ch05" / "03_bonus_pretraining_on_gutenberg"

HEADER = ("The Project Gutenberg eBook of {title}\n\nThis eBook is for the use of anyone anywhere.\n\n"
          "*** START OF THE PROJECT GUTENBERG EBOOK {title} ***\n\n\n\n")
FOOTER = "\n\n\n*** END OF THE PROJECT GUTENBERG EBOOK {title} ***\n\nSection 1. General Terms of Use\n"
SENTENCES = ["The old house stood at the end of the lane.", "Every effort moves you a little closer.",
             "She opened the window and looked at the sea.", "He had never seen so many books in one room."]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, FOLDER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    (raw / "sub").mkdir()
    for i in range(3):
        title = f"BOOK {i}"
        paragraphs = "\n\n\n\n".join(" ".join(SENTENCES[(i + j) % 4] for j in range(6)) for _ in range(5))
        folder = raw / "sub" if i == 2 else raw
        (folder / f"pg{i}.txt").write_text(HEADER.format(title=title) + paragraphs + FOOTER.format(title=title),
                                           encoding="utf-8")
    korean = "오래된 집은 골목 끝에 서 있었습니다. " * 200
    (raw / "pg9.txt").write_text(HEADER.format(title="KO") + korean + FOOTER.format(title="KO"), encoding="utf-8")
    return raw


def test_prepare_dataset_strips_boilerplate_skips_non_english_and_splits_by_size(corpus, tmp_path, capsys):
    prepare = _load("prepare_dataset")
    out = tmp_path / "prepared"
    prepare.main(["--data-dir", str(corpus), "--output-dir", str(out), "--max-size-mb", "0.003"])
    printed = capsys.readouterr().out
    assert "남긴 책 3권, 영어가 아니라 건너뛴 책 1권" in printed
    files = sorted(out.glob("combined_*.txt"))
    assert [p.name for p in files] == ["combined_1.txt", "combined_2.txt"]  # 책 두 권 + 한 권
    texts = [p.read_text(encoding="utf-8") for p in files]
    assert [t.count("<|endoftext|>") for t in texts] == [1, 0]
    assert all(len(t.encode("utf-8")) <= 0.003 * 1024 * 1024 for t in texts)
    joined = "".join(texts)
    for marker in ("START OF THE PROJECT", "END OF THE PROJECT", "General Terms", "for the use of anyone", "골목"):
        assert marker not in joined
    assert "\n\n\n" not in joined and "The old house stood" in joined
    with pytest.raises(SystemExit):  # 이미 있는 결과는 덮어쓰지 않는다
        prepare.main(["--data-dir", str(corpus), "--output-dir", str(out)])


def test_boilerplate_helpers():
    prepare = _load("prepare_dataset")
    body, found = prepare.strip_gutenberg_boilerplate("x\n*** START OF THIS PROJECT GUTENBERG EBOOK A ***\nhello\n"
                                                      "*** END OF THIS PROJECT GUTENBERG EBOOK A ***\nlicense")
    assert (body, found) == ("hello", True)
    assert prepare.strip_gutenberg_boilerplate("no markers here") == ("no markers here", False)
    assert prepare.collapse_blank_lines("a\r\n\r\n  \n\nb\n\nc") == "a\n\nb\n\nc"
    assert prepare.is_english("Hello there. " * 50) and not prepare.is_english("Γειά σου κόσμε. " * 50)


def _log(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [(row["step"], row["train_loss"], row["val_loss"]) for row in csv.DictReader(f)]


def test_resumed_run_continues_step_count_and_loss_exactly(corpus, tmp_path, capsys):
    prepare, pretrain = _load("prepare_dataset"), _load("pretraining_simple")
    data = tmp_path / "prepared"
    prepare.main(["--data-dir", str(corpus), "--output-dir", str(data), "--max-size-mb", "0.003"])
    common = ["--data-dir", str(data), "--debug", "--device", "cpu", "--eval-freq", "1", "--print-sample-iter", "9",
              "--batch-size", "4", "--n-epochs", "1"]

    pretrain.main([*common, "--output-dir", str(tmp_path / "straight")])
    straight = _log(tmp_path / "straight" / "train_log.csv")
    assert len(straight) > 8 and (tmp_path / "straight" / "model_pg_final.pth").exists()

    resumed_dir = tmp_path / "resumed"
    pretrain.main([*common, "--output-dir", str(resumed_dir), "--max-steps", "5", "--save-ckpt-freq", "3"])
    assert (resumed_dir / "model_pg_3.pth").exists() and (resumed_dir / "model_pg_5.pth").exists()
    assert not list(resumed_dir.glob("*.tmp"))
    with pytest.raises(SystemExit):  # 체크포인트가 있는 폴더에 --resume 없이 새로 시작하지 않는다
        pretrain.parse_args([*common, "--output-dir", str(resumed_dir)])
    capsys.readouterr()
    pretrain.main([*common, "--output-dir", str(resumed_dir), "--resume", str(resumed_dir / "model_pg_5.pth")])
    assert "스텝 5" in capsys.readouterr().out
    resumed = _log(resumed_dir / "train_log.csv")
    assert [row[0] for row in resumed] == [str(step) for step in range(1, len(straight) + 1)]
    assert resumed == straight  # 같은 스텝 번호, 같은 손실(소수 6자리까지)


def _log_columns(path, *names):
    with open(path, newline="", encoding="utf-8") as f:
        return [tuple(float(row[name]) for name in names) for row in csv.DictReader(f)]


def test_warmup_then_cosine_decay_and_clipping_follow_the_options(corpus, tmp_path):
    prepare, pretrain = _load("prepare_dataset"), _load("pretraining_simple")
    data = tmp_path / "prepared"
    prepare.main(["--data-dir", str(corpus), "--output-dir", str(data), "--max-size-mb", "0.003"])
    common = ["--data-dir", str(data), "--debug", "--device", "cpu", "--eval-freq", "1", "--print-sample-iter", "99",
              "--batch-size", "4"]
    # 밑줄 표기(원서 저장소 식)도 같은 옵션이다
    pretrain.main([*common, "--output-dir", str(tmp_path / "sched"), "--lr", "1e-3", "--warmup_steps", "3",
                   "--initial_lr", "1e-5", "--min_lr", "1e-4", "--grad_clip", "0.05"])
    rows = _log_columns(tmp_path / "sched" / "train_log.csv", "step", "lr", "grad_norm")
    lrs = [lr for _, lr, _ in rows]
    total = len(rows)
    assert [int(step) for step, _, _ in rows] == list(range(1, total + 1)) and total > 8
    # 워밍업: 스텝 0, 1, 2 는 1e-5 에서 같은 간격으로 오르고, 스텝 3 에서 최대 학습률
    assert lrs[:4] == pytest.approx([1e-5, 1e-5 + 3.3e-4, 1e-5 + 6.6e-4, 1e-3], rel=1e-6)
    # 코사인 감쇠: 줄곧 내려가, 전체 스텝 수를 맞게 셌다면 마지막 스텝에서 정확히 min_lr
    assert all(a > b for a, b in pairwise(lrs[3:]))
    assert lrs[-1] == pytest.approx(1e-4, rel=1e-6)
    middle = 3 + (total - 4) / 2
    if middle.is_integer():  # 감쇠 구간의 한가운데는 최대와 최소의 평균
        assert lrs[int(middle)] == pytest.approx((1e-3 + 1e-4) / 2, rel=1e-6)
    else:
        assert lrs[int(middle)] > (1e-3 + 1e-4) / 2 > lrs[int(middle) + 1]
    # 클리핑: 워밍업 동안에는 자르지 않아 노름이 상한보다 크고, 그 뒤에는 상한 이하
    norms = [norm for _, _, norm in rows]
    assert min(norms[:3]) > 0.05
    assert max(norms[3:]) <= 0.05 * (1 + 1e-4)


def test_default_run_keeps_a_constant_learning_rate_without_clipping(corpus, tmp_path):
    prepare, pretrain = _load("prepare_dataset"), _load("pretraining_simple")
    data = tmp_path / "prepared"
    prepare.main(["--data-dir", str(corpus), "--output-dir", str(data), "--max-size-mb", "0.003"])
    pretrain.main(["--data-dir", str(data), "--debug", "--device", "cpu", "--eval-freq", "1", "--max-steps", "4",
                   "--output-dir", str(tmp_path / "plain")])
    rows = _log_columns(tmp_path / "plain" / "train_log.csv", "lr", "grad_norm")
    assert [lr for lr, _ in rows] == [5e-4] * 4
    assert max(norm for _, norm in rows) > 0.05  # 클리핑이 없으면 위 테스트의 상한보다 큰 노름이 그대로 쓰인다
    with pytest.raises(SystemExit, match="--warmup-steps 50 가 전체 훈련 스텝 수"):
        pretrain.main(["--data-dir", str(data), "--debug", "--device", "cpu", "--warmup-steps", "50",
                       "--output-dir", str(tmp_path / "too-long")])
    assert not (tmp_path / "too-long").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--warmup-steps", "-1"], "--warmup-steps 는 0 이상이어야 합니다(받은 값: -1)"),
        (["--initial-lr", "0.01"], "--initial-lr 은 0 이상 --lr(0.0005) 이하여야 합니다(받은 값: 0.01)"),
        (["--min_lr", "-0.1"], "--min-lr 은 0 이상 --lr(0.0005) 이하여야 합니다(받은 값: -0.1)"),
        (["--min-lr", "nan"], "--min-lr 은 0 이상 --lr(0.0005) 이하여야 합니다(받은 값: nan)"),
        (["--grad-clip", "0"], "--grad-clip 은 0보다 큰 유한한 수여야 합니다(받은 값: 0.0)"),
        (["--grad_clip", "inf"], "--grad-clip 은 0보다 큰 유한한 수여야 합니다(받은 값: inf)"),
        (["--lr", "nan"], "--lr 은 0보다 큰 유한한 수여야 합니다(받은 값: nan)"),
    ],
)
def test_schedule_options_are_checked_at_entry(tmp_path, capsys, options, message):
    pretrain = _load("pretraining_simple")
    with pytest.raises(SystemExit):
        pretrain.parse_args(["--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "out"), *options])
    assert message in capsys.readouterr().err
