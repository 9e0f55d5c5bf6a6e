"""7장 보너스: DPO를 밑바닥부터(``llm_from_scratch.dpo``)."""

import copy
import math

import pytest
import tiktoken
import torch

from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch07 import format_input, split_instruction_data
from llm_from_scratch.dpo import (
    PreferenceDataset,
    compute_dpo_loss,
    compute_dpo_loss_batch,
    compute_dpo_loss_loader,
    compute_logprobs,
    load_preference_data,
    preference_collate_fn,
    train_model_dpo,
)

TINY_CONFIG = {"vocab_size": 50, "context_length": 32, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
               "drop_rate": 0.0, "qkv_bias": False}


@pytest.fixture(scope="module")
def preference_data(tmp_path_factory):
    return load_preference_data(tmp_path_factory.mktemp("dpo"))


def test_preference_data_has_1100_entries_split_935_55_110(preference_data):
    assert len(preference_data) == 1100
    assert {"instruction", "input", "output", "chosen", "rejected"} <= set(preference_data[0])
    train, val, test = split_instruction_data(preference_data)
    assert (len(train), len(val), len(test)) == (935, 55, 110)


def test_dataset_prompt_is_the_shared_prefix_of_chosen_and_rejected(preference_data):
    tokenizer = tiktoken.get_encoding("gpt2")
    dataset = PreferenceDataset(preference_data[:3], tokenizer)
    for entry, item in zip(preference_data[:3], dataset):
        assert tokenizer.decode(item["prompt"]) == format_input(entry) + "\n\n### Response:\n"
        assert item["chosen"][: len(item["prompt"])] == item["prompt"]
        assert item["rejected"][: len(item["prompt"])] == item["prompt"]
        assert tokenizer.decode(item["chosen"]).endswith(entry["chosen"])


def test_collate_pads_with_50256_and_masks_prompt_and_padding():
    batch = [
        {"prompt": [1, 2], "chosen": [1, 2, 3, 4, 5], "rejected": [1, 2, 6]},
        {"prompt": [7], "chosen": [7, 8], "rejected": [7, 9, 9, 9]},
    ]
    out = preference_collate_fn(batch)
    assert out["chosen"].tolist() == [[1, 2, 3, 4, 5], [7, 8, 50256, 50256, 50256]]
    assert out["rejected"].tolist() == [[1, 2, 6, 50256, 50256], [7, 9, 9, 9, 50256]]
    assert out["chosen_mask"].tolist() == [[False, False, True, True, True], [False, True, False, False, False]]
    assert out["rejected_mask"].tolist() == [[False, False, True, False, False], [False, True, True, True, False]]
    unmasked = preference_collate_fn(batch, mask_prompt_tokens=False, allowed_max_length=3)
    assert unmasked["chosen_mask"].tolist() == [[True, True, True], [True, True, False]]
    with pytest.raises(ValueError, match="빈 배치"):
        preference_collate_fn([])


def test_compute_logprobs_averages_selected_next_token_logprobs():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7)
    labels = torch.randint(0, 7, (2, 4))
    log_probs = torch.log_softmax(logits, dim=-1)
    # 위치 t 의 로짓이 토큰 t+1 을 맞힌다
    expected = [[log_probs[b, t, labels[b, t + 1]].item() for t in range(3)] for b in range(2)]
    full = compute_logprobs(logits, labels)
    assert full.tolist() == pytest.approx([sum(row) / 3 for row in expected], abs=1e-6)
    mask = torch.tensor([[True, False, True, True], [True, True, True, False]])
    masked = compute_logprobs(logits, labels, selection_mask=mask)
    assert masked.tolist() == pytest.approx([(expected[0][1] + expected[0][2]) / 2,
                                              (expected[1][0] + expected[1][1]) / 2], abs=1e-6)
    with pytest.raises(ValueError, match="모양"):
        compute_logprobs(logits, labels[:, :3])


def test_dpo_loss_is_ln2_with_zero_margins_when_policy_equals_reference():
    logps = torch.tensor([-1.5, -0.7]), torch.tensor([-2.0, -0.9])
    loss, chosen, rejected = compute_dpo_loss(*logps, *logps, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-7)
    assert chosen.item() == 0.0 and rejected.item() == 0.0
    # 정책이 chosen 을 참조보다 더 좋아하면 손실이 ln 2 아래로 내려가고 보상 차이가 양수다
    better, c, r = compute_dpo_loss(logps[0] + 1.0, logps[1], *logps, beta=0.1)
    assert better.item() < math.log(2) and c.item() == pytest.approx(0.1) and r.item() == 0.0
    with pytest.raises(ValueError, match="beta"):
        compute_dpo_loss(*logps, *logps, beta=0.0)


