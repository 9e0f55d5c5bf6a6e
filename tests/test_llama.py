"""5장 보너스: GPT 에서 Llama 2, Llama 3/3.1/3.2 로 (``llm_from_scratch.llama``).

Meta 의 가중치·토크나이저 파일은 받을 수 없으므로, 파라미터 수는 meta 장치에서 모델을 만들어 세고,
구현이 맞는지는 무작위 가중치의 작은 transformers ``LlamaForCausalLM`` 과 로짓을 비교해 확인한다.
토크나이저는 여기서 훈련한 SentencePiece 모델과 여기서 만든 Llama 3 형식의 순위 파일로 확인한다.
"""

import base64
import http.server
import threading
from pathlib import Path

import pytest
import sentencepiece
import tiktoken
import torch
import transformers
from support import load_module

from llm_from_scratch.ch05 import generate
from llm_from_scratch.download import DownloadError, download_data_file
from llm_from_scratch.llama import (
    LLAMA2_CONFIG_7B,
    LLAMA3_CONFIG_8B,
    LLAMA31_CONFIG_8B,
    LLAMA32_CONFIG_1B,
    LLAMA32_CONFIG_3B,
    LLAMA_FILES,
    ChatFormat,
    GroupedQueryAttention,
    Llama2ChatFormat,
    Llama2Model,
    Llama2Tokenizer,
    Llama3Model,
    Llama3Tokenizer,
    MultiHeadAttention,
    apply_rope,
    compute_rope_params,
    count_parameters,
    download_llama_files,
    generate_cached,
    has_llama_files,
    llama_config_from_checkpoint,
    load_llama_safetensors,
    load_meta_checkpoint,
    load_meta_llama2_weights,
    load_weights_into_llama,
    meta_to_hf_rope_layout,
    model_memory_size,
    write_synthetic_llama_checkpoint,
)

