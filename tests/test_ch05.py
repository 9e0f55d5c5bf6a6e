"""5장: 손실 계산, 훈련 루프, 디코딩, 저장·불러오기, GPT-2 가중치 적재."""

import json

import pytest
import tiktoken
import torch
from support import assert_same_as_transformers_gpt2
from transformers import GPT2Config, GPT2LMHeadModel

from llm_from_scratch.ch02 import create_dataloader_v1, load_the_verdict
from llm_from_scratch.ch04 import GPT_CONFIG_124M, GPTModel, generate_text_simple
from llm_from_scratch.ch05 import (
    GPT2_SIZES,
    GPT2CheckpointError,
    assign,
    calc_loss_batch,
    calc_loss_loader,
    download_and_load_gpt2,
    generate,
    gpt2_config_from_hparams,
    load_gpt2_safetensors,
    load_hf_weights_into_gpt,
    load_weights_into_gpt,
    sample_token_counts,
    softmax_with_temperature,
    text_to_token_ids,
    token_ids_to_text,
    train_model_simple,
    write_synthetic_gpt2_checkpoint,
    write_synthetic_gpt2_safetensors,
)

TINY_CONFIG = {
    "vocab_size": 50257,
    "context_length": 32,
    "emb_dim": 32,
    "n_heads": 2,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": False,
}

# 책 5.1절의 두 예문: "every effort moves" -> " effort moves you", "I really like" -> " really like chocolate"
BOOK_INPUTS = torch.tensor([[16833, 3626, 6100], [40, 1107, 588]])
BOOK_TARGETS = torch.tensor([[3626, 6100, 345], [1107, 588, 11311]])


@pytest.fixture(scope="module")
def tokenizer():
    return tiktoken.get_encoding("gpt2")


@pytest.fixture(scope="module")
def verdict(tmp_path_factory):
    return load_the_verdict(tmp_path_factory.mktemp("data"))


# ---------------------------------------------------------------------------
# GPT-2 가중치 적재 (TensorFlow 는 느리게 뜨므로 체크포인트는 모듈에서 한 번만 쓴다)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf_checkpoint(tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("gpt2")
    write_synthetic_gpt2_checkpoint(models_dir, "124M")
    settings, params = download_and_load_gpt2("124M", models_dir)
    return models_dir, settings, params


def _prompt():
    torch.manual_seed(0)
    return torch.randint(0, 50257, (2, 12))


def _transformers_model(settings, params):
    """``params`` 를 그대로 담은 transformers GPT2LMHeadModel (비교 기준)."""
    config = GPT2Config(
        vocab_size=settings["n_vocab"],
        n_positions=settings["n_ctx"],
        n_embd=settings["n_embd"],
        n_head=settings["n_head"],
        n_layer=settings["n_layer"],
    )
    model = GPT2LMHeadModel(config).eval()
    state = {"transformer.wte.weight": params["wte"], "transformer.wpe.weight": params["wpe"]}
    state["transformer.ln_f.weight"], state["transformer.ln_f.bias"] = params["g"], params["b"]
    for i, block in enumerate(params["blocks"]):
        h = f"transformer.h.{i}"
        for scope, source in (
            ("attn.c_attn", block["attn"]["c_attn"]),
            ("attn.c_proj", block["attn"]["c_proj"]),
            ("mlp.c_fc", block["mlp"]["c_fc"]),
            ("mlp.c_proj", block["mlp"]["c_proj"]),
        ):
            state[f"{h}.{scope}.weight"], state[f"{h}.{scope}.bias"] = source["w"], source["b"]
        for scope in ("ln_1", "ln_2"):
            state[f"{h}.{scope}.weight"], state[f"{h}.{scope}.bias"] = block[scope]["g"], block[scope]["b"]
    state = {key: torch.as_tensor(value) for key, value in state.items()}
    state["lm_head.weight"] = state["transformer.wte.weight"]
    model.load_state_dict(state, strict=False)
    return model