def _synthetic_batches():
    """작은 어휘로 만든 선호 예제: 프롬프트 뒤에 chosen 은 짝수 토큰, rejected 는 홀수 토큰이 온다."""
    generator = torch.Generator().manual_seed(123)
    items = []
    for _ in range(8):
        prompt = torch.randint(1, 50, (4,), generator=generator).tolist()
        chosen = (torch.randint(1, 25, (5,), generator=generator) * 2 % 50).tolist()
        rejected = (torch.randint(0, 25, (5,), generator=generator) * 2 + 1).tolist()
        items.append({"prompt": prompt, "chosen": prompt + chosen, "rejected": prompt + rejected})
    return [preference_collate_fn(items[i:i + 4], pad_token_id=0) for i in (0, 4)]


def test_policy_equal_to_reference_gives_ln2_on_a_real_batch():
    torch.manual_seed(123)
    policy = GPTModel(TINY_CONFIG).eval()
    reference = copy.deepcopy(policy)
    loss, chosen, rejected = compute_dpo_loss_batch(_synthetic_batches()[0], policy, reference, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    assert chosen.item() == pytest.approx(0.0, abs=1e-7) and rejected.item() == pytest.approx(0.0, abs=1e-7)


def test_dpo_training_raises_the_reward_margin_on_its_training_batches():
    torch.manual_seed(123)
    policy = GPTModel(TINY_CONFIG)
    reference = copy.deepcopy(policy)
    batches = _synthetic_batches()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    tracking = train_model_dpo(policy, reference, batches, batches[:1], optimizer, num_epochs=4, beta=0.1,
                               eval_freq=1, eval_iter=2)
    margins = tracking["train_reward_margins"]
    assert len(margins) == 8 and tracking["steps"] == list(range(8))
    assert abs(margins[0]) < 0.05
    assert margins[-1] > margins[0] + 0.1
    assert tracking["train_losses"][-1] < math.log(2) - 0.02
    assert all(not p.requires_grad for p in reference.parameters())


def _rule_batches(seed, num_batches):
    """``_synthetic_batches`` 와 같은 규칙(chosen 은 짝수 토큰, rejected 는 홀수 토큰)으로, 시드가 다른 새 예제를 만든다."""
    generator = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(4 * num_batches):
        prompt = torch.randint(1, 50, (4,), generator=generator).tolist()
        chosen = (torch.randint(1, 25, (5,), generator=generator) * 2 % 50).tolist()
        rejected = (torch.randint(0, 25, (5,), generator=generator) * 2 + 1).tolist()
        items.append({"prompt": prompt, "chosen": prompt + chosen, "rejected": prompt + rejected})
    return [preference_collate_fn(items[i:i + 4], pad_token_id=0) for i in range(0, len(items), 4)]


def test_dpo_training_raises_the_reward_margin_on_held_out_pairs():
    """훈련에 쓰지 않은 쌍에서도 보상 차이가 커지고 손실이 ln 2 아래로 내려간다(손실의 부호나 참조 모델이 틀리면 실패)."""
    torch.manual_seed(123)
    policy = GPTModel(TINY_CONFIG)
    reference = copy.deepcopy(policy)
    reference_state = {k: v.clone() for k, v in reference.state_dict().items()}
    train_batches, held_out = _rule_batches(1, 8), _rule_batches(2, 2)
    before = compute_dpo_loss_loader(held_out, policy, reference, beta=0.1)
    assert before[0] == pytest.approx(math.log(2), abs=1e-6) and before[1] - before[2] == pytest.approx(0.0, abs=1e-6)

    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    tracking = train_model_dpo(policy, reference, train_batches, held_out, optimizer, num_epochs=4, beta=0.1,
                               eval_freq=8, eval_iter=2)
    policy.eval()
    with torch.no_grad():
        loss, chosen_reward, rejected_reward = compute_dpo_loss_loader(held_out, policy, reference, beta=0.1)
    # 이 설정에서 보상 차이는 약 0.7, 손실은 약 0.40 이 된다
    assert chosen_reward - rejected_reward > 0.3
    assert loss < math.log(2) - 0.1
    assert tracking["val_reward_margins"][-1] > tracking["val_reward_margins"][0] + 0.3
    # 참조 모델은 훈련 내내 그대로다
    assert all(torch.equal(reference.state_dict()[k], v) for k, v in reference_state.items())
