"""한국어 보너스: 헌법의 토큰 수(2장 06_korean-tokenization)와 한국어 사전 훈련 스크립트(5장 11_korean-pretraining).

- GPT-2 토크나이저가 헌법 18,884자에 쓰는 토큰 39,442개, 헌법으로 훈련한 BPE 의 토큰 수(어휘 300·1,000·2,000)와 정확한 복원
- Kiwi 형태소 사전 토큰화(``morphemes.py``)와 ``BPETokenizerSimple(pre_tokenizer=...)``
- 노트북이 보여 주는 함수가 폴더의 모듈·스크립트와 같은 코드인지
- ``pretrain_korean.py``: --help, 덮어쓰기 거부, UTF-8 이 아닌 입력, QUICK 훈련에서 손실이 내려가는지
"""

import ast
import importlib.util
import json
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from llm_from_scratch.bpe import BPETokenizerSimple
from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.download import REPO_DATA_DIR, file_sha256, get_gpt2_encoding

REPO_ROOT = Path(__file__).resolve().parent.parent
TOKENIZATION = REPO_ROOT / "ch02" / "06_korean-tokenization"
PRETRAINING = REPO_ROOT / "ch05" / "11_korean-pretraining"
CONSTITUTION = REPO_DATA_DIR / "korean" / "constitution.txt"

# 헌법의 앞 90%로 훈련한 BPE: 어휘 크기 -> (헌법 전체의 토큰 수, 뒤 10%의 토큰 수)
BPE_TOKEN_COUNTS = {300: (29_568, 2_952), 1000: (10_891, 1_174), 2000: (8_170, 1_032)}


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def morphemes():
    return _load(TOKENIZATION / "morphemes.py", "korean_morphemes")


@pytest.fixture(scope="module")
def script():
    return _load(PRETRAINING / "pretrain_korean.py", "pretrain_korean")


@pytest.fixture(scope="module")
def constitution():
    return CONSTITUTION.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def halves(script, constitution):
    return script.split_train_val(constitution)


@pytest.fixture(scope="module")
def bpe(script, halves):
    return {size: script.train_korean_bpe(halves[0], size) for size in BPE_TOKEN_COUNTS}


@pytest.fixture(scope="module")
def splitter(morphemes):
    return morphemes.MorphemeSplitter()


# ---------------------------------------------------------------------------- 데이터와 GPT-2


def test_constitution_copy_is_the_konlpy_file_with_crlf_line_ends():
    data = CONSTITUTION.read_bytes()
    assert len(data) == 45_859
    assert file_sha256(CONSTITUTION) == "69377a88c0e577b37b1373f4496147e995209d5139a993633a8a2776bc0e2ca8"
    assert data.count(b"\r\n") == 356 and data.startswith("대한민국헌법".encode())


def test_gpt2_spends_39442_tokens_on_18884_characters(constitution):
    gpt2 = get_gpt2_encoding()
    assert len(constitution) == 18_884
    ids = gpt2.encode(constitution)
    assert len(ids) == 39_442
    assert gpt2.decode(ids) == constitution


def test_gpt2_has_no_whole_hangul_syllable_token(constitution):
    gpt2 = get_gpt2_encoding()
    pieces = (gpt2.decode_single_token_bytes(i).decode("utf-8", errors="ignore") for i in range(gpt2.n_vocab))
    assert not any("가" <= c <= "힣" for piece in pieces for c in piece)
    syllables = {c for c in constitution if "가" <= c <= "힣"}
    per_syllable = [len(gpt2.encode(s)) for s in syllables]
    assert (len(syllables), per_syllable.count(2), per_syllable.count(3)) == (355, 30, 325)


# ---------------------------------------------------------------------------- 헌법으로 훈련한 BPE


@pytest.mark.parametrize("vocab_size", list(BPE_TOKEN_COUNTS))
def test_korean_bpe_token_counts_and_exact_round_trip(bpe, halves, constitution, vocab_size):
    tokenizer = bpe[vocab_size]
    assert len(tokenizer.vocab) == vocab_size
    assert tokenizer.special_tokens == {"<|endoftext|>": vocab_size - 1}
    ids = tokenizer.encode(constitution)
    assert (len(ids), len(tokenizer.encode(halves[1]))) == BPE_TOKEN_COUNTS[vocab_size]
    assert tokenizer.decode(ids) == constitution
    raw = CONSTITUTION.read_bytes().decode("utf-8")  # 줄바꿈 \r\n 그대로
    assert tokenizer.decode(tokenizer.encode(raw)) == raw


def test_korean_bpe_of_1000_uses_a_third_of_gpt2_tokens_on_unseen_text(bpe, halves):
    unseen = halves[1]
    assert len(get_gpt2_encoding().encode(unseen)) > 3 * len(bpe[1000].encode(unseen))


