"""2장 보너스: 토크나이저 비교 도구와 숫자로 보는 데이터 로더. (임베딩 = 원-핫 @ 선형 층은 PyTorch 자체의 성질이라 노트북이 보여 준다.)"""

import importlib.util
import json
from pathlib import Path

import pytest
import tiktoken
import torch
from torch.utils.data import DataLoader

from llm_from_scratch.bpe import download_gpt2_tokenizer_files
from llm_from_scratch.ch02 import GPTDatasetV1
from llm_from_scratch.download import REPO_DATA_DIR

COMPARISON_PATH = Path(__file__).resolve().parents[1] / "ch02" / "02_bonus_bytepair-encoder" / "tokenizer_comparison.py"


def _load(path):
    # 폴더 이름에 '-' 가 있어 패키지로 import 할 수 없으므로 파일 경로로 불러온다
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- 02: 토크나이저 비교
@pytest.fixture(scope="module")
def comparison():
    return _load(COMPARISON_PATH)


@pytest.fixture(scope="module")
def gpt2_files(tmp_path_factory):
    return download_gpt2_tokenizer_files(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def tokenizers(comparison, gpt2_files):
    return comparison.build_tokenizers(*gpt2_files)


TEXTS = [
    "Hello, world. Is this-- a test?",
    "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace.",
    "안녕하세요. 밑바닥부터 LLM을 만듭니다.",
    "🤖  two  spaces\r\n\ttab\n\n",
]


def test_four_tokenizers_give_the_same_ids(tokenizers):
    assert list(tokenizers) == [
        "tiktoken", "GPT2Encoder (OpenAI)", "BPETokenizerSimple", "HF GPT2Tokenizer", "HF GPT2TokenizerFast",
    ]
    verdict = (REPO_DATA_DIR / "the-verdict.txt").read_text(encoding="utf-8")
    for text in [*TEXTS, verdict]:
        expected = tokenizers["tiktoken"](text)
        for name, encode in tokenizers.items():
            assert encode(text) == expected, (name, text[:40])
    assert len(tokenizers["HF GPT2Tokenizer"](verdict)) == 5145
    assert 50256 in tokenizers["HF GPT2TokenizerFast"](TEXTS[1])


# OpenAI 의 원래 GPT-2 인코더 알고리즘(get_pairs, 캐시를 둔 병합 루프)을 다시 쓴 GPT2Encoder
EOT = "<|endoftext|>"
HARD_TEXTS = [
    *TEXTS,
    "",
    " ",
    "   leading spaces and trailing   ",
    "a  b   c    d\t\te\n\n\nf\r\n\r\ng",
    "\n\n\n\n",
    "\t \t \u00a0\u3000 섞인 공백",
    "I'm sure they'll say it's fine; we've done what we'd like, haven't we? 'S 'T",
    "숫자 2000 12345678 3.14159 1,000,000 ٣٤٥",
    "한국어 문장입니다. 밑바닥부터 GPT를 만들어 봅시다! 가나다라마바사 똠방각하 뷁",
    "日本語のテキストと中文文本 混在",
    "😀😃😄 👨‍👩‍👧‍👦 🇰🇷 🤖🦙 ✨️",
    "café naïve résumé e\u0301 Ａ全角",
    "!!!??? ... --- ___ @@@ ### $$$ %%% ^^^ &&& ***",
    "<|endoftext|>",
    "x<|endoftext|>y <|endoftext|> <|endoftext|><|endoftext|>",
    "<|endoftext|>\n<|endoftext|>  ",
    "<|endoftext",
    "<|startoftext|> 는 GPT-2 특수 토큰이 아닙니다",
    "\x00\x01\x7f 제어 문자",
    "https://example.com/path?query=1&x=y#frag",
    "def f(x):\n    return x ** 2  # 주석\n",
]


@pytest.fixture(scope="module")
def gpt2_encoder(comparison, gpt2_files):
    return comparison.load_gpt2_encoder(*gpt2_files)


def _random_texts(count=40, seed=123):
    # 여러 문자 집합에서 뽑은 글자와 공백·특수 토큰을 섞은 텍스트(시드를 고정해 늘 같다)
    import random

    rng = random.Random(seed)
    pool = list("abcXYZ019 .,'!?-\t\n\r") + list("가각간힣ㄱㅏ") + ["😀", "🇰🇷", "é", "\u0301", "中", "  ", EOT, "'s", "'ll"]
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 60))) for _ in range(count)]


