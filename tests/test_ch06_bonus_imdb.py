"""6장 IMDb 분류 보너스(ch06/03_bonus_imdb-classification): 안전한 압축 풀기, 분할, GPT·BERT 계열·로지스틱 회귀.

IMDb 압축 파일과 허브 모델은 받을 수 없으므로, 작은 tar 파일과 가짜 리뷰 CSV, 여기서 만든 작은 무작위 모델과
여기서 훈련한 WordPiece 토크나이저로 같은 코드 경로를 돌린다.
"""

import importlib.util
import io
import random
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from support import korean

FOLDER = Path(__file__).resolve().parents[1] / "ch06" / "03_bonus_imdb-classification"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"imdb_{name}", FOLDER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prepare = _load("download_prepare_dataset")


def _reviews(num_reviews, seed=0):
    return prepare.synthetic_reviews(num_reviews, seed=seed)


def _write_csvs(folder, num_reviews=120):
    folder.mkdir(parents=True, exist_ok=True)
    prepare.split_and_save(_reviews(num_reviews), folder)
    return folder


# --- 압축 파일과 분할 -----------------------------------------------------------------


def _add_file(archive, name, text):
    data = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def _make_tar(path, extra=None):
    with tarfile.open(path, "w:gz") as archive:
        for split in ("train", "test"):
            for label in ("pos", "neg"):
                for i in range(5):
                    _add_file(archive, f"aclImdb/{split}/{label}/{i}_7.txt", f"{label} review {i} <br />")
        if extra is not None:
            extra(archive)
    return path


