"""3장 보너스: 멀티 헤드 어텐션 구현 여섯 가지가 같은 가중치에서 같은 (코잘) 출력을 내는지 확인한다."""

import importlib.util
from pathlib import Path

import pytest
import torch

from llm_from_scratch.ch03 import MultiHeadAttention

MODULE_PATH = (
    Path(__file__).resolve().parents[1] / "ch03" / "02_bonus_efficient-multihead-attention" / "mha_variants.py"
)


def _load_variants_module():
    # 폴더 이름에 '-' 가 있어 패키지로 import 할 수 없으므로 파일 경로로 불러온다
    spec = importlib.util.spec_from_file_location("mha_variants", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mv = _load_variants_module()

D_MODEL, NUM_HEADS, CONTEXT_LENGTH = 48, 4, 16
VARIANT_NAMES = [
    "Ch03 wrapper + out_proj",
    "Combined QKV",
    "Einsum",
    "F.scaled_dot_product_attention",
    "SDPA (math kernel)",
    "nn.MultiheadAttention",
    "nn.MultiheadAttention (need_weights=True)",
    *(["FlexAttention"] if mv.FLEX_ATTENTION_AVAILABLE else []),
]


@pytest.fixture(params=[False, True], ids=["no_qkv_bias", "qkv_bias"])
def variants(request):
    modules = mv.build_variants(D_MODEL, D_MODEL, CONTEXT_LENGTH, NUM_HEADS, qkv_bias=request.param)
    for module in modules.values():
        module.eval()
    return modules


@pytest.fixture
def x():
    torch.manual_seed(0)
    return torch.randn(3, 12, D_MODEL)


def test_build_variants_returns_all_variants_with_equal_parameter_counts(variants):
    assert list(variants) == ["Ch03 wrapper + out_proj", "Ch03 MultiHeadAttention", *VARIANT_NAMES[1:]]
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in variants.items()}
    assert len(set(counts.values())) == 1, counts


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_variant_output_equals_multi_head_attention(variants, x, name):
    reference = variants["Ch03 MultiHeadAttention"]
    with torch.no_grad():
        torch.testing.assert_close(variants[name](x), reference(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_variant_gradients_equal_multi_head_attention(variants, x, name):
    if name == "FlexAttention" and x.device.type == "cpu":
        pytest.skip("PyTorch 2.13 의 FlexAttention 은 CPU 에서 역전파를 지원하지 않는다(NotImplementedError)")
    # 역전파도 같은 함수를 미분하는지: 입력에 대한 기울기를 비교한다
    grads = []
    for module in (variants[name], variants["Ch03 MultiHeadAttention"]):
        x_in = x.clone().requires_grad_(True)
        module(x_in).pow(2).sum().backward()
        grads.append(x_in.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["Ch03 MultiHeadAttention", *VARIANT_NAMES])
def test_variant_is_causal(variants, x, name):
    module = variants[name]
    changed = x.clone()
    changed[:, 7:] = torch.randn(3, 5, D_MODEL)
    with torch.no_grad():
        out, out_changed = module(x), module(changed)
    torch.testing.assert_close(out[:, :7], out_changed[:, :7], atol=1e-6, rtol=0)
    assert not torch.allclose(out[:, 7:], out_changed[:, 7:])


def test_weights_from_a_fresh_reference_change_every_variant_to_match_it(variants, x):
    torch.manual_seed(999)
    qkv_bias = variants["Ch03 MultiHeadAttention"].W_query.bias is not None
    other = MultiHeadAttention(D_MODEL, D_MODEL, CONTEXT_LENGTH, 0.0, NUM_HEADS, qkv_bias=qkv_bias)
    with torch.no_grad():
        expected = other(x)
        for name in VARIANT_NAMES:
            assert not torch.allclose(variants[name](x), expected)
            mv.copy_weights_from_mha(other, variants[name])
            torch.testing.assert_close(variants[name](x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "cls",
    [
        mv.MultiHeadAttentionWrapperWithProj,
        mv.MultiHeadAttentionCombinedQKV,
        mv.MHAEinsum,
        mv.MHAPyTorchSDPA,
        mv.MHAPyTorchSDPAMath,
        mv.MHAPyTorchClass,
        *([mv.MHAPyTorchFlexAttention] if mv.FLEX_ATTENTION_AVAILABLE else []),
    ],
)
def test_variants_check_their_inputs(cls):
    with pytest.raises(ValueError, match=r"d_out\(10\).*num_heads\(4\)"):
        cls(10, 10, CONTEXT_LENGTH, 0.0, 4)
    module = cls(8, 8, 4, 0.0, 2)
    with pytest.raises(ValueError, match="context_length 4"):
        module(torch.randn(1, 5, 8))


def test_pytorch_class_needs_equal_input_and_output_sizes():
    with pytest.raises(ValueError, match="d_in=8, d_out=12"):
        mv.MHAPyTorchClass(8, 12, CONTEXT_LENGTH, 0.0, 4)


def test_copy_weights_rejects_mismatched_shapes_and_bias_settings():
    source = MultiHeadAttention(8, 8, 4, 0.0, 2)
    with pytest.raises(ValueError, match="num_heads"):
        mv.copy_weights_from_mha(source, mv.MHAEinsum(8, 8, 4, 0.0, 4))
    with pytest.raises(ValueError, match="qkv_bias"):
        mv.copy_weights_from_mha(source, mv.MultiHeadAttentionCombinedQKV(8, 8, 4, 0.0, 2, qkv_bias=True))
    with pytest.raises(TypeError, match="MultiHeadAttention"):
        mv.copy_weights_from_mha(mv.MHAEinsum(8, 8, 4, 0.0, 2), source)


class _StepClock:
    """``time.perf_counter`` 대신 쓰는 시계: 잰 구간마다 정해 둔 길이만큼 시각이 간다."""

    def __init__(self, durations):
        self.now, self.durations, self.calls = 0.0, iter(durations), 0

    def perf_counter(self):
        self.calls += 1
        if self.calls % 2 == 0:  # 구간이 끝날 때 그 구간의 길이만큼 시각을 민다
            self.now += next(self.durations)
        return self.now


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "forward_backward"])
def test_benchmark_reports_the_median_in_ms_and_really_runs_the_step(variants, x, backward, monkeypatch):
    module = variants["Einsum"]
    calls = []
    handle = module.register_forward_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    clock = _StepClock([0.004, 0.001, 0.002])
    monkeypatch.setattr(mv, "time", clock)
    try:
        assert mv.benchmark_ms(module, x, backward=backward, repeats=3, warmup=2) == pytest.approx(2.0)
    finally:
        handle.remove()
    assert calls == [backward] * 5  # 준비 2번 + 잰 3번, 역전파를 잴 때만 그레이디언트를 추적한다
    if backward:
        assert all(p.grad is not None for p in module.parameters())
    with pytest.raises(ValueError, match="repeats"):
        mv.benchmark_ms(module, x, repeats=0)


def test_flex_attention_is_left_out_with_dropout_and_refuses_it():
    names = list(mv.build_variants(D_MODEL, D_MODEL, CONTEXT_LENGTH, NUM_HEADS, dropout=0.1))
    assert "FlexAttention" not in names and "SDPA (math kernel)" in names
    if mv.FLEX_ATTENTION_AVAILABLE:
        with pytest.raises(ValueError, match="dropout=0.1"):
            mv.MHAPyTorchFlexAttention(D_MODEL, D_MODEL, CONTEXT_LENGTH, 0.1, NUM_HEADS)


def test_need_weights_switch_reaches_nn_multihead_attention(variants, x):
    fast, slow = variants["nn.MultiheadAttention"], variants["nn.MultiheadAttention (need_weights=True)"]
    assert (fast.need_weights, slow.need_weights) == (False, True)
    calls = []
    hook = slow.mha.register_forward_hook(lambda module, args, kwargs, out: calls.append(out[1]), with_kwargs=True)
    with torch.no_grad():
        slow(x)
    hook.remove()
    assert calls[0] is not None and calls[0].shape == (3, 12, 12)  # 헤드 평균 어텐션 가중치를 만든다
    assert torch.allclose(calls[0].triu(1), torch.zeros(()))  # 코잘: 대각선 위는 0


def test_math_kernel_variant_runs_sdpa_under_the_math_backend(monkeypatch, variants, x):
    seen = []
    original = mv.scaled_dot_product_attention

    def spy(*args, **kwargs):
        seen.append(torch.backends.cuda.math_sdp_enabled() and not torch.backends.cuda.flash_sdp_enabled())
        return original(*args, **kwargs)

    monkeypatch.setattr(mv, "scaled_dot_product_attention", spy)
    with torch.no_grad():
        variants["SDPA (math kernel)"](x)
        variants["F.scaled_dot_product_attention"](x)
    assert seen == [True, False]
