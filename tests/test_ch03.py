"""3장: 어텐션 메커니즘. 책의 예제 값, 출력 모양, 코잘 마스크, 두 멀티 헤드 구현의 동치성을 확인한다."""

import pytest
import torch
from torch import nn

from llm_from_scratch.ch03 import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttention_v1,
    SelfAttention_v2,
)

ATOL = 1e-4  # 책은 소수 넷째 자리까지 보여 준다


@pytest.fixture
def inputs():
    """책의 예문 "Your journey starts with one step" 의 3차원 임베딩."""
    return torch.tensor(
        [
            [0.43, 0.15, 0.89],
            [0.55, 0.87, 0.66],
            [0.57, 0.85, 0.64],
            [0.22, 0.58, 0.33],
            [0.77, 0.25, 0.10],
            [0.05, 0.80, 0.55],
        ]
    )


@pytest.fixture
def batch(inputs):
    return torch.stack((inputs, inputs), dim=0)


def test_self_attention_v1_weights_give_the_books_step_by_step_values(inputs):
    # 시드 123 에서 SelfAttention_v1 이 만드는 가중치가 책의 3.4.1 절 W_query, W_key 와 같다
    torch.manual_seed(123)
    sa_v1 = SelfAttention_v1(3, 2)
    query_2 = inputs[1] @ sa_v1.W_query
    keys = inputs @ sa_v1.W_key
    torch.testing.assert_close(query_2, torch.tensor([0.4306, 1.4551]), atol=ATOL, rtol=0)
    torch.testing.assert_close(
        query_2 @ keys.T, torch.tensor([1.2705, 1.8524, 1.8111, 1.0795, 0.5577, 1.5440]), atol=ATOL, rtol=0
    )


def test_self_attention_v1_reproduces_step_by_step_context(inputs):
    torch.manual_seed(123)
    out = SelfAttention_v1(3, 2)(inputs)
    assert out.shape == (6, 2)
    torch.testing.assert_close(out[1], torch.tensor([0.3061, 0.8210]), atol=ATOL, rtol=0)
    torch.testing.assert_close(out[0], torch.tensor([0.2996, 0.8053]), atol=ATOL, rtol=0)


def test_self_attention_v2_matches_book(inputs):
    torch.manual_seed(789)
    out = SelfAttention_v2(3, 2)(inputs)
    torch.testing.assert_close(out[0], torch.tensor([-0.0739, 0.0713]), atol=ATOL, rtol=0)
    torch.testing.assert_close(out[5], torch.tensor([-0.0754, 0.0693]), atol=ATOL, rtol=0)


def test_v1_equals_v2_after_copying_transposed_weights(inputs):
    torch.manual_seed(123)
    sa_v1 = SelfAttention_v1(3, 2)
    sa_v2 = SelfAttention_v2(3, 2)
    assert not torch.allclose(sa_v1(inputs), sa_v2(inputs))

    sa_v1.W_query = nn.Parameter(sa_v2.W_query.weight.T)
    sa_v1.W_key = nn.Parameter(sa_v2.W_key.weight.T)
    sa_v1.W_value = nn.Parameter(sa_v2.W_value.weight.T)
    torch.testing.assert_close(sa_v1(inputs), sa_v2(inputs))


