"""6장 IMDb 분류 보너스(ch06/03_bonus_imdb-classification): 안전한 압축 풀기, 분할, GPT·BERT 계열·로지스틱 회귀.

IMDb 압축 파일과 허브 모델은 받을 수 없으므로, 작은 tar 파일과 가짜 리뷰 CSV, 여기서 만든 작은 무작위 모델과
여기서 훈련한 WordPiece 토크나이저로 같은 코드 경로를 돌린다.
"""

import importlib.util
import io
import tarfile
from pathlib import Path

import pandas as pd
import pytest

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


def test_gpt_classifier_runs_on_the_csvs_with_chapter_6_code(tmp_path):
    train_gpt = _load("train_gpt")
    accuracies = train_gpt.main(["--quick", "--data-dir", str(_write_csvs(tmp_path)), "--context-length", "32"])
    assert set(accuracies) == {"train", "validation", "test"}
    assert all(0.0 <= value <= 1.0 for value in accuracies.values())


def _tiny_tokenizer(folder):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(_reviews(200)["Text"], trainers.WordPieceTrainer(vocab_size=200,
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


def test_bert_path_trains_a_local_tiny_model_without_the_hub(tmp_path):
    bert = _load("train_bert_hf")
    model_dir = tmp_path / "tiny-bert"
    _tiny_tokenizer(model_dir)
    _tiny_model("bert").save_pretrained(model_dir)
    data_dir = _write_csvs(tmp_path / "data")
    accuracies = bert.main(["--quick", "--model", str(model_dir), "--data-dir", str(data_dir),
                            "--trainable-layers", "last_block", "--max-length", "32"])
    assert all(0.0 <= value <= 1.0 for value in accuracies.values())
    assert bert.resolve_model_name("deberta-v3") == "microsoft/deberta-v3-base"
    with pytest.raises(ValueError, match="알 수 없는 모델"):
        bert.resolve_model_name("gpt-9")
