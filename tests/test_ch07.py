"""7장: 지시 데이터 준비, 배치 함수, 손실 마스킹, LoRA 파라미터 수, Ollama 클라이언트, 스크립트(빠른 모드)."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import tiktoken
import torch
from support import FakeOllama, judge_reply

from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch05 import gpt2_config_from_hparams
from llm_from_scratch.ch07 import (
    InstructionDataset,
    InstructionDatasetWithMasking,
    check_if_running,
    create_instruction_loaders,
    custom_collate_fn,
    custom_collate_with_masking_fn,
    extract_response,
    format_input,
    format_input_phi,
    format_response,
    format_scoring_prompt,
    generate_model_scores,
    generate_responses,
    load_instruction_data,
    parse_score,
    query_model,
    split_instruction_data,
)
from llm_from_scratch.ch07.exercise_experiments import add_lora, count_trainable_parameters

CHAPTER_DIR = Path(__file__).resolve().parents[1] / "ch07" / "01_main-chapter-code"
TOY_BATCH = [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]]
GPT2_MEDIUM_HPARAMS = {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 1024, "n_head": 16, "n_layer": 24}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ch07-data")


@pytest.fixture(scope="module")
def instruction_data(data_dir):
    return load_instruction_data(data_dir)


@pytest.fixture(scope="module")
def tokenizer():
    return tiktoken.get_encoding("gpt2")


# ---------------------------------------------------------------------------
# 7.2 데이터셋
# ---------------------------------------------------------------------------


def test_instruction_data_has_1100_entries_split_935_55_110(instruction_data):
    assert len(instruction_data) == 1100
    assert set(instruction_data[0]) == {"instruction", "input", "output"}
    train_data, val_data, test_data = split_instruction_data(instruction_data)
    assert (len(train_data), len(val_data), len(test_data)) == (935, 55, 110)
    # 순서를 지키는 분할: 훈련, 테스트, 검증 순으로 이어 붙이면 원래 데이터다
    assert train_data + test_data + val_data == instruction_data


def test_split_rejects_bad_fractions(instruction_data):
    with pytest.raises(ValueError, match="train_frac"):
        split_instruction_data(instruction_data, train_frac=0.9, test_frac=0.2)


def test_format_input_uses_alpaca_prompt_and_skips_empty_input():
    with_input = {"instruction": "Translate to German.", "input": "Hello", "output": "Hallo"}
    without_input = {"instruction": "Name a color.", "input": "", "output": "Blue"}
    preamble = (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    )
    assert format_input(with_input) == f"{preamble}\n\n### Instruction:\nTranslate to German.\n\n### Input:\nHello"
    assert format_input(without_input) == f"{preamble}\n\n### Instruction:\nName a color."
    assert format_response(with_input) == "\n\n### Response:\nHallo"


def test_format_input_phi_uses_user_and_assistant_tags():
    entry = {"instruction": "Translate to German.", "input": "Hello", "output": "Hallo"}
    assert format_input_phi(entry) + format_response(entry, "phi3") == (
        "<|user|>\nTranslate to German.\nHello\n<|assistant|>\nHallo"
    )
    assert format_input_phi({"instruction": "Name a color.", "input": ""}) == "<|user|>\nName a color."


@pytest.mark.parametrize("key", ["instruction", "output"])
def test_null_or_non_string_fields_are_refused_not_turned_into_none(key):
    entry = {"instruction": "Say hi.", "input": "", "output": "Hi"}
    for bad in [None, 3]:
        with pytest.raises(TypeError, match=f"'{key}' 값은 문자열이어야 합니다\\(받은 값: {bad}\\)"):
            InstructionDataset([{**entry, key: bad}], tiktoken.get_encoding("gpt2"))
    # input 은 비어 있거나 null 이면 입력이 없는 것으로 본다
    assert format_input({**entry, "input": None}) == format_input(entry)
    assert "None" not in format_input({**entry, "input": None})


def test_format_errors_name_the_problem():
    with pytest.raises(KeyError, match="instruction"):
        format_input({"input": "x"})
    with pytest.raises(ValueError, match="'chatml'"):
        format_response({"output": "x"}, "chatml")


# ---------------------------------------------------------------------------
# 7.3 배치 함수와 손실 마스킹
# ---------------------------------------------------------------------------


def test_collate_pads_shifts_and_masks_toy_batch():
    inputs, targets = custom_collate_fn(TOY_BATCH)
    assert inputs.tolist() == [
        [0, 1, 2, 3, 4],
        [5, 6, 50256, 50256, 50256],
        [7, 8, 9, 50256, 50256],
    ]
    assert targets.tolist() == [
        [1, 2, 3, 4, 50256],
        [6, 50256, -100, -100, -100],
        [8, 9, 50256, -100, -100],
    ]
    assert inputs.dtype == targets.dtype == torch.int64


def test_collate_truncates_to_allowed_max_length_and_moves_to_device():
    inputs, targets = custom_collate_fn(TOY_BATCH, allowed_max_length=3, device=torch.device("cpu"))
    assert inputs.tolist() == [[0, 1, 2], [5, 6, 50256], [7, 8, 9]]
    assert targets.tolist() == [[1, 2, 3], [6, 50256, -100], [8, 9, 50256]]
    assert inputs.device.type == targets.device.type == "cpu"


def test_collate_rejects_empty_batch_and_bad_length():
    with pytest.raises(ValueError, match="빈 배치"):
        custom_collate_fn([])
    with pytest.raises(ValueError, match="allowed_max_length"):
        custom_collate_fn(TOY_BATCH, allowed_max_length=0)


def test_chapter5_loss_ignores_minus_100_targets_as_the_book_shows():
    from llm_from_scratch.ch05 import calc_loss_batch

    class FixedLogits(torch.nn.Module):  # 책의 두 토큰 예제의 로짓(세 번째는 패딩 자리)
        def forward(self, idx):
            return torch.tensor([[[-1.0, 1.0], [-0.5, 1.5], [0.3, -0.2]]])

    inputs = torch.zeros(1, 3, dtype=torch.long)
    loss_masked = calc_loss_batch(inputs, torch.tensor([[0, 1, -100]]), FixedLogits(), "cpu")
    assert round(loss_masked.item(), 4) == 1.1269  # 책의 두 토큰 손실과 같다
    loss_three = calc_loss_batch(inputs, torch.tensor([[0, 1, 1]]), FixedLogits(), "cpu")
    assert round(loss_three.item(), 4) == 1.0760  # 세 번째 토큰까지 세면 달라진다


def test_masking_collate_hides_prompt_targets(tokenizer):
    entries = [
        {"instruction": "Name a color.", "input": "", "output": "Blue"},
        {"instruction": "Translate to German.", "input": "Good morning", "output": "Guten Morgen"},
    ]
    dataset = InstructionDatasetWithMasking(entries, tokenizer)
    _, targets = custom_collate_with_masking_fn([dataset[0], dataset[1]])
    _, plain_targets = custom_collate_fn([dataset.encoded_texts[0], dataset.encoded_texts[1]])
    for row, entry in enumerate(entries):
        prompt_length = len(tokenizer.encode(format_input(entry)))
        assert dataset.instruction_lengths[row] == prompt_length
        assert (targets[row, : prompt_length - 1] == -100).all()
        # 응답 부분(프롬프트 다음 토큰부터)은 그대로 남는다
        assert torch.equal(targets[row, prompt_length - 1 :], plain_targets[row, prompt_length - 1 :])
        assert (plain_targets[row, : prompt_length - 1] != -100).all()


def test_instruction_dataset_pre_tokenises_prompt_and_response(instruction_data, tokenizer):
    entries = instruction_data[:5]
    dataset = InstructionDataset(entries, tokenizer)
    assert len(dataset) == 5
    for i, entry in enumerate(entries):
        assert dataset[i] == tokenizer.encode(format_input(entry) + format_response(entry))


def test_loaders_use_batch_8_and_drop_last_only_for_training(instruction_data, tokenizer):
    train_data, val_data, test_data = split_instruction_data(instruction_data)
    train_loader, val_loader, test_loader = create_instruction_loaders(
        train_data, val_data, test_data, tokenizer, allowed_max_length=1024
    )
    assert (len(train_loader), len(val_loader), len(test_loader)) == (116, 7, 14)
    inputs, targets = next(iter(train_loader))
    assert inputs.shape[0] == targets.shape[0] == 8
    assert torch.equal(inputs[:, 1:][targets[:, :-1] != -100], targets[:, :-1][targets[:, :-1] != -100])

    short_loader, _, _ = create_instruction_loaders(train_data, val_data, test_data, tokenizer, allowed_max_length=40)
    assert max(batch[0].shape[1] for batch in short_loader) == 40


def test_extract_response_strips_prompt_and_marker():
    entry = {"instruction": "Name a color.", "input": "", "output": "Blue"}
    prompt = format_input(entry)
    assert extract_response(prompt + "\n\n### Response:\nRed.", prompt) == "Red."
    phi_prompt = format_input_phi(entry)
    assert extract_response(phi_prompt + "\n<|assistant|>\nGreen", phi_prompt, "phi3") == "Green"


# ---------------------------------------------------------------------------
# 연습문제 7.4: LoRA
# ---------------------------------------------------------------------------


def test_lora_rank_16_on_gpt2_medium_has_7_898_384_trainable_params():
    with torch.device("meta"):  # 가중치 메모리 없이 진짜 GPT-2 medium 구조만 만든다
        model = GPTModel(gpt2_config_from_hparams(GPT2_MEDIUM_HPARAMS))
    assert count_trainable_parameters(model) == 406_286_336  # qkv_bias=True 인 GPT-2 medium
    add_lora(model, rank=16, alpha=16)
    assert count_trainable_parameters(model) == 7_898_384


# ---------------------------------------------------------------------------
# 7.8 Ollama 클라이언트: 같은 프로토콜을 쓰는 작은 시험용 서버
# ---------------------------------------------------------------------------


@pytest.fixture
def fake_ollama():
    with FakeOllama() as server:
        yield server


@pytest.fixture
def closed_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/chat"


def test_query_model_joins_streamed_chunks_and_sends_options(fake_ollama):
    fake_ollama.reply = lambda prompt: "Llamas eat grass, hay and grains." if "Llamas" in prompt else "?"
    assert query_model("What do Llamas eat?", url=fake_ollama.url) == "Llamas eat grass, hay and grains."
    request = fake_ollama.requests[-1]
    assert request["model"] == "llama3"
    assert request["messages"] == [{"role": "user", "content": "What do Llamas eat?"}]
    assert request["options"]["seed"] == 123
    assert request["options"]["temperature"] == 0


def test_check_if_running(fake_ollama, closed_url):
    assert check_if_running(fake_ollama.url)
    assert not check_if_running(closed_url)


def test_query_model_reports_unreachable_server(closed_url):
    with pytest.raises(ConnectionError, match="연결하지 못했습니다"):
        query_model("hi", url=closed_url)


@pytest.mark.parametrize(
    ("raw_reply", "message"),
    [
        (b"<html>Not Found</html>\n", "JSON이 아닙니다"),
        (b'["a", "list"]\n', "예상한 모양"),
        (b'{"message": {"content": null}, "done": true}\n', "예상한 모양"),
        (b'{"message": "hi"}\n', "예상한 모양"),
    ],
    ids=["html", "list", "null-content", "message-not-object"],
)
def test_query_model_names_a_reply_that_is_not_the_chat_format(fake_ollama, raw_reply, message):
    fake_ollama.raw_reply = raw_reply
    with pytest.raises(ValueError, match=message) as error:
        query_model("hi", url=fake_ollama.url)
    assert fake_ollama.url in str(error.value)


def test_query_model_timeout_is_settable_and_reported_in_korean(fake_ollama):
    fake_ollama.delay = 1.0  # 제한 시간을 지키지 않으면 1초 뒤 정상 답을 받아 오류가 나지 않는다
    with pytest.raises(TimeoutError, match="0.2초 안에 답하지 않았습니다"):
        query_model("hi", url=fake_ollama.url, timeout=0.2)
    for bad in [0, -1, "10"]:
        with pytest.raises(ValueError, match="timeout"):
            query_model("hi", url=fake_ollama.url, timeout=bad)


def test_parse_score():
    assert parse_score("85") == 85
    assert parse_score(" 100.\n") == 100
    assert parse_score("0") == 0
    assert parse_score("I would give it 85") is None
    assert parse_score("150") is None


def test_generate_model_scores_skips_replies_that_are_not_numbers(fake_ollama, capsys):
    entries = [
        {"instruction": "Name a color.", "input": "", "output": "Blue", "model_response": "Blue"},
        {"instruction": "Name a fruit.", "input": "", "output": "Apple", "model_response": "Banana split"},
        {"instruction": "Name an animal.", "input": "", "output": "Cat", "model_response": "Dog"},
    ]
    fake_ollama.reply = lambda prompt: "This answer deserves a fair score." if "Banana split" in prompt else judge_reply(prompt)
    scores = generate_model_scores(entries, url=fake_ollama.url, show_progress=False)
    assert scores == [100, 0]  # 맞힌 "Blue" 는 100점, 틀린 "Dog" 는 0점
    assert "점수로 읽을 수 없는 답을 건너뜁니다" in capsys.readouterr().out
    prompt = fake_ollama.requests[0]["messages"][0]["content"]
    assert prompt == format_scoring_prompt(entries[0])
    assert "0 to 100" in prompt and "`Blue`" in prompt


# ---------------------------------------------------------------------------
# 스크립트(빠른 모드, 서브프로세스)
# ---------------------------------------------------------------------------


def run_script(name, *args, cwd, env_overrides=None):
    env = {**os.environ, **(env_overrides or {})}
    return subprocess.run(
        [sys.executable, str(CHAPTER_DIR / name), *args],
        cwd=cwd,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )


def losses_before_after(stdout):
    before = [float(x) for x in re.findall(r"미세 튜닝 전: 훈련 손실 ([\d.]+)", stdout)]
    after = [float(x) for x in re.findall(r"미세 튜닝 후: 훈련 손실 ([\d.]+)", stdout)]
    return before, after


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ch07-finetune")
    result = run_script(
        "gpt_instruction_finetuning.py", "--quick", "--device", "cpu", "--output-dir", "out", cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    return workdir, result


@pytest.fixture(scope="module")
def exercise_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ch07-exercises")
    result = run_script(
        "exercise_experiments.py",
        "--quick",
        "--output-dir",
        "out",
        "--exercise_solution",
        "baseline",
        "mask_instructions",
        "phi3_prompt",
        "alpaca_52k",
        "lora",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    return workdir, result


def test_finetuning_script_quick_lowers_loss_and_saves_outputs(finetune_run):
    workdir, result = finetune_run
    before, after = losses_before_after(result.stdout)
    assert len(before) == len(after) == 1
    assert after[0] < before[0]
    assert "훈련 935개, 검증 55개, 테스트 110개" in result.stdout
    out = workdir / "out"
    responses = json.loads((out / "instruction-data-with-response.json").read_text(encoding="utf-8"))
    assert len(responses) == 2 and all("model_response" in entry for entry in responses)
    assert (out / "loss-plot.pdf").stat().st_size > 0

    hparams = json.loads((out / "gpt2-synthetic" / "355M" / "hparams.json").read_text(encoding="utf-8"))
    model = GPTModel(gpt2_config_from_hparams(hparams))
    model.load_state_dict(torch.load(out / "gpt2-medium355M-sft.pth", weights_only=True))


def test_exercise_script_runs_every_solution(exercise_run):
    workdir, result = exercise_run
    out = workdir / "out"
    for name in ("baseline", "mask_instructions", "phi3_prompt", "alpaca_52k", "lora"):
        assert f"===== {name} =====" in result.stdout
        assert (out / f"instruction-data-with-response-{name}.json").is_file()
        assert (out / f"gpt2-medium355M-sft-{name}.pth").is_file()
        assert (out / f"loss-{name}-plot.pdf").is_file()
    before, after = losses_before_after(result.stdout)
    assert len(before) == len(after) == 5
    assert all(a < b for a, b in zip(after, before))
    # LoRA: 훈련할 파라미터가 확 줄어든다(작은 합성 모델에서)
    lora_counts = [int(x.replace(",", "")) for x in re.findall(r"훈련 가능한 파라미터: ([\d,]+)", result.stdout)]
    assert len(lora_counts) == 2 and lora_counts[1] < lora_counts[0] / 5


def test_exercise_alpaca_offline_uses_sample_in_quick_mode(exercise_run):
    _, result = exercise_run
    assert "Alpaca 52k 데이터(alpaca_data.json)를 받을 수 없습니다" in result.stdout
    assert "작은 표본" in result.stdout


def test_exercise_phi3_prompt_generates_with_phi3_prompt(exercise_run, tokenizer):
    workdir, result = exercise_run
    out = workdir / "out"
    saved = json.loads((out / "instruction-data-with-response-phi3_prompt.json").read_text(encoding="utf-8"))
    # 훈련 중 보여 주는 예시 문장이 Phi-3 형식이다(다른 연습문제는 Alpaca 형식)
    phi3_section = result.stdout.split("===== phi3_prompt =====")[1].split("=====")[0]
    assert "<|user|>" in phi3_section and "### Instruction:" not in phi3_section
    # 저장한 모델로 Phi-3 프롬프트에서 다시 생성하면 저장된 응답과 같다
    hparams = json.loads((out / "gpt2-synthetic" / "355M" / "hparams.json").read_text(encoding="utf-8"))
    model = GPTModel(gpt2_config_from_hparams(hparams))
    model.load_state_dict(torch.load(out / "gpt2-medium355M-sft-phi3_prompt.pth", weights_only=True))
    entries = [{key: entry[key] for key in ("instruction", "input", "output")} for entry in saved]
    again = generate_responses(model, entries, tokenizer, "cpu", max_new_tokens=8, prompt_style="phi3",
                               show_progress=False)
    assert again == saved


def test_exercise_alpaca_offline_fails_clearly_in_default_mode(tmp_path):
    result = run_script(
        "exercise_experiments.py",
        "--exercise_solution",
        "alpaca_52k",
        "--output-dir",
        "out",
        cwd=tmp_path,
        env_overrides={"LLMFS_QUICK": "0", "LLMFS_OFFLINE": "1"},
    )
    assert result.returncode != 0
    assert "Alpaca 52k 데이터(alpaca_data.json)를 받을 수 없습니다" in result.stderr
    assert "오프라인 모드" in result.stderr
    assert not (tmp_path / "out").exists()


def test_ollama_evaluate_scores_finetuned_responses_with_fake_server(finetune_run, fake_ollama):
    workdir, _ = finetune_run
    responses = json.loads((workdir / "out" / "instruction-data-with-response.json").read_text(encoding="utf-8"))
    # 두 번째 항목의 정답이 들어 있는 프롬프트에는 숫자가 아닌 답을, 나머지는 내용으로 정한 점수를 돌려준다
    fake_ollama.reply = lambda prompt: "It is hard to say." if responses[1]["output"] in prompt else judge_reply(prompt)
    expected = int(judge_reply(format_scoring_prompt(responses[0])))
    result = run_script(
        "ollama_evaluate.py", "--file", "out/instruction-data-with-response.json", "--url", fake_ollama.url,
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert "점수로 읽을 수 없는 답을 건너뜁니다" in result.stdout
    assert "점수 개수: 1 / 2" in result.stdout
    assert f"평균 점수: {expected:.2f}" in result.stdout
    assert [r["messages"][-1]["content"] for r in fake_ollama.requests] == [format_scoring_prompt(r) for r in responses]


def test_ollama_judge_scores_a_wrong_answer_lower_than_the_right_one(fake_ollama, tmp_path):
    from llm_from_scratch.ch07 import ollama_evaluate

    entry = {"instruction": "What is the capital of France?", "input": "", "output": "The capital is Paris."}
    path = tmp_path / "responses.json"
    path.write_text(json.dumps([{**entry, "model_response": "The capital is Paris."},
                                {**entry, "model_response": "It is Rome."}]), encoding="utf-8")
    right, wrong = ollama_evaluate.main(["--file", str(path), "--url", fake_ollama.url])
    assert wrong < right == 100


def test_ollama_evaluate_skips_scoring_when_no_server(tmp_path, closed_url):
    path = tmp_path / "responses.json"
    path.write_text(json.dumps([{"instruction": "x", "input": "", "output": "y", "model_response": "z"}]))
    result = run_script("ollama_evaluate.py", "--file", str(path), cwd=tmp_path, env_overrides={"LLMFS_OLLAMA_URL": closed_url})
    assert result.returncode == 0, result.stderr
    assert "연결할 수 없어 채점을 건너뜁니다" in result.stdout


@pytest.mark.parametrize(
    ("module_name", "expected"),
    [
        ("gpt_instruction_finetuning", ["--quick", "--device", "--output-dir", "--num-epochs"]),
        ("exercise_experiments", ["--exercise_solution", "mask_instructions", "--quick", "--device"]),
        ("ollama_evaluate", ["--url", "--model", "--file", "--quick"]),
    ],
)
def test_scripts_have_help(module_name, expected, capsys):
    module = __import__(f"llm_from_scratch.ch07.{module_name}", fromlist=["main"])
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for option in expected:
        assert option in help_text
