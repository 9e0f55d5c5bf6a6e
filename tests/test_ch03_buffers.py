"""3장 보너스: 코잘 마스크는 버퍼라서 state_dict 에 들어가고, .to() 로 모델과 함께 옮겨진다.

일반 속성과 버퍼의 차이 자체(PyTorch 의 동작)는 노트북 ``understanding-buffers.ipynb`` 가 보여 준다.
여기서는 3장의 클래스가 마스크를 실제로 버퍼로 등록하는지 확인한다.
"""

import pytest
import torch

from llm_from_scratch.ch03 import CausalAttention, MultiHeadAttention

ARGS = (3, 2, 6, 0.0)


def _modules():
    return [CausalAttention(*ARGS), MultiHeadAttention(4, 4, 6, 0.0, 2)]


def test_chapter_3_classes_keep_the_mask_as_a_saved_buffer():
    for module in _modules():
        assert "mask" in dict(module.named_buffers())
        assert "mask" in module.state_dict()
        assert torch.equal(module.mask, torch.triu(torch.ones(6, 6), diagonal=1))


def test_to_moves_the_mask_with_the_weights():
    for module in _modules():
        module.to(torch.float64)
        assert module.mask.dtype == torch.float64
        module.to("meta")
        assert module.mask.device.type == module.W_query.weight.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA 가 있는 머신에서만 GPU 로 옮겨 봅니다")
def test_modules_moved_to_cuda_run_there():
    for module in _modules():
        module.to("cuda")
        x = torch.rand(2, 6, module.W_query.in_features, device="cuda")
        assert module(x).device.type == "cuda"


def test_saved_buffer_comes_back_after_load(tmp_path):
    source = CausalAttention(*ARGS)
    with torch.no_grad():
        source.mask.zero_()
    torch.save(source.state_dict(), tmp_path / "model.pth")
    restored = CausalAttention(*ARGS)
    assert restored.mask.sum() > 0
    restored.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True))
    assert restored.mask.sum() == 0