def test_tf_checkpoint_loads_with_openai_names_and_shapes(tf_checkpoint):
    models_dir, settings, params = tf_checkpoint
    assert settings == {"n_vocab": 50257, "n_ctx": 256, "n_embd": 64, "n_head": 4, "n_layer": 2}
    assert sorted(p.name for p in (models_dir / "124M").iterdir()) == [
        "checkpoint",
        "encoder.json",
        "hparams.json",
        "model.ckpt.data-00000-of-00001",
        "model.ckpt.index",
        "model.ckpt.meta",
        "vocab.bpe",
    ]
    import tensorflow as tf

    variables = dict(tf.train.list_variables(str(models_dir / "124M" / "model.ckpt")))
    assert variables["model/h0/attn/c_attn/w"] == [1, 64, 192]
    assert variables["model/h1/mlp/c_proj/w"] == [1, 256, 64]
    assert variables["model/ln_f/g"] == [64]
    assert len(params["blocks"]) == 2
    assert params["blocks"][0]["attn"]["c_attn"]["w"].shape == (64, 192)
    assert params["wte"].shape == (50257, 64) and params["wpe"].shape == (256, 64)


def test_tf_weights_give_same_logits_and_greedy_tokens_as_transformers(tf_checkpoint):
    _, settings, params = tf_checkpoint
    cfg = gpt2_config_from_hparams(settings)
    gpt = GPTModel(cfg).eval()
    load_weights_into_gpt(gpt, params)
    assert_same_as_transformers_gpt2(gpt, _transformers_model(settings, params), _prompt(), cfg["context_length"], 10)


def test_safetensors_weights_give_same_logits_and_greedy_tokens_as_transformers(tmp_path):
    write_synthetic_gpt2_safetensors(tmp_path / "gpt2" / "model.safetensors", seed=7)
    state_dict = load_gpt2_safetensors("gpt2", tmp_path)  # 이미 있으므로 내려받지 않는다
    assert state_dict["h.0.attn.c_attn.weight"].shape == (64, 192)  # [입력, 출력]
    config = json.loads((tmp_path / "gpt2" / "config.json").read_text())
    cfg = gpt2_config_from_hparams(config)
    gpt = GPTModel(cfg).eval()
    load_hf_weights_into_gpt(gpt, state_dict)
    hf_model = GPT2LMHeadModel.from_pretrained(tmp_path / "gpt2").eval()
    assert_same_as_transformers_gpt2(gpt, hf_model, _prompt(), cfg["context_length"], 10)

    # transformers 모델의 state_dict(transformer. 접두사, 마스크 버퍼, lm_head)도 받는다
    other = GPTModel(cfg).eval()
    load_hf_weights_into_gpt(other, hf_model.state_dict())
    for ours, theirs in zip(gpt.state_dict().values(), other.state_dict().values()):
        assert torch.equal(ours, theirs)


