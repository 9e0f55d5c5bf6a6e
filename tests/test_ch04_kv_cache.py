"""4장 보너스(KV 캐시): 캐시 생성이 generate_text_simple 과 같은 토큰을 내는지, 캐시 초기화, state_dict 호환."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support import load_module

from llm_from_scratch.ch04 import GPTModel, generate_text_simple

KV_DIR = Path(__file__).resolve().parents[1] / "ch04" / "03_kv-cache"
sys.path.insert(0, str(KV_DIR))

from gpt_with_kv_cache import GPTModelWithKVCache, generate_text_simple_cached

CFG = {
    "vocab_size": 500,
    "context_length": 32,
    "emb_dim": 64,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": True,
}


@pytest.fixture(scope="module")
def models():
    """같은 가중치의 (GPTModel, GPTModelWithKVCache), 평가 모드."""
    torch.manual_seed(123)
    plain = GPTModel(CFG).eval()
    cached = GPTModelWithKVCache(CFG).eval()
    cached.load_state_dict(plain.state_dict())
    return plain, cached


@pytest.mark.parametrize("prompt_len", [1, 7, 29, 32, 45])
def test_cached_generation_gives_the_same_tokens_as_generate_text_simple(models, prompt_len):
    # 29: 문맥 한계 바로 앞에서 시작해 곧 창이 밀린다, 32: 한계에서 시작, 45: 한계보다 긴 프롬프트
    plain, cached = models
    torch.manual_seed(prompt_len)
    prompt = torch.randint(0, CFG["vocab_size"], (2, prompt_len))
    expected = generate_text_simple(plain, prompt, max_new_tokens=60, context_size=CFG["context_length"])
    actual = generate_text_simple_cached(cached, prompt, max_new_tokens=60, context_size=CFG["context_length"])
    assert actual.shape == (2, prompt_len + 60)
    assert torch.equal(actual, expected)


def test_cached_generation_with_a_smaller_context_size(models):
    plain, cached = models
    prompt = torch.randint(0, CFG["vocab_size"], (1, 5))
    expected = generate_text_simple(plain, prompt, max_new_tokens=30, context_size=12)
    actual = generate_text_simple_cached(cached, prompt, max_new_tokens=30, context_size=12)
    assert torch.equal(actual, expected)
    assert not actual.is_inference()  # 돌려받은 텐서는 일반 텐서다


def test_cached_logits_match_full_forward_token_by_token(models):
    plain, cached = models
    idx = torch.randint(0, CFG["vocab_size"], (2, CFG["context_length"]))
    with torch.no_grad():
        full = plain(idx)
        cached.reset_kv_cache()
        prefix = cached(idx[:, :5], use_cache=True)
        steps = [cached(idx[:, i : i + 1], use_cache=True) for i in range(5, idx.shape[1])]
        cached.reset_kv_cache()
    incremental = torch.cat([prefix, *steps], dim=1)
    torch.testing.assert_close(incremental, full, atol=1e-5, rtol=0)


def test_cache_resets_between_prompts(models):
    plain, cached = models
    first = torch.randint(0, CFG["vocab_size"], (1, 10))
    second = torch.randint(0, CFG["vocab_size"], (1, 4))
    generate_text_simple_cached(cached, first, max_new_tokens=8)
    assert cached.current_pos == 0
    assert all(block.att.cache_k is None and block.att.cache_v is None for block in cached.trf_blocks)

    expected = generate_text_simple(plain, second, max_new_tokens=15, context_size=CFG["context_length"])
    assert torch.equal(generate_text_simple_cached(cached, second, max_new_tokens=15), expected)

    # 직접 쓸 때도: 남은 캐시를 비우면 처음부터 계산한 것과 같다
    with torch.no_grad():
        cached(first, use_cache=True)
        cached.reset_kv_cache()
        torch.testing.assert_close(cached(second, use_cache=True), plain(second), atol=1e-5, rtol=0)
        cached.reset_kv_cache()


def test_forward_without_cache_is_the_chapter_4_forward(models):
    plain, cached = models
    idx = torch.randint(0, CFG["vocab_size"], (2, 9))
    with torch.no_grad():
        assert torch.equal(cached(idx), plain(idx))
    assert cached.current_pos == 0


def test_cache_overflow_raises_naming_the_lengths(models):
    _, cached = models
    cached.reset_kv_cache()
    with torch.no_grad():
        cached(torch.zeros(1, 30, dtype=torch.long), use_cache=True)
        with pytest.raises(ValueError, match=r"30.*3.*32"):
            cached(torch.zeros(1, 3, dtype=torch.long), use_cache=True)
    cached.reset_kv_cache()


def test_state_dicts_are_interchangeable_with_gpt_model():
    torch.manual_seed(1)
    plain = GPTModel(CFG)
    torch.manual_seed(2)
    cached = GPTModelWithKVCache(CFG)
    plain_sd, cached_sd = plain.state_dict(), cached.state_dict()
    assert list(plain_sd) == list(cached_sd)
    assert all(plain_sd[k].shape == cached_sd[k].shape for k in plain_sd)

    cached.load_state_dict(plain_sd)
    assert all(torch.equal(cached.state_dict()[k], plain_sd[k]) for k in plain_sd)
    plain.load_state_dict(GPTModelWithKVCache(CFG).state_dict())  # 반대 방향도 strict 로 된다


def test_same_seed_gives_the_same_weights_as_gpt_model():
    torch.manual_seed(123)
    plain = GPTModel(CFG)
    after_plain = torch.rand(3)
    torch.manual_seed(123)
    cached = GPTModelWithKVCache(CFG)
    after_cached = torch.rand(3)
    assert all(torch.equal(v, cached.state_dict()[k]) for k, v in plain.state_dict().items())
    assert torch.equal(after_plain, after_cached)  # 난수 상태도 같은 만큼만 쓴다


def test_cached_generation_needs_the_cache_model(models):
    plain, _ = models
    with pytest.raises(TypeError, match="GPTModel"):
        generate_text_simple_cached(plain, torch.zeros(1, 3, dtype=torch.long), max_new_tokens=2)


def test_benchmark_runs_in_quick_mode(tmp_path):
    result = subprocess.run(
        [sys.executable, str(KV_DIR / "benchmark.py"), "--quick", "--bf16", "off"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    speeds = [float(v) for v in re.findall(r"([\d.]+) 토큰/초", result.stdout)]
    assert len(speeds) == 3 and all(v > 0 for v in speeds)
    no_cache, kv, hf = speeds
    # 출력한 배율은 출력한 속도들의 비다(반올림한 값에서 다시 계산해도 소수 둘째 자리 근처에서 맞는다)
    ratio_plain = float(re.search(r"KV 캐시 / 캐시 없음: ([\d.]+)배", result.stdout).group(1))
    ratio_hf = float(re.search(r"KV 캐시 / transformers: ([\d.]+)배", result.stdout).group(1))
    assert ratio_plain == pytest.approx(kv / no_cache, rel=0.05, abs=0.02)
    assert ratio_hf == pytest.approx(kv / hf, rel=0.05, abs=0.02)
    # 세 방식이 만든 토큰이 모두 같아야 한다(같은 무작위 가중치, 그리디 디코딩)
    assert "캐시 없음 = KV 캐시 예, KV 캐시 = transformers 예" in result.stdout
    assert "정밀도: float32 (명령줄 옵션 --bf16 off)" in result.stdout


def test_benchmark_bf16_casts_both_models_and_says_why(tmp_path):
    # 다른 보너스 폴더에도 benchmark.py 가 있으므로 겹치지 않는 이름으로 불러온다
    benchmark = load_module(KV_DIR / "benchmark.py", "kv_cache_benchmark")
    hf_model, model = benchmark.build_models(benchmark.TINY_CONFIG, 123, torch.device("cpu"), torch.bfloat16)
    assert {p.dtype for p in hf_model.parameters()} == {p.dtype for p in model.parameters()} == {torch.bfloat16}
    result = subprocess.run(
        [sys.executable, str(KV_DIR / "benchmark.py"), "--quick", "--bf16", "on"],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "정밀도: bfloat16 (명령줄 옵션 --bf16 on)" in result.stdout
    assert len(re.findall(r"[\d.]+ 토큰/초", result.stdout)) == 3
