"""6장: 스팸 데이터 준비, SpamDataset·로더, 분류 손실·정확도, 훈련, classify_review, 스크립트."""

import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import tiktoken
import torch

from llm_from_scratch import ch05, ch06
from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch06 import (
    SpamDataset,
    add_classification_head,
    calc_accuracy_loader,
    calc_loss_batch,
    classify_review,
    create_spam_dataloaders,
    load_pretrained_gpt2,
    prepare_spam_data,
    read_spam_collection,
    safe_extract_zip,
    train_classifier_simple,
)

CHAPTER_DIR = Path(__file__).resolve().parents[1] / "ch06" / "01_main-chapter-code"
SCRIPT = CHAPTER_DIR / "gpt_class_finetune.py"

TINY_CFG = {
    "vocab_size": 50257,
    "context_length": 32,
    "emb_dim": 32,
    "n_heads": 2,
    "n_layers": 1,
    "drop_rate": 0.0,
    "qkv_bias": True,
}


@pytest.fixture(scope="module")
def tokenizer():
    return tiktoken.get_encoding("gpt2")


@pytest.fixture(scope="module")
def spam_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spam")
    prepare_spam_data(folder)
    return folder


@pytest.fixture(scope="module")
def synthetic_models_dir(tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("models")
    ch05.write_synthetic_gpt2_checkpoint(models_dir, "124M")
    return models_dir


def tiny_classifier(seed=123):
    torch.manual_seed(seed)
    model = GPTModel(TINY_CFG)
    return add_classification_head(model, trainable_layers="all", seed=seed)


def write_csv(path, texts, labels):
    pd.DataFrame({"Label": labels, "Text": texts}).to_csv(path, index=None)
    return path


# --- 6.2 데이터 준비 -------------------------------------------------------


def test_raw_counts_read_the_books_way(spam_folder):
    df = read_spam_collection(spam_folder / "sms_spam_collection" / "SMSSpamCollection.tsv")
    assert df["Label"].value_counts().to_dict() == {"ham": 4825, "spam": 747}


def test_balanced_split_sizes_and_label_mapping(spam_folder):
    parts = [pd.read_csv(spam_folder / name) for name in ("train.csv", "validation.csv", "test.csv")]
    assert [len(part) for part in parts] == [1045, 149, 300]
    all_labels = pd.concat(parts)["Label"]
    assert all_labels.value_counts().to_dict() == {0: 747, 1: 747}
    assert list(parts[0].columns) == ["Label", "Text"]


def test_split_is_reproducible(spam_folder, tmp_path):
    prepare_spam_data(tmp_path)
    for name in ("train.csv", "validation.csv", "test.csv"):
        assert (tmp_path / name).read_bytes() == (spam_folder / name).read_bytes()


@pytest.mark.parametrize("bad_member", ["../escape.txt", "inner/../../escape.txt", "/tmp/absolute-escape.txt"])
def test_zip_members_outside_target_are_rejected(tmp_path, bad_member):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr(bad_member, "evil")
    target = tmp_path / "out"
    with pytest.raises(ValueError, match="대상 폴더 밖"):
        safe_extract_zip(archive, target)
    assert not target.exists()  # 하나도 풀지 않았다
    assert not (tmp_path / "escape.txt").exists()


def test_safe_extract_extracts_normal_archive(tmp_path):
    archive = tmp_path / "good.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("sub/a.txt", "hello")
    safe_extract_zip(archive, tmp_path / "out")
    assert (tmp_path / "out" / "sub" / "a.txt").read_text() == "hello"


# --- 6.3 데이터셋과 로더 ----------------------------------------------------


def test_loaders_match_book_figures(spam_folder, tokenizer):
    train_loader, val_loader, test_loader = create_spam_dataloaders(spam_folder, tokenizer)
    assert train_loader.dataset.max_length == 120
    assert val_loader.dataset.max_length == test_loader.dataset.max_length == 120
    assert (len(train_loader), len(val_loader), len(test_loader)) == (130, 19, 38)
    inputs, targets = next(iter(train_loader))
    assert inputs.shape == (8, 120) and targets.shape == (8,)
    assert inputs.dtype == targets.dtype == torch.long


def test_pad_to_model_context(spam_folder, tokenizer):
    train_loader, _, test_loader = create_spam_dataloaders(spam_folder, tokenizer, max_length=1024)
    assert train_loader.dataset.max_length == test_loader.dataset.max_length == 1024
    inputs, _ = next(iter(test_loader))
    assert inputs.shape == (8, 1024)
    assert (inputs[:, -1] == 50256).all()  # 모든 SMS 는 1024 토큰보다 짧으므로 끝은 패딩이다


def test_context_length_caps_longest_text(spam_folder, tokenizer):
    train_loader, val_loader, _ = create_spam_dataloaders(spam_folder, tokenizer, context_length=64)
    assert train_loader.dataset.max_length == val_loader.dataset.max_length == 64


def test_missing_column_gives_clear_error(tmp_path, tokenizer):
    path = tmp_path / "broken.csv"
    pd.DataFrame({"Text": ["hello"]}).to_csv(path, index=None)
    with pytest.raises(ValueError, match="broken.csv에 Label 열이 없습니다"):
        SpamDataset(path, tokenizer)


def test_text_labels_give_clear_error(tmp_path, tokenizer):
    path = write_csv(tmp_path / "raw.csv", ["hello", "win"], ["ham", "spam"])
    with pytest.raises(ValueError, match="Label 열은 정수"):
        SpamDataset(path, tokenizer)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "EmptyDataError"), ("Label,Text\n0,caf\xe9\n".encode("latin-1"), "UnicodeDecodeError")],
    ids=["empty", "not-utf8"],
)
def test_unreadable_csv_gives_korean_error_naming_the_file(tmp_path, tokenizer, content, reason):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"bad.csv을\\(를\\) CSV로 읽지 못했습니다\\({reason}\\)"):
        SpamDataset(path, tokenizer)