CONFIG_KEYS = {"vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "hidden_dim", "rope_base", "rope_freq", "dtype"}
ROPE_FREQ_KEYS = {"factor", "low_freq_factor", "high_freq_factor", "original_context_length"}

TINY_LLAMA2 = {
    "vocab_size": 101,
    "context_length": 48,
    "emb_dim": 32,
    "n_heads": 4,
    "n_layers": 2,
    "hidden_dim": 56,
    "rope_base": 10_000.0,
    "rope_freq": None,
    "dtype": torch.float32,
}
TINY_LLAMA3 = {**TINY_LLAMA2, "emb_dim": 64, "n_kv_groups": 2, "rope_base": 500_000.0}
# 짧은 original_context_length 로 낮은·중간·높은 주파수 구간이 모두 생기게 한다
TINY_LLAMA31 = {
    **TINY_LLAMA3,
    "rope_freq": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_context_length": 16},
}
TINY_LLAMA32 = {**TINY_LLAMA31, "rope_freq": {**TINY_LLAMA31["rope_freq"], "factor": 32.0}}


def hf_config(cfg, tie=False):
    """우리 설정과 같은 transformers ``LlamaConfig``."""
    rope = {"rope_type": "default", "rope_theta": cfg["rope_base"]}
    if cfg["rope_freq"] is not None:
        freq = cfg["rope_freq"]
        rope = {
            "rope_type": "llama3",
            "rope_theta": cfg["rope_base"],
            "factor": freq["factor"],
            "low_freq_factor": freq["low_freq_factor"],
            "high_freq_factor": freq["high_freq_factor"],
            "original_max_position_embeddings": freq["original_context_length"],
        }
    return transformers.LlamaConfig(
        vocab_size=cfg["vocab_size"],
        hidden_size=cfg["emb_dim"],
        intermediate_size=cfg["hidden_dim"],
        num_hidden_layers=cfg["n_layers"],
        num_attention_heads=cfg["n_heads"],
        num_key_value_heads=cfg.get("n_kv_groups", cfg["n_heads"]),
        max_position_embeddings=cfg["context_length"],
        rms_norm_eps=1e-5,
        rope_parameters=rope,
        tie_word_embeddings=tie,
    )


def hf_model(cfg, tie=False, seed=123):
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(hf_config(cfg, tie)).eval()
    with torch.no_grad():  # RMSNorm 가중치가 모두 1이면 잘못 실어도 모를 수 있으므로 흔든다
        for name, param in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                param.uniform_(0.5, 1.5)
    return model


def max_logit_diff(model, reference, seed=0):
    idx = torch.randint(0, model.tok_emb.num_embeddings, (2, 37), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return (model(idx) - reference(idx).logits).abs().max().item()


# ---------------------------------------------------------------------------
# 설정과 파라미터 수(meta 장치: 메모리를 쓰지 않고 모양만 만든다)
# ---------------------------------------------------------------------------


def _meta_model(model_class, cfg):
    with torch.device("meta"):
        return model_class(cfg)


def test_configs_have_the_documented_keys():
    assert set(LLAMA2_CONFIG_7B) == CONFIG_KEYS  # Llama 2 는 n_kv_groups 가 없다(멀티 헤드 어텐션)
    for cfg in (LLAMA3_CONFIG_8B, LLAMA31_CONFIG_8B, LLAMA32_CONFIG_1B, LLAMA32_CONFIG_3B):
        assert set(cfg) == CONFIG_KEYS | {"n_kv_groups"}
        assert cfg["rope_base"] == 500_000.0 and cfg["n_kv_groups"] == 8
    assert LLAMA3_CONFIG_8B["rope_freq"] is None
    for cfg in (LLAMA31_CONFIG_8B, LLAMA32_CONFIG_1B, LLAMA32_CONFIG_3B):
        assert set(cfg["rope_freq"]) == ROPE_FREQ_KEYS
    assert LLAMA31_CONFIG_8B["rope_freq"]["factor"] == 8.0 and LLAMA32_CONFIG_1B["rope_freq"]["factor"] == 32.0


@pytest.mark.parametrize(
    ("model_class", "cfg", "expected_total", "expected_unique"),
    [
        (Llama2Model, LLAMA2_CONFIG_7B, 6_738_415_616, 6_738_415_616),
        (Llama3Model, LLAMA3_CONFIG_8B, 8_030_261_248, 8_030_261_248),
        (Llama3Model, LLAMA31_CONFIG_8B, 8_030_261_248, 8_030_261_248),
        (Llama3Model, LLAMA32_CONFIG_1B, 1_498_482_688, 1_235_814_400),
        (Llama3Model, LLAMA32_CONFIG_3B, 3_606_752_256, 3_212_749_824),
    ],
    ids=["llama2-7b", "llama3-8b", "llama31-8b", "llama32-1b", "llama32-3b"],
)
def test_parameter_counts_match_published_sizes(model_class, cfg, expected_total, expected_unique):
    model = _meta_model(model_class, cfg)
    assert count_parameters(model) == (expected_total, expected_total)
    if expected_unique != expected_total:  # Llama 3.2: 출력층이 토큰 임베딩을 함께 쓴다
        model.out_head.weight = model.tok_emb.weight
        assert count_parameters(model) == (expected_total, expected_unique)


def test_grouped_query_attention_has_fewer_parameters_than_multi_head():
    with torch.device("meta"):
        mha = MultiHeadAttention(4096, 4096, num_heads=32)
        gqa = GroupedQueryAttention(4096, 4096, num_heads=32, num_kv_groups=8)
    assert sum(p.numel() for p in mha.parameters()) == 67_108_864
    assert sum(p.numel() for p in gqa.parameters()) == 41_943_040


def test_memory_needed_in_float32_and_bfloat16():
    llama2 = _meta_model(Llama2Model, LLAMA2_CONFIG_7B)
    assert model_memory_size(llama2, torch.float32) == 6_738_415_616 * 4  # 26.95 GB
    assert model_memory_size(llama2, torch.bfloat16) == 6_738_415_616 * 2  # 13.48 GB
    llama32 = _meta_model(Llama3Model, LLAMA32_CONFIG_1B)
    llama32.out_head.weight = llama32.tok_emb.weight
    assert model_memory_size(llama32, torch.bfloat16) == 1_235_814_400 * 2  # 묶은 행렬은 한 번만 센다


def test_configs_reject_inconsistent_values():
    with pytest.raises(ValueError, match="n_kv_groups"):
        Llama3Model(TINY_LLAMA2)
    with pytest.raises(ValueError, match="num_kv_groups"):
        Llama3Model({**TINY_LLAMA3, "n_kv_groups": 3})
    with pytest.raises(ValueError, match="hidden_dim"):
        Llama2Model({key: value for key, value in TINY_LLAMA2.items() if key != "hidden_dim"})


# ---------------------------------------------------------------------------
# transformers 와 같은 계산
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg", [TINY_LLAMA3, TINY_LLAMA31, TINY_LLAMA32], ids=["default", "llama3-factor8", "llama3-factor32"]
)
def test_rope_equals_transformers_rotary_embedding(cfg):
    head_dim = cfg["emb_dim"] // cfg["n_heads"]
    config = hf_config({**cfg, "context_length": 512, "rope_freq": cfg["rope_freq"]})
    rotary = transformers.models.llama.modeling_llama.LlamaRotaryEmbedding(config)
    positions = torch.arange(512)[None, :]
    hf_cos, hf_sin = rotary(torch.zeros(1, dtype=torch.float32), positions)
    cos, sin = compute_rope_params(head_dim, cfg["rope_base"], 512, cfg["rope_freq"])
    torch.testing.assert_close(cos, hf_cos[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(sin, hf_sin[0], rtol=0, atol=1e-6)
    if cfg["rope_freq"] is not None:  # 주파수 조정이 실제로 무언가를 바꿨는지
        plain_cos, _ = compute_rope_params(head_dim, cfg["rope_base"], 512)
        assert not torch.allclose(cos, plain_cos)


def test_rope_keeps_only_the_relative_position_in_attention_scores():
    cos, sin = compute_rope_params(16, 10_000.0, 64)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m, n):
        return (apply_rope(q, cos[m : m + 1], sin[m : m + 1]) * apply_rope(k, cos[n : n + 1], sin[n : n + 1])).sum()

    torch.testing.assert_close(score(7, 3), score(40, 36), rtol=0, atol=1e-5)
    assert not torch.allclose(score(7, 3), score(7, 4))


def test_llama2_logits_equal_transformers_from_state_dict_and_safetensors(tmp_path):
    reference = hf_model(TINY_LLAMA2)
    model = load_weights_into_llama(Llama2Model(TINY_LLAMA2).eval(), TINY_LLAMA2, reference.state_dict())
    assert max_logit_diff(model, reference) <= 1e-5
    reference.save_pretrained(tmp_path)
    from_folder = load_weights_into_llama(Llama2Model(TINY_LLAMA2).eval(), TINY_LLAMA2, load_llama_safetensors(tmp_path))
    assert max_logit_diff(from_folder, reference, seed=1) <= 1e-5
    assert from_folder.out_head.weight is not from_folder.tok_emb.weight  # Llama 2 는 출력층이 따로 있다


@pytest.mark.parametrize(
    ("cfg", "tie"),
    [(TINY_LLAMA3, False), (TINY_LLAMA31, False), (TINY_LLAMA32, True)],
    ids=["llama3", "llama31-rope-scaling", "llama32-tied"],
)
def test_llama3_logits_equal_transformers_from_state_dict_and_safetensors(cfg, tie, tmp_path):
    reference = hf_model(cfg, tie=tie)
    model = load_weights_into_llama(Llama3Model(cfg).eval(), cfg, reference.state_dict())
    assert max_logit_diff(model, reference) <= 1e-5
    assert (model.out_head.weight is model.tok_emb.weight) == tie

    reference.save_pretrained(tmp_path)
    state_dict = load_llama_safetensors(tmp_path)
    assert ("lm_head.weight" in state_dict) != tie  # 묶인 모델은 출력층 행렬을 따로 저장하지 않는다
    from_folder = load_weights_into_llama(Llama3Model(cfg).eval(), cfg, state_dict)
    assert max_logit_diff(from_folder, reference, seed=1) <= 1e-5
    assert (from_folder.out_head.weight is from_folder.tok_emb.weight) == tie


def test_loading_rejects_a_checkpoint_for_another_config():
    state_dict = hf_model(TINY_LLAMA3).state_dict()
    with pytest.raises(ValueError, match="모양이 맞지 않습니다"):
        load_weights_into_llama(Llama3Model({**TINY_LLAMA3, "hidden_dim": 40}), TINY_LLAMA3, state_dict)
    with pytest.raises(ValueError, match="쓰지 않은 키"):
        load_weights_into_llama(Llama3Model({**TINY_LLAMA3, "n_layers": 1}), {**TINY_LLAMA3, "n_layers": 1}, state_dict)


# ---------------------------------------------------------------------------
# Meta 의 원래 Llama 2 형식(consolidated.00.pth)
# ---------------------------------------------------------------------------


def _meta_interleaved_rope(x, theta_base=10_000.0):
    """Meta 의 방식: 이웃한 차원 (2i, 2i+1) 을 복소수 하나로 보고 위치 m 에서 m * 주파수 i 만큼 돌린다."""
    head_dim = x.shape[-1]
    inv_freq = 1.0 / theta_base ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.arange(x.shape[-2]).float()[:, None] * inv_freq[None, :]
    rotation = torch.polar(torch.ones_like(angles), angles)
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], head_dim // 2, 2))
    return torch.view_as_real(pairs * rotation).flatten(-2)


def test_meta_rope_layout_gives_the_same_attention_scores():
    torch.manual_seed(0)
    n_heads, head_dim, d_in, tokens = 2, 8, 12, 5
    wq, wk, x = torch.randn(n_heads * head_dim, d_in), torch.randn(n_heads * head_dim, d_in), torch.randn(tokens, d_in)

    def heads(y):
        return y.view(tokens, n_heads, head_dim).transpose(0, 1)

    meta_q, meta_k = _meta_interleaved_rope(heads(x @ wq.T)), _meta_interleaved_rope(heads(x @ wk.T))
    cos, sin = compute_rope_params(head_dim, 10_000.0, tokens)
    q = apply_rope(heads(x @ meta_to_hf_rope_layout(wq, n_heads).T), cos, sin)
    k = apply_rope(heads(x @ meta_to_hf_rope_layout(wk, n_heads).T), cos, sin)
    torch.testing.assert_close(q @ k.transpose(-1, -2), meta_q @ meta_k.transpose(-1, -2), rtol=1e-5, atol=1e-4)


def _hf_to_meta_rope_layout(weight, n_heads):
    out_dim, in_dim = weight.shape
    return weight.view(n_heads, 2, out_dim // n_heads // 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def test_meta_llama2_checkpoint_loads_to_the_same_logits(tmp_path):
    reference = hf_model(TINY_LLAMA2)
    hf = reference.state_dict()
    n_heads = TINY_LLAMA2["n_heads"]
    meta = {"tok_embeddings.weight": hf["model.embed_tokens.weight"], "norm.weight": hf["model.norm.weight"],
            "output.weight": hf["lm_head.weight"], "rope.freqs": torch.zeros(4)}
    for layer in range(TINY_LLAMA2["n_layers"]):
        p, m = f"model.layers.{layer}.", f"layers.{layer}."
        meta |= {
            m + "attention.wq.weight": _hf_to_meta_rope_layout(hf[p + "self_attn.q_proj.weight"], n_heads),
            m + "attention.wk.weight": _hf_to_meta_rope_layout(hf[p + "self_attn.k_proj.weight"], n_heads),
            m + "attention.wv.weight": hf[p + "self_attn.v_proj.weight"],
            m + "attention.wo.weight": hf[p + "self_attn.o_proj.weight"],
            m + "attention_norm.weight": hf[p + "input_layernorm.weight"],
            m + "ffn_norm.weight": hf[p + "post_attention_layernorm.weight"],
            m + "feed_forward.w1.weight": hf[p + "mlp.gate_proj.weight"],
            m + "feed_forward.w2.weight": hf[p + "mlp.down_proj.weight"],
            m + "feed_forward.w3.weight": hf[p + "mlp.up_proj.weight"],
        }
    torch.save(meta, tmp_path / "consolidated.00.pth")  # Meta 가 배포한 것과 같은 파일 형식
    checkpoint = load_meta_checkpoint(tmp_path / "consolidated.00.pth")
    model = load_meta_llama2_weights(Llama2Model(TINY_LLAMA2).eval(), TINY_LLAMA2, checkpoint)
    assert max_logit_diff(model, reference) <= 1e-5
    with pytest.raises(ValueError, match="consolidated.00.pth"):
        load_meta_llama2_weights(Llama2Model(TINY_LLAMA2), TINY_LLAMA2, hf)


# ---------------------------------------------------------------------------
# KV 캐시
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama32_model():
    torch.manual_seed(1)
    return Llama3Model(TINY_LLAMA32).eval()


def test_kv_cache_generation_equals_generation_without_cache(llama32_model):
    prompt = torch.tensor([[5, 17, 42, 8, 99, 3]])
    cached = generate_cached(llama32_model, prompt, max_new_tokens=30)
    plain = generate(llama32_model, prompt, max_new_tokens=30, context_size=TINY_LLAMA32["context_length"])
    assert cached.shape == (1, 36)
    assert cached.tolist() == plain.tolist()
    assert llama32_model.current_pos == 0 and llama32_model.trf_blocks[0].att.cache_k is None


def test_kv_cache_in_chunks_gives_the_same_logits(llama32_model):
    idx = torch.randint(0, 101, (2, 20), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = llama32_model(idx)
        llama32_model.reset_kv_cache()
        parts = [llama32_model(idx[:, a:b], use_cache=True) for a, b in [(0, 7), (7, 8), (8, 20)]]
        llama32_model.reset_kv_cache()
        # 캐시에는 키·값 헤드가 n_heads 개가 아니라 n_kv_groups 개만 들어 있다(그룹 쿼리 어텐션)
        llama32_model(idx, use_cache=True)
        cache_k = llama32_model.trf_blocks[0].att.cache_k
        llama32_model.reset_kv_cache()
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=0, atol=1e-5)
    head_dim = TINY_LLAMA32["emb_dim"] // TINY_LLAMA32["n_heads"]
    assert cache_k.shape == (2, TINY_LLAMA32["n_kv_groups"], 20, head_dim)


def test_kv_cache_sampling_and_eos_follow_chapter5_generate(llama32_model):
    prompt = torch.tensor([[1, 2, 3]])
    torch.manual_seed(7)
    cached = generate_cached(llama32_model, prompt, 12, temperature=1.0, top_k=5)
    torch.manual_seed(7)
    plain = generate(llama32_model, prompt, 12, context_size=48, temperature=1.0, top_k=5)
    assert cached.tolist() == plain.tolist()
    eos = cached[0, 5].item()
    stopped = generate_cached(llama32_model, prompt, 12, temperature=0.0, eos_id=eos)
    expected = generate(llama32_model, prompt, 12, context_size=48, eos_id=eos)
    assert stopped.tolist() == expected.tolist()


def test_kv_cache_generation_refuses_to_run_past_the_context_length(llama32_model):
    with pytest.raises(ValueError, match="문맥 길이 48"):
        generate_cached(llama32_model, torch.zeros(1, 40, dtype=torch.long), max_new_tokens=9)


# ---------------------------------------------------------------------------
# 토크나이저
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spm")
    text = download_data_file("the-verdict.txt", folder).read_text(encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(line for line in text.splitlines() if line.strip()),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=500,
        model_type="bpe",
        byte_fallback=True,  # Llama 2 처럼 모르는 문자는 바이트 토큰으로
        pad_id=-1, unk_id=0, bos_id=1, eos_id=2,  # Llama 2 와 같은 특수 토큰 ID
        minloglevel=2,
    )
    return folder / "tokenizer.model"


def test_llama2_sentencepiece_tokenizer(sentencepiece_model):
    tokenizer = Llama2Tokenizer(sentencepiece_model)
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.n_vocab) == (1, 2, 500)
    text = "I had always thought Jack Gisburn rather a cheap genius. 한국어"
    ids = tokenizer.encode(text)
    assert ids[0] == 1 and 2 not in ids
    assert tokenizer.encode(text, bos=False, eos=True)[-1] == 2
    assert tokenizer.decode(ids) == text  # 어휘에 없는 한글도 바이트 토큰으로 되살아난다
    assert len(ids) < len(text.encode("utf-8"))


@pytest.fixture(scope="module")
def llama3_rank_file(tmp_path_factory):
    """Llama 3 의 tokenizer.model 과 같은 형식(한 줄에 base64 토큰과 순위): GPT-2 순위의 앞 1,000개."""
    ranks = tiktoken.get_encoding("gpt2")._mergeable_ranks
    path = tmp_path_factory.mktemp("llama3") / "tokenizer.model"
    lines = [f"{base64.b64encode(token).decode()} {rank}" for token, rank in ranks.items() if rank < 1000]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_llama3_tokenizer_special_tokens_and_round_trip(llama3_rank_file):
    tokenizer = Llama3Tokenizer(llama3_rank_file)
    special = tokenizer.special
    assert special["<|begin_of_text|>"] == 128_000 and special["<|end_of_text|>"] == 128_001
    assert special["<|start_header_id|>"] == 128_006 and special["<|end_header_id|>"] == 128_007
    assert special["<|eot_id|>"] == 128_009
    # 이름 있는 토큰 사이의 빈자리를 차례로 채운다: 0–3 은 128002–128005, 4 는 128008, 5 부터 128010 …, 250 은 128255
    assert special["<|reserved_special_token_0|>"] == 128_002 and special["<|reserved_special_token_3|>"] == 128_005
    assert special["<|reserved_special_token_4|>"] == 128_008 and special["<|reserved_special_token_5|>"] == 128_010
    assert special["<|reserved_special_token_250|>"] == 128_255 and "<|reserved_special_token_251|>" not in special
    assert sorted(special.values()) == list(range(128_000, 128_256))  # 모두 어휘 128,256개 안에

    text = "Hello, world! 12345 tokens\n\nnew   line"
    ids = tokenizer.encode(text, bos=True)
    assert ids[0] == 128_000 and max(ids[1:]) < 1000
    assert tokenizer.decode(ids[1:]) == text
    # 숫자는 세 자리까지만 한 조각: "2000" 은 "200" + "0" 으로 나뉘므로, 어휘에 "000" 이 있어도 "2" + "000" 이
    # 되지 못한다(GPT-2 는 자릿수 제한이 없어 "2" + "000")
    assert b"000" in tiktoken.get_encoding("gpt2")._mergeable_ranks
    assert [tokenizer.decode([i]) for i in tokenizer.encode("2000")] == ["2", "00", "0"]
    # 특수 토큰 문자열은 허락할 때만 특수 토큰이 된다
    assert tokenizer.encode("<|eot_id|>", allowed_special={"<|eot_id|>"}) == [128_009]
    assert 128_009 not in tokenizer.encode("<|eot_id|>")


def test_chat_format_wraps_messages_in_headers(llama3_rank_file):
    tokenizer = Llama3Tokenizer(llama3_rank_file)
    chat = ChatFormat(tokenizer)
    ids = chat.encode("What is 1+1?", system_message="Be brief.")

    def header(role):
        return [128_006, *tokenizer.encode(role), 128_007, *tokenizer.encode("\n\n")]

    expected = [128_000, *header("system"), *tokenizer.encode("Be brief."), 128_009,
                *header("user"), *tokenizer.encode("What is 1+1?"), 128_009, *header("assistant")]
    assert ids == expected
    assert tokenizer.decode(ids).endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert chat.decode([*tokenizer.encode("Two."), 128_009, 5, 6]) == "Two."
    with pytest.raises(ValueError, match="역할"):
        chat.encode_dialog([{"role": "robot", "content": "hi"}])


def test_tokenizers_name_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="download_llama_files"):
        Llama3Tokenizer(tmp_path / "tokenizer.model")


