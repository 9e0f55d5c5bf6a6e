"""5장 보너스(메모리 효율적 적재): 여섯 방법이 같은 모델을 만들고, meta+assign+mmap 이 naive 보다 최대 RSS 가 낮다."""

import importlib.util
from pathlib import Path

import pytest
import torch

from llm_from_scratch.ch04 import GPT_CONFIG_124M, GPTModel

FOLDER = Path(__file__).resolve().parents[1] / "ch05" / "08_memory_efficient_weight_loading"
TINY = {**GPT_CONFIG_124M, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2, "qkv_bias": True,
        "drop_rate": 0.0}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("memory_benchmark", FOLDER / "memory_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_method_loads_the_same_weights(bench, tmp_path):
    torch.manual_seed(0)
    original = GPTModel(TINY).eval()
    torch.save(original.state_dict(), tmp_path / "model.pth")
    bench.save_per_tensor_files(original.state_dict(), tmp_path / "per-tensor")
    idx = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        expected = original(idx)
    for method in bench.METHODS:
        weights = tmp_path / ("per-tensor" if method == "per_tensor_files" else "model.pth")
        model = bench.load_model(method, TINY, weights, "cpu").eval()
        assert all(p.device.type == "cpu" for p in model.parameters()), method
        with torch.no_grad():
            assert torch.equal(model(idx), expected), method
    with pytest.raises(ValueError, match="naive"):
        bench.load_model("fast", TINY, tmp_path / "model.pth", "cpu")


def test_meta_assign_mmap_peaks_far_lower_than_naive_on_a_200_mb_model(bench, tmp_path):
    config = {**TINY, "context_length": 256, "emb_dim": 384, "n_heads": 6, "n_layers": 6}
    torch.manual_seed(0)
    state_dict = GPTModel(config).state_dict()
    model_mb = sum(t.numel() * t.element_size() for t in state_dict.values()) / 1024**2
    torch.save(state_dict, tmp_path / "model.pth")
    del state_dict
    assert model_mb > 180

    naive = bench.measure_in_subprocess("naive", config, tmp_path / "model.pth")
    mmap = bench.measure_in_subprocess("mmap", config, tmp_path / "model.pth")
    # naive: 무작위 모델 + 읽은 state_dict 로 약 2배, mmap: 매핑만 하므로 거의 0
    assert naive["load_rss_increase_mb"] > 1.5 * model_mb
    assert mmap["load_rss_increase_mb"] < 0.25 * model_mb
    assert mmap["peak_rss_mb"] < naive["peak_rss_mb"] - model_mb