def test_asking_for_4000_stops_where_the_constitution_runs_out_of_pairs(script, halves):
    with pytest.warns(UserWarning, match="3870개에서 멈췄습니다"):
        tokenizer = script.train_korean_bpe(halves[0], 4000)
    assert len(tokenizer.vocab) == 3870


# ---------------------------------------------------------------------------- 형태소 사전 토큰화

Token = namedtuple("Token", ["start", "len"])


def test_boundaries_split_inside_words_and_keep_the_space_with_the_next_piece(morphemes):
    text = "했다. 국민은"
    # Kiwi 는 '했' 을 '하' + '었' 두 형태소로 내고 둘 다 같은 위치를 가리킨다
    tokens = [Token(0, 1), Token(0, 1), Token(1, 1), Token(2, 1), Token(4, 2), Token(6, 1)]
    boundaries = morphemes.morpheme_boundaries(text, tokens)
    assert boundaries == [1, 2, 3, 6]
    assert morphemes.split_at(text, boundaries) == ["했", "다", ".", " 국민", "은"]


def test_kiwi_splitter_covers_the_constitution_exactly(splitter, constitution):
    pieces = splitter(constitution)
    assert "".join(pieces) == constitution
    assert splitter("모든 국민은 법 앞에 평등하다.") == ["모든", " 국민", "은", " 법", " 앞", "에", " 평등", "하", "다", "."]
    assert splitter("") == [] and splitter("  \n") == ["  \n"]
    with pytest.raises(TypeError, match="문자열"):
        splitter(b"bytes")


def _readable_tokens(tokenizer):
    return {tokenizer.token_bytes(i).decode("utf-8", errors="replace") for i in tokenizer.vocab
            if i not in tokenizer.special_tokens.values()}


def test_morpheme_bpe_round_trips_and_never_merges_across_morphemes(script, splitter, bpe, halves, constitution):
    tokenizer = script.train_korean_bpe(halves[0], 1000, pre_tokenizer=splitter)
    assert len(tokenizer.vocab) == 1000
    ids = tokenizer.encode(constitution)
    assert tokenizer.decode(ids) == constitution
    assert tokenizer.decode(tokenizer.encode(halves[1])) == halves[1]
    # 평범한 BPE 는 어절 ' 국민은' 을 통째로 배우지만, 형태소로 먼저 나누면 ' 국민' + '은' 이다
    assert " 국민은" in _readable_tokens(bpe[1000])
    learned = _readable_tokens(tokenizer)
    assert " 국민은" not in learned and " 국민" in learned
    assert len(ids) > BPE_TOKEN_COUNTS[1000][0]


def test_pre_tokenizer_is_kept_through_training_and_limits_merges():
    text = "가나다라 " * 50
    plain = BPETokenizerSimple().train(text, 269)  # 병합 12번: 음절 넷을 만들고 ' 가나다라' 까지
    per_char = BPETokenizerSimple(pre_tokenizer=list).train(text, 265)  # 글자마다 나눈다: 병합 8번이 전부
    assert per_char.pre_tokenizer is list
    # 병합이 글자 하나(한글은 3바이트) 안에서만 일어났다
    assert max(len(per_char.token_bytes(i)) for i in per_char.bpe_merges.values()) == 3
    assert "가나다라" in _readable_tokens(plain)
    assert per_char.decode(per_char.encode(text)) == text


def test_pre_tokenizer_that_changes_text_or_is_not_callable_is_refused():
    with pytest.raises(TypeError, match="pre_tokenizer"):
        BPETokenizerSimple(pre_tokenizer="kiwi")
    dropping = BPETokenizerSimple(pre_tokenizer=lambda text: text.split())
    with pytest.raises(ValueError, match="pre_tokenizer"):
        dropping.train("국민 은", 260)


# ---------------------------------------------------------------------------- 노트북의 코드 = 모듈의 코드


def _notebook_definitions(notebook):
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    found = {}
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).split("\n")
        # IPython 매직(%pip, !git)은 파이썬 문법이 아니므로 같은 들여쓰기의 pass 로 바꾼다
        source = "\n".join(line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
                           else line for line in lines)
        for node in ast.parse(source).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                found[node.name] = ast.dump(node)
    return found