def test_labels_outside_num_classes_are_refused(tmp_path, tokenizer):
    path = write_csv(tmp_path / "labels.csv", ["a", "b", "c"], [0, 2, -1])
    with pytest.raises(ValueError, match=r"labels.csv의 Label 값 \[-1, 2\]이\(가\) 클래스 범위\(0 이상 2 미만\)"):
        SpamDataset(path, tokenizer)
    three_classes = write_csv(tmp_path / "three.csv", ["a", "b", "c"], [0, 2, 1])
    assert len(SpamDataset(three_classes, tokenizer, num_classes=3)) == 3


def test_classification_loss_refuses_labels_outside_the_head():
    model = tiny_classifier()
    with pytest.raises(ValueError, match=r"레이블은 0 이상 2\(분류 헤드의 클래스 수\) 미만.*\[0, 5\]"):
        calc_loss_batch(torch.randint(0, 50257, (2, 6)), torch.tensor([0, 5]), model, "cpu")


def test_empty_and_too_long_texts_are_padded_or_truncated(tmp_path, tokenizer):
    path = write_csv(tmp_path / "edge.csv", ["", "hello " * 100, "hi"], [0, 1, 0])
    dataset = SpamDataset(path, tokenizer, max_length=16)
    assert len(dataset) == 3
    for i in range(3):
        inputs, _ = dataset[i]
        assert inputs.shape == (16,)
    assert (dataset[0][0] == 50256).all()  # 빈 텍스트는 전부 패딩
    assert (dataset[1][0] != 50256).all()  # 긴 텍스트는 잘렸다
    assert SpamDataset(path, tokenizer).max_length == len(tokenizer.encode("hello " * 100))


def test_all_empty_texts_still_give_length_one(tmp_path, tokenizer):
    path = write_csv(tmp_path / "empty.csv", ["", ""], [0, 1])
    assert SpamDataset(path, tokenizer).max_length == 1


# --- 6.6 손실과 정확도 -----------------------------------------------------


def test_package_calc_loss_batch_is_the_classification_loss():
    # 5장과 이름이 같지만, ch06 의 것은 마지막 토큰의 로짓과 클래스 레이블의 손실이다
    assert ch06.calc_loss_batch is not ch05.calc_loss_batch
    model = tiny_classifier()
    inputs = torch.randint(0, 50257, (4, 10))
    targets = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        loss = calc_loss_batch(inputs, targets, model, "cpu")
        expected = torch.nn.functional.cross_entropy(model(inputs)[:, -1, :], targets)
        first = calc_loss_batch(inputs, targets, model, "cpu", token_idx=0)
        expected_first = torch.nn.functional.cross_entropy(model(inputs)[:, 0, :], targets)
    assert torch.equal(loss, expected)
    assert torch.equal(first, expected_first)


