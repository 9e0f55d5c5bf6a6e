"""2장: 토크나이저, 슬라이딩 윈도 데이터셋, 데이터 로더, 임베딩이 책의 수치를 재현하는지 확인한다."""

import re

import pytest
import tiktoken
import torch

from llm_from_scratch.ch02 import (
    SPLIT_PATTERN,
    GPTDatasetV1,
    SimpleTokenizerV1,
    SimpleTokenizerV2,
    create_dataloader_v1,
    load_the_verdict,
)


@pytest.fixture(scope="module")
def raw_text(tmp_path_factory):
    return load_the_verdict(tmp_path_factory.mktemp("verdict"))


@pytest.fixture(scope="module")
def preprocessed(raw_text):
    return [item.strip() for item in re.split(SPLIT_PATTERN, raw_text) if item.strip()]


@pytest.fixture(scope="module")
def vocab_v1(preprocessed):
    return {token: i for i, token in enumerate(sorted(set(preprocessed)))}


@pytest.fixture(scope="module")
def vocab_v2(preprocessed):
    tokens = sorted(set(preprocessed)) + ["<|endoftext|>", "<|unk|>"]
    return {token: i for i, token in enumerate(tokens)}


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    return tiktoken.get_encoding("gpt2")


def test_the_verdict_has_20479_characters(raw_text):
    assert len(raw_text) == 20_479
    assert raw_text.startswith("I HAD always thought Jack Gisburn")


def test_regex_split_gives_4690_tokens(preprocessed):
    assert len(preprocessed) == 4_690
    assert preprocessed[:10] == ["I", "HAD", "always", "thought", "Jack", "Gisburn", "rather", "a", "cheap", "genius"]
    assert "--" in preprocessed


def test_vocabulary_sizes(vocab_v1, vocab_v2):
    assert len(vocab_v1) == 1_130
    assert len(vocab_v2) == 1_132
    assert vocab_v2["<|endoftext|>"] == 1_130
    assert vocab_v2["<|unk|>"] == 1_131


def test_v1_round_trip_on_text_from_the_story(vocab_v1):
    tokenizer = SimpleTokenizerV1(vocab_v1)
    text = '"It\'s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'
    ids = tokenizer.encode(text)
    assert ids == [1, 56, 2, 850, 988, 602, 533, 746, 5, 1126, 596, 5, 1, 67, 7, 38, 851, 1108, 754, 793, 7]
    assert tokenizer.encode(tokenizer.decode(ids)) == ids
    assert tokenizer.decode(ids).endswith("Gisburn said with pardonable pride.")


def test_v1_raises_key_error_on_unseen_word(vocab_v1):
    tokenizer = SimpleTokenizerV1(vocab_v1)
    with pytest.raises(KeyError, match="Hello"):
        tokenizer.encode("Hello, do you like tea?")


def test_v2_maps_unseen_words_to_unk(vocab_v2):
    tokenizer = SimpleTokenizerV2(vocab_v2)
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of the palace."
    ids = tokenizer.encode(text)
    assert ids == [1131, 5, 355, 1126, 628, 975, 10, 1130, 55, 988, 956, 984, 722, 988, 1131, 7]
    assert tokenizer.decode(ids) == "<|unk|>, do you like tea? <|endoftext|> In the sunlit terraces of the <|unk|>."


def test_tiktoken_gpt2_counts_5145_tokens_and_endoftext_is_50256(raw_text, gpt2_tokenizer):
    assert len(gpt2_tokenizer.encode(raw_text)) == 5_145
    assert gpt2_tokenizer.n_vocab == 50_257
    assert gpt2_tokenizer.encode("<|endoftext|>", allowed_special={"<|endoftext|>"}) == [50_256]


def test_targets_are_inputs_shifted_by_one(raw_text, gpt2_tokenizer):
    token_ids = gpt2_tokenizer.encode(raw_text)
    dataset = GPTDatasetV1(raw_text, gpt2_tokenizer, max_length=4, stride=1)
    for idx in (0, 1, 100, len(dataset) - 1):
        x, y = dataset[idx]
        assert x.tolist() == token_ids[idx : idx + 4]
        assert y.tolist() == token_ids[idx + 1 : idx + 5]


def test_first_batches_with_stride_one(raw_text):
    loader = create_dataloader_v1(raw_text, batch_size=1, max_length=4, stride=1, shuffle=False)
    batches = iter(loader)
    x1, y1 = next(batches)
    x2, y2 = next(batches)
    assert x1.tolist() == [[40, 367, 2885, 1464]]
    assert y1.tolist() == [[367, 2885, 1464, 1807]]
    assert x2.tolist() == [[367, 2885, 1464, 1807]]
    assert y2.tolist() == [[2885, 1464, 1807, 3619]]


@pytest.mark.parametrize(("max_length", "stride"), [(4, 4), (2, 2), (8, 2), (4, 1), (3, 5)])
def test_stride_and_max_length_set_window_start_and_length(raw_text, gpt2_tokenizer, max_length, stride):
    n_tokens = len(gpt2_tokenizer.encode(raw_text))
    dataset = GPTDatasetV1(raw_text, gpt2_tokenizer, max_length=max_length, stride=stride)
    # 창의 시작 위치는 0, stride, 2*stride, ... 이고, 타깃 하나 자리가 남아야 한다
    assert len(dataset) == len(range(0, n_tokens - max_length, stride))
    x0, _ = dataset[0]
    x1, _ = dataset[1]
    assert x0.shape == (max_length,)
    if stride < max_length:
        assert torch.equal(x0[stride:], x1[: max_length - stride])  # 이웃한 창이 겹친다


