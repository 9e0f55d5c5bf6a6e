"""새 코드(보너스 스크립트, Llama, DPO, 채팅 앱 등)에 잘못된 입력을 주면: 값을 밝히는 한국어 오류(또는 올바른 결과),
그리고 사용자의 파일은 바이트 단위로 그대로다.

모두 진짜 프로젝트 코드를 작은 모델·작은 데이터로 부른다. 파일이 관련된 경우에는 폴더 전체의 해시를 전후로 비교한다.
"""

import base64
import csv
import importlib
import importlib.util
import json
import shutil
import sys
import types
from pathlib import Path

import pytest
import tiktoken
import torch
from support import korean, tree

from llm_from_scratch.ch04 import GPTModel

ROOT = Path(__file__).resolve().parents[1]
GUTENBERG = ROOT / "ch05" / "03_bonus_pretraining_on_gutenberg"
TINY_GPT = {
    "vocab_size": 50257, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
    "qkv_bias": False,
}
TINY_LLAMA = {
    "vocab_size": 64, "context_length": 32, "emb_dim": 32, "n_heads": 4, "n_kv_groups": 2, "n_layers": 2,
    "hidden_dim": 48, "rope_base": 500_000.0, "rope_freq": None, "dtype": torch.float32,
}
SENTENCES = "The old house stood at the end of the lane. Every effort moves you a little closer. " * 12