def test_classification_head_freezes_as_in_the_book():
    torch.manual_seed(123)
    model = add_classification_head(GPTModel(TINY_CFG))
    assert model.out_head.out_features == 2
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable
    assert all(name.startswith(("trf_blocks.0.", "final_norm.", "out_head.")) for name in trainable)
    assert not model.tok_emb.weight.requires_grad
    with pytest.raises(ValueError, match="trainable_layers"):
        add_classification_head(model, trainable_layers="some")


def test_finetuning_raises_accuracy_on_toy_set(synthetic_models_dir, tmp_path, tokenizer):
    ham = ["see you at lunch", "ok thanks mate", "call me later love", "are you home yet"]
    spam = ["WIN FREE CASH NOW", "claim your PRIZE txt WIN", "FREE entry WIN cash", "URGENT you WIN a prize"]
    path = write_csv(tmp_path / "toy.csv", ham + spam, [0] * 4 + [1] * 4)
    dataset = SpamDataset(path, tokenizer)
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=False)

    model, cfg = load_pretrained_gpt2(synthetic_models_dir, "124M")
    assert cfg["qkv_bias"] is True
    add_classification_head(model, trainable_layers="all")
    before = calc_accuracy_loader(loader, model, "cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    train_classifier_simple(model, loader, loader, optimizer, "cpu", num_epochs=25, eval_freq=50, eval_iter=1)
    after = calc_accuracy_loader(loader, model, "cpu")
    assert after > before
    assert after == 1.0


def test_max_steps_stops_training(tmp_path, tokenizer):
    path = write_csv(tmp_path / "toy.csv", ["a", "b", "c", "d"], [0, 1, 0, 1])
    loader = torch.utils.data.DataLoader(SpamDataset(path, tokenizer), batch_size=1)
    model = tiny_classifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    *_, examples_seen = train_classifier_simple(model, loader, loader, optimizer, "cpu", 3, 1, 1, max_steps=3)
    assert examples_seen == 3
    with pytest.raises(ValueError, match="max_steps"):
        train_classifier_simple(model, loader, loader, optimizer, "cpu", 1, 1, 1, max_steps=0)


# --- 6.8 분류기로 쓰기 -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "max_length", "expected_length"),
    [("", None, 1), ("", 16, 16), ("free " * 500, None, 32), ("free " * 500, 16, 16), ("free " * 500, 5000, 32),
     ("Hey, are we still on for dinner?", 16, 16), ("Hey, are we still on for dinner?", 5000, 32)],
)
def test_classify_review_pads_and_truncates_then_labels_the_models_choice(tokenizer, text, max_length,
                                                                         expected_length):
    model = tiny_classifier()
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    label = classify_review(text, model, tokenizer, "cpu", max_length=max_length)
    [ids] = seen
    # 문맥 길이(32)보다 긴 텍스트는 자르고, max_length 까지 50256 으로 채운다(빈 텍스트도 토큰 하나는 있다)
    ids_of_text = tokenizer.encode(text)[:expected_length]
    assert ids.tolist() == [ids_of_text + [50256] * (expected_length - len(ids_of_text))]
    with torch.no_grad():
        predicted = torch.argmax(model(ids)[:, -1, :], dim=-1).item()
    assert label == ("spam" if predicted == 1 else "not spam")


def test_classifier_trained_on_quick_spam_data_beats_the_majority_class_on_held_out_data(spam_folder, tokenizer):
    # 작은 GPT(1층, 32차원)를 저장소의 스팸 데이터로 1 에포크(몇 초) 훈련하면 테스트 세트에서 다수 클래스보다 낫다
    train_loader, val_loader, test_loader = create_spam_dataloaders(spam_folder, tokenizer, context_length=32)
    labels = torch.cat([target for _, target in test_loader]).float()
    majority = max(labels.mean().item(), 1 - labels.mean().item())
    model = tiny_classifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    train_classifier_simple(model, train_loader, val_loader, optimizer, "cpu", num_epochs=1, eval_freq=1000,
                            eval_iter=1)
    assert calc_accuracy_loader(test_loader, model, "cpu") > majority + 0.15