def test_gpt2_encoder_gives_tiktoken_ids_on_many_texts(gpt2_encoder):
    tik = tiktoken.get_encoding("gpt2")
    verdict = (REPO_DATA_DIR / "the-verdict.txt").read_text(encoding="utf-8")
    for text in [*HARD_TEXTS, *_random_texts(), verdict]:
        # <|endoftext|> 를 허락하면 한 토큰(50256), 허락하지 않으면 원래 인코더처럼 보통 텍스트
        with_special = gpt2_encoder.encode(text, allowed_special={EOT})
        assert with_special == tik.encode(text, allowed_special={EOT}), text[:40]
        assert gpt2_encoder.encode(text) == tik.encode(text, disallowed_special=()), text[:40]
        assert gpt2_encoder.decode(with_special) == text, text[:40]
    assert gpt2_encoder.encode(f"a{EOT}b", allowed_special={EOT}) == [64, 50256, 65]
    assert 50256 not in gpt2_encoder.encode(EOT)
    assert len(gpt2_encoder.encode(verdict)) == 5145


def test_gpt2_encoder_decodes_broken_utf8_like_tiktoken(gpt2_encoder):
    tik = tiktoken.get_encoding("gpt2")
    ids = gpt2_encoder.encode("🤖 안녕")
    assert len(ids) > 3
    for cut in range(1, len(ids)):
        # 글자 중간에서 자른 토큰도 tiktoken 처럼 대체 문자로 읽는다
        assert gpt2_encoder.decode(ids[:cut]) == tik.decode(ids[:cut])
    assert "\ufffd" in gpt2_encoder.decode(ids[:1])


def test_gpt2_encoder_merges_by_rank_and_uses_its_cache(comparison, gpt2_files):
    encoder = comparison.load_gpt2_encoder(*gpt2_files)
    assert comparison.get_pairs(("l", "o", "w")) == {("l", "o"), ("o", "w")}
    assert comparison.get_pairs(("a",)) == set()
    encoder.encode("hello hello")
    assert set(encoder.cache) == {"hello", "Ġhello"}
    encoder.cache["Ġhello"] = ("Ġh", "ello")  # 캐시를 바꾸면 결과가 바뀐다 = 캐시를 읽는다
    assert encoder.encode("hello hello") == [31373, 289, 11109]
    assert encoder.bpe("Ġworld") == ("Ġworld",)
    assert encoder.bpe("ĠìķĪ") == ("Ġì", "ķ", "Ī")  # '안' 의 세 바이트는 일부만 합쳐진다


def test_small_hand_made_vocabulary_follows_merge_order(comparison, tmp_path):
    # 규칙 순서가 곧 순위다: 'b c' 가 'a b' 보다 앞이면 "abc" 는 a + bc 가 된다
    tokens = ["a", "b", "c", "ab", "bc", "abc", EOT]
    encoder_file, merges_file = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    encoder_file.write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    merges_file.write_text("#version: 0.2\nb c\na b\na bc\n", encoding="utf-8")
    encoder = comparison.load_gpt2_encoder(encoder_file, merges_file)
    assert encoder.bpe("abc") == ("abc",)
    assert encoder.bpe("ab") == ("ab",)
    merges_file.write_text("#version: 0.2\nb c\n", encoding="utf-8")
    assert comparison.load_gpt2_encoder(encoder_file, merges_file).bpe("abc") == ("a", "bc")


