"""3장 보너스: 코잘 마스크를 버퍼로 등록하면 state_dict 에 들어가고 .to() 로 함께 옮겨진다."""

import pytest
import torch

from llm_from_scratch.ch03 import CausalAttention, MultiHeadAttention


class _PlainMask(CausalAttention):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        mask = self.mask
        del self.mask
        self.mask = mask


class _NonPersistent(CausalAttention):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        mask = self.mask
        del self.mask
        self.register_buffer("mask", mask, persistent=False)


ARGS = (3, 2, 6, 0.0)


def test_chapter_3_classes_keep_the_mask_as_a_buffer():
    assert "mask" in CausalAttention(*ARGS).state_dict()
    assert "mask" in dict(MultiHeadAttention(4, 4, 6, 0.0, 2).named_buffers())


def test_plain_attribute_is_not_in_state_dict_but_gives_the_same_output():
    torch.manual_seed(123)
    plain = _PlainMask(*ARGS)
    torch.manual_seed(123)
    buffered = CausalAttention(*ARGS)
    assert "mask" not in plain.state_dict() and "mask" in buffered.state_dict()
    x = torch.rand(2, 6, 3)
    assert torch.equal(plain(x), buffered(x))


def test_to_moves_buffers_but_not_plain_attributes():
    plain, buffered = _PlainMask(*ARGS), CausalAttention(*ARGS)
    for model in (plain, buffered):
        model.to(torch.float64)
    assert plain.mask.dtype == torch.float32 and buffered.mask.dtype == torch.float64
    for model in (plain, buffered):
        model.to("meta")
    assert plain.mask.device.type == "cpu" and buffered.mask.device.type == "meta"
    assert plain.W_query.weight.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA 가 있을 때만 실제 장치 불일치 오류를 본다")
def test_plain_mask_on_cuda_raises_device_mismatch():
    plain, buffered = _PlainMask(*ARGS).to("cuda"), CausalAttention(*ARGS).to("cuda")
    x = torch.rand(2, 6, 3, device="cuda")
    assert buffered(x).device.type == "cuda"
    with pytest.raises(RuntimeError, match="same device"):
        plain(x)


def test_saved_buffer_comes_back_after_load(tmp_path):
    source = CausalAttention(*ARGS)
    with torch.no_grad():
        source.mask.zero_()
    torch.save(source.state_dict(), tmp_path / "model.pth")
    restored = CausalAttention(*ARGS)
    assert restored.mask.sum() > 0
    restored.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True))
    assert restored.mask.sum() == 0


def test_non_persistent_buffer_moves_but_is_not_saved():
    model = _NonPersistent(*ARGS)
    assert "mask" not in model.state_dict()
    assert "mask" in dict(model.named_buffers())
    model.to(torch.float64)
    assert model.mask.dtype == torch.float64
    with pytest.raises(RuntimeError, match="Unexpected key"):
        _NonPersistent(*ARGS).load_state_dict(CausalAttention(*ARGS).state_dict())
    result = _NonPersistent(*ARGS).load_state_dict(CausalAttention(*ARGS).state_dict(), strict=False)
    assert result.unexpected_keys == ["mask"]