def test_archive_is_extracted_read_and_split(tmp_path):
    tar_path = _make_tar(tmp_path / "aclImdb_v1.tar.gz")
    out = tmp_path / "out"
    prepare.safe_extract_tar(tar_path, out)
    df = prepare.read_reviews(out / "aclImdb")
    assert len(df) == 20 and df["Label"].sum() == 10
    assert set(df.loc[df["Label"] == 1, "Text"].str[:3]) == {"pos"}
    paths = prepare.main(["--output-dir", str(out)])  # 압축이 이미 풀려 있으므로 내려받지 않는다
    assert [len(pd.read_csv(p)) for p in paths] == [14, 2, 4]
    assert list(pd.read_csv(paths[0]).columns) == ["Text", "Label"]


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink", "hardlink"])
def test_archive_member_escaping_the_folder_is_refused_and_nothing_is_written(tmp_path, kind):
    def add_bad(archive):
        if kind == "parent":
            _add_file(archive, "aclImdb/../../escaped.txt", "x")
        elif kind == "absolute":
            _add_file(archive, str(tmp_path / "absolute.txt"), "x")
        else:
            info = tarfile.TarInfo("aclImdb/link")
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = "/etc/passwd"
            archive.addfile(info)

    tar_path = _make_tar(tmp_path / "bad.tar.gz", extra=add_bad)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="풀지 않았습니다"):
        prepare.safe_extract_tar(tar_path, out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz"]


def test_split_is_35000_5000_10000_with_seed_123(tmp_path):
    df = pd.DataFrame({"Text": [f"review {i}" for i in range(50_000)], "Label": [i % 2 for i in range(50_000)]})
    paths = prepare.split_and_save(df, tmp_path)
    parts = [pd.read_csv(p) for p in paths]
    assert [len(p) for p in parts] == [35_000, 5_000, 10_000]
    expected_first = df.sample(frac=1, random_state=123).iloc[0]["Text"]
    assert parts[0].iloc[0]["Text"] == expected_first
    assert len(set().union(*(set(p["Text"]) for p in parts))) == 50_000


def test_existing_csvs_are_not_overwritten(tmp_path, capsys):
    (tmp_path / "train.csv").write_text("mine")
    prepare.main(["--output-dir", str(tmp_path)])
    assert (tmp_path / "train.csv").read_text() == "mine" and "이미 있어" in capsys.readouterr().out


# --- 세 분류기 -----------------------------------------------------------------------


def test_logistic_regression_beats_the_dummy_baseline(tmp_path):
    logreg = _load("train_sklearn_logreg")
    results = logreg.main(["--data-dir", str(_write_csvs(tmp_path, 400))])
    test_labels = pd.read_csv(tmp_path / "test.csv")["Label"]
    majority = pd.read_csv(tmp_path / "train.csv")["Label"].mode()[0]
    assert results["dummy"]["test"] == pytest.approx((test_labels == majority).mean())
    assert results["logreg"]["test"] > 0.9 > results["dummy"]["test"]


def _separable_rows(num_rows, seed, cues=("terrible", "wonderful")):
    """레이블이 단어 하나(cues[0] 이면 0, cues[1] 이면 1)로 정해지는 짧은 텍스트. 나머지 단어는 무작위 중립 단어."""
    rng = random.Random(seed)
    neutral = ["the", "movie", "film", "story", "plot", "actor", "scene", "was", "and", "it"]
    rows = []
    for i in range(num_rows):
        label = i % 2
        words = [rng.choice(neutral) for _ in range(rng.randint(3, 6))] + [cues[label]]
        rng.shuffle(words)
        rows.append({"Text": " ".join(words), "Label": label})
    return pd.DataFrame(rows)


def _separable_csvs(folder, sizes=(96, 40, 40)):
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (name, size) in enumerate(zip(("train", "validation", "test"), sizes, strict=True)):
        _separable_rows(size, seed).to_csv(folder / f"{name}.csv", index=False)
    return folder


def _majority_share(folder):
    """훈련 세트에서 가장 많은 클래스만 답할 때의 테스트 정확도."""
    majority = pd.read_csv(folder / "train.csv")["Label"].mode()[0]
    return (pd.read_csv(folder / "test.csv")["Label"] == majority).mean()


train_gpt = _load("train_gpt")


def _tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return train_gpt.build_model("random", "tiny", "없는-폴더", "all", seed=seed).eval()


def test_gpt_classifier_learns_a_separable_set_beyond_the_majority_class(tmp_path):
    data_dir = _separable_csvs(tmp_path)
    accuracies = train_gpt.main(["--no-quick", "--data-dir", str(data_dir), "--weights", "random",
                                 "--model-size", "tiny", "--lr", "2e-3", "--num-epochs", "2", "--eval-freq", "1000",
                                 "--eval-iter", "1", "--context-length", "longest_training_example"])
    assert accuracies["test"] >= 0.9
    assert accuracies["test"] > _majority_share(data_dir) + 0.3


def test_weights_random_builds_without_any_checkpoint_and_pretrained_loads_one(tmp_path, monkeypatch):
    from llm_from_scratch.ch05 import write_synthetic_gpt2_checkpoint

    write_synthetic_gpt2_checkpoint(tmp_path / "gpt2", "124M")
    calls = []
    real_loader = train_gpt.load_pretrained_gpt2

    def counting_loader(*args, **kwargs):
        calls.append(args)
        return real_loader(*args, **kwargs)

    monkeypatch.setattr(train_gpt, "load_pretrained_gpt2", counting_loader)
    pretrained = train_gpt.build_model("pretrained", "124M", tmp_path / "gpt2", "last_block")
    assert len(calls) == 1
    reloaded, _cfg = real_loader(tmp_path / "gpt2", "124M")
    assert torch.equal(pretrained.tok_emb.weight, reloaded.tok_emb.weight)

    random_model = train_gpt.build_model("random", "tiny", tmp_path / "gpt2", "last_block")
    assert len(calls) == 1  # 체크포인트를 읽지 않았다
    assert random_model.tok_emb.weight.shape == pretrained.tok_emb.weight.shape
    assert not torch.allclose(random_model.tok_emb.weight, pretrained.tok_emb.weight)

    data_dir = _separable_csvs(tmp_path / "data", sizes=(16, 8, 8))
    common = ["--no-quick", "--data-dir", str(data_dir), "--max-steps", "1", "--eval-iter", "1",
              "--context-length", "16", "--models-dir", str(tmp_path / "gpt2")]
    train_gpt.main([*common, "--weights", "random", "--model-size", "tiny"])
    assert len(calls) == 1
    train_gpt.main([*common, "--weights", "pretrained"])
    assert len(calls) == 2


def test_trainable_token_pos_first_reads_position_zero_and_last_reads_the_end():
    model = _tiny_gpt()
    x = torch.tensor([[11, 22, 33, 44, 55]])
    changed_tail = x.clone()
    changed_tail[0, 1:] = torch.tensor([66, 77, 88, 99])
    first = train_gpt.ClassifierView(model, "first")
    last = train_gpt.ClassifierView(model, "last")
    with torch.no_grad():
        assert torch.equal(first(x)[:, 0], model(x)[:, 0])
        assert torch.allclose(first(x), first(changed_tail))  # 코잘 마스크: 첫 위치는 뒤의 토큰을 보지 않는다
        assert torch.equal(last(x)[:, 0], model(x)[:, -1])
        assert not torch.allclose(last(x), last(changed_tail))


def test_flexible_and_average_embeddings_use_only_real_tokens():
    model = _tiny_gpt()
    pad = 50256  # <|endoftext|>, 6장의 패딩 토큰
    text = [11, 22, 33]
    short = torch.tensor([text + [pad] * 2])
    long = torch.tensor([text + [pad] * 12])
    flexible = train_gpt.ClassifierView(model, "flexible")
    average = train_gpt.ClassifierView(model, "last", average_embeddings=True)
    with torch.no_grad():
        logits = model(long)
        assert torch.allclose(flexible(long)[0, 0], logits[0, 2], atol=1e-6)
        assert torch.allclose(average(long)[0, 0], logits[0, :3].mean(dim=0), atol=1e-6)
        assert not torch.allclose(average(long)[0, 0], logits[0].mean(dim=0), atol=1e-4)  # 패딩까지 평균한 값과 다르다
        assert torch.allclose(average(short), average(long), atol=1e-6)  # 패딩 양과 상관없다
        assert torch.allclose(flexible(short), flexible(long), atol=1e-6)


def test_gpt_options_take_reference_spellings_and_refuse_bad_values(tmp_path, capsys):
    data_dir = _separable_csvs(tmp_path, sizes=(4, 2, 2))
    args = train_gpt.parse_args([
        "--no-quick", "--data_dir", str(data_dir), "--model_size", "gpt2-medium (355M)", "--weights", "random",
        "--trainable_layers", "last_layer", "--trainable_token_pos", "flexible", "--average_embeddings",
        "--context_length", "longest_training_example", "--num_epochs", "2", "--learning_rate", "1e-4",
    ])
    assert (args.model_size, args.weights, args.trainable_layers, args.trainable_token_pos) == (
        "355M", "random", "last_layer", "flexible")
    assert args.average_embeddings and args.num_epochs == 2 and args.lr == 1e-4
    assert train_gpt.input_length(args.context_length, 1024) is None  # 가장 긴 훈련 텍스트
    assert train_gpt.input_length(train_gpt.parse_context_length("model_context_length"), 1024) == 1024
    assert train_gpt.input_length(train_gpt.parse_context_length("2000"), 1024) == 1024
    head_only = train_gpt.build_model("random", "tiny", "없는-폴더", "last_layer")
    assert {n for n, p in head_only.named_parameters() if p.requires_grad} == {"out_head.weight", "out_head.bias"}
    for argv, named in ((["--context-length", "longest_ex"], "'longest_ex'"), (["--model-size", "9B"], "'9B'"),
                        (["--no-quick", "--model-size", "tiny"], "--weights random")):
        with pytest.raises(SystemExit):
            train_gpt.parse_args(["--data-dir", str(data_dir), *argv])
        err = capsys.readouterr().err
        assert named in err and korean(err)


def _tiny_tokenizer(folder, texts=None):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    texts = _reviews(200)["Text"] if texts is None else texts
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=200,
                                                                                    special_tokens=special))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(folder)
    return fast