def _module_definitions(path):
    return {node.name: ast.dump(node) for node in ast.parse(path.read_text(encoding="utf-8")).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


@pytest.mark.parametrize(
    ("notebook", "module", "names"),
    [
        (TOKENIZATION / "korean-tokenization.ipynb", TOKENIZATION / "morphemes.py",
         ["morpheme_boundaries", "split_at", "MorphemeSplitter"]),
        (PRETRAINING / "korean-pretraining.ipynb", PRETRAINING / "pretrain_korean.py",
         ["split_train_val", "train_korean_bpe", "vocab_size_of", "tokens_per_char", "make_loaders", "loss_per_char",
          "pretrain", "sample_texts"]),
    ],
    ids=["korean-tokenization", "korean-pretraining"],
)
def test_notebook_shows_the_same_code_as_its_module(notebook, module, names):
    shown, defined = _notebook_definitions(notebook), _module_definitions(module)
    for name in names:
        assert name in shown, f"{notebook.name}에 {name} 정의가 없습니다"
        assert shown[name] == defined[name], f"{notebook.name}의 {name}이 {module.name}의 코드와 다릅니다"


# ---------------------------------------------------------------------------- pretrain_korean.py


def test_help_describes_the_options(script, capsys):
    with pytest.raises(SystemExit) as stop:
        script.parse_args(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for option in ("--input", "--output-dir", "--overwrite", "--tokenizer", "--vocab-size", "--quick", "UTF-8"):
        assert option in out


def test_existing_outputs_are_not_overwritten_without_overwrite(script, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "model.pth").write_bytes(b"my own model")
    with pytest.raises(SystemExit) as stop:
        script.parse_args(["--output-dir", str(out), "--quick"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "model.pth" in err and "덮어쓰지 않습니다" in err and "--overwrite" in err
    assert (out / "model.pth").read_bytes() == b"my own model"


def test_output_that_would_replace_the_input_is_refused_even_with_overwrite(script, tmp_path, capsys):
    text_file = tmp_path / "model.pth"
    text_file.write_text("대한민국은 민주공화국이다. " * 50, encoding="utf-8")
    with pytest.raises(SystemExit):
        script.parse_args(["--input", str(text_file), "--output-dir", str(tmp_path), "--overwrite"])
    assert "입력 파일" in capsys.readouterr().err
    assert text_file.read_text(encoding="utf-8").startswith("대한민국은")


def test_non_utf8_input_is_refused_with_the_byte_position_and_a_fix(script, tmp_path, capsys):
    cp949 = tmp_path / "헌법-cp949.txt"
    cp949.write_bytes("대한민국은 민주공화국이다.".encode("cp949"))
    with pytest.raises(SystemExit) as stop:
        script.parse_args(["--input", str(cp949), "--output-dir", str(tmp_path / "out")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "UTF-8 텍스트가 아닙니다" in err and "1번째 바이트 0xb4" in err and "iconv -f cp949" in err
    with pytest.raises(SystemExit):
        script.parse_args(["--input", str(tmp_path / "없는 파일.txt"), "--output-dir", str(tmp_path / "out")])
    assert "없습니다" in capsys.readouterr().err


def test_reader_normalises_line_ends_and_drops_a_bom(script, tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "첫 줄\r\n둘째 줄\r셋째 줄\n".encode())
    assert script.read_korean_text(path) == "첫 줄\n둘째 줄\n셋째 줄\n"
    (tmp_path / "empty.txt").write_text(" \n", encoding="utf-8")
    with pytest.raises(ValueError, match="비어 있습니다"):
        script.read_korean_text(tmp_path / "empty.txt")


def test_too_short_text_is_refused_before_training(script):
    tokenizer = BPETokenizerSimple().train("대한민국 " * 30, 265)
    with pytest.raises(ValueError, match="검증 텍스트"):
        script.make_loaders("대한민국 " * 200, "대한민국", tokenizer, context_length=16, batch_size=2)


def test_quick_run_loss_falls_and_saves_a_model_that_loads(script, tmp_path, capsys):
    out = tmp_path / "korean-gpt"
    result = script.main(["--quick", "--device", "cpu", "--output-dir", str(out)])
    assert result["train_losses"][-1] < result["train_losses"][0] - 0.5
    assert result["val_losses"][-1] < result["val_losses"][0]
    assert result["config"]["vocab_size"] == 300
    printed = capsys.readouterr().out
    assert "혼잡도" in printed and "--- 온도 0.7 ---" in printed

    config = json.loads((out / "model-config.json").read_text(encoding="utf-8"))
    model = GPTModel(config)
    model.load_state_dict(torch.load(out / "model.pth", weights_only=True))
    tokenizer = BPETokenizerSimple().load_vocab_and_merges(out / "tokenizer-vocab.json", out / "tokenizer-merges.json")
    assert len(tokenizer.vocab) == config["vocab_size"]
    assert not list(out.glob("*.tmp"))

    with pytest.raises(SystemExit):  # 같은 폴더에 다시 훈련하면 멈춘다
        script.main(["--quick", "--device", "cpu", "--output-dir", str(out)])


def test_quick_run_with_the_gpt2_tokenizer(script, tmp_path):
    out = tmp_path / "gpt2"
    result = script.main(["--quick", "--tokenizer", "gpt2", "--epochs", "1", "--device", "cpu", "--output-dir", str(out)])
    assert result["config"]["vocab_size"] == 50257
    assert result["val_tokens_per_char"] > 1.5  # GPT-2 는 한국어 한 글자에 토큰이 둘 안팎
    assert sorted(p.name for p in out.iterdir()) == ["loss.pdf", "model-config.json", "model.pth"]
