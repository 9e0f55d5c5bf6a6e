"""2장 보너스: 밑바닥부터 만든 바이트 수준 BPE(``llm_from_scratch.bpe``)가 tiktoken 의 gpt2 와 같은 ID 를 내는지."""


import pytest
import tiktoken

from llm_from_scratch.bpe import BPETokenizerSimple, bytes_to_unicode, download_gpt2_tokenizer_files
from llm_from_scratch.download import REPO_DATA_DIR

HARD_CASES = {
    "korean": "안녕하세요. 저는 밑바닥부터 LLM을 만들고 있습니다!",
    "emoji": "토큰 😀👍🏽 🇰🇷 and 🤖",
    "spaces": "a    b     c  ",
    "newlines": "first\n\n\nsecond\n \n  third\n",
    "crlf": "line one\r\nline two\r\n\r\n",
    "tabs": "\tcol1\t\tcol2 \t col3",
    "endoftext": "<|endoftext|>Hello<|endoftext|> world",
    "numbers": "12345 3.14159 1,000,000 2026년 12월 0.5e-3",
    "contractions": "I'm sure you'll see they've done it, don't you?",
    "unknown_word": "Akwirw ier",
    "mixed": "GPT-2는 바이트 수준 BPE를 씁니다 (50,257개 토큰).",
}

REFERENCE_IDS = [
    ("Hello, world. Is this-- a test?", [15496, 11, 995, 13, 1148, 428, 438, 257, 1332, 30]),
    ("Hello,", [15496, 11]),
    ("Implementations", [3546, 26908, 602]),
    ("\n", [198]),
    ("<|endoftext|>", [50256]),
]


@pytest.fixture(scope="module")
def gpt2_files(tmp_path_factory):
    return download_gpt2_tokenizer_files(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def ours(gpt2_files):
    return BPETokenizerSimple().load_vocab_and_merges_from_openai(*gpt2_files)


@pytest.fixture(scope="module")
def tik():
    return tiktoken.get_encoding("gpt2")


@pytest.fixture(scope="module")
def verdict():
    return (REPO_DATA_DIR / "the-verdict.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def trained(verdict):
    return BPETokenizerSimple().train(verdict, vocab_size=1000, allowed_special={"<|endoftext|>"})


def test_byte_map_covers_256_bytes_and_spaces_become_g_dot():
    mapping = bytes_to_unicode()
    assert len(mapping) == 256 and len(set(mapping.values())) == 256
    assert mapping[ord(" ")] == "Ġ" and mapping[ord("\n")] == "Ċ" and mapping[ord("A")] == "A"


def test_openai_files_give_50257_tokens_and_50000_merges(ours):
    assert len(ours.vocab) == 50257
    assert len(ours.bpe_merges) == 50000
    assert ours.special_tokens == {"<|endoftext|>": 50256}
    assert ours.vocab[50256] == "<|endoftext|>"


@pytest.mark.parametrize(("text", "expected"), REFERENCE_IDS)
def test_reference_ids(ours, text, expected):
    assert ours.encode(text, allowed_special={"<|endoftext|>"}) == expected


def test_the_verdict_equals_tiktoken_5145_tokens_and_round_trips(ours, tik, verdict):
    ids = ours.encode(verdict)
    assert len(ids) == 5145
    assert ids == tik.encode(verdict)
    assert ours.decode(ids) == verdict


@pytest.mark.parametrize("name", list(HARD_CASES))
def test_hard_cases_equal_tiktoken_and_round_trip(ours, tik, name):
    text = HARD_CASES[name]
    ids = ours.encode(text, allowed_special={"<|endoftext|>"})
    assert ids == tik.encode(text, allowed_special={"<|endoftext|>"})
    assert ours.decode(ids) == text


def test_special_token_in_text_without_permission_raises_like_tiktoken(ours):
    with pytest.raises(ValueError, match="allowed_special"):
        ours.encode("end<|endoftext|>")
    with pytest.raises(ValueError, match="어휘 사전에 없습니다"):
        ours.encode("hi", allowed_special={"<|im_start|>"})
    with pytest.raises(TypeError, match="집합"):
        ours.encode("hi", allowed_special="<|endoftext|>")


def test_decode_rejects_unknown_ids(ours):
    with pytest.raises(ValueError, match="50257"):
        ours.decode([50257])


def test_decode_of_a_split_korean_syllable_shows_replacement_char(ours):
    ids = ours.encode("한")
    assert len(ids) > 1  # GPT-2 는 '한'(3바이트)을 토큰 하나로 갖고 있지 않다
    assert "\ufffd" in ours.decode(ids[:1])


def test_training_on_the_verdict_gives_1000_entries_and_round_trips(trained, verdict):
    assert len(trained.vocab) == 1000
    assert len(trained.bpe_merges) == 1000 - 256 - 1
    assert trained.special_tokens == {"<|endoftext|>": 999}
    ids = trained.encode(verdict)
    assert trained.decode(ids) == verdict
    assert len(ids) < len(verdict.encode("utf-8")) / 2  # 병합이 텍스트를 절반 아래로 줄인다
    assert trained.encode("<|endoftext|>", allowed_special={"<|endoftext|>"}) == [999]


def test_first_merges_are_the_most_frequent_pairs(trained):
    first = [trained.vocab[i] for i in list(trained.bpe_merges.values())[:3]]
    assert first[0] == "Ġt"  # 영어에서 가장 흔한 쌍: 공백 + t
    assert all(len(token) == 2 for token in first)


def test_trained_tokenizer_handles_text_it_never_saw(trained):
    text = "밑바닥부터 Transformers! 😀"
    assert trained.decode(trained.encode(text)) == text


def test_save_and_load_round_trip(trained, verdict, tmp_path):
    trained.save_vocab_and_merges(tmp_path / "vocab.json", tmp_path / "merges.json")
    loaded = BPETokenizerSimple().load_vocab_and_merges(tmp_path / "vocab.json", tmp_path / "merges.json")
    assert loaded.vocab == trained.vocab
    assert loaded.bpe_merges == trained.bpe_merges
    assert loaded.special_tokens == trained.special_tokens
    sample = verdict[:2000] + "<|endoftext|>"
    allowed = {"<|endoftext|>"}
    assert loaded.encode(sample, allowed_special=allowed) == trained.encode(sample, allowed_special=allowed)


def test_load_rejects_openai_files_with_a_hint(gpt2_files):
    with pytest.raises(ValueError, match="load_vocab_and_merges_from_openai"):
        BPETokenizerSimple().load_vocab_and_merges(*gpt2_files)


def test_training_is_deterministic():
    text = "low lower lowest newer newest wider " * 20
    a = BPETokenizerSimple().train(text, 270)
    b = BPETokenizerSimple().train(text, 270)
    assert a.bpe_merges == b.bpe_merges


def test_train_checks_vocab_size_and_text():
    with pytest.raises(ValueError, match="257 이상"):
        BPETokenizerSimple().train("hello", 256)
    with pytest.raises(ValueError, match="비어 있지 않은"):
        BPETokenizerSimple().train("", 300)


def test_train_warns_when_text_runs_out_of_pairs():
    with pytest.warns(UserWarning, match="멈췄습니다"):
        tokenizer = BPETokenizerSimple().train("ab ab", 400)
    assert len(tokenizer.vocab) < 400
    assert tokenizer.decode(tokenizer.encode("ab ab")) == "ab ab"


def test_encode_before_training_raises():
    with pytest.raises(ValueError, match="train"):
        BPETokenizerSimple().encode("hi")
