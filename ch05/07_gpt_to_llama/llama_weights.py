"""Llama 가중치 내려받기와 적재.

- Hugging Face 의 ``LlamaForCausalLM`` 형식(``model.layers.N.self_attn.q_proj.weight`` …, safetensors)
- Meta 가 처음 배포한 Llama 2 형식(``consolidated.00.pth``: ``layers.N.attention.wq.weight`` …)

Meta 의 가중치와 토크나이저 파일은 Hugging Face 에서 라이선스에 동의한 계정만 받을 수 있다. 그 계정의 액세스
토큰을 환경 변수 ``HF_TOKEN`` 에 두면 ``download_llama_files`` 가 요청의 Authorization 헤더로 보낸다.
"""

import json
import os
import warnings
from pathlib import Path

import torch

from llm_from_scratch.ch05 import assign
from llm_from_scratch.download import DownloadError, download_file, validate_json, validate_safetensors

_LAYOUT_KEYS = ("n_heads", "n_kv_groups", "emb_dim", "n_layers")

__all__ = [
    "HF_BASE_URL",
    "LLAMA_FILES",
    "LlamaStateDict",
    "download_llama_files",
    "hf_auth_headers",
    "load_llama_safetensors",
    "load_meta_checkpoint",
    "load_meta_llama2_weights",
    "load_weights_into_llama",
    "meta_to_hf_rope_layout",
    "read_checkpoint_config",
]

HF_BASE_URL = "https://huggingface.co"

# 저장소마다 받을 파일: 토크나이저 파일이 먼저, 그다음 가중치 파일
LLAMA_FILES = {
    "meta-llama/Llama-2-7b": ["tokenizer.model", "params.json", "consolidated.00.pth"],
    "meta-llama/Llama-2-7b-chat": ["tokenizer.model", "params.json", "consolidated.00.pth"],
    "meta-llama/Meta-Llama-3-8B": ["original/tokenizer.model"]
    + [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)],
    "meta-llama/Meta-Llama-3-8B-Instruct": ["original/tokenizer.model"]
    + [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)],
    "meta-llama/Llama-3.1-8B": ["original/tokenizer.model"]
    + [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)],
    "meta-llama/Llama-3.1-8B-Instruct": ["original/tokenizer.model"]
    + [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)],
    "meta-llama/Llama-3.2-1B": ["original/tokenizer.model", "model.safetensors"],
    "meta-llama/Llama-3.2-1B-Instruct": ["original/tokenizer.model", "model.safetensors"],
    "meta-llama/Llama-3.2-3B": ["original/tokenizer.model"]
    + [f"model-0000{i}-of-00002.safetensors" for i in range(1, 3)],
    "meta-llama/Llama-3.2-3B-Instruct": ["original/tokenizer.model"]
    + [f"model-0000{i}-of-00002.safetensors" for i in range(1, 3)],
}

_VALIDATORS = {".safetensors": validate_safetensors, ".json": validate_json}