TINY = {"vocab_size": 200, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 37, "max_position_embeddings": 64, "num_labels": 2}
FAMILIES = {
    "bert": TINY,
    "roberta": {**TINY, "pad_token_id": 0},
    "deberta-v2": TINY,
    "distilbert": {"vocab_size": 200, "dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 37,
                   "max_position_embeddings": 64, "num_labels": 2},
    "modernbert": {**TINY, "pad_token_id": 0, "global_attn_every_n_layers": 1, "local_attention": 16},
}


def _tiny_model(family):
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(AutoConfig.for_model(family, **FAMILIES[family]))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_trainable_layers_choose_head_last_block_or_all(family):
    bert = _load("train_bert_hf")
    counts = {}
    for choice in ("last_layer", "last_block", "all"):
        model = bert.set_trainable_layers(_tiny_model(family), choice)
        counts[choice] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model = _tiny_model(family)
    head = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in model.base_model.parameters())
    last_block = sum(p.numel() for p in bert.encoder_blocks(model)[-1].parameters())
    assert counts["last_layer"] == head
    assert counts["last_block"] >= head + last_block
    assert counts["all"] == sum(p.numel() for p in model.parameters()) > counts["last_block"]


def _tiny_model_dir(folder, family="bert", texts=None):
    """허브 없이 쓸 수 있는 로컬 모델 폴더: 여기서 훈련한 WordPiece 토크나이저 + 작은 무작위 모델."""
    _tiny_tokenizer(folder, texts)
    _tiny_model(family).save_pretrained(folder)
    return folder