def test_batch_8_max_length_4_stride_4_does_not_overlap(raw_text):
    loader = create_dataloader_v1(raw_text, batch_size=8, max_length=4, stride=4, shuffle=False)
    inputs, targets = next(iter(loader))
    assert inputs.shape == targets.shape == (8, 4)
    assert inputs[0].tolist() == [40, 367, 2885, 1464]
    assert inputs[1].tolist() == [1807, 3619, 402, 271]
    assert torch.equal(inputs.flatten()[1:], targets.flatten()[:-1])  # 겹침 없이 이어진다


def test_exercise_2_2_loaders(raw_text):
    inputs, _ = next(iter(create_dataloader_v1(raw_text, batch_size=4, max_length=2, stride=2, shuffle=False)))
    assert inputs.tolist() == [[40, 367], [2885, 1464], [1807, 3619], [402, 271]]
    inputs, _ = next(iter(create_dataloader_v1(raw_text, batch_size=4, max_length=8, stride=2, shuffle=False)))
    assert inputs.shape == (4, 8)
    assert torch.equal(inputs[0, 2:], inputs[1, :6])


def test_text_too_short_for_one_window_raises(gpt2_tokenizer):
    with pytest.raises(ValueError, match="너무 짧습니다"):
        GPTDatasetV1("one two three", gpt2_tokenizer, max_length=3, stride=1)


@pytest.mark.parametrize(("max_length", "stride"), [(0, 1), (4, 0), (-1, 2)])
def test_max_length_or_stride_below_one_raises(raw_text, gpt2_tokenizer, max_length, stride):
    with pytest.raises(ValueError, match="1 이상"):
        GPTDatasetV1(raw_text, gpt2_tokenizer, max_length=max_length, stride=stride)


def test_loader_that_would_be_empty_raises(raw_text):
    # 창이 2개뿐인데 배치 4개를 drop_last=True 로 요구하면 배치가 하나도 없다
    short_text = raw_text[:200]
    with pytest.raises(ValueError, match="batch_size=4"):
        create_dataloader_v1(short_text, batch_size=4, max_length=16, stride=16)
    loader = create_dataloader_v1(short_text, batch_size=4, max_length=16, stride=16, drop_last=False)
    assert len(loader) == 1


def test_batch_size_below_one_raises(raw_text):
    with pytest.raises(ValueError, match="batch_size"):
        create_dataloader_v1(raw_text, batch_size=0)


def test_v1_unseen_word_error_is_a_key_error_with_a_korean_message(vocab_v1):
    with pytest.raises(KeyError) as info:
        SimpleTokenizerV1(vocab_v1).encode("Hello, do you like tea?")
    assert "어휘 사전에 없는 토큰" in info.value.args[0]
    assert "SimpleTokenizerV2" in info.value.args[0]


def test_decode_of_an_unknown_id_names_the_id(vocab_v1):
    with pytest.raises(KeyError, match="5000"):
        SimpleTokenizerV1(vocab_v1).decode([1, 5000])


def test_v2_needs_unk_in_the_vocabulary(vocab_v1):
    with pytest.raises(ValueError, match=r"<\|unk\|>"):
        SimpleTokenizerV2(vocab_v1)


def test_v2_decode_round_trips_known_words(vocab_v2):
    tokenizer = SimpleTokenizerV2(vocab_v2)
    assert tokenizer.decode(tokenizer.encode("the last he painted.")) == "the last he painted."


def test_dataset_with_a_disallowed_special_token_gives_a_korean_error(gpt2_tokenizer):
    # gpt2 에 특수 토큰 하나를 더한 인코딩: <|pad|> 는 allowed_special 에 없다
    extended = tiktoken.Encoding(
        name="gpt2_with_pad",
        pat_str=gpt2_tokenizer._pat_str,
        mergeable_ranks=gpt2_tokenizer._mergeable_ranks,
        special_tokens={**gpt2_tokenizer._special_tokens, "<|pad|>": 50257},
    )
    text = "one two three four five six <|pad|> seven <|endoftext|> eight"
    with pytest.raises(ValueError, match="허용하지 않은 특수 토큰"):
        GPTDatasetV1(text, extended, max_length=2, stride=1)
    # <|endoftext|> 는 문서 경계로 허용된다
    dataset = GPTDatasetV1("one two <|endoftext|> three four", extended, max_length=2, stride=1)
    assert 50256 in torch.cat([x for x, _ in dataset]).tolist()


@pytest.mark.parametrize("bad", [2.5, "4", True, None])
def test_max_length_and_stride_must_be_integers(raw_text, gpt2_tokenizer, bad):
    with pytest.raises(ValueError, match="정수"):
        GPTDatasetV1(raw_text, gpt2_tokenizer, max_length=bad, stride=1)
    with pytest.raises(ValueError, match="stride"):
        GPTDatasetV1(raw_text, gpt2_tokenizer, max_length=4, stride=bad)


@pytest.mark.parametrize("bad", [0, -2, 1.5, "8"])
def test_batch_size_must_be_a_positive_integer(raw_text, bad):
    with pytest.raises(ValueError, match="batch_size"):
        create_dataloader_v1(raw_text, batch_size=bad)