def test_causal_attention_equals_renormalised_masked_weights_of_self_attention_v2(inputs):
    # 책 3.5.1 절: 소프트맥스 뒤 미래를 0 으로 지우고 다시 정규화한 가중치 = CausalAttention 의 -inf 마스크
    torch.manual_seed(789)
    sa_v2 = SelfAttention_v2(3, 2)
    torch.manual_seed(789)
    causal = CausalAttention(3, 2, context_length=6, dropout=0.0)
    queries, keys, values = sa_v2.W_query(inputs), sa_v2.W_key(inputs), sa_v2.W_value(inputs)
    weights = torch.softmax(queries @ keys.T / keys.shape[-1] ** 0.5, dim=-1) * torch.tril(torch.ones(6, 6))
    renormalised = weights / weights.sum(dim=-1, keepdim=True)
    torch.testing.assert_close(renormalised[1, :2], torch.tensor([0.5517, 0.4483]), atol=ATOL, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(causal(inputs.unsqueeze(0))[0], renormalised @ values)


def test_causal_attention_shape_and_book_values(batch):
    torch.manual_seed(123)
    out = CausalAttention(3, 2, context_length=6, dropout=0.0)(batch)
    assert out.shape == (2, 6, 2)
    torch.testing.assert_close(out[0, 0], torch.tensor([-0.4519, 0.2216]), atol=ATOL, rtol=0)
    torch.testing.assert_close(out[0, 5], torch.tensor([-0.5299, -0.1081]), atol=ATOL, rtol=0)
    torch.testing.assert_close(out[0], out[1])


def test_causal_attention_dropout_is_off_in_eval_mode(batch):
    torch.manual_seed(123)
    with_dropout = CausalAttention(3, 2, context_length=6, dropout=0.5)
    torch.manual_seed(123)
    without_dropout = CausalAttention(3, 2, context_length=6, dropout=0.0)
    with_dropout.eval()
    torch.testing.assert_close(with_dropout(batch), without_dropout(batch))
    with_dropout.train()
    torch.manual_seed(0)
    assert not torch.allclose(with_dropout(batch), without_dropout(batch))


def test_multi_head_wrapper_concatenates_heads(batch):
    torch.manual_seed(123)
    wrapper = MultiHeadAttentionWrapper(3, 2, context_length=6, dropout=0.0, num_heads=2)
    out = wrapper(batch)
    assert out.shape == (2, 6, 4)
    torch.testing.assert_close(out[0, 0], torch.tensor([-0.4519, 0.2216, 0.4772, 0.1063]), atol=ATOL, rtol=0)
    torch.testing.assert_close(out[..., 2:], wrapper.heads[1](batch))


def test_multi_head_attention_shape_and_book_values(batch):
    torch.manual_seed(123)
    out = MultiHeadAttention(3, 2, context_length=6, dropout=0.0, num_heads=2)(batch)
    assert out.shape == (2, 6, 2)
    torch.testing.assert_close(out[0, 0], torch.tensor([0.3190, 0.4858]), atol=ATOL, rtol=0)
    torch.testing.assert_close(out[0, 5], torch.tensor([0.2575, 0.4028]), atol=ATOL, rtol=0)


def test_exercise_3_2_two_heads_with_one_dim_each_give_two_dims(batch):
    torch.manual_seed(123)
    out = MultiHeadAttentionWrapper(3, 1, context_length=6, dropout=0.0, num_heads=2)(batch)
    assert out.shape == (2, 6, 2)


def test_gpt2_size_multi_head_attention_has_2_360_064_params():
    mha = MultiHeadAttention(d_in=768, d_out=768, context_length=1024, dropout=0.0, num_heads=12)
    assert mha.head_dim == 64
    assert sum(p.numel() for p in mha.parameters()) == 2_360_064


@pytest.mark.parametrize(
    "make_module",
    [
        pytest.param(lambda: CausalAttention(8, 4, context_length=10, dropout=0.0), id="CausalAttention"),
        pytest.param(
            lambda: MultiHeadAttentionWrapper(8, 2, context_length=10, dropout=0.0, num_heads=3), id="Wrapper"
        ),
        pytest.param(lambda: MultiHeadAttention(8, 6, context_length=10, dropout=0.0, num_heads=3), id="MHA"),
    ],
)
def test_changing_future_tokens_leaves_earlier_outputs_unchanged(make_module):
    torch.manual_seed(123)
    module = make_module()
    x = torch.randn(2, 7, 8)
    changed = x.clone()
    changed[:, 4:] = torch.randn(2, 3, 8)  # 5번째 토큰부터 바꾼다

    out, out_changed = module(x), module(changed)
    torch.testing.assert_close(out[:, :4], out_changed[:, :4])
    assert not torch.allclose(out[:, 4:], out_changed[:, 4:])


def test_multi_head_attention_equals_wrapper_given_same_head_weights():
    torch.manual_seed(123)
    d_in, head_dim, num_heads, context_length = 5, 3, 4, 8
    wrapper = MultiHeadAttentionWrapper(d_in, head_dim, context_length, dropout=0.0, num_heads=num_heads)
    mha = MultiHeadAttention(d_in, head_dim * num_heads, context_length, dropout=0.0, num_heads=num_heads)

    with torch.no_grad():
        # 헤드 h 의 가중치 행(출력 차원)을 큰 행렬의 h 번째 조각에 넣는다
        for h, head in enumerate(wrapper.heads):
            rows = slice(h * head_dim, (h + 1) * head_dim)
            mha.W_query.weight[rows] = head.W_query.weight
            mha.W_key.weight[rows] = head.W_key.weight
            mha.W_value.weight[rows] = head.W_value.weight
        # out_proj 를 편향 없는 항등 변환으로 바꾸면 헤드 출력을 이어 붙인 것과 같아진다
        mha.out_proj.weight.copy_(torch.eye(head_dim * num_heads))
        mha.out_proj.bias.zero_()

    x = torch.randn(3, 6, d_in)
    torch.testing.assert_close(mha(x), wrapper(x))


def test_multi_head_attention_rejects_d_out_not_divisible_by_num_heads():
    with pytest.raises(ValueError, match=r"d_out\(5\).*num_heads\(2\)"):
        MultiHeadAttention(3, 5, context_length=6, dropout=0.0, num_heads=2)
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(3, 4, context_length=6, dropout=0.0, num_heads=0)


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(CausalAttention(3, 2, context_length=4, dropout=0.0), id="CausalAttention"),
        pytest.param(MultiHeadAttention(3, 2, context_length=4, dropout=0.0, num_heads=2), id="MHA"),
    ],
)
def test_inputs_longer_than_context_length_are_rejected(module, batch):
    with pytest.raises(ValueError, match="context_length 4"):
        module(batch)