bert = _load("train_bert_hf")


def test_bert_path_learns_a_separable_set_beyond_the_majority_class(tmp_path):
    data_dir = _separable_csvs(tmp_path / "data")
    model_dir = _tiny_model_dir(tmp_path / "tiny-bert", texts=pd.read_csv(data_dir / "train.csv")["Text"])
    accuracies = bert.main(["--no-quick", "--model", str(model_dir), "--data-dir", str(data_dir),
                            "--trainable-layers", "all", "--max-length", "32", "--lr", "5e-3", "--num-epochs", "3"])
    assert accuracies["test"] >= 0.9
    assert accuracies["test"] > _majority_share(data_dir) + 0.3


@pytest.mark.parametrize("family", ["bert", "roberta", "modernbert"])
def test_attention_mask_hides_padding_and_turning_it_off_changes_the_logits(tmp_path, family):
    texts = ["the movie was wonderful", " ".join(["the plot and the actor and the scene"] * 5) + " was terrible"]
    model_dir = _tiny_model_dir(tmp_path / family, family, texts=_reviews(200)["Text"].tolist() + texts)
    tokenizer, model = bert.load_model(str(model_dir), "all")
    model.eval()
    df = pd.DataFrame({"Text": texts, "Label": [1, 0]})
    alone = next(iter(bert.make_loader(df.iloc[:1], tokenizer, 64, batch_size=1)))
    labels_off = {"labels"}
    with torch.no_grad():
        reference = model(**{k: v for k, v in alone.items() if k not in labels_off}).logits[0]
        logits = {}
        for use_mask in (True, False):
            batch = next(iter(bert.make_loader(df, tokenizer, 64, batch_size=2, use_attention_mask=use_mask)))
            assert ("attention_mask" in batch) == use_mask
            assert (batch["input_ids"][0] == tokenizer.pad_token_id).sum() > 0  # 짧은 문장 뒤에 패딩이 붙었다
            logits[use_mask] = model(**{k: v for k, v in batch.items() if k not in labels_off}).logits[0]
    # 마스크가 있으면 패딩은 결과를 바꾸지 않고(부동소수 오차만), 없으면 패딩 토큰이 어텐션에 섞여 로짓이 바뀐다.
    # 작은 무작위 모델이라 바뀌는 양 자체는 작지만 마스크가 있을 때의 부동소수 오차보다 훨씬 크다.
    change_with_mask = (logits[True] - reference).abs().max().item()
    change_without_mask = (logits[False] - reference).abs().max().item()
    assert change_with_mask < 1e-6
    assert change_without_mask > 1e-5