def test_classify_review_pads_like_training(tokenizer):
    # 패딩 길이를 맞추면 classify_review 의 예측이 데이터셋 경로의 예측과 같다
    model = tiny_classifier(seed=7)
    text = "You are a winner you have been specially selected to receive $1000 cash"
    ids = tokenizer.encode(text)
    padded = torch.tensor([ids + [50256] * (20 - len(ids))])
    with torch.no_grad():
        label = torch.argmax(model(padded)[:, -1, :], dim=-1).item()
    assert classify_review(text, model, tokenizer, "cpu", max_length=20) == ("spam" if label == 1 else "not spam")


# --- 스크립트 ---------------------------------------------------------------


def test_script_help():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    for option in ("--device", "--quick", "--max-steps", "--context-length", "--trainable-layers", "--use-token"):
        assert option in result.stdout


def test_script_runs_in_quick_mode(tmp_path):
    env = {**os.environ, "LLMFS_QUICK": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--output-dir", str(tmp_path), "--device", "cpu"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "130 / 19 / 38" in result.stdout
    for name in ("review_classifier.pth", "loss-plot.pdf", "accuracy-plot.pdf", "train.csv"):
        assert (tmp_path / name).is_file(), name
    reported = {name: float(value) / 100 for name, value in re.findall(r"(훈련|검증|테스트) 정확도: ([\d.]+)%$",
                                                                        result.stdout, flags=re.MULTILINE)}
    # 보고한 정확도는 저장한 모델의 것이다(빠른 모드: 배치 4개), 그리고 훈련이 실제로 가중치를 바꿨다
    saved = _saved_accuracies(tmp_path, tmp_path / "gpt2-synthetic", max_length=None, token_idx=-1)
    assert set(reported) == {"훈련", "검증", "테스트"}
    assert reported["검증"] == pytest.approx(saved["validation"], abs=5e-5)
    assert reported["테스트"] == pytest.approx(saved["test"], abs=5e-5)


def _saved_accuracies(folder, models_dir, max_length, token_idx):
    """스크립트가 ``folder`` 에 저장한 분류기를 다시 읽어, 빠른 모드처럼 배치 4개로 잰 검증·테스트 정확도.

    훈련 로더는 섞으므로 배치 4개의 정확도가 섞는 순서에 달려 있어 비교하지 않는다.
    """
    tokenizer = tiktoken.get_encoding("gpt2")
    model, cfg = load_pretrained_gpt2(models_dir, "124M")
    add_classification_head(model, num_classes=2)
    untrained = {key: value.clone() for key, value in model.state_dict().items()}
    model.load_state_dict(torch.load(folder / "review_classifier.pth", map_location="cpu", weights_only=True))
    assert not torch.equal(model.out_head.weight, untrained["out_head.weight"])  # 훈련이 헤드를 바꿨다
    loaders = create_spam_dataloaders(folder, tokenizer, max_length=max_length, context_length=cfg["context_length"])
    return {name: calc_accuracy_loader(loader, model, "cpu", num_batches=4, token_idx=token_idx)
            for name, loader in zip(("train", "validation", "test"), loaders) if name != "train"}


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("gpt_class_finetune", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_exercise_options(script, tmp_path, synthetic_models_dir, capsys):
    # 연습문제 6.1–6.3 옵션을 한꺼번에: 모델 문맥 길이까지 패딩, 모든 층 훈련, 첫 번째 토큰
    options = ["--context-length", "model", "--trainable-layers", "all", "--use-token", "first"]
    common = ["--quick", "--output-dir", str(tmp_path), "--models-dir", str(synthetic_models_dir), "--device", "cpu"]
    accuracies = script.main(common + options)
    output = capsys.readouterr().out
    assert "입력 길이: 256 토큰" in output  # 합성 체크포인트의 문맥 길이까지 채웠다
    assert "훈련할 파라미터: 3,333,058개" in output  # 모든 층(합성 모델 전체 + 2 클래스 헤드)
    saved = _saved_accuracies(tmp_path, synthetic_models_dir, max_length=256, token_idx=0)
    assert set(accuracies) == {"train", "validation", "test"}
    assert (accuracies["validation"], accuracies["test"]) == (saved["validation"], saved["test"])


@pytest.mark.parametrize("argv", [["--use-token", "middle"], ["--batch-size", "0"], ["--max-steps", "-1"]])
def test_script_rejects_bad_options(script, argv, capsys):
    with pytest.raises(SystemExit) as excinfo:
        script.parse_args(argv)
    assert excinfo.value.code != 0
    assert argv[1] in capsys.readouterr().err