def file_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def usage_error(capsys, main, argv, *needles):
    """``main(argv)`` 가 argparse 오류(종료 코드 2)로 끝나고, 마지막 줄의 한국어 메시지에 ``needles`` 가 있는지 본다."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert korean(message), message
    for needle in needles:
        assert needle in message, message
    return message


# ---------------------------------------------------------------------------
# 훈련 스크립트는 이번 실행이 쓰지 않은 모델 파일을 덮어쓰지 않는다(--overwrite 를 주지 않는 한)
# ---------------------------------------------------------------------------

TRAINED_MODEL_FILES = [
    ("llm_from_scratch.ch05.gpt_train", "model.pth", []),
    ("llm_from_scratch.ch06.gpt_class_finetune", "review_classifier.pth", []),
    ("llm_from_scratch.ch07.gpt_instruction_finetuning", "gpt2-medium355M-sft.pth", []),
    ("llm_from_scratch.ch07.gpt_instruction_finetuning", "instruction-data-with-response.json", []),
    ("llm_from_scratch.ch07.exercise_experiments", "gpt2-medium355M-sft-lora.pth", ["--exercise_solution", "lora"]),
]


@pytest.mark.parametrize(
    ("module_name", "existing", "extra"), TRAINED_MODEL_FILES, ids=[f"{m.rsplit('.', 1)[-1]}-{f}" for m, f, _ in
                                                                     TRAINED_MODEL_FILES]
)
def test_training_script_refuses_to_overwrite_an_existing_model(module_name, existing, extra, capsys, tmp_path):
    (tmp_path / existing).write_bytes(b"the user's trained model")
    before = tree(tmp_path)
    main = importlib.import_module(module_name).main
    usage_error(capsys, main, ["--quick", "--output-dir", str(tmp_path), *extra], existing, "--overwrite",
                "덮어쓰지 않았")
    assert tree(tmp_path) == before


@pytest.mark.parametrize(
    "module_name",
    ["llm_from_scratch.ch05.gpt_train", "llm_from_scratch.ch06.gpt_class_finetune",
     "llm_from_scratch.ch07.gpt_instruction_finetuning", "llm_from_scratch.ch07.exercise_experiments"],
)
def test_training_scripts_document_overwrite_in_help(module_name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module_name).main(["--help"])
    assert exit_info.value.code == 0
    assert "--overwrite" in capsys.readouterr().out


@pytest.fixture(scope="module")
def gutenberg_run(tmp_path_factory):
    """작은 데이터로 한 스텝 훈련해 체크포인트(model_pg_1.pth)를 만든다: 다른 폴더에서 이어서 훈련할 재료."""
    pretrain = file_module(GUTENBERG / "pretraining_simple.py", "pretraining_simple_under_test")
    base = tmp_path_factory.mktemp("gutenberg")
    data = base / "data"
    data.mkdir()
    (data / "combined_1.txt").write_text(SENTENCES, encoding="utf-8")
    first = base / "first"
    pretrain.main(["--data-dir", str(data), "--output-dir", str(first), "--debug", "--max-steps", "1",
                   "--device", "cpu"])
    return pretrain, data, first / "model_pg_1.pth"


def _users_folder(folder):
    folder.mkdir()
    (folder / "model_pg_final.pth").write_bytes(b"the user's finished model")
    (folder / "train_log.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    return folder


def test_pretraining_resume_refuses_to_overwrite_another_runs_final_model(gutenberg_run, tmp_path):
    pretrain, data, checkpoint = gutenberg_run
    users = _users_folder(tmp_path / "users-run")
    before = tree(tmp_path)
    with pytest.raises(SystemExit, match=r"model_pg_final\.pth, train_log\.csv.*--overwrite"):
        pretrain.main(["--data-dir", str(data), "--output-dir", str(users), "--resume", str(checkpoint), "--debug",
                       "--device", "cpu"])
    assert tree(tmp_path) == before

    # --overwrite 를 주면 이어서 훈련하고, 새 기록은 다른 훈련의 줄 뒤에 붙지 않는다
    pretrain.main(["--data-dir", str(data), "--output-dir", str(users), "--resume", str(checkpoint), "--debug",
                   "--device", "cpu", "--overwrite"])
    assert (users / "model_pg_final.pth").read_bytes() != b"the user's finished model"
    with open(users / "train_log.csv", newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == pretrain.LOG_COLUMNS


def test_pretraining_fresh_run_refuses_a_folder_with_another_runs_log(gutenberg_run, tmp_path, capsys):
    pretrain, data, _ = gutenberg_run
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "train_log.csv").write_text("step,loss\n1,2.0\n", encoding="utf-8")
    before = tree(tmp_path)
    usage_error(capsys, pretrain.main, ["--data-dir", str(data), "--output-dir", str(folder), "--debug"],
                "train_log.csv", "--overwrite")
    assert tree(tmp_path) == before


def test_pretraining_checks_every_file_is_utf8_before_training(gutenberg_run, tmp_path):
    pretrain, _, _ = gutenberg_run
    data = tmp_path / "data"
    data.mkdir()
    (data / "combined_1.txt").write_text(SENTENCES, encoding="utf-8")
    (data / "combined_2.txt").write_bytes(SENTENCES.encode("utf-8") + "café".encode("latin-1"))
    before = tree(tmp_path)
    with pytest.raises(SystemExit, match=r"combined_2\.txt.*UTF-8 텍스트가 아닙니다"):
        pretrain.main(["--data-dir", str(data), "--output-dir", str(tmp_path / "out"), "--debug", "--device", "cpu"])
    assert tree(tmp_path) == before  # out/ 도, 체크포인트도 없다


# ---------------------------------------------------------------------------
# Gutenberg 데이터 준비: UTF-16 책
# ---------------------------------------------------------------------------


def test_prepare_dataset_reads_utf16_with_bom_and_names_utf16_without_bom(tmp_path, capsys):
    prepare = file_module(GUTENBERG / "prepare_dataset.py", "prepare_dataset_under_test")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "with-bom.txt").write_bytes("The first book. ".encode("utf-16") * 1 + SENTENCES.encode("utf-16-le"))
    (raw / "no-bom.txt").write_bytes(("The second book. " + SENTENCES).encode("utf-16-le"))
    out = tmp_path / "out"
    prepare.main(["--data-dir", str(raw), "--output-dir", str(out)])
    printed = capsys.readouterr().out
    assert "읽지 못한 책 1권" in printed
    assert str(raw / "no-bom.txt") in printed and "NUL" in printed and "UTF-16" in printed
    combined = (out / "combined_1.txt").read_bytes()
    assert b"\x00" not in combined
    assert combined.decode("utf-8").startswith("The first book. The old house")


# ---------------------------------------------------------------------------
# 하이퍼파라미터 탐색 결과 CSV: 잘린 줄에 이어 붙이지 않는다
# ---------------------------------------------------------------------------


def _hparam_rows(hparam, count):
    configs = hparam.grid_configs()[:count]
    return [{**config, "train_loss": "5.1234", "val_loss": "6.2345", "best_val_loss": "6.2000", "seconds": "1.5",
             "status": "완료"} for config in configs]


def _write_results(hparam, path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=hparam.RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize("cut", [3, 50], ids=["cut-3-bytes", "cut-50-bytes"])
def test_hparam_search_refuses_a_results_file_with_a_cut_off_last_row(tmp_path, cut):
    hparam = file_module(ROOT / "ch05" / "05_bonus_hparam_tuning" / "hparam_search.py", "hparam_search_under_test")
    results = tmp_path / "R.csv"
    _write_results(hparam, results, _hparam_rows(hparam, 2))
    results.write_bytes(results.read_bytes()[:-cut])
    before = tree(tmp_path)
    with pytest.raises(SystemExit, match=r"R\.csv 의 3번째 줄이 줄바꿈 없이 끝납니다"):
        hparam.main(["--results", str(results), "--debug", "--max-configs", "1", "--device", "cpu"])
    assert tree(tmp_path) == before


def test_hparam_search_names_a_broken_middle_line(tmp_path):
    hparam = file_module(ROOT / "ch05" / "05_bonus_hparam_tuning" / "hparam_search.py", "hparam_search_under_test")
    rows = _hparam_rows(hparam, 3)
    rows[1]["val_loss"] = "102,5"  # 값이 둘로 갈라져 열이 하나 남는다
    results = tmp_path / "R.csv"
    _write_results(hparam, results, rows)
    text = results.read_text(encoding="utf-8").replace('"102,5"', "102,5")
    results.write_text(text, encoding="utf-8")
    before = tree(tmp_path)
    with pytest.raises(SystemExit, match=r"3번째 줄이 올바른 결과 줄이 아닙니다: 열이 13개보다 많습니다"):
        hparam.main(["--results", str(results), "--debug", "--max-configs", "1", "--device", "cpu"])
    assert tree(tmp_path) == before


# ---------------------------------------------------------------------------
# Llama: 헤드 배치, 설정, 생성, 손상된 파일
# ---------------------------------------------------------------------------


def _llama_pair():
    """4헤드·키값 2그룹 모델의 가중치와, 텐서 모양이 같은 8헤드·4그룹 모델."""
    from llm_from_scratch.llama import Llama3Model

    torch.manual_seed(0)
    source = Llama3Model(TINY_LLAMA)
    state_dict = {}
    for layer, block in enumerate(source.trf_blocks):
        prefix = f"model.layers.{layer}."
        state_dict.update({
            prefix + "self_attn.q_proj.weight": block.att.W_query.weight,
            prefix + "self_attn.k_proj.weight": block.att.W_key.weight,
            prefix + "self_attn.v_proj.weight": block.att.W_value.weight,
            prefix + "self_attn.o_proj.weight": block.att.out_proj.weight,
            prefix + "input_layernorm.weight": block.norm1.weight,
            prefix + "mlp.gate_proj.weight": block.ff.fc1.weight,
            prefix + "mlp.up_proj.weight": block.ff.fc2.weight,
            prefix + "mlp.down_proj.weight": block.ff.fc3.weight,
            prefix + "post_attention_layernorm.weight": block.norm2.weight,
        })
    state_dict["model.embed_tokens.weight"] = source.tok_emb.weight
    state_dict["model.norm.weight"] = source.final_norm.weight
    state_dict["lm_head.weight"] = source.out_head.weight
    state_dict = {key: value.detach().clone().contiguous() for key, value in state_dict.items()}
    other_cfg = {**TINY_LLAMA, "n_heads": 8, "n_kv_groups": 4}
    return state_dict, Llama3Model(other_cfg), other_cfg


HF_CONFIG = {"num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 32, "num_hidden_layers": 2}


def test_llama_loader_checks_head_layout_against_hf_config_json(tmp_path):
    from safetensors.torch import save_file

    from llm_from_scratch.llama import load_llama_safetensors, load_weights_into_llama

    state_dict, model, cfg = _llama_pair()
    save_file(state_dict, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG), encoding="utf-8")
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"n_heads: 모델 8, 체크포인트 4; n_kv_groups: 모델 4, 체크포인트 2"):
        load_weights_into_llama(model, cfg, load_llama_safetensors(tmp_path))
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())  # 아무것도 싣지 않았다


def test_llama_loader_checks_meta_params_json_and_warns_without_config(tmp_path):
    from llm_from_scratch.llama import load_weights_into_llama

    state_dict, model, cfg = _llama_pair()
    params = {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2}
    (tmp_path / "params.json").write_text(json.dumps(params), encoding="utf-8")
    with pytest.raises(ValueError, match=r"n_heads: 모델 8, 체크포인트 4"):
        load_weights_into_llama(model, cfg, state_dict, checkpoint_config=tmp_path)
    with pytest.warns(UserWarning, match=r"헤드 수\(n_heads, n_kv_groups\)를 확인하지 못했습니다"):
        load_weights_into_llama(model, cfg, state_dict)


def test_llama_config_errors_name_the_value():
    from llm_from_scratch.llama import Llama2Model, Llama3Model

    with pytest.raises(ValueError, match=r"n_heads는 1 이상이어야 합니다\(받은 값: 0\)"):
        Llama2Model({**TINY_LLAMA, "n_heads": 0})
    partial = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}
    with pytest.raises(ValueError, match=r"rope_freq의 키가 맞지 않습니다\(빠진 키: \['original_context_length'\]"):
        Llama3Model({**TINY_LLAMA, "rope_freq": partial})


def test_llama_generate_cached_refuses_nan_temperature():
    from llm_from_scratch.llama import Llama3Model, generate_cached

    torch.manual_seed(0)
    model = Llama3Model(TINY_LLAMA).eval()
    with pytest.raises(ValueError, match=r"temperature 는 0 이상의 수여야 합니다\(받은 값: nan\)"):
        generate_cached(model, torch.tensor([[1, 2, 3]]), max_new_tokens=2, temperature=float("nan"))


def test_corrupt_llama_safetensors_is_named(tmp_path):
    from safetensors.torch import save_file

    from llm_from_scratch.llama import load_llama_safetensors

    state_dict, _, _ = _llama_pair()
    path = tmp_path / "model.safetensors"
    save_file(state_dict, str(path))
    path.write_bytes(path.read_bytes()[:-100])
    before = tree(tmp_path)
    with pytest.raises(ValueError, match=r"model\.safetensors 은\(는\) 온전한 safetensors 파일이 아닙니다"):
        load_llama_safetensors(tmp_path)
    path.write_bytes(b"<!DOCTYPE html><html><body>Access denied</body></html>")
    with pytest.raises(ValueError, match=r"model\.safetensors 은\(는\) 온전한 safetensors"):
        load_llama_safetensors(tmp_path)
    assert set(tree(tmp_path)) == set(before)


@pytest.mark.parametrize(
    "content",
    [b"<!DOCTYPE html><html><body>Access denied</body></html>\n", b"IQ== 0\nIg== 1\nIw=="],
    ids=["html", "cut-mid-line"],
)
def test_corrupt_llama3_tokenizer_file_is_named(tmp_path, content):
    from llm_from_scratch.llama import Llama3Tokenizer

    path = tmp_path / "tokenizer.model"
    path.write_bytes(content)
    before = tree(tmp_path)
    with pytest.raises(ValueError, match=r"tokenizer\.model 은\(는\) Llama 3 토크나이저 파일"):
        Llama3Tokenizer(path)
    assert tree(tmp_path) == before


def test_llama3_tokenizer_with_a_cut_rank_is_named(tmp_path):
    from llm_from_scratch.llama import Llama3Tokenizer

    ranks = tiktoken.get_encoding("gpt2")._mergeable_ranks
    lines = [f"{base64.b64encode(token).decode()} {rank}" for token, rank in ranks.items() if rank < 300]
    path = tmp_path / "tokenizer.model"
    path.write_text("\n".join(lines)[:-2], encoding="utf-8")  # 마지막 순위 "299" 가 "2" 로 잘렸다
    with pytest.raises(ValueError, match=r"토큰 순위가 0부터 빈틈없이 이어지지 않습니다"):
        Llama3Tokenizer(path)


def test_corrupt_llama2_sentencepiece_file_is_named(tmp_path):
    from llm_from_scratch.llama import Llama2Tokenizer

    path = tmp_path / "tokenizer.model"
    path.write_bytes(b"<html>not a model</html>")
    with pytest.raises(ValueError, match=r"tokenizer\.model 은\(는\) SentencePiece 모델로 읽히지 않습니다"):
        Llama2Tokenizer(path)


# ---------------------------------------------------------------------------
# DPO
# ---------------------------------------------------------------------------


def test_dpo_loss_refuses_mismatched_shapes_and_nan_beta():
    from llm_from_scratch.dpo import compute_dpo_loss

    a = torch.tensor([-1.0, -2.0, -3.0, -4.0])
    with pytest.raises(ValueError, match=r"model_rejected_logprobs \(4, 1\)"):
        compute_dpo_loss(a, a.unsqueeze(1), a, a, beta=0.1)
    with pytest.raises(ValueError, match=r"beta 는 0보다 큰 유한한 수여야 합니다\(받은 값: nan\)"):
        compute_dpo_loss(a, a, a, a, beta=float("nan"))


def _preference_entry(i):
    return {"instruction": f"Say {i}.", "input": "", "output": f"{i}", "chosen": f"{i}!", "rejected": f"no {i}"}


def test_dpo_loaders_refuse_too_few_or_empty_entries():
    from llm_from_scratch.dpo import create_preference_loaders

    tokenizer = tiktoken.get_encoding("gpt2")
    entries = [_preference_entry(i) for i in range(3)]
    with pytest.raises(ValueError, match=r"훈련 데이터가 3개로 batch_size\(8\)보다 적어"):
        create_preference_loaders(entries, entries, entries, tokenizer, batch_size=8)
    with pytest.raises(ValueError, match=r"훈련 데이터가 0개로 batch_size\(2\)보다 적어"):
        create_preference_loaders([], [], [], tokenizer, batch_size=2)
    with pytest.raises(ValueError, match="검증 데이터가 비어 있습니다"):
        create_preference_loaders(entries, [], entries, tokenizer, batch_size=2)


def test_dpo_training_refuses_an_empty_train_loader():
    from llm_from_scratch.dpo import train_model_dpo

    torch.manual_seed(0)
    policy, reference = GPTModel(TINY_GPT), GPTModel(TINY_GPT)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="훈련 데이터 로더에 배치가 하나도 없어"):
        train_model_dpo(policy, reference, [], [], optimizer, num_epochs=1, beta=0.1, eval_freq=1, eval_iter=1)


def test_dpo_dataset_names_entry_index_and_key_of_a_null_value():
    from llm_from_scratch.dpo import PreferenceDataset

    entries = [_preference_entry(i) for i in range(4)]
    entries[3]["chosen"] = None
    with pytest.raises(TypeError, match=r"선호 데이터 3번 항목의 'chosen' 값은 문자열이어야 합니다\(받은 값: None\)"):
        PreferenceDataset(entries, tiktoken.get_encoding("gpt2"))


# ---------------------------------------------------------------------------
# 책의 모델과 함수: 값을 밝히는 오류
# ---------------------------------------------------------------------------


def test_gpt_model_names_a_token_id_outside_the_vocabulary():
    torch.manual_seed(0)
    model = GPTModel(TINY_GPT).eval()
    with pytest.raises(IndexError, match=r"토큰 ID 50257이\(가\) 어휘 범위\(0 이상 50256 이하\) 밖에 있습니다"):
        model(torch.tensor([[1, 2, 50257]]))
    with pytest.raises(IndexError, match=r"토큰 ID -1이\(가\) 어휘 범위"):
        model(torch.tensor([[-1, 2]]))


def test_gpt_model_names_zero_heads():
    with pytest.raises(ValueError, match=r"n_heads는 1 이상이어야 합니다\(받은 값: 0\)"):
        GPTModel({**TINY_GPT, "n_heads": 0})


def test_classify_review_refuses_zero_max_length_and_special_token_text():
    from llm_from_scratch.ch06 import classify_review

    torch.manual_seed(0)
    model = GPTModel(TINY_GPT)
    tokenizer = tiktoken.get_encoding("gpt2")
    with pytest.raises(ValueError, match=r"max_length는 1 이상이거나 None이어야 합니다\(받은 값: 0\)"):
        classify_review("win cash now", model, tokenizer, "cpu", max_length=0)
    with pytest.raises(ValueError, match=r"'<\|endoftext\|>'이 들어 있습니다\(텍스트: 'win<\|endoftext\|>cash'\)"):
        classify_review("win<|endoftext|>cash", model, tokenizer, "cpu", max_length=8)


def test_calc_loss_loader_refuses_zero_batches():
    from llm_from_scratch.ch05 import calc_loss_loader

    torch.manual_seed(0)
    batches = [(torch.tensor([[1, 2, 3]]), torch.tensor([[2, 3, 4]]))]
    with pytest.raises(ValueError, match=r"num_batches는 1 이상이거나 None\(전부\)이어야 합니다\(받은 값: 0\)"):
        calc_loss_loader(batches, GPTModel(TINY_GPT), "cpu", num_batches=0)


def test_instruction_dataset_names_the_key_holding_a_special_token():
    from llm_from_scratch.ch07 import InstructionDataset

    entries = [{"instruction": "Say hi.", "input": "", "output": "hi<|endoftext|>"}]
    with pytest.raises(ValueError, match=r"'output' 값에 특수 토큰 문자열 '<\|endoftext\|>'이 들어 있습니다"):
        InstructionDataset(entries, tiktoken.get_encoding("gpt2"))


def test_gpt_script_encodes_endoftext_in_the_prompt_as_the_special_token(monkeypatch, capsys):
    module = importlib.import_module("llm_from_scratch.ch04.gpt")
    monkeypatch.setattr(sys, "argv", ["gpt.py", "--quick", "--prompt", "Hello<|endoftext|>", "--max-new-tokens", "1"])
    module.main()
    assert "인코딩된 입력: [15496, 50256]" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# 6장 데이터: 머리글만 있는 CSV, 비어 있는 tsv
# ---------------------------------------------------------------------------


def test_spam_dataset_names_a_header_only_csv(tmp_path):
    from llm_from_scratch.ch06 import SpamDataset

    (tmp_path / "train.csv").write_text("Text,Label\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train\.csv에 머리글\(Text, Label\)만 있고 데이터 행이 없습니다"):
        SpamDataset(tmp_path / "train.csv", tiktoken.get_encoding("gpt2"))


def test_empty_cached_spam_tsv_is_named_and_kept(tmp_path):
    from llm_from_scratch.ch06 import prepare_spam_data

    cached = tmp_path / "sms_spam_collection" / "SMSSpamCollection.tsv"
    cached.parent.mkdir()
    cached.write_bytes(b"")
    before = tree(tmp_path)
    with pytest.raises(ValueError, match=r"SMSSpamCollection\.tsv 이\(가\) 비어 있습니다\(메시지 0개\)"):
        prepare_spam_data(tmp_path)
    assert tree(tmp_path) == before


# ---------------------------------------------------------------------------
# 내려받기: 없는 미러 폴더
# ---------------------------------------------------------------------------


def test_missing_mirror_folder_is_named_instead_of_asking_to_set_it(tmp_path, monkeypatch):
    from llm_from_scratch.download import DownloadError, download_file, prepare_tiktoken_cache

    missing = tmp_path / "no-such-mirror"
    monkeypatch.setenv("LLMFS_DATA_MIRROR", str(missing))
    monkeypatch.setenv("LLMFS_OFFLINE", "1")
    with pytest.raises(DownloadError) as error:
        download_file("https://example.invalid/files/only-online.bin", tmp_path / "only-online.bin")
    message = str(error.value)
    assert f"LLMFS_DATA_MIRROR 가 가리키는 {missing} 은(는) 없는 폴더입니다" in message
    assert "알려 주세요" not in message
    with pytest.raises(DownloadError, match=r"미러로 준 .*no-such-mirror 은\(는\) 없는 폴더입니다"):
        prepare_tiktoken_cache(tmp_path / "cache", mirror=missing)


# ---------------------------------------------------------------------------
# BPE 파일
# ---------------------------------------------------------------------------


@pytest.fixture
def gpt2_bpe_files(tmp_path):
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copyfile(ROOT / "data" / "gpt2" / name, tmp_path / name)
    return tmp_path / "encoder.json", tmp_path / "vocab.bpe"


def test_truncated_encoder_json_is_named(gpt2_bpe_files):
    from llm_from_scratch.bpe import BPETokenizerSimple

    encoder, merges = gpt2_bpe_files
    encoder.write_bytes(encoder.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"encoder\.json 를 JSON 으로 읽지 못했습니다"):
        BPETokenizerSimple().load_vocab_and_merges_from_openai(encoder, merges)


def test_half_vocab_bpe_is_refused_instead_of_blaming_ordinary_words(gpt2_bpe_files):
    from llm_from_scratch.bpe import BPETokenizerSimple

    encoder, merges = gpt2_bpe_files
    lines = merges.read_text(encoding="utf-8").split("\n")
    merges.write_text("\n".join(lines[: len(lines) // 2]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"보통 토큰 25,000개.*vocab\.bpe 가 잘렸거나"):
        BPETokenizerSimple().load_vocab_and_merges_from_openai(encoder, merges)


# ---------------------------------------------------------------------------
# 채팅 앱: 잘린 .pth, HTML .pth
# ---------------------------------------------------------------------------

CHAT_APPS = {
    "ch05": (ROOT / "ch05" / "06_user_interface" / "app_own.py", "model.pth"),
    "ch06": (ROOT / "ch06" / "04_user_interface" / "app.py", "review_classifier.pth"),
    "ch07": (ROOT / "ch07" / "06_user_interface" / "app.py", "gpt2-medium355M-sft.pth"),
}


def _load_chat_app(name, monkeypatch, tmp_path):
    """chainlit 대신 데코레이터만 흉내 낸 모듈로 앱을 읽는다(빠른 모드: 체크포인트가 없으면 작은 모델)."""
    fake = types.ModuleType("chainlit")
    fake.Message = object
    fake.on_chat_start = fake.on_message = lambda func: func
    monkeypatch.setitem(sys.modules, "chainlit", fake)
    monkeypatch.setenv("LLMFS_CHAT_CHECKPOINT_DIR", str(tmp_path / "no-checkpoints"))
    monkeypatch.syspath_prepend(str(ROOT / "ch05" / "06_user_interface"))
    monkeypatch.setattr("llm_from_scratch.utils.QUICK", True)
    return file_module(CHAT_APPS[name][0], f"chat_app_bad_input_{name}")


def _truncated_pth(path):
    torch.manual_seed(0)
    torch.save(GPTModel(TINY_GPT).state_dict(), path)
    path.write_bytes(path.read_bytes()[:2000])


@pytest.mark.parametrize("kind", ["truncated", "html"])
@pytest.mark.parametrize("app_name", sorted(CHAT_APPS))
def test_chat_apps_name_a_broken_checkpoint_without_torch_advice(app_name, kind, monkeypatch, tmp_path):
    app = _load_chat_app(app_name, monkeypatch, tmp_path)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    path = folder / CHAT_APPS[app_name][1]
    if kind == "truncated":
        _truncated_pth(path)
    else:
        path.write_bytes(b"<!DOCTYPE html><html><body>404 Not Found</body></html>")
    before = tree(folder)
    monkeypatch.setattr(app, "SEARCH_DIRS", (folder,))
    model, notice = app.load_model()
    assert model is None
    assert f"{path.resolve()} 은(는) torch.save 로 저장한 가중치 파일로 읽히지 않습니다" in notice
    assert app.TRAIN_SCRIPT in notice
    assert "weights_only" not in notice
    assert tree(folder) == before


# ---------------------------------------------------------------------------
# 7장 데이터 도구: UTF-8 이 아닌 JSON
# ---------------------------------------------------------------------------


def test_find_near_duplicates_names_a_non_utf8_json(tmp_path):
    module = file_module(ROOT / "ch07" / "02_dataset-utilities" / "find_near_duplicates.py", "near_dups_under_test")
    path = tmp_path / "data.json"
    path.write_bytes('[{"instruction": "caf\xe9", "input": "", "output": "x"}]'.encode("latin-1"))
    before = tree(tmp_path)
    with pytest.raises(SystemExit, match=r"data\.json 은\(는\) UTF-8 텍스트가 아닙니다\(22번째 바이트 b'\\xe9'\)"):
        module.main(["--json-file", str(path)])
    assert tree(tmp_path) == before
