"""부록 E: LoRALayer, LinearWithLoRA, replace_linear_with_lora."""

import re

import pytest
import torch

from llm_from_scratch.appendix_e import LinearWithLoRA, LoRALayer, replace_linear_with_lora
from llm_from_scratch.ch04 import GPT2_MODEL_CONFIGS, GPT_CONFIG_124M, GPTModel
from llm_from_scratch.ch06 import add_classification_head, calc_loss_batch

TINY_CFG = {
    "vocab_size": 300,
    "context_length": 16,
    "emb_dim": 32,
    "n_heads": 2,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": True,
}


def count_trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def freeze(module):
    for param in module.parameters():
        param.requires_grad = False


def tiny_classifier():
    torch.manual_seed(123)
    return add_classification_head(GPTModel(TINY_CFG), trainable_layers="all")


def test_parameter_counts_of_gpt2_124m_classifier():
    # 진짜 GPT-2 124M 모듈을 meta 장치에 만들어(메모리 없이) 센다
    with torch.device("meta"):
        model = GPTModel({**GPT_CONFIG_124M, "drop_rate": 0.0, "qkv_bias": True})
        add_classification_head(model, num_classes=2, trainable_layers="all")
    assert count_trainable(model) == 124_441_346
    freeze(model)
    assert count_trainable(model) == 0
    replace_linear_with_lora(model, rank=16, alpha=16)
    assert count_trainable(model) == 2_666_528
    trainable_names = [name for name, p in model.named_parameters() if p.requires_grad]
    assert all(name.endswith(("lora.A", "lora.B")) for name in trainable_names)
    # 블록마다 선형 층 6개(W_query, W_key, W_value, out_proj, ff 두 층) + 출력 헤드
    assert len(trainable_names) == 2 * (12 * 6 + 1)


def test_parameter_count_of_gpt2_medium_with_lora():
    # 7장 연습문제 7.4 의 수: GPT-2 medium(어휘 크기 출력 헤드 포함)에 랭크 16 LoRA
    cfg = {**GPT_CONFIG_124M, **GPT2_MODEL_CONFIGS["gpt2-medium (355M)"], "drop_rate": 0.0, "qkv_bias": True}
    with torch.device("meta"):
        model = GPTModel(cfg)
    freeze(model)
    replace_linear_with_lora(model, rank=16, alpha=16)
    assert count_trainable(model) == 7_898_384


def test_lora_layer_shapes_and_zero_start():
    layer = LoRALayer(10, 6, rank=3, alpha=2.0)
    assert layer.A.shape == (10, 3)
    assert layer.B.shape == (3, 6)
    assert torch.count_nonzero(layer.B) == 0
    assert torch.count_nonzero(layer.A) > 0
    assert torch.equal(layer(torch.randn(4, 5, 10)), torch.zeros(4, 5, 6))


def test_lora_wrapped_model_matches_base_model_before_training():
    model = tiny_classifier()
    model.eval()
    inputs = torch.randint(0, TINY_CFG["vocab_size"], (3, 12))
    with torch.no_grad():
        before = model(inputs)
    replace_linear_with_lora(model, rank=4, alpha=8)
    assert isinstance(model.out_head, LinearWithLoRA)
    assert isinstance(model.trf_blocks[1].ff.layers[2], LinearWithLoRA)
    with torch.no_grad():
        after = model(inputs)
    assert torch.equal(before, after)


def test_lora_update_is_alpha_times_x_a_b():
    torch.manual_seed(0)
    linear = torch.nn.Linear(5, 3)
    wrapped = LinearWithLoRA(linear, rank=2, alpha=0.5)
    with torch.no_grad():
        wrapped.lora.B.copy_(torch.randn(2, 3))
    x = torch.randn(4, 5)
    expected = linear(x) + 0.5 * (x @ wrapped.lora.A @ wrapped.lora.B)
    assert torch.allclose(wrapped(x), expected)


def test_training_step_changes_only_lora_parameters():
    model = tiny_classifier()
    freeze(model)
    replace_linear_with_lora(model, rank=4, alpha=8)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    inputs = torch.randint(0, TINY_CFG["vocab_size"], (4, 12))
    targets = torch.tensor([0, 1, 0, 1])
    loss = calc_loss_batch(inputs, targets, model, "cpu")
    loss.backward()
    optimizer.step()

    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed, "훈련 스텝 뒤에 바뀐 파라미터가 하나도 없습니다"
    assert all(".lora." in name for name in changed)
    assert "out_head.lora.B" in changed  # B 는 첫 스텝부터 그래디언트를 받는다


@pytest.mark.parametrize("rank", [0, -1, 1.5, "4", True])
def test_bad_rank_raises_clear_error_and_leaves_model_alone(rank):
    model = tiny_classifier()
    with pytest.raises(ValueError, match="rank는 1 이상의 정수"):
        replace_linear_with_lora(model, rank=rank, alpha=16)
    assert not any(isinstance(module, LinearWithLoRA) for module in model.modules())
    with pytest.raises(ValueError, match=repr(rank).replace(".", r"\.")):
        LoRALayer(4, 4, rank=rank, alpha=1)


def test_linear_with_lora_rejects_other_modules():
    with pytest.raises(TypeError, match="nn.Linear"):
        LinearWithLoRA(torch.nn.Conv1d(2, 2, 1), rank=2, alpha=1)


def test_lora_parameters_follow_wrapped_layer_dtype():
    linear = torch.nn.Linear(8, 4).to(torch.bfloat16)
    wrapped = LinearWithLoRA(linear, rank=2, alpha=1)
    assert wrapped.lora.A.dtype == wrapped.lora.B.dtype == torch.bfloat16
    assert wrapped(torch.randn(2, 8, dtype=torch.bfloat16)).dtype == torch.bfloat16


@pytest.mark.parametrize("alpha", [float("nan"), float("inf"), -float("inf"), "16", None, True])
def test_non_finite_alpha_raises_before_the_model_is_changed(alpha):
    model = tiny_classifier()
    with pytest.raises(ValueError, match=r"alpha는 유한한 수여야 합니다\(받은 값: " + re.escape(repr(alpha))):
        replace_linear_with_lora(model, rank=4, alpha=alpha)
    assert not any(isinstance(module, LinearWithLoRA) for module in model.modules())
    with pytest.raises(ValueError, match="alpha"):
        LoRALayer(4, 4, rank=2, alpha=alpha)


def test_finite_alpha_keeps_outputs_finite():
    layer = LinearWithLoRA(torch.nn.Linear(4, 3), rank=2, alpha=0.5)
    torch.nn.init.ones_(layer.lora.B)
    assert torch.isfinite(layer(torch.randn(5, 4))).all()
