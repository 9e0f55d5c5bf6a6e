"""잘못된 입력은 들어오는 곳에서 한국어 오류로 거부되고(값과 기대한 것을 밝힘), 사용자의 파일은 절대 잃지 않는다.

명령줄 스크립트는 긴 작업(모델 적재, 훈련) 전에 인자를 모두 확인해야 하므로, 대부분 같은 프로세스에서 ``main(argv)``
를 불러 argparse 오류(종료 코드 2)가 곧바로 나는지 본다. 대표 사례 몇 개는 새 프로세스로 실행해 본다.
파일이 관련된 경우에는 폴더 전체의 해시가 전후로 같은지 확인한다. 내려받기 도구 자체의 규칙은 test_download.py 가 본다.
"""

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from support import FakeOllama, korean, tree

from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch05 import (
    GPT2CheckpointError,
    gpt2_config_from_hparams,
    load_gpt2_safetensors,
    load_hf_weights_into_gpt,
    write_synthetic_gpt2_safetensors,
)
from llm_from_scratch.download import DownloadError
from llm_from_scratch.utils import get_device

ROOT = Path(__file__).resolve().parents[1]

# 작은 시험용 GPT-2(safetensors 경로는 TensorFlow 가 필요 없어 빠르다)
TINY_HPARAMS = {"n_vocab": 50257, "n_ctx": 32, "n_embd": 16, "n_head": 4, "n_layer": 2}