def hf_auth_headers(token=None):
    """Hugging Face 요청 헤더. 토큰은 인자, 없으면 환경 변수 ``HF_TOKEN`` 에서 읽는다(둘 다 없으면 빈 딕셔너리)."""
    token = token or os.environ.get("HF_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def download_llama_files(repo_id, folder, file_names=None, token=None, base_url=HF_BASE_URL):
    """Hugging Face 저장소 ``repo_id`` 의 파일들을 ``folder/<파일 이름>`` 에 받아 경로 목록을 돌려준다.

    이미 받은 파일은 다시 받지 않는다. ``LLMFS_DATA_MIRROR`` 폴더에 ``<repo_id>/<파일 이름>`` 이 있으면 그것을 복사한다.

    Args:
        repo_id: 예: "meta-llama/Llama-3.2-1B". ``LLAMA_FILES`` 에 있으면 ``file_names`` 를 생략할 수 있다.
        folder: 저장할 폴더.
        file_names: 받을 파일들(저장소 안의 경로).
        token: Hugging Face 액세스 토큰. 없으면 환경 변수 ``HF_TOKEN``.
        base_url: 테스트에서 가짜 서버를 가리킬 때만 바꾼다.
    """
    if file_names is None:
        if repo_id not in LLAMA_FILES:
            raise ValueError(
                f"{repo_id!r} 의 파일 목록을 모릅니다. file_names 로 받을 파일을 알려 주세요. "
                f"목록이 있는 저장소: {', '.join(LLAMA_FILES)}"
            )
        file_names = LLAMA_FILES[repo_id]
    headers = hf_auth_headers(token)
    paths = []
    for name in file_names:
        try:
            paths.append(
                download_file(
                    f"{base_url}/{repo_id}/resolve/main/{name}",
                    Path(folder) / Path(name).name,
                    mirror_names=(f"{repo_id}/{name}",),
                    validate=_VALIDATORS.get(Path(name).suffix),
                    headers=headers,
                )
            )
        except DownloadError as error:
            hint = (
                "HF_TOKEN 이 비어 있습니다. " if not headers else "HF_TOKEN 의 계정이 이 저장소의 라이선스에 동의했는지 확인하세요. "
            )
            raise DownloadError(
                f"{error}\nMeta 의 Llama 파일은 https://huggingface.co/{repo_id} 에서 라이선스에 동의한 계정만 받을 수 "
                f"있습니다. {hint}토큰은 https://huggingface.co/settings/tokens 에서 만들어 환경 변수 HF_TOKEN 에 둡니다."
            ) from None
    return paths


class LlamaStateDict(dict):
    """state dict 에 체크포인트 설정(``config``: ``read_checkpoint_config`` 의 결과, 모르면 None)을 붙인 것."""

    config = None


def read_checkpoint_config(source):
    """체크포인트의 헤드 배치를 읽는다: Hugging Face ``config.json`` 이나 Meta ``params.json``.

    Args:
        source: 두 파일 중 하나가 든 폴더, 그 파일의 경로, 또는 이미 읽은 딕셔너리.

    Returns:
        ``{"n_heads", "n_kv_groups", "emb_dim", "n_layers"}`` (이 저장소의 설정 키 이름). 파일이 없으면 None.
    """
    if isinstance(source, dict):
        raw, where = source, "checkpoint_config"
    else:
        path = Path(source)
        if path.is_dir():
            path = next((path / name for name in ("config.json", "params.json") if (path / name).is_file()), None)
            if path is None:
                return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"체크포인트 설정 파일 {path} 을(를) JSON 으로 읽지 못했습니다({type(error).__name__}).") from None
        where = str(path)
    if not isinstance(raw, dict):
        raise ValueError(f"체크포인트 설정 {where} 이(가) JSON 객체가 아닙니다.")  # noqa: TRY004
    if "num_attention_heads" in raw:  # Hugging Face config.json
        names = ("num_attention_heads", "num_key_value_heads", "hidden_size", "num_hidden_layers")
    elif "n_heads" in raw:  # Meta params.json
        names = ("n_heads", "n_kv_heads", "dim", "n_layers")
    else:
        raise ValueError(
            f"체크포인트 설정 {where} 에 헤드 수(num_attention_heads 또는 n_heads)가 없습니다. "
            "Hugging Face config.json 이나 Meta params.json 을 주세요."
        )
    values = [raw.get(name) for name in names]
    if values[1] is None:
        values[1] = values[0]  # 키·값 헤드 수가 없으면 멀티 헤드 어텐션(Llama 2)
    return dict(zip(_LAYOUT_KEYS, values))