def test_hf_state_dict_ignores_attention_mask_buffers():
    hf_model = GPT2LMHeadModel(GPT2Config(n_positions=16, n_embd=32, n_head=2, n_layer=1)).eval()
    state_dict = dict(hf_model.state_dict())
    state_dict["transformer.h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 16, 16, dtype=torch.bool))
    state_dict["transformer.h.0.attn.masked_bias"] = torch.tensor(-1e4)
    gpt = GPTModel(gpt2_config_from_hparams(hf_model.config.to_dict())).eval()
    load_hf_weights_into_gpt(gpt, state_dict)
    torch.testing.assert_close(gpt.out_head.weight, hf_model.lm_head.weight)


def test_unknown_model_size_lists_valid_sizes(tmp_path):
    with pytest.raises(ValueError, match="125M") as error:
        download_and_load_gpt2("125M", tmp_path)
    for size in GPT2_SIZES:
        assert size in str(error.value)
    with pytest.raises(ValueError, match="gpt2-huge"):
        load_gpt2_safetensors("gpt2-huge", tmp_path)


def test_truncated_checkpoint_raises_and_is_not_trusted_next_time(tf_checkpoint, tmp_path):
    _, settings, _ = tf_checkpoint
    model_dir = write_synthetic_gpt2_checkpoint(tmp_path, "355M", hparams={**settings, "n_vocab": 100})
    data_file = model_dir / "model.ckpt.data-00000-of-00001"
    data_file.write_bytes(data_file.read_bytes()[:1000])

    before = {path.name: path.read_bytes() for path in model_dir.iterdir()}
    with pytest.raises(GPT2CheckpointError, match="손상") as error:
        download_and_load_gpt2("355M", tmp_path)
    assert str(data_file) in str(error.value)  # 옮길 파일을 밝힌다
    # 사용자의 파일일 수 있으므로 아무것도 지우지 않고, 다음 실행도 같은 오류로 믿지 않는다
    assert {path.name: path.read_bytes() for path in model_dir.iterdir()} == before
    with pytest.raises(GPT2CheckpointError, match="손상"):
        download_and_load_gpt2("355M", tmp_path)


def test_shape_mismatch_names_parameter_and_both_shapes(tf_checkpoint):
    _, settings, params = tf_checkpoint
    cfg = {**gpt2_config_from_hparams(settings), "context_length": 128}
    with pytest.raises(ValueError, match=r"context_length: 모델 128, 가중치 256"):
        load_weights_into_gpt(GPTModel(cfg), params)
    cfg = {**gpt2_config_from_hparams(settings), "qkv_bias": False}
    with pytest.raises(ValueError, match=r"trf_blocks\.0\.att\.W_query\.bias"):
        load_weights_into_gpt(GPTModel(cfg), params)
    with pytest.raises(ValueError, match=r"W_key\.weight.*\(4, 4\).*\(3, 4\)"):
        assign(torch.zeros(4, 4), torch.zeros(3, 4), "W_key.weight")


def test_config_from_hparams_uses_book_keys(tf_checkpoint):
    _, settings, _ = tf_checkpoint
    assert gpt2_config_from_hparams(settings, drop_rate=0.1) == {
        "vocab_size": 50257,
        "context_length": 256,
        "emb_dim": 64,
        "n_heads": 4,
        "n_layers": 2,
        "drop_rate": 0.1,
        "qkv_bias": True,
    }
    with pytest.raises(ValueError, match="n_layer"):
        gpt2_config_from_hparams({"n_vocab": 1, "n_ctx": 1, "n_embd": 1, "n_head": 1})


# ---------------------------------------------------------------------------
# 손실, 데이터 분할, 훈련, 디코딩, 저장·불러오기
# ---------------------------------------------------------------------------


def test_untrained_124m_loss_on_book_sentences_is_10_7940(tokenizer):
    assert text_to_token_ids("every effort moves", tokenizer).tolist() == [BOOK_INPUTS[0].tolist()]
    assert token_ids_to_text(BOOK_TARGETS[1:], tokenizer) == " really like chocolate"
    torch.manual_seed(123)
    model = GPTModel({**GPT_CONFIG_124M, "context_length": 256}).eval()
    loss = calc_loss_batch(BOOK_INPUTS, BOOK_TARGETS, model, torch.device("cpu"))
    assert round(loss.item(), 4) == 10.7940
    assert torch.exp(loss).item() == pytest.approx(48725.8, rel=1e-4)


def _verdict_loaders(verdict, context_length=256, batch_size=2):
    split_idx = int(0.90 * len(verdict))
    torch.manual_seed(123)
    common = {"batch_size": batch_size, "max_length": context_length, "stride": context_length}
    train_loader = create_dataloader_v1(verdict[:split_idx], shuffle=True, drop_last=True, **common)
    val_loader = create_dataloader_v1(verdict[split_idx:], shuffle=False, drop_last=False, **common)
    return train_loader, val_loader


def test_verdict_split_gives_9_train_and_1_val_batches(verdict):
    train_loader, val_loader = _verdict_loaders(verdict)
    assert (len(train_loader), len(val_loader)) == (9, 1)
    assert sum(x.numel() for x, _ in train_loader) == 4608
    assert sum(x.numel() for x, _ in val_loader) == 512


def test_training_lowers_the_loss(verdict, tokenizer, capsys):
    context_length = TINY_CONFIG["context_length"]
    common = {"batch_size": 2, "max_length": context_length, "stride": context_length}
    torch.manual_seed(123)
    train_loader = create_dataloader_v1(verdict[:2500], shuffle=True, drop_last=True, **common)
    val_loader = create_dataloader_v1(verdict[2500:3500], shuffle=False, drop_last=False, **common)
    model = GPTModel(TINY_CONFIG)
    device = torch.device("cpu")
    before = calc_loss_loader(train_loader, model, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.1)
    train_losses, val_losses, tokens_seen = train_model_simple(
        model,
        train_loader,
        val_loader,
        optimizer,
        device,
        num_epochs=2,
        eval_freq=4,
        eval_iter=2,
        start_context="Every effort moves you",
        tokenizer=tokenizer,
    )
    after = calc_loss_loader(train_loader, model, device)
    assert after < before - 2.0
    assert len(train_losses) == len(val_losses) == len(tokens_seen) >= 2
    assert tokens_seen[1] - tokens_seen[0] == 4 * 2 * context_length
    assert capsys.readouterr().out.count("Every effort moves you") == 2


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(123)
    return GPTModel(TINY_CONFIG).eval()


def test_greedy_generation_is_deterministic(tiny_model):
    idx = torch.tensor([[15496, 11, 314, 716]])
    simple = generate_text_simple(tiny_model, idx, 8, TINY_CONFIG["context_length"])
    greedy = generate(tiny_model, idx, 8, TINY_CONFIG["context_length"], temperature=0.0)
    top1 = generate(tiny_model, idx, 8, TINY_CONFIG["context_length"], temperature=1.5, top_k=1)
    assert greedy.tolist() == simple.tolist() == top1.tolist()
    assert greedy.shape == (1, 12)
    torch.manual_seed(1)
    sampled_a = generate(tiny_model, idx, 8, TINY_CONFIG["context_length"], temperature=1.0, top_k=50)
    torch.manual_seed(1)
    sampled_b = generate(tiny_model, idx, 8, TINY_CONFIG["context_length"], temperature=1.0, top_k=50)
    assert sampled_a.tolist() == sampled_b.tolist()


def test_generate_stops_at_eos(tiny_model):
    idx = torch.tensor([[15496, 11]])
    first = generate(tiny_model, idx, 1, TINY_CONFIG["context_length"])[0, -1].item()
    assert generate(tiny_model, idx, 5, TINY_CONFIG["context_length"], eos_id=first).tolist() == idx.tolist()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_k": 0}, "top_k"),
        ({"top_k": 50258}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_k": True}, "top_k"),
        ({"temperature": -0.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"context_size": 0}, "context_size"),
        ({"context_size": -4}, "context_size"),
    ],
)
def test_generate_rejects_bad_settings(tiny_model, kwargs, message):
    arguments = {"max_new_tokens": 3, "context_size": 32, **kwargs}
    with pytest.raises(ValueError, match=message) as error:
        generate(tiny_model, torch.tensor([[1, 2]]), **arguments)
    # 한국어로, 받은 값을 그대로 보여 준다
    assert "받은 값" in str(error.value) and repr(next(iter(kwargs.values()))) in str(error.value)