def rejected(capsys, main, argv, *needles):
    """``main(argv)`` 가 argparse 오류(종료 코드 2)로 끝나고, 한국어 메시지에 ``needles`` 가 모두 들어 있는지 본다."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.splitlines()[-1]
    assert korean(message), message
    for needle in needles:
        assert needle in message, message
    return message


def script_module(name):
    return importlib.import_module(name)


def file_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def argv_main(module, monkeypatch):
    """``main()`` 이 sys.argv 를 읽는 스크립트를 ``main(argv)`` 처럼 부르게 한다."""

    def call(argv):
        monkeypatch.setattr(sys, "argv", ["script", *argv])
        return module.main()

    return call


# ---------------------------------------------------------------------------
# 장치 이름
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cpu:1", "tpu"])
def test_get_device_rejects_unknown_names_in_korean(name):
    with pytest.raises(ValueError) as error:
        get_device(name)
    message = str(error.value)
    assert repr(name) in message and "auto, cpu, cuda, mps" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA 가 있는 머신")
def test_get_device_rejects_unavailable_cuda():
    with pytest.raises(ValueError, match="CUDA를 쓸 수 없습니다"):
        get_device("cuda")


# ---------------------------------------------------------------------------
# 명령줄 스크립트: 긴 작업 전에 모든 인자를 확인한다
# ---------------------------------------------------------------------------

# (모듈, 인자, 메시지에 있어야 할 말들)
BAD_ARGUMENTS = [
    ("llm_from_scratch.ch07.gpt_instruction_finetuning", ["--num-epochs", "-1"], ["--num-epochs", "-1", "1 이상"]),
    ("llm_from_scratch.ch07.gpt_instruction_finetuning", ["--num-epochs", "0"], ["--num-epochs", "0", "1 이상"]),
    ("llm_from_scratch.ch07.gpt_instruction_finetuning", ["--max-new-tokens", "-5"], ["--max-new-tokens", "0 이상"]),
    ("llm_from_scratch.ch07.gpt_instruction_finetuning", ["--lr", "0"], ["--lr", "0보다 큰"]),
    ("llm_from_scratch.ch07.gpt_instruction_finetuning", ["--lr", "nan"], ["--lr", "'nan'", "유한한"]),
    ("llm_from_scratch.ch07.gpt_instruction_finetuning", ["--batch-size", "0"], ["--batch-size", "1 이상"]),
    ("llm_from_scratch.ch07.gpt_instruction_finetuning", ["--device", "gpu"], ["--device", "'gpu'", "auto, cpu"]),
    ("llm_from_scratch.ch07.exercise_experiments", ["--num-epochs", "0"], ["--num-epochs", "1 이상"]),
    ("llm_from_scratch.ch05.gpt_train", ["--epochs", "0"], ["--epochs", "1 이상"]),
    ("llm_from_scratch.ch05.gpt_train", ["--epochs", "two"], ["--epochs", "'two'", "정수가 아닙니다"]),
    ("llm_from_scratch.ch05.gpt_train", ["--learning-rate", "-0.0001"], ["--learning-rate", "0보다 큰"]),
    ("llm_from_scratch.ch05.gpt_train", ["--weight-decay", "-0.1"], ["--weight-decay", "0 이상"]),
    ("llm_from_scratch.ch05.gpt_train", ["--batch-size", "0"], ["--batch-size", "1 이상"]),
    ("llm_from_scratch.ch05.gpt_train", ["--device", "cuda:x"], ["--device", "'cuda:x'"]),
    ("llm_from_scratch.ch05.gpt_generate", ["--temperature", "nan"], ["--temperature", "유한한"]),
    ("llm_from_scratch.ch05.gpt_generate", ["--temperature", "-1"], ["--temperature", "0 이상"]),
    ("llm_from_scratch.ch05.gpt_generate", ["--top-k", "-3"], ["--top-k", "0 이상"]),
    ("llm_from_scratch.ch05.gpt_generate", ["--max-new-tokens", "-1"], ["--max-new-tokens", "0 이상"]),
    ("llm_from_scratch.ch05.gpt_generate", ["--prompt", "  "], ["--prompt", "비어 있으면"]),
    ("llm_from_scratch.ch06.gpt_class_finetune", ["--num-epochs", "0"], ["--num-epochs", "1 이상"]),
    ("llm_from_scratch.ch06.gpt_class_finetune", ["--lr", "inf"], ["--lr", "유한한"]),
    ("llm_from_scratch.ch06.gpt_class_finetune", ["--max-steps", "0"], ["--max-steps", "1 이상"]),
    ("llm_from_scratch.ch06.gpt_class_finetune", ["--device", "tpu"], ["--device", "'tpu'"]),
    ("llm_from_scratch.ch07.ollama_evaluate", ["--timeout", "0"], ["--timeout", "0보다 큰"]),
    ("llm_from_scratch.ch07.ollama_evaluate", ["--file", "no-such.json"], ["--file", "no-such.json", "없습니다"]),
]


@pytest.mark.parametrize(
    ("module_name", "argv", "needles"),
    BAD_ARGUMENTS,
    ids=[f"{m.rsplit('.', 1)[-1]}{''.join(a)}" for m, a, _ in BAD_ARGUMENTS],
)
def test_script_rejects_bad_argument_before_any_work(module_name, argv, needles, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rejected(capsys, script_module(module_name).main, argv, *needles)
    assert list(tmp_path.iterdir()) == []  # 아무것도 만들지 않았다(쓰기 확인용 시험 파일도 남지 않는다)


@pytest.mark.parametrize(
    ("module_name", "option"),
    [
        ("llm_from_scratch.ch07.gpt_instruction_finetuning", "--output-dir"),
        ("llm_from_scratch.ch05.gpt_train", "--output-dir"),
        ("llm_from_scratch.ch06.gpt_class_finetune", "--output-dir"),
    ],
)
def test_output_folder_must_be_writable(module_name, option, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("사용자의 파일", encoding="utf-8")
    before = tree(tmp_path)
    message = rejected(capsys, script_module(module_name).main, [option, str(blocker / "out")], option, "폴더")
    assert str(blocker) in message
    assert tree(tmp_path) == before


def _without_root_file_powers():
    """읽기 전용 폴더가 root 에게도 읽기 전용이 되게 하는 명령 앞부분. root 가 아니면 빈 리스트."""
    if os.name != "posix":
        pytest.skip("폴더 권한(chmod)으로 읽기 전용 폴더를 만드는 검사는 POSIX 에서만 합니다")
    if os.geteuid() != 0:
        return []
    # root 는 권한 비트를 무시하는 능력(CAP_DAC_OVERRIDE 등)이 있으므로, 그 능력을 뺀 새 프로세스로 돌린다
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all"]
    try:
        probe = subprocess.run([*drop, "true"], capture_output=True, check=False)
    except FileNotFoundError:
        pytest.skip("root 로 도는데 setpriv(util-linux)가 없어 권한을 내려놓은 프로세스를 만들 수 없습니다")
    if probe.returncode != 0:
        pytest.skip(f"root 로 도는데 setpriv 로 능력을 내려놓을 수 없습니다: {probe.stderr.decode(errors='replace')}")
    return drop


def test_read_only_output_folder_is_rejected_with_a_probe(tmp_path):
    prefix = _without_root_file_powers()
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        script = ROOT / "ch07" / "01_main-chapter-code" / "gpt_instruction_finetuning.py"
        result = subprocess.run(
            [*prefix, sys.executable, str(script), "--quick", "--output-dir", str(folder)],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "쓸 수 없습니다" in result.stderr and str(folder) in result.stderr
        assert "Traceback" not in result.stderr
        assert list(folder.iterdir()) == []  # 시험 파일도 남지 않는다
        assert sorted(path.name for path in tmp_path.iterdir()) == ["read-only"]  # 아무것도 내려받지 않았다
    finally:
        folder.chmod(0o755)


def test_gpt_script_and_kv_benchmark_and_ddp_scripts_validate_arguments(capsys, monkeypatch):
    gpt = argv_main(script_module("llm_from_scratch.ch04.gpt"), monkeypatch)
    rejected(capsys, gpt, ["--max-new-tokens", "-1"], "--max-new-tokens", "0 이상")
    rejected(capsys, gpt, ["--device", "gpu"], "'gpu'")
    rejected(capsys, gpt, ["--prompt", ""], "--prompt", "비어 있으면")

    folder = ROOT / "appendix-A" / "01_main-chapter-code"
    for script in ("DDP-script.py", "DDP-script-torchrun.py"):
        module = file_module(folder / script, script.replace("-", "_").removesuffix(".py"))
        rejected(capsys, argv_main(module, monkeypatch), ["--num-epochs", "0"], "--num-epochs", "1 이상")
    ddp = file_module(folder / "DDP-script.py", "ddp_script")
    rejected(capsys, argv_main(ddp, monkeypatch), ["--world-size", "-2"], "--world-size", "1 이상")


def test_training_speed_scripts_validate_arguments(capsys, monkeypatch):
    folder = ROOT / "ch05" / "10_llm-training-speed"
    monkeypatch.syspath_prepend(str(folder))
    baseline = file_module(folder / "00_baseline.py", "speed_baseline")
    rejected(capsys, baseline.main, ["--batch-size", "0"], "--batch-size", "1 이상")
    rejected(capsys, baseline.main, ["--device", "gpu"], "'gpu'")
    rejected(capsys, baseline.main, ["--warmup-steps", "-1"], "--warmup-steps", "0 이상")


# ---------------------------------------------------------------------------
# 새 프로세스로: 나쁜 인자는 모델을 불러오거나 훈련하기 전에 파일을 건드리지 않고 끝난다
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "argv", "needle"),
    [
        ("ch07/01_main-chapter-code/gpt_instruction_finetuning.py", ["--quick", "--num-epochs", "-1"], "--num-epochs"),
    ],
)
def test_script_process_fails_fast_without_touching_files(script, argv, needle, tmp_path):
    (tmp_path / "instruction-data.json").write_text("[]", encoding="utf-8")
    before = tree(tmp_path)
    result = subprocess.run(
        [sys.executable, str(ROOT / script), *argv, "--output-dir", "."] if "instruction" in script
        else [sys.executable, str(ROOT / script), *argv],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr and korean(result.stderr)
    assert "Traceback" not in result.stderr
    assert tree(tmp_path) == before


# ---------------------------------------------------------------------------
# 훈련한 모델은 뒤에서 실패할 수 있는 단계보다 먼저 저장된다
# ---------------------------------------------------------------------------


def _tiny_model():
    cfg = gpt2_config_from_hparams(TINY_HPARAMS)
    torch.manual_seed(0)
    return GPTModel(cfg), cfg


def test_instruction_finetuning_saves_model_before_generating_responses(tmp_path, monkeypatch):
    module = script_module("llm_from_scratch.ch07.gpt_instruction_finetuning")
    monkeypatch.setattr(module, "prepare_model", lambda args, device: _tiny_model())
    monkeypatch.setattr(module, "finetune", lambda *args, **kwargs: ([1.0], [1.0], [0]))

    def fail(*args, **kwargs):
        raise RuntimeError("응답 생성 실패(시험)")

    monkeypatch.setattr(module, "generate_responses", fail)
    entry = {"instruction": "Say hi.", "input": "", "output": "hi"}
    args = module.build_parser().parse_args(["--output-dir", str(tmp_path), "--device", "cpu", "--model-size", "124M"])
    with pytest.raises(RuntimeError, match="응답 생성 실패"):
        module.run(args, [entry] * 20)
    assert [path.name for path in tmp_path.glob("*.pth")] == [module.model_file_name("124M")]
    assert not any(tmp_path.glob("instruction-data-with-response*.json"))


def test_class_finetune_saves_model_before_plots_and_accuracy(tmp_path, monkeypatch):
    module = script_module("llm_from_scratch.ch06.gpt_class_finetune")

    def tiny_csvs(folder):
        rows = "Text,Label\n" + "".join(f"message number {i} {'win cash now' * (i % 2)},{i % 2}\n" for i in range(8))
        for name in ("train.csv", "validation.csv", "test.csv"):
            (Path(folder) / name).write_text(rows, encoding="utf-8")

    def fail(*args, **kwargs):
        raise RuntimeError("그래프 저장 실패(시험)")

    monkeypatch.setattr(module, "prepare_spam_data", tiny_csvs)
    monkeypatch.setattr(module, "load_pretrained_gpt2", lambda models_dir, size: _tiny_model())
    monkeypatch.setattr(module, "plot_values", fail)
    argv = ["--output-dir", str(tmp_path), "--models-dir", str(tmp_path / "models"), "--device", "cpu",
            "--max-steps", "1", "--num-epochs", "1", "--batch-size", "4", "--eval-freq", "1", "--eval-iter", "1"]
    with pytest.raises(RuntimeError, match="그래프 저장 실패"):
        module.main(argv)
    assert (tmp_path / "review_classifier.pth").is_file()


def test_gpt_train_refuses_a_text_too_short_before_training(capsys, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "the-verdict.txt").write_text("내가 쓴 아주 짧은 이야기입니다.", encoding="utf-8")
    before = tree(tmp_path)
    module = script_module("llm_from_scratch.ch05.gpt_train")
    rejected(capsys, module.main, ["--quick", "--data-dir", str(data), "--output-dir", str(tmp_path / "out")],
             "the-verdict.txt", "짧습니다")
    assert tree(tmp_path) == before  # 사용자의 텍스트는 그대로, model.pth 도 out/ 도 없다


def test_gpt_generate_rejects_top_k_larger_than_vocabulary(capsys, tmp_path):
    module = script_module("llm_from_scratch.ch05.gpt_generate")
    rejected(capsys, module.main, ["--quick", "--source", "hf", "--models-dir", str(tmp_path), "--top-k", "60000"],
             "--top-k", "50257", "60000")


# ---------------------------------------------------------------------------
# GPT-2 체크포인트: 아무것도 지우지 않고 진짜 원인을 말한다
# ---------------------------------------------------------------------------


def test_tf_checkpoint_problems_name_the_real_cause_and_delete_nothing(tmp_path):
    """hparams.json 이 온전한 체크포인트와 맞지 않음 / hparams.json 이 JSON 이 아님 / 색인 파일이 잘림: 각각 그
    원인과 파일을 밝히고, 폴더는 바이트 단위로 그대로다(예전에는 체크포인트 네 파일을 지우고 매번 다시 받았다)."""
    from llm_from_scratch.ch05 import download_and_load_gpt2, write_synthetic_gpt2_checkpoint

    model_dir = write_synthetic_gpt2_checkpoint(tmp_path, "124M", hparams=TINY_HPARAMS)
    hparams_path = model_dir / "hparams.json"
    original = hparams_path.read_text(encoding="utf-8")

    hparams_path.write_text(json.dumps({**TINY_HPARAMS, "n_embd": 32, "n_layer": 3}), encoding="utf-8")
    before = tree(tmp_path)
    with pytest.raises(GPT2CheckpointError) as error:
        download_and_load_gpt2("124M", tmp_path)
    message = str(error.value)
    assert "hparams.json 이 체크포인트와 맞지 않습니다" in message
    assert "n_embd: hparams.json 은 32, 체크포인트는 16" in message and "n_layer: hparams.json 은 3, 체크포인트는 2" in message
    assert "아무것도 지우지 않았습니다" in message
    assert tree(tmp_path) == before

    hparams_path.write_text('{"n_vocab": 50257,', encoding="utf-8")
    before = tree(tmp_path)
    with pytest.raises(DownloadError) as error:
        download_and_load_gpt2("124M", tmp_path)
    assert str(hparams_path.resolve()) in str(error.value) and "JSON" in str(error.value)
    assert tree(tmp_path) == before

    hparams_path.write_text(original, encoding="utf-8")
    index = model_dir / "model.ckpt.index"
    index.write_bytes(index.read_bytes()[:-20])
    before = tree(tmp_path)
    with pytest.raises(DownloadError) as error:
        download_and_load_gpt2("124M", tmp_path)
    assert str(index.resolve()) in str(error.value) and "TensorFlow" in str(error.value)
    assert tree(tmp_path) == before


@pytest.fixture
def hf_checkpoint(tmp_path):
    path = write_synthetic_gpt2_safetensors(tmp_path / "models" / "gpt2" / "model.safetensors", hparams=TINY_HPARAMS)
    return tmp_path / "models", path


def test_corrupt_safetensors_is_named_and_never_trusted(hf_checkpoint, capsys):
    models_dir, path = hf_checkpoint
    path.write_bytes(path.read_bytes()[:-100])
    before = tree(models_dir)
    for _ in range(2):  # 다음 실행도 믿지 않는다
        with pytest.raises(DownloadError) as error:
            load_gpt2_safetensors("gpt2", models_dir)
        message = str(error.value)
        assert str(path.resolve()) in message and "safetensors" in message and "옮긴 뒤" in message
    assert tree(models_dir) == before


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"n_heads": 2}, "n_heads: 모델 2, 가중치 4"),
        ({"n_layers": 1}, "n_layers: 모델 1, 가중치 2"),
        ({"emb_dim": 32}, "emb_dim: 모델 32, 가중치 16"),
        ({"vocab_size": 50000}, "vocab_size: 모델 50000, 가중치 50257"),
        ({"context_length": 64}, "context_length: 모델 64, 가중치 32"),
    ],
    ids=["heads", "layers", "width", "vocab", "context"],
)
def test_loading_weights_into_a_model_with_another_config_is_refused(hf_checkpoint, change, needle):
    models_dir, _ = hf_checkpoint
    state_dict = load_gpt2_safetensors("gpt2", models_dir)
    model = GPTModel({**gpt2_config_from_hparams(TINY_HPARAMS), **change})
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with pytest.raises(ValueError) as error:
        load_hf_weights_into_gpt(model, state_dict)
    assert needle in str(error.value)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())  # 반쯤 싣지 않았다


def test_synthetic_writer_never_overwrites_another_checkpoint(tmp_path):
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text('{"n_embd": 768}', encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"real weights")
    before = tree(tmp_path)
    with pytest.raises(GPT2CheckpointError, match="덮어쓰지"):
        write_synthetic_gpt2_safetensors(folder / "model.safetensors")
    assert tree(tmp_path) == before


# ---------------------------------------------------------------------------
# 압축 파일: 손상되면 한국어 오류, 반쯤 풀린 파일은 남지 않는다
# ---------------------------------------------------------------------------


def _zip_with_bad_crc(path: Path):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("first.txt", "첫 파일" * 100)
        archive.writestr("SMSSpamCollection", "ham\thello\n" * 100)
    data = bytearray(path.read_bytes())
    position = data.find(b"ham\thello")
    data[position] ^= 0xFF  # 두 번째 항목의 내용만 바꾼다(CRC 불일치)
    path.write_bytes(bytes(data))


def test_zip_with_bad_crc_extracts_nothing(tmp_path):
    from llm_from_scratch.ch06 import safe_extract_zip

    zip_path = tmp_path / "data.zip"
    _zip_with_bad_crc(zip_path)
    target = tmp_path / "out"
    with pytest.raises(ValueError) as error:
        safe_extract_zip(zip_path, target)
    assert "SMSSpamCollection" in str(error.value) and "CRC" in str(error.value)
    assert not target.exists() or list(target.rglob("*")) == []


def test_not_a_zip_gives_korean_error(tmp_path):
    from llm_from_scratch.ch06 import safe_extract_zip

    zip_path = tmp_path / "data.zip"
    zip_path.write_bytes(b"this is not a zip file")
    with pytest.raises(ValueError, match="온전한 ZIP 파일이 아닙니다"):
        safe_extract_zip(zip_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_users_other_zip_in_the_data_folder_is_refused_and_kept(tmp_path, capsys):
    from llm_from_scratch.ch06 import download_and_unzip_spam_data

    zip_path = tmp_path / "sms+spam+collection.zip"
    _zip_with_bad_crc(zip_path)
    before = tree(tmp_path)
    with pytest.raises(DownloadError, match="원본과 다릅니다"):
        download_and_unzip_spam_data(tmp_path)
    assert tree(tmp_path) == before


# ---------------------------------------------------------------------------
# Ollama 채점 스크립트: 제한 시간, JSON 이 아닌 답, 모양이 다른 답, 잘못된 응답 파일
# ---------------------------------------------------------------------------


@pytest.fixture
def fake_ollama():
    with FakeOllama() as server:
        yield server


@pytest.fixture
def responses_file(tmp_path):
    path = tmp_path / "responses.json"
    path.write_text(
        json.dumps([{"instruction": "Say hi.", "input": "", "output": "hi", "model_response": "hello"}]),
        encoding="utf-8",
    )
    return path


def test_ollama_evaluate_scores_with_a_settable_timeout(fake_ollama, responses_file, monkeypatch, capsys):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    module = script_module("llm_from_scratch.ch07.ollama_evaluate")
    fake_ollama.reply = lambda prompt: "85"
    scores = module.main(["--file", str(responses_file), "--url", fake_ollama.url, "--timeout", "5"])
    assert scores == [85]


@pytest.mark.parametrize(
    ("delay", "raw_reply", "timeout", "needles"),
    [
        (1.0, None, "0.2", ["0.2초 안에 답하지 않았습니다", "--timeout"]),
        (0.0, b"<html>proxy error</html>\n", "5", ["JSON 이 아니거나", "/api/chat"]),
        (0.0, b'{"message": "85", "done": true}\n', "5", ["기대한 모양", "message"]),
    ],
    ids=["timeout", "not-json", "wrong-shape"],
)
def test_ollama_evaluate_bad_replies_give_korean_errors(fake_ollama, responses_file, monkeypatch, delay, raw_reply,
                                                        timeout, needles):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    module = script_module("llm_from_scratch.ch07.ollama_evaluate")
    fake_ollama.delay, fake_ollama.raw_reply = delay, raw_reply
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--file", str(responses_file), "--url", fake_ollama.url, "--timeout", timeout])
    message = str(exit_info.value.code)
    assert fake_ollama.url in message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (b'[{"instruction": "a", "output": "b"', ["JSON 으로 읽을 수 없습니다", "1번째 줄"]),
        ('[{"instruction": "caf\xe9"}]'.encode("latin-1"), ["UTF-8"]),
        (b'{"instruction": "a"}', ["리스트"]),
        (b'[{"instruction": "a", "output": "b"}]', ["0번 항목", "'model_response'", "없습니다"]),
        (b'[{"instruction": "a", "output": null, "model_response": "c"}]', ["'output'", "문자열이 아닙니다"]),
    ],
    ids=["broken-json", "latin1", "not-a-list", "missing-key", "null-output"],
)
def test_ollama_evaluate_rejects_bad_response_files_before_contacting_the_server(capsys, tmp_path, content, needles):
    path = tmp_path / "responses.json"
    path.write_bytes(content)
    before = tree(tmp_path)
    module = script_module("llm_from_scratch.ch07.ollama_evaluate")
    rejected(capsys, module.main, ["--file", str(path), "--url", "http://127.0.0.1:9/api/chat"], str(path), *needles)
    assert tree(tmp_path) == before
