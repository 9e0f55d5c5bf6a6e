"""2장 보너스: 토크나이저 비교, 임베딩 = 원-핫 @ 선형 층, 숫자로 보는 데이터 로더."""

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
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
    pytest.importorskip("transformers")
    return comparison.build_tokenizers(*gpt2_files)


TEXTS = [
    "Hello, world. Is this-- a test?",
    "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace.",
    "안녕하세요. 밑바닥부터 LLM을 만듭니다.",
    "🤖  two  spaces\r\n\ttab\n\n",
]


def test_four_tokenizers_give_the_same_ids(tokenizers):
    assert list(tokenizers) == ["tiktoken", "BPETokenizerSimple", "HF GPT2Tokenizer", "HF GPT2TokenizerFast"]
    verdict = (REPO_DATA_DIR / "the-verdict.txt").read_text(encoding="utf-8")
    for text in [*TEXTS, verdict]:
        expected = tokenizers["tiktoken"](text)
        for name, encode in tokenizers.items():
            assert encode(text) == expected, (name, text[:40])
    assert len(tokenizers["HF GPT2Tokenizer"](verdict)) == 5145
    assert 50256 in tokenizers["HF GPT2TokenizerFast"](TEXTS[1])


def test_hf_tokenizer_from_local_files_is_not_empty(comparison, gpt2_files):
    pytest.importorskip("transformers")
    for fast in (False, True):
        tokenizer = comparison.load_hf_gpt2_tokenizer(*gpt2_files, fast=fast)
        assert len(tokenizer) == 50257
        assert tokenizer.encode("Hello, world") == [15496, 11, 995]
        assert tokenizer.decode([15496, 11, 995]) == "Hello, world"


def test_old_keywords_give_an_empty_tokenizer_in_transformers_5(gpt2_files):
    transformers = pytest.importorskip("transformers")
    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("transformers 4 는 vocab_file= 을 쓴다")
    wrong = transformers.GPT2Tokenizer(vocab_file=str(gpt2_files[0]), merges_file=str(gpt2_files[1]))
    assert len(wrong) <= 1 and wrong.encode("Hello, world") == []  # 이 함정 때문에 크기를 확인한다


def test_median_ms_is_positive_and_checks_repeats(comparison):
    assert comparison.median_ms(len, "abc", repeats=3, warmup=0) >= 0
    with pytest.raises(ValueError, match="repeats"):
        comparison.median_ms(len, "abc", repeats=0)


# ---------------------------------------------------------------- 03: 임베딩 = 원-핫 @ 선형 층
@pytest.fixture
def embedding_and_linear():
    torch.manual_seed(123)
    embedding = nn.Embedding(4, 5)
    linear = nn.Linear(4, 5, bias=False)
    linear.weight = nn.Parameter(embedding.weight.T.detach().clone())
    return embedding, linear


def test_seed_123_embedding_row_zero_is_the_books(embedding_and_linear):
    embedding, _ = embedding_and_linear
    expected = torch.tensor([0.3374, -0.1778, -0.3035, -0.5880, 1.5810])
    torch.testing.assert_close(embedding.weight[0].detach(), expected, atol=1e-4, rtol=0)


def test_embedding_equals_onehot_times_linear_forward_and_gradients(embedding_and_linear):
    embedding, linear = embedding_and_linear
    idx = torch.tensor([2, 3, 1, 2])
    onehot = F.one_hot(idx, num_classes=4).float()
    torch.testing.assert_close(linear(onehot), embedding(idx))

    target = torch.randn(4, 5)
    F.mse_loss(embedding(idx), target).backward()
    F.mse_loss(linear(onehot), target).backward()
    torch.testing.assert_close(embedding.weight.grad, linear.weight.grad.T)
    assert torch.all(embedding.weight.grad[0] == 0)  # 입력에 없는 토큰 0 의 행
    assert torch.all(embedding.weight.grad[2] != 0)


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
