"""6장 추가 실험 스크립트(ch06/02_bonus_additional-experiments): 스위치마다 말한 대로 바뀌는지 확인한다."""

import argparse
import importlib.util
import random
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch06 import add_classification_head
from llm_from_scratch.classification import select_logits

SCRIPT = Path(__file__).resolve().parents[1] / "ch06" / "02_bonus_additional-experiments" / "additional_experiments.py"


def _load():
    spec = importlib.util.spec_from_file_location("additional_experiments", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ae = _load()


def _gpt2_small_classifier(trainable_layers):
    """진짜 크기의 GPT-2 124M 분류기를 meta 장치에 만든다(메모리·시간 없이 파라미터만 센다)."""
    with torch.device("meta"):
        model = GPTModel(ae.model_config("gpt2-small (124M)"))
        add_classification_head(model, num_classes=2)
        ae.set_trainable_layers(model, trainable_layers, lora_rank=16, lora_alpha=16)
    return ae.count_trainable(model)


def test_trainable_parameter_counts_for_gpt2_small():
    head = 768 * 2 + 2
    final_norm = 2 * 768
    block = (4 * 768 * 768 + 4 * 768) + (2 * 768 * 3072 + 3072 + 768) + 2 * 2 * 768  # qkv 편향 포함
    assert _gpt2_small_classifier("all") == 124_441_346  # 책(부록 E)의 숫자
    assert _gpt2_small_classifier("last_layer") == head
    assert _gpt2_small_classifier("last_block") == block + final_norm + head == 7_090_946
    assert _gpt2_small_classifier("last_two_blocks") == 2 * block + final_norm + head
    assert _gpt2_small_classifier("lora") == 2_666_528  # 책(부록 E): 랭크 16, alpha 16
    assert _gpt2_small_classifier("lora_alternative") == 2_666_528


def _tiny_classifier(seed=0):
    torch.manual_seed(seed)
    model = GPTModel({**ae.model_config("tiny"), "context_length": 32})
    add_classification_head(model, num_classes=2)
    return model.eval()


def test_lora_alternative_computes_the_same_outputs_as_appendix_e_lora():
    lora = ae.set_trainable_layers(_tiny_classifier(), "lora", lora_rank=4, lora_alpha=2)
    merged = ae.set_trainable_layers(_tiny_classifier(), "lora_alternative", lora_rank=4, lora_alpha=2)
    merged.load_state_dict(lora.state_dict())
    with torch.no_grad():
        for module in lora.modules():
            if hasattr(module, "B"):
                module.B.normal_()  # B 가 0 이면 두 구현 모두 원래 모델과 같아 비교가 되지 않는다
    merged.load_state_dict(lora.state_dict())
    x = torch.randint(0, 50257, (2, 10))
    assert isinstance(merged.out_head, ae.LinearWithLoRAMerged)
    assert torch.allclose(lora(x), merged(x), atol=1e-5)


def test_disable_causal_mask_lets_early_tokens_see_later_ones():
    x = torch.randint(0, 50257, (1, 8))
    changed = x.clone()
    changed[0, -1] = (x[0, -1] + 1) % 50257
    model = _tiny_classifier()
    assert torch.allclose(model(x)[0, 0], model(changed)[0, 0])  # 코잘 마스크: 첫 토큰은 마지막 토큰을 못 본다
    ae.disable_causal_mask(model)
    assert all(not block.att.mask.any() for block in model.trf_blocks)
    assert not torch.allclose(model(x)[0, 0], model(changed)[0, 0])


def test_token_positions_and_average_embeddings():
    logits = torch.arange(2 * 4 * 2, dtype=torch.float).view(2, 4, 2)
    inputs = torch.tensor([[5, 6, 50256, 50256], [5, 6, 7, 8]])
    assert torch.equal(select_logits(logits, inputs, "first"), logits[:, 0])
    assert torch.equal(select_logits(logits, inputs, "last"), logits[:, -1])
    assert torch.equal(select_logits(logits, inputs, "flexible"), torch.stack([logits[0, 1], logits[1, 3]]))
    # 원서처럼 패딩까지 평균(추가 실험의 감싸개)과, 진짜 토큰만 평균(IMDb 스크립트)
    assert torch.equal(select_logits(logits, inputs, average_embeddings=True, average_padding=True), logits.mean(dim=1))
    assert torch.equal(select_logits(logits, inputs, average_embeddings=True),
                       torch.stack([logits[0, :2].mean(dim=0), logits[1].mean(dim=0)]))
    assert ae.ClassifierView(torch.nn.Identity(), average_embeddings=True).average_padding is True
    with pytest.raises(ValueError, match="token_pos"):
        select_logits(logits, inputs, "middle")


def test_flexible_position_ignores_how_much_padding_follows():
    classifier = ae.ClassifierView(_tiny_classifier(), token_pos="flexible")
    text = [11, 22, 33]
    short = torch.tensor([text + [50256] * 2])
    long = torch.tensor([text + [50256] * 20])
    assert torch.allclose(classifier(short), classifier(long), atol=1e-6)
    last = ae.ClassifierView(classifier.model, token_pos="last")
    assert not torch.allclose(last(short), last(long))


def _train_once(batch_size, accumulation_steps, inputs, labels, ignore_index=-100):
    model = ae.ClassifierView(_tiny_classifier(seed=1))
    loader = DataLoader(TensorDataset(inputs, labels), batch_size=batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    ae.train_classifier(
        model, loader, loader, optimizer, "cpu", num_epochs=1, eval_freq=100, eval_iter=1,
        accumulation_steps=accumulation_steps, ignore_index=ignore_index, max_steps=1,
    )
    return model.state_dict()


def test_accumulating_k_batches_equals_one_k_times_larger_batch():
    torch.manual_seed(0)
    inputs, labels = torch.randint(0, 50257, (8, 6)), torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    accumulated = _train_once(batch_size=2, accumulation_steps=4, inputs=inputs, labels=labels)
    large_batch = _train_once(batch_size=8, accumulation_steps=1, inputs=inputs, labels=labels)
    untouched = ae.ClassifierView(_tiny_classifier(seed=1)).state_dict()
    assert not torch.allclose(large_batch["model.out_head.weight"], untouched["model.out_head.weight"])
    for name, value in large_batch.items():
        assert torch.allclose(accumulated[name], value, atol=1e-6), name


def test_ignore_index_drops_those_examples_from_the_loss_and_the_update():
    torch.manual_seed(0)
    inputs = torch.randint(0, 50257, (4, 6))
    with_ignored = _train_once(4, 1, inputs, torch.tensor([0, 1, 7, 7]), ignore_index=7)
    only_labelled = _train_once(2, 1, inputs[:2], torch.tensor([0, 1]))
    for name, value in only_labelled.items():
        assert torch.allclose(with_ignored[name], value, atol=1e-6), name
    assert ae.parse_args(["--ignore-index", "7"]).ignore_index == 7


def test_context_length_choices_and_no_padding(tmp_path):
    import pandas as pd
    import tiktoken

    texts = ["short one", "a somewhat longer message than the first", "mid size text"]
    for name in ("train.csv", "validation.csv", "test.csv"):
        pd.DataFrame({"Text": texts, "Label": [0, 1, 0]}).to_csv(tmp_path / name, index=False)
    tokenizer = tiktoken.get_encoding("gpt2")
    longest = max(len(tokenizer.encode(t)) for t in texts)

    def loaders(context_length, no_padding=False, batch_size=1):
        return ae.create_loaders(tmp_path, tokenizer, context_length, 64, batch_size, no_padding, seed=123)

    assert loaders("longest")[0].dataset.max_length == longest
    assert loaders("model_context_length")[0].dataset.max_length == 64
    assert loaders(4)[0].dataset.max_length == 4
    assert loaders(500)[0].dataset.max_length == 64  # 모델의 문맥 길이를 넘지 않는다
    lengths = sorted(len(x) for x, _ in loaders("longest", no_padding=True)[1].dataset)
    assert lengths == sorted(len(tokenizer.encode(t)) for t in texts)
    assert ae.parse_args(["--no-padding", "--batch-size", "8"]).batch_size == 1
    assert ae.parse_context_length("model_context_length") == "model_context_length"
    assert ae.parse_context_length("128") == 128
    with pytest.raises(argparse.ArgumentTypeError, match=r"--context-length 는 .*양의 정수여야 합니다\(받은 값: '0'\)"):
        ae.parse_context_length("0")


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["--accumulation-steps", "0"], "--accumulation-steps"), (["--lora-rank", "0"], "--lora-rank"),
     (["--trainable-layers", "some"], "--trainable-layers"), (["--context-length", "-3"], "--context-length")],
)
def test_bad_arguments_are_refused_before_any_work(capsys, argv, named):
    with pytest.raises(SystemExit):
        ae.parse_args(argv)
    assert named in capsys.readouterr().err


