"""5장 보너스(가중치 불러오기): transformers 모델·safetensors 파일을 5장의 한 대응으로 GPTModel 에 실으면 로짓이 같다."""

import torch
import transformers
from support import assert_same_as_transformers_gpt2

from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch05 import (
    gpt2_config_from_hparams,
    load_gpt2_safetensors,
    load_hf_weights_into_gpt,
    write_synthetic_gpt2_safetensors,
)

HF_CONFIG = {"vocab_size": 50257, "n_positions": 32, "n_embd": 24, "n_layer": 2, "n_head": 3}
PROMPT = torch.tensor([[6109, 3626, 6100, 345]])  # "Every effort moves you"


def _ours_from(state_dict, hparams):
    gpt = GPTModel(gpt2_config_from_hparams(hparams))
    load_hf_weights_into_gpt(gpt, state_dict)
    return gpt.eval()


def test_gpt2_lm_head_model_and_gpt2_model_state_dicts_give_transformers_logits():
    torch.manual_seed(0)
    hf_model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**HF_CONFIG)).eval()
    gpt = _ours_from(hf_model.state_dict(), HF_CONFIG)
    assert_same_as_transformers_gpt2(gpt, hf_model, PROMPT, HF_CONFIG["n_positions"])
    # Conv1D 는 [입력, 출력] 이므로 c_attn 의 두 번째 d 열을 전치한 것이 W_key 다
    c_attn = hf_model.state_dict()["transformer.h.1.attn.c_attn.weight"]
    assert torch.equal(gpt.trf_blocks[1].att.W_key.weight, c_attn[:, 24:48].T)

    body_only = _ours_from(hf_model.transformer.state_dict(), HF_CONFIG)  # GPT2Model: transformer. 접두사 없음
    with torch.no_grad():
        assert torch.equal(body_only(PROMPT), gpt(PROMPT))


def test_synthetic_safetensors_load_offline_and_match_transformers_reading_the_same_folder(tmp_path):
    hparams = {"n_vocab": 50257, "n_ctx": 32, "n_embd": 40, "n_head": 5, "n_layer": 2}
    write_synthetic_gpt2_safetensors(tmp_path / "gpt2-medium" / "model.safetensors", hparams=hparams, seed=7)
    state_dict = load_gpt2_safetensors("gpt2-medium", tmp_path)  # 파일이 있으므로 내려받지 않는다
    assert state_dict.hparams == hparams
    gpt = _ours_from(state_dict, state_dict.hparams)
    hf_model = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "gpt2-medium").eval()
    assert_same_as_transformers_gpt2(gpt, hf_model, PROMPT, hparams["n_ctx"])