def test_gpt2_encoder_refuses_bad_input(comparison, gpt2_encoder, tmp_path):
    with pytest.raises(ValueError, match="<\\|startoftext\\|>"):
        gpt2_encoder.encode("x", allowed_special={"<|startoftext|>"})
    with pytest.raises(TypeError, match="집합"):
        gpt2_encoder.encode("x", allowed_special=EOT)
    with pytest.raises(ValueError, match="50257"):
        gpt2_encoder.decode([15496, 50257])
    encoder_file = tmp_path / "encoder.json"
    encoder_file.write_text(json.dumps({"a": 0, "b": 1, "ab": 2}), encoding="utf-8")
    merges_file = tmp_path / "vocab.bpe"
    merges_file.write_text("a b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="#version"):
        comparison.load_gpt2_encoder(encoder_file, merges_file)
    merges_file.write_text("#version: 0.2\na b\nb a\n", encoding="utf-8")
    with pytest.raises(ValueError, match="3번째 줄"):
        comparison.load_gpt2_encoder(encoder_file, merges_file)
    merges_file.write_text("#version: 0.2\na b c\n", encoding="utf-8")
    with pytest.raises(ValueError, match="2번째 줄"):
        comparison.load_gpt2_encoder(encoder_file, merges_file)
    encoder_file.write_text('{"a": 0,', encoding="utf-8")
    with pytest.raises(ValueError, match="JSON"):
        comparison.load_gpt2_encoder(encoder_file, merges_file)


def test_hf_tokenizer_from_local_files_is_not_empty(comparison, gpt2_files):
    for fast in (False, True):
        tokenizer = comparison.load_hf_gpt2_tokenizer(*gpt2_files, fast=fast)
        assert len(tokenizer) == 50257
        assert tokenizer.encode("Hello, world") == [15496, 11, 995]
        assert tokenizer.decode([15496, 11, 995]) == "Hello, world"


def test_hf_tokenizer_that_did_not_read_the_files_is_refused(comparison, tmp_path):
    # transformers 5 에 옛 키워드를 주면 생기는 것 같은 작은 토크나이저는 비교에 쓰지 않고 이유를 말한다
    encoder, merges = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    encoder.write_text(json.dumps({"a": 0, "b": 1, "ab": 2, "<|endoftext|>": 3}), encoding="utf-8")
    merges.write_text("#version: 0.2\na b\n", encoding="utf-8")
    for fast in (False, True):
        with pytest.raises(RuntimeError, match="50,257개여야 합니다"):
            comparison.load_hf_gpt2_tokenizer(encoder, merges, fast=fast)


class _Clock:
    """``time.perf_counter`` 대신 정해 둔 시각을 돌려주는 시계. 재는 함수가 부를 때마다 시각을 앞으로 민다."""

    def __init__(self, durations):
        self.now, self.durations = 0.0, iter(durations)

    def perf_counter(self):
        return self.now

    def work(self, text):
        self.now += next(self.durations)


def test_median_ms_skips_warmup_and_takes_the_median_in_ms(comparison, monkeypatch):
    clock = _Clock([5.0, 0.003, 0.001, 0.010])  # 처음 5초는 준비 실행(재지 않는다)
    monkeypatch.setattr(comparison, "time", clock)
    assert comparison.median_ms(clock.work, "abc", repeats=3, warmup=1) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="repeats"):
        comparison.median_ms(len, "abc", repeats=0)


# ---------------------------------------------------------------- 04: 숫자로 보는 데이터 로더
class _Numbers:
    def encode(self, text, allowed_special=None):
        return [int(word) for word in text.split()]


NUMBERS = " ".join(str(i) for i in range(1001))


def _loader(batch_size, max_length, stride, shuffle=False):
    dataset = GPTDatasetV1(NUMBERS, _Numbers(), max_length, stride)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=True)


def test_stride_one_first_and_last_of_997_batches():
    batches = list(_loader(1, 4, 1))
    assert len(batches) == 997
    assert batches[0][0].tolist() == [[0, 1, 2, 3]] and batches[0][1].tolist() == [[1, 2, 3, 4]]
    assert batches[-1][0].tolist() == [[996, 997, 998, 999]] and batches[-1][1].tolist() == [[997, 998, 999, 1000]]


def test_stride_four_second_batch_and_window_count():
    batches = list(_loader(1, 4, 4))
    assert len(batches) == 250
    assert batches[1][0].tolist() == [[4, 5, 6, 7]] and batches[1][1].tolist() == [[5, 6, 7, 8]]


def test_shuffle_with_seed_123_is_reproducible_and_keeps_windows_contiguous():
    torch.manual_seed(123)
    first = next(iter(_loader(2, 4, 4, shuffle=True)))
    assert first[0].tolist() == [[32, 33, 34, 35], [464, 465, 466, 467]]
    assert torch.equal(first[1], first[0] + 1)
    assert first[0].tolist() != [[0, 1, 2, 3], [4, 5, 6, 7]]
