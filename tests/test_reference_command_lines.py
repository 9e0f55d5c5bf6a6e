"""영어 원서 저장소의 README 에 있는 명령이 이 저장소에서도 통하는지 본다.

원서의 스크립트는 ``--num_epochs`` 처럼 밑줄 옵션을 쓰고, 이 저장소는 ``--num-epochs`` 처럼 하이픈을 쓴다.
``llm_from_scratch.utils.ArgumentParser`` 가 두 표기를 같은 옵션으로 읽는지, 실제 스크립트의 파서가 원서의 명령줄을
우리 표기와 똑같은 값으로 읽는지, 원서의 파일 이름으로 둔 입구 스크립트가 같은 코드를 실행하는지 확인한다.
"""

import importlib
import importlib.util
import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import load_module

from llm_from_scratch.utils import UNDERSCORE_NOTE, ArgumentParser

REPO_ROOT = Path(__file__).resolve().parents[1]


def _hyphenated(argv):
    """원서의 명령줄을 이 저장소의 표기로 옮긴다(옵션 이름의 밑줄만 하이픈으로, 값은 그대로)."""
    return [a.replace("_", "-") if a.startswith("--") else a for a in argv]


# ---------------------------------------------------------------------------
# 파서 자체
# ---------------------------------------------------------------------------


def _toy_parser():
    parser = ArgumentParser(prog="toy", description="장난감")
    parser.add_argument("--num-epochs", type=int, default=1)
    parser.add_argument("--model-size", default="124M")
    parser.add_argument("--remove-duplicates", action="store_true")
    parser.add_argument("--exercise_solution", default="baseline")  # 원서처럼 밑줄로 정의한 옵션
    parser.add_argument("rest", nargs="*")
    return parser


def test_underscore_spellings_give_the_same_values_as_ours():
    parser = _toy_parser()
    ours = parser.parse_args(["--num-epochs", "3", "--model-size=355M", "--remove-duplicates"])
    theirs = parser.parse_args(["--num_epochs", "3", "--model_size=355M", "--remove_duplicates"])
    assert vars(theirs) == vars(ours)
    assert (theirs.num_epochs, theirs.model_size, theirs.remove_duplicates) == (3, "355M", True)


def test_option_defined_with_underscores_also_takes_hyphens():
    parser = _toy_parser()
    assert parser.parse_args(["--exercise-solution", "lora"]).exercise_solution == "lora"
    assert parser.parse_args(["--exercise_solution", "lora"]).exercise_solution == "lora"


def test_arguments_after_double_dash_and_values_are_left_alone():
    parser = _toy_parser()
    args = parser.parse_args(["--model-size", "gpt2_small", "--", "--num_epochs"])
    assert args.model_size == "gpt2_small"  # 값 안의 밑줄은 그대로
    assert args.rest == ["--num_epochs"]  # -- 뒤는 옵션이 아니다
    assert args.num_epochs == 1