def load_llama_safetensors(folder):
    """``save_pretrained`` 폴더나 내려받은 safetensors 파일들(여러 조각이면 모두)을 하나의 state dict 로 읽는다.

    같은 폴더에 ``config.json``/``params.json`` 이 있으면 그 헤드 배치를 돌려주는 딕셔너리의 ``config`` 에 붙여,
    ``load_weights_into_llama`` 가 모델의 헤드 수와 맞는지 확인하게 한다.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder} 에 .safetensors 파일이 없습니다. download_llama_files 로 먼저 받으세요.")
    state_dict = LlamaStateDict()
    for file in files:
        try:
            validate_safetensors(file)
            state_dict.update(load_file(str(file)))
        except (ValueError, OSError, SafetensorError) as error:
            reason = str(error) if isinstance(error, ValueError) else type(error).__name__
            raise ValueError(
                f"{file.resolve()} 은(는) 온전한 safetensors 파일이 아닙니다({reason}). 잘렸거나 다른 파일(HTML 오류 "
                "페이지 등)일 수 있습니다. 지우지 않았습니다. 이 파일을 다른 곳으로 옮긴 뒤 download_llama_files 로 "
                "다시 받으세요."
            ) from None
    state_dict.config = read_checkpoint_config(folder)
    return state_dict


def _check_head_layout(model, cfg, checkpoint_config):
    """모델의 헤드 배치를 체크포인트 설정과 비교한다. 헤드 수는 가중치 모양으로는 알 수 없어 설정이 있어야 한다."""
    att = model.trf_blocks[0].att if len(model.trf_blocks) else None
    model_layout = {
        "n_heads": att.num_heads if att is not None else cfg["n_heads"],
        "n_kv_groups": att.num_kv_groups if att is not None else cfg.get("n_kv_groups", cfg["n_heads"]),
        "emb_dim": cfg["emb_dim"],
        "n_layers": len(model.trf_blocks),
    }
    if checkpoint_config is None:
        warnings.warn(
            "체크포인트의 설정(config.json 이나 params.json)이 없어 헤드 수(n_heads, n_kv_groups)를 확인하지 못했습니다. "
            "헤드 수가 다르면 텐서 모양이 같아도 로짓이 틀립니다. load_weights_into_llama(..., checkpoint_config=폴더) "
            "로 설정을 알려 주면 확인합니다.",
            stacklevel=3,
        )
        return
    if isinstance(checkpoint_config, dict) and set(checkpoint_config) <= set(_LAYOUT_KEYS):
        layout = checkpoint_config  # read_checkpoint_config 가 이미 읽은 것
    else:
        layout = read_checkpoint_config(checkpoint_config)
        if layout is None:
            raise ValueError(f"{checkpoint_config} 에 config.json 이나 params.json 이 없습니다.")
    differences = [
        f"{key}: 모델 {model_layout[key]}, 체크포인트 {layout[key]}"
        for key in _LAYOUT_KEYS
        if layout.get(key) is not None and layout[key] != model_layout[key]
    ]
    if differences:
        raise ValueError(
            f"모델의 구조가 체크포인트의 설정과 다릅니다({'; '.join(differences)}). 아무것도 싣지 않았습니다. "
            "체크포인트의 설정에 맞춘 cfg 로 모델을 만드세요."
        )


def load_weights_into_llama(model, cfg, params, checkpoint_config=None):
    """Hugging Face ``LlamaForCausalLM`` 형식의 state dict ``params`` 를 ``Llama2Model``/``Llama3Model`` 에 싣는다.

    ``lm_head.weight`` 가 없거나 토큰 임베딩과 같은 텐서면(Llama 3.2) 출력층이 토큰 임베딩 행렬을 함께 쓰도록 묶는다.
    쓰지 않고 남은 키나 빠진 키가 있으면 ValueError 를 낸다(설정이 체크포인트와 다르다는 뜻이다).

    헤드 수는 텐서 모양에 드러나지 않는다(4헤드·키값 2그룹과 8헤드·4그룹의 행렬 모양이 같다). 그래서
    ``checkpoint_config`` (``config.json``/``params.json`` 이 든 폴더, 그 파일, 또는 읽은 딕셔너리)나
    ``load_llama_safetensors`` 가 붙인 설정이 있으면 모델의 헤드 배치와 비교해 다르면 아무것도 싣지 않고 ValueError,
    설정이 없으면 확인하지 못했다고 경고한다.
    """
    _check_head_layout(model, cfg, checkpoint_config if checkpoint_config is not None else getattr(params, "config", None))
    params = dict(params)


    head, embedding = params.get("lm_head.weight"), params.get("model.embed_tokens.weight")
    tied = head is None or (
        embedding is not None and head.shape == embedding.shape and head.data_ptr() == embedding.data_ptr()
    )
    if tied:
        params.pop("lm_head.weight", None)

    def take(key, left):
        if key not in params:
            raise ValueError(f"가중치에 {key} 가 없습니다. Hugging Face LlamaForCausalLM 형식의 state dict 인지 확인하세요.")
        return assign(left, params.pop(key), key)

    model.tok_emb.weight = take("model.embed_tokens.weight", model.tok_emb.weight)
    for layer, block in enumerate(model.trf_blocks[: cfg["n_layers"]]):
        prefix = f"model.layers.{layer}."
        att, ff = block.att, block.ff
        att.W_query.weight = take(prefix + "self_attn.q_proj.weight", att.W_query.weight)
        att.W_key.weight = take(prefix + "self_attn.k_proj.weight", att.W_key.weight)
        att.W_value.weight = take(prefix + "self_attn.v_proj.weight", att.W_value.weight)
        att.out_proj.weight = take(prefix + "self_attn.o_proj.weight", att.out_proj.weight)
        block.norm1.weight = take(prefix + "input_layernorm.weight", block.norm1.weight)
        ff.fc1.weight = take(prefix + "mlp.gate_proj.weight", ff.fc1.weight)
        ff.fc2.weight = take(prefix + "mlp.up_proj.weight", ff.fc2.weight)
        ff.fc3.weight = take(prefix + "mlp.down_proj.weight", ff.fc3.weight)
        block.norm2.weight = take(prefix + "post_attention_layernorm.weight", block.norm2.weight)
    model.final_norm.weight = take("model.norm.weight", model.final_norm.weight)
    if tied:
        model.out_head.weight = model.tok_emb.weight  # 가중치 묶기: 두 층이 같은 텐서를 쓴다
    else:
        model.out_head.weight = take("lm_head.weight", model.out_head.weight)
    leftover = [key for key in params if not key.endswith("rotary_emb.inv_freq")]
    if leftover or len(model.trf_blocks) != cfg["n_layers"]:
        raise ValueError(
            f"가중치와 설정이 맞지 않습니다: 쓰지 않은 키 {leftover[:3]}…({len(leftover)}개), 모델 층 "
            f"{len(model.trf_blocks)}개, 설정의 n_layers {cfg['n_layers']}. 체크포인트에 맞는 설정으로 모델을 만드세요."
        )
    return model


def meta_to_hf_rope_layout(weight, n_heads):
    """Meta 체크포인트의 쿼리·키 행렬을 이 모델(과 Hugging Face)의 RoPE 배치로 바꾼다.

    Meta 의 RoPE 는 이웃한 차원 (0, 1), (2, 3), … 을 한 쌍으로 회전하고, 여기서는 (i, i + head_dim/2) 를 한
    쌍으로 회전한다. 헤드마다 출력 행의 순서를 [0, 2, 4, …, 1, 3, 5, …] 로 바꾸면 두 방식의 결과가 같아진다.
    """
    out_dim, in_dim = weight.shape
    head_dim = out_dim // n_heads
    return weight.view(n_heads, head_dim // 2, 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def load_meta_llama2_weights(model, cfg, params, checkpoint_config=None):
    """Meta 의 원래 Llama 2 체크포인트(``consolidated.00.pth`` 를 ``torch.load`` 한 것)를 ``Llama2Model`` 에 싣는다.

    ``checkpoint_config`` 에 ``params.json`` (또는 그 폴더)을 주면 헤드 수를 확인한다(``load_weights_into_llama`` 참고).
    """
    n_heads = cfg["n_heads"]
    missing = [key for key in ("tok_embeddings.weight", "layers.0.attention.wq.weight") if key not in params]
    if missing:
        raise ValueError(f"Meta Llama 2 체크포인트에 {missing[0]} 가 없습니다. consolidated.00.pth 를 읽은 state dict 를 넘기세요.")
    hf_params = {
        "model.embed_tokens.weight": params["tok_embeddings.weight"],
        "model.norm.weight": params["norm.weight"],
        "lm_head.weight": params["output.weight"],
    }
    for layer in range(cfg["n_layers"]):
        meta, hf = f"layers.{layer}.", f"model.layers.{layer}."
        hf_params.update(
            {
                hf + "self_attn.q_proj.weight": meta_to_hf_rope_layout(params[meta + "attention.wq.weight"], n_heads),
                hf + "self_attn.k_proj.weight": meta_to_hf_rope_layout(params[meta + "attention.wk.weight"], n_heads),
                hf + "self_attn.v_proj.weight": params[meta + "attention.wv.weight"],
                hf + "self_attn.o_proj.weight": params[meta + "attention.wo.weight"],
                hf + "input_layernorm.weight": params[meta + "attention_norm.weight"],
                hf + "mlp.gate_proj.weight": params[meta + "feed_forward.w1.weight"],
                hf + "mlp.up_proj.weight": params[meta + "feed_forward.w3.weight"],
                hf + "mlp.down_proj.weight": params[meta + "feed_forward.w2.weight"],
                hf + "post_attention_layernorm.weight": params[meta + "ffn_norm.weight"],
            }
        )
    return load_weights_into_llama(model, cfg, hf_params, checkpoint_config)


def load_meta_checkpoint(path):
    """``consolidated.00.pth`` 를 CPU 로 읽는다(가중치만: ``weights_only=True``, 메모리 맵)."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