def test_quick_run_trains_exactly_the_lora_parameters_of_the_tiny_model(tmp_path):
    rank = 2
    result = ae.main(["--quick", "--output-dir", str(tmp_path), "--trainable-layers", "lora", "--lora-rank", str(rank),
                      "--trainable-token-pos", "flexible", "--accumulation-steps", "2", "--disable-causal-mask"])
    linears = [m for m in _tiny_classifier().modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2 * 6 + 1  # 블록마다 어텐션 4개 + 피드포워드 2개, 그리고 분류 헤드
    assert result["trainable_params"] == sum(rank * (m.in_features + m.out_features) for m in linears)
    assert (tmp_path / "train.csv").is_file()


def _write_spam_collection(folder, num_messages=150):
    """6장 형식(탭 구분 ham/spam)의 작은 SMS 모음. 스팸에는 prize, 햄에는 lunch 가 들어 있어 단어 하나로 나뉜다."""
    rng = random.Random(0)
    neutral = ["see", "you", "at", "the", "call", "me", "now", "today", "ok", "home"]
    lines = []
    for i in range(num_messages):
        label = "spam" if i % 3 == 0 else "ham"
        words = [rng.choice(neutral) for _ in range(rng.randint(3, 6))] + ["prize" if label == "spam" else "lunch"]
        rng.shuffle(words)
        lines.append(f"{label}\t{' '.join(words)}")
    path = folder / "sms_spam_collection" / "SMSSpamCollection.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_full_run_on_a_separable_spam_set_beats_the_majority_class(tmp_path):
    import pandas as pd

    _write_spam_collection(tmp_path)  # 6장의 prepare_spam_data 가 내려받지 않고 이 파일로 CSV를 만든다
    result = ae.main(["--no-quick", "--output-dir", str(tmp_path), "--weights", "random", "--model-size", "tiny",
                      "--lr", "2e-3", "--num-epochs", "2", "--eval-freq", "1000", "--eval-iter", "1",
                      "--context-length", "longest_training_example"])
    test_labels = pd.read_csv(tmp_path / "test.csv")["Label"]
    majority = pd.read_csv(tmp_path / "train.csv")["Label"].mode()[0]
    assert result["test"] >= 0.9
    assert result["test"] > (test_labels == majority).mean() + 0.3


def test_existing_csvs_are_used_and_a_partial_set_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "train.csv").write_text("mine")
    with pytest.raises(SystemExit):
        ae.parse_args(["--output-dir", str(tmp_path)])
    assert "train.csv 만 있습니다" in capsys.readouterr().err
    assert (tmp_path / "train.csv").read_text() == "mine"