# ---------------------------------------------------------------------------
# 내려받기: HF_TOKEN 을 Authorization 헤더로(127.0.0.1 가짜 서버)
# ---------------------------------------------------------------------------


class _GatedHandler(http.server.BaseHTTPRequestHandler):
    body = b"fake tokenizer ranks\n"

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != "Bearer secret-token":
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def gated_server(monkeypatch):
    monkeypatch.delenv("LLMFS_OFFLINE", raising=False)
    monkeypatch.delenv("LLMFS_DATA_MIRROR", raising=False)
    _GatedHandler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GatedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_sends_hf_token_and_explains_the_licence_step(gated_server, tmp_path, monkeypatch):
    repo = "meta-llama/Llama-3.2-1B"
    monkeypatch.setenv("HF_TOKEN", "secret-token")
    [path] = download_llama_files(repo, tmp_path, ["original/tokenizer.model"], base_url=gated_server)
    assert path == tmp_path / "tokenizer.model" and path.read_bytes() == _GatedHandler.body
    assert _GatedHandler.seen == [(f"/{repo}/resolve/main/original/tokenizer.model", "Bearer secret-token")]

    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(DownloadError, match="HF_TOKEN") as error:
        download_llama_files(repo, tmp_path / "other", ["original/tokenizer.model"], base_url=gated_server)
    assert "401" in str(error.value) and "라이선스" in str(error.value)
    assert not (tmp_path / "other" / "tokenizer.model").exists()



NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "ch05" / "07_gpt_to_llama"


# ---------------------------------------------------------------------------
# 속도 측정 스크립트: 인자를 먼저 확인한다
# ---------------------------------------------------------------------------


def _benchmark_module():
    return load_module(NOTEBOOK_DIR / "benchmark.py", "llama_benchmark")


def test_benchmark_help_is_korean_and_bad_arguments_stop_before_any_work(capsys):
    benchmark = _benchmark_module()
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--help"])
    assert exit_info.value.code == 0 and "transformers" in capsys.readouterr().out
    for argv, message in [
        (["--n-heads", "3"], "--n-heads"),
        (["--n-kv-groups", "3"], "--n-kv-groups"),
        (["--max-new-tokens", "2000"], "--context-length"),
        (["--repeats", "0"], "1 이상"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            benchmark.main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


# ---------------------------------------------------------------------------
# 진짜 저장소의 파일 배치로 쓴 작은 체크포인트: 파일 이름, 설정, 적재, transformers 와 같은 로짓
# ---------------------------------------------------------------------------

SYNTH_LLAMA2 = {**LLAMA2_CONFIG_7B, "vocab_size": 500, "context_length": 64, "emb_dim": 64, "n_heads": 4,
                "n_layers": 2, "hidden_dim": 256, "dtype": torch.float32}  # 256: Meta 의 계산(8/3 × 64 를 256 의 배수로)
SYNTH_LLAMA3 = {**LLAMA3_CONFIG_8B, "context_length": 64, "emb_dim": 32, "n_heads": 4, "n_kv_groups": 2,
                "n_layers": 4, "hidden_dim": 64, "dtype": torch.float32}
# 짧은 original_context_length 로 주파수 조정의 세 구간이 64 토큰 안에서 모두 생기게 한다
SYNTH_LLAMA31 = {**SYNTH_LLAMA3, "rope_freq": {**LLAMA31_CONFIG_8B["rope_freq"], "original_context_length": 16}}
SYNTH_LLAMA32 = {**SYNTH_LLAMA31, "rope_freq": {**SYNTH_LLAMA31["rope_freq"], "factor": 32.0}}

LAYOUTS = [
    ("meta-llama/Llama-2-7b-chat", SYNTH_LLAMA2, Llama2Model),
    ("meta-llama/Llama-2-7b-chat-hf", SYNTH_LLAMA2, Llama2Model),
    ("meta-llama/Meta-Llama-3-8B-Instruct", SYNTH_LLAMA3, Llama3Model),
    ("meta-llama/Llama-3.1-8B-Instruct", SYNTH_LLAMA31, Llama3Model),
    ("meta-llama/Llama-3.2-1B-Instruct", SYNTH_LLAMA32, Llama3Model),
]


def _load_like_a_reader(repo_id, folder, model_class):
    """노트북이 진짜 파일에 쓰는 코드 그대로: 설정 파일로 cfg 를 만들고, 형식에 맞는 적재 함수로 싣는다."""
    if (folder / "consolidated.00.pth").exists():
        cfg = llama_config_from_checkpoint(folder, vocab_size=Llama2Tokenizer(folder / "tokenizer.model").n_vocab,
                                           context_length=64, dtype=torch.float32)
        model = model_class(cfg).eval()
        return load_meta_llama2_weights(model, cfg, load_meta_checkpoint(folder / "consolidated.00.pth"), folder)
    cfg = llama_config_from_checkpoint(folder)
    return load_weights_into_llama(model_class(cfg).eval(), cfg, load_llama_safetensors(folder))


@pytest.mark.parametrize(("repo_id", "cfg", "model_class"), LAYOUTS, ids=[r.split("/")[1] for r, _, _ in LAYOUTS])
def test_synthetic_checkpoint_in_the_real_layout_loads_to_transformers_logits(repo_id, cfg, model_class, tmp_path):
    import json

    folder = tmp_path / repo_id.split("/")[1]
    written = write_synthetic_llama_checkpoint(repo_id, folder, cfg, seed=5)
    assert sorted(path.name for path in folder.iterdir()) == sorted(Path(n).name for n in LLAMA_FILES[repo_id])
    assert written == [folder / Path(n).name for n in LLAMA_FILES[repo_id]] and has_llama_files(repo_id, folder)

    model = _load_like_a_reader(repo_id, folder, model_class)
    if (folder / "consolidated.00.pth").exists():
        assert json.loads((folder / "params.json").read_text())["vocab_size"] == -1  # Meta 의 Llama 2 처럼
        # 같은 씨앗의 Hugging Face 배치(쿼리·키 행 순서가 다르다)를 transformers 가 읽어 기준으로 삼는다
        reference_folder = tmp_path / "hf"
        write_synthetic_llama_checkpoint("meta-llama/Llama-2-7b-chat-hf", reference_folder, cfg, seed=5)
    else:
        assert llama_config_from_checkpoint(folder) == cfg
        reference_folder = folder
        shards = [n for n in LLAMA_FILES[repo_id] if n.endswith(".safetensors")]
        if len(shards) > 1:  # 인덱스가 모든 텐서를 어느 조각에 있는지 가리키고, 조각마다 텐서가 있다
            weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
            assert set(weight_map.values()) == set(shards)
            assert set(weight_map) == set(load_llama_safetensors(folder))
    reference = transformers.LlamaForCausalLM.from_pretrained(reference_folder).eval()
    tie = "Llama-3.2" in repo_id
    assert reference.config.tie_word_embeddings == tie
    assert (model.out_head.weight is model.tok_emb.weight) == tie
    idx = torch.randint(0, 500, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(idx), reference(idx).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)
    assert theirs.std() > 0.5  # 값이 모두 0 에 가까워 무엇이든 같아 보이는 경우가 아니다


# Hugging Face 에 공개된 config.json / params.json 의 값(2024년 배포본)
REAL_CONFIG_JSON = {
    "meta-llama/Meta-Llama-3-8B": (LLAMA3_CONFIG_8B, {
        "architectures": ["LlamaForCausalLM"], "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu",
        "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 8192, "model_type": "llama",
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
        "rope_scaling": None, "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "vocab_size": 128256}),
    "meta-llama/Llama-3.1-8B": (LLAMA31_CONFIG_8B, {
        "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 131072, "num_attention_heads": 32,
        "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 128256}),
    "meta-llama/Llama-3.2-1B": (LLAMA32_CONFIG_1B, {
        "head_dim": 64, "hidden_size": 2048, "intermediate_size": 8192, "max_position_embeddings": 131072,
        "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
        "rope_theta": 500000.0,
        "rope_scaling": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "tie_word_embeddings": True, "torch_dtype": "bfloat16", "vocab_size": 128256}),
}


@pytest.mark.parametrize("repo_id", list(REAL_CONFIG_JSON))
def test_published_config_json_gives_the_published_config(repo_id, tmp_path):
    import json

    expected, raw = REAL_CONFIG_JSON[repo_id]
    (tmp_path / "config.json").write_text(json.dumps(raw), encoding="utf-8")
    assert llama_config_from_checkpoint(tmp_path) == expected
    assert llama_config_from_checkpoint(tmp_path, context_length=8192)["context_length"] == 8192


def test_meta_params_json_gives_the_llama2_config(tmp_path):
    import json

    params = {"dim": 4096, "multiple_of": 256, "n_heads": 32, "n_layers": 32, "norm_eps": 1e-05, "vocab_size": -1}
    (tmp_path / "params.json").write_text(json.dumps(params), encoding="utf-8")
    assert llama_config_from_checkpoint(tmp_path, vocab_size=32_000) == LLAMA2_CONFIG_7B  # hidden_dim 11,008
    with pytest.raises(ValueError, match="vocab_size 가 -1"):
        llama_config_from_checkpoint(tmp_path)


def test_llama2_chat_template_tokens(sentencepiece_model):
    tokenizer = Llama2Tokenizer(sentencepiece_model)
    chat = Llama2ChatFormat(tokenizer)
    sp = tokenizer.sp
    ids = chat.encode("What do llamas eat?", system_message="Be brief.")
    assert ids == [1, *sp.encode("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat do llamas eat? [/INST]")]
    dialog = [{"role": "user", "content": "Hi "}, {"role": "assistant", "content": " Hello."},
              {"role": "user", "content": "Who are you?"}]
    assert chat.encode_dialog(dialog) == [1, *sp.encode("[INST] Hi [/INST] Hello. "), 2,
                                          1, *sp.encode("[INST] Who are you? [/INST]")]
    assert chat.decode([*tokenizer.encode("Grass.", bos=False), 2, 7, 8]) == "Grass."
    for bad in ([{"role": "assistant", "content": "x"}], dialog[:2], []):
        with pytest.raises(ValueError, match="user 로 끝나야"):
            chat.encode_dialog(bad)


def test_synthetic_llama3_folder_tokenizer_renders_the_chat_template(tmp_path):
    write_synthetic_llama_checkpoint("meta-llama/Llama-3.2-1B-Instruct", tmp_path, SYNTH_LLAMA32)
    tokenizer = Llama3Tokenizer(tmp_path / "tokenizer.model")
    ids = ChatFormat(tokenizer).encode("Hi")
    nl = tokenizer.encode("\n\n")
    assert ids == [128_000, 128_006, *tokenizer.encode("user"), 128_007, *nl, *tokenizer.encode("Hi"), 128_009,
                   128_006, *tokenizer.encode("assistant"), 128_007, *nl]
    assert max(ids) < SYNTH_LLAMA32["vocab_size"]  # 특수 토큰도 모델의 임베딩 안에 있다
    assert tokenizer.decode(tokenizer.encode("What do llamas eat?")) == "What do llamas eat?"
    # 진짜처럼 순위가 128,000개라서 무작위 모델이 어떤 ID 를 내도 디코딩된다
    assert len(tokenizer.decode(range(0, 128_000, 997))) > 0


def test_bad_checkpoint_layouts_fail_with_korean_messages(tmp_path):
    import json

    from support import korean

    repo = "meta-llama/Meta-Llama-3-8B-Instruct"
    folder = tmp_path / "llama3"
    write_synthetic_llama_checkpoint(repo, folder, SYNTH_LLAMA3)
    with pytest.raises(ValueError, match="덮어쓰지 않았습니다") as error:  # 사용자의 파일은 덮어쓰지 않는다
        write_synthetic_llama_checkpoint(repo, folder, SYNTH_LLAMA3)
    assert korean(str(error.value))

    shard = folder / "model-00003-of-00004.safetensors"
    shard.rename(tmp_path / shard.name)  # 조각 하나가 빠진 폴더
    with pytest.raises(FileNotFoundError, match="model-00003-of-00004.safetensors 이\\(가\\) 없습니다") as error:
        load_llama_safetensors(folder)
    assert korean(str(error.value)) and not has_llama_files(repo, folder)
    (folder / "model.safetensors.index.json").unlink()  # 인덱스가 없어도 -of-00004 가 조각 수를 말한다
    with pytest.raises(FileNotFoundError, match="model-00003-of-00004"):
        load_llama_safetensors(folder)

    (tmp_path / shard.name).rename(shard)
    index = {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00004.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    with pytest.raises(ValueError, match="weight_map") as error:
        load_llama_safetensors(folder)
    assert korean(str(error.value))

    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "rope_scaling": {"rope_type": "yarn"}}))
    with pytest.raises(ValueError, match="'yarn'"):
        llama_config_from_checkpoint(folder)
    with pytest.raises(FileNotFoundError, match="config.json 도 params.json 도 없습니다"):
        llama_config_from_checkpoint(tmp_path)

    with pytest.raises(ValueError, match="hidden_dim 을 256"):  # params.json 으로 적을 수 없는 피드 포워드 크기
        write_synthetic_llama_checkpoint("meta-llama/Llama-2-7b-chat", tmp_path / "m", {**SYNTH_LLAMA2, "hidden_dim": 100})
    with pytest.raises(ValueError, match="128,256"):
        write_synthetic_llama_checkpoint(repo, tmp_path / "v", {**SYNTH_LLAMA3, "vocab_size": 1000})
    assert not (tmp_path / "m").exists() and not (tmp_path / "v").exists()  # 확인이 먼저, 파일은 그다음


@pytest.mark.parametrize(("choice", "dtype"), [("on", "bfloat16"), ("off", "float32")])
def test_benchmark_bf16_switch_casts_both_models(capsys, choice, dtype):
    benchmark = _benchmark_module()
    benchmark.main(["--quick", "--bf16", choice])
    out = capsys.readouterr().out
    assert f"무작위 가중치, {dtype}(명령줄 옵션 --bf16 {choice})" in out
    assert "두 방식이 만든 토큰이 같은가:" in out
    cfg = {**benchmark.reduced_config(benchmark.argparse.Namespace(
        vocab_size=256, context_length=64, emb_dim=64, n_heads=4, n_kv_groups=2, n_layers=2, hidden_dim=128))}
    hf_model, model = benchmark.build_models(cfg, 123, getattr(torch, dtype))
    assert {p.dtype for p in hf_model.parameters()} | {p.dtype for p in model.parameters()} == {getattr(torch, dtype)}