def test_bert_model_names_and_reference_options(tmp_path, capsys):
    assert bert.resolve_model_name("deberta-v3") == bert.resolve_model_name("deberta-v3-base") == (
        "microsoft/deberta-v3-base")
    assert bert.resolve_model_name("modernbert-base") == bert.resolve_model_name("modernbert") == (
        "answerdotai/ModernBERT-base")
    assert bert.resolve_model_name("modernbert-large") == "answerdotai/ModernBERT-large"
    with pytest.raises(ValueError, match="알 수 없는 모델 'gpt-9'"):
        bert.resolve_model_name("gpt-9")
    data_dir = _separable_csvs(tmp_path, sizes=(4, 2, 2))
    args = bert.parse_args(["--data_dir", str(data_dir), "--trainable_layers", "last_block", "--num_epochs", "2",
                            "--model", "modernbert-base", "--use_attention_mask", "false", "--learning_rate", "1e-5"])
    assert (args.model_name, args.trainable_layers, args.num_epochs, args.lr) == (
        "answerdotai/ModernBERT-base", "last_block", 2, 1e-5)
    assert args.use_attention_mask is False
    assert bert.parse_args(["--data-dir", str(data_dir)]).use_attention_mask is True
    assert bert.parse_args(["--data-dir", str(data_dir), "--bert_model", "roberta"]).model_name == (
        "FacebookAI/roberta-large")
    for argv, named in ((["--use-attention-mask", "maybe"], "'maybe'"), (["--model", "gpt-9"], "'gpt-9'")):
        with pytest.raises(SystemExit):
            bert.parse_args(["--data-dir", str(data_dir), *argv])
        err = capsys.readouterr().err
        assert named in err and korean(err)


# --- SMS 스팸 데이터로 BERT 계열 미세 튜닝(train_bert_hf_spam.py) ------------------------------


def _spam_collection(folder, num_messages=120):
    """6장 형식의 SMS 모음(탭 구분, ham/spam)을 ``folder/sms_spam_collection/SMSSpamCollection.tsv`` 에 쓴다.

    스팸에는 ``prize``, 햄에는 ``lunch`` 가 들어 있어 단어 하나로 나뉜다. 햄이 스팸보다 많아 6장 코드가 균형을 맞춘다.
    """
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
    return lines


def test_bert_spam_script_prepares_chapter_6_data_and_learns_it(tmp_path):
    spam = _load("train_bert_hf_spam")
    data_dir = tmp_path / "sms"
    lines = _spam_collection(data_dir)
    num_spam = sum(line.startswith("spam") for line in lines)
    model_dir = _tiny_model_dir(tmp_path / "tiny-bert", texts=[line.split("\t")[1] for line in lines])
    accuracies = spam.main(["--no-quick", "--model", str(model_dir), "--data-dir", str(data_dir),
                            "--lr", "5e-3", "--num-epochs", "3", "--max-length", "16"])
    sizes = [len(pd.read_csv(data_dir / f"{name}.csv")) for name in ("train", "validation", "test")]
    balanced = 2 * num_spam  # 6장: 햄을 스팸 수만큼 뽑고 70/10/20으로 나눈다
    assert sizes == [int(balanced * 0.7), int(balanced * 0.1), balanced - int(balanced * 0.7) - int(balanced * 0.1)]
    assert accuracies["test"] >= 0.9
    assert accuracies["test"] > _majority_share(data_dir) + 0.3


def test_bert_spam_script_does_not_overwrite_a_partial_set_of_csvs(tmp_path, capsys):
    spam = _load("train_bert_hf_spam")
    (tmp_path / "train.csv").write_text("mine")
    with pytest.raises(SystemExit):
        spam.parse_args(["--data-dir", str(tmp_path)])
    assert "train.csv 만 있습니다" in capsys.readouterr().err
    assert (tmp_path / "train.csv").read_text() == "mine"
    assert spam.parse_args([]).data_dir == "sms_spam_data"  # IMDb CSV(이 폴더의 train.csv)와 다른 폴더