def test_nan_temperature_does_not_silently_become_greedy(tiny_model):
    with pytest.raises(ValueError, match="유한한 수"):
        generate(tiny_model, torch.tensor([[1, 2]]), 3, 32, temperature=float("nan"))
    with pytest.raises(ValueError, match="유한한 수"):
        softmax_with_temperature(torch.zeros(3), float("nan"))


@pytest.mark.parametrize("bad_id", [50257, -1])
def test_generate_rejects_token_ids_outside_the_vocabulary(tiny_model, bad_id):
    with pytest.raises(ValueError, match="토큰 ID는 0 이상 50257 미만"):
        generate(tiny_model, torch.tensor([[1, bad_id]]), 3, 32)


def test_text_to_token_ids_rejects_empty_prompt_and_allows_endoftext(tokenizer):
    for empty in ["", None]:
        with pytest.raises(ValueError, match="비어 있지 않은 문자열"):
            text_to_token_ids(empty, tokenizer)
    assert text_to_token_ids("Hi<|endoftext|>", tokenizer).tolist() == [[17250, 50256]]


def test_text_to_token_ids_names_a_disallowed_special_token():
    class FakeTokenizer:  # 특수 토큰이 여럿인 토크나이저(예: cl100k_base)를 흉내 낸다
        special_tokens_set = frozenset({"<|endoftext|>", "<|fim_prefix|>"})

        def encode(self, text, allowed_special=()):
            raise AssertionError("허용하지 않은 특수 토큰은 인코딩 전에 막아야 한다")

    with pytest.raises(ValueError, match=r"<\|fim_prefix\|>"):
        text_to_token_ids("code <|fim_prefix|> here", FakeTokenizer())


def test_low_temperature_sampling_concentrates_on_top_token():
    # 책 5.3.1절의 9단어 어휘와 다음 토큰 로짓("forward" 가 가장 크다)
    logits = torch.tensor([4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79])
    cold = sample_token_counts(softmax_with_temperature(logits, 0.1))
    normal = sample_token_counts(softmax_with_temperature(logits, 1.0))
    hot = sample_token_counts(softmax_with_temperature(logits, 5.0))
    assert cold.sum() == normal.sum() == hot.sum() == 1000
    assert cold.argmax() == normal.argmax() == 3
    assert cold[3] > 950 > normal[3] > hot[3]
    # 책이 출력하는 횟수(시드 123): T=1 에서 "forward" 582번, T=0.1 에서 985번
    assert normal[3] == 582
    assert cold[3] == 985
    assert (hot > 0).sum() > (cold > 0).sum()
    with pytest.raises(ValueError, match="temperature"):
        softmax_with_temperature(logits, 0)