def test_unknown_underscore_option_is_still_an_error_naming_what_was_typed(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _toy_parser().parse_args(["--num_epoch_count", "2"])
    assert exit_info.value.code == 2
    assert "--num_epoch_count" in capsys.readouterr().err


def test_help_shows_our_spellings_and_says_underscores_work(capsys):
    with pytest.raises(SystemExit):
        _toy_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert "--num-epochs" in out and "--num_epochs NUM_EPOCHS" not in out
    assert UNDERSCORE_NOTE in out


def test_epilog_given_by_a_script_is_kept():
    parser = ArgumentParser(prog="toy", epilog="예: python toy.py")
    assert parser.epilog.startswith("예: python toy.py") and parser.epilog.endswith(UNDERSCORE_NOTE)


# ---------------------------------------------------------------------------
# 실제 스크립트의 파서에 원서의 명령줄을 준다
# ---------------------------------------------------------------------------


def test_additional_experiments_reads_reference_command_line():
    module = load_module(
        REPO_ROOT / "ch06" / "02_bonus_additional-experiments" / "additional_experiments.py", "ref_additional_experiments"
    )
    reference = [
        "--model_size", "gpt2-medium (355M)", "--weights", "random", "--trainable_layers", "lora",
        "--lora_rank", "8", "--lora_alpha", "4", "--trainable_token_pos", "flexible", "--average_embeddings",
        "--context_length", "model_context_length", "--no_padding", "--accumulation_steps", "8",
        "--disable_causal_mask", "--ignore_index", "50256", "--num_epochs", "2", "--batch_size", "4",
    ]
    theirs = module.build_parser().parse_args(reference)
    assert vars(theirs) == vars(module.build_parser().parse_args(_hyphenated(reference)))
    assert (theirs.model_size, theirs.trainable_layers, theirs.trainable_token_pos) == (
        "gpt2-medium (355M)", "lora", "flexible",
    )
    assert (theirs.lora_rank, theirs.accumulation_steps, theirs.ignore_index, theirs.num_epochs) == (8, 8, 50256, 2)
    assert theirs.average_embeddings and theirs.no_padding and theirs.disable_causal_mask


def test_instruction_finetuning_reads_reference_command_line(tmp_path):
    module = importlib.import_module("llm_from_scratch.ch07.gpt_instruction_finetuning")
    reference = ["--test_mode", "--model_size", "124M", "--num_epochs", "1", "--batch_size", "2",
                 "--max_new_tokens", "5", "--output_dir", str(tmp_path), "--data_dir", str(tmp_path)]
    theirs = module.build_parser().parse_args(reference)
    assert vars(theirs) == vars(module.build_parser().parse_args(_hyphenated(reference)))
    assert theirs.quick is True  # 원서의 --test_mode 는 우리의 --quick
    assert (theirs.model_size, theirs.num_epochs, theirs.batch_size, theirs.max_new_tokens) == ("124M", 1, 2, 5)


def test_spam_finetuning_takes_reference_test_mode(tmp_path):
    module = importlib.import_module("llm_from_scratch.ch06.gpt_class_finetune")
    args = module.parse_args(["--test_mode", "--output_dir", str(tmp_path), "--num_epochs", "2"])
    assert args.quick is True and args.output_dir == str(tmp_path) and args.num_epochs == 2


def test_gutenberg_scripts_read_reference_command_lines(tmp_path):
    folder = REPO_ROOT / "ch05" / "03_bonus_pretraining_on_gutenberg"
    prepare = load_module(folder / "prepare_dataset.py", "ref_prepare_dataset")
    raw, out = tmp_path / "raw", tmp_path / "preprocessed"
    raw.mkdir()
    reference = ["--data_dir", str(raw), "--max_size_mb", "12", "--output_dir", str(out)]
    theirs = prepare.parse_args(reference)
    assert vars(theirs) == vars(prepare.parse_args(_hyphenated(reference)))
    assert (theirs.data_dir, theirs.max_size_mb, theirs.output_dir) == (str(raw), 12.0, str(out))

    pretrain = load_module(folder / "pretraining_simple.py", "ref_pretraining_simple")
    reference = ["--data_dir", str(raw), "--output_dir", str(tmp_path / "ckpt"), "--n_epochs", "2",
                 "--batch_size", "3", "--print_sample_iter", "7", "--eval_freq", "5", "--save_ckpt_freq", "11"]
    theirs = pretrain.parse_args(reference)
    assert vars(theirs) == vars(pretrain.parse_args(_hyphenated(reference)))
    assert (theirs.n_epochs, theirs.batch_size, theirs.print_sample_iter, theirs.save_ckpt_freq) == (2, 3, 7, 11)


def test_training_speed_baseline_reads_reference_spellings(tmp_path, monkeypatch):
    folder = REPO_ROOT / "ch05" / "10_llm-training-speed"
    monkeypatch.syspath_prepend(str(folder))
    baseline = load_module(folder / "00_baseline.py", "ref_00_baseline")
    reference = ["--batch_size", "4", "--context_length", "64", "--warmup_steps", "0", "--data_dir", str(tmp_path)]
    theirs = baseline.parse_args(reference)
    assert vars(theirs) == vars(baseline.parse_args(_hyphenated(reference)))
    assert (theirs.batch_size, theirs.context_length, theirs.warmup_steps) == (4, 64, 0)


def test_ollama_evaluate_takes_reference_file_path(tmp_path, capsys):
    module = importlib.import_module("llm_from_scratch.ch07.ollama_evaluate")
    missing = tmp_path / "no-such-responses.json"
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--file_path", str(missing)])
    err = capsys.readouterr().err
    # 옵션은 알아듣고(모르는 옵션이라는 오류가 아니다) 값인 파일이 없다고 알린다
    assert exit_info.value.code == 2
    assert "unrecognized" not in err and "no-such-responses.json" in err


# ---------------------------------------------------------------------------
# 원서의 파일 이름으로 둔 입구 스크립트
# ---------------------------------------------------------------------------

DEDUP_DIR = REPO_ROOT / "ch07" / "02_dataset-utilities"


def test_find_near_duplicates_hyphen_name_runs_the_same_code(tmp_path, capsys):
    data_file = tmp_path / "instruction-examples.json"
    shutil.copy(DEDUP_DIR / "instruction-examples.json", data_file)
    dedup = load_module(DEDUP_DIR / "find_near_duplicates.py", "ref_find_near_duplicates")
    dedup.main(["--json-file", str(data_file), "--threshold", "0.9"])
    expected_report = capsys.readouterr().out

    # 원서 README 의 명령 그대로(밑줄 옵션, 하이픈 파일 이름), 새 프로세스에서
    result = subprocess.run(
        [sys.executable, "find-near-duplicates.py", "--json_file", str(data_file), "--threshold", "0.9",
         "--remove_duplicates"],
        cwd=DEDUP_DIR, env={**os.environ, "LLMFS_QUICK": "1"}, capture_output=True, text=True, timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(expected_report)
    cleaned = json.loads((tmp_path / "instruction-examples-deduplicated.json").read_text(encoding="utf-8"))
    original = json.loads(data_file.read_text(encoding="utf-8"))
    assert 0 < len(cleaned) < len(original)


@pytest.mark.parametrize(
    ("alias", "target", "own_option"),
    [
        ("ch05/10_llm-training-speed/00_orig.py", "00_baseline.py", "--warmup-steps"),
        ("ch05/10_llm-training-speed/01_opt_single_gpu.py", "01_optimized.py", "--no-sdpa"),
    ],
)
def test_training_speed_reference_names_show_the_same_script(alias, target, own_option, monkeypatch, capsys):
    alias = REPO_ROOT / alias
    monkeypatch.syspath_prepend(str(alias.parent))
    monkeypatch.setattr(sys, "argv", [alias.name, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(alias), run_name="__main__")
    assert exit_info.value.code == 0
    alias_help = capsys.readouterr().out

    monkeypatch.setattr(sys, "argv", [target, "--help"])
    with pytest.raises(SystemExit):
        runpy.run_path(str(alias.with_name(target)), run_name="__main__")
    target_help = capsys.readouterr().out
    assert own_option in alias_help
    # 프로그램 이름만 다르고 옵션과 설명은 같다
    assert alias_help.replace(alias.name, target) == target_help


def test_kv_cache_folder_gpt_ch04_runs_chapter_4_script(monkeypatch, capsys):
    alias = REPO_ROOT / "ch04" / "03_kv-cache" / "gpt_ch04.py"
    monkeypatch.setattr(sys, "argv", [alias.name, "--quick", "--max_new_tokens", "3", "--prompt", "Hello, I am"])
    runpy.run_path(str(alias), run_name="__main__")
    out = capsys.readouterr().out
    assert "입력 텍스트: 'Hello, I am'" in out
    encoded = json.loads(out.split("인코딩된 입력: ")[1].splitlines()[0])
    produced = json.loads(out.split("출력 토큰 ID: ")[1].splitlines()[0])
    assert produced[: len(encoded)] == encoded and len(produced) == len(encoded) + 3
