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
    "has_llama_files",
    "hf_auth_headers",
    "hf_to_meta_rope_layout",
    "llama_config_from_checkpoint",
    "load_llama_safetensors",
    "load_meta_checkpoint",
    "load_meta_llama2_weights",
    "load_weights_into_llama",
    "meta_to_hf_rope_layout",
    "read_checkpoint_config",
    "write_synthetic_llama_checkpoint",
]

HF_BASE_URL = "https://huggingface.co"

# 저장소마다 받을 파일(Hugging Face 저장소 안의 경로): 토크나이저, 설정, 가중치 순서
_LLAMA3_8B_FILES = ["original/tokenizer.model", "config.json", "model.safetensors.index.json"] + [
    f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)
]
LLAMA_FILES = {
    "meta-llama/Llama-2-7b": ["tokenizer.model", "params.json", "consolidated.00.pth"],
    "meta-llama/Llama-2-7b-chat": ["tokenizer.model", "params.json", "consolidated.00.pth"],
    "meta-llama/Llama-2-7b-hf": ["tokenizer.model", "config.json", "model.safetensors.index.json"]
    + [f"model-0000{i}-of-00002.safetensors" for i in range(1, 3)],
    "meta-llama/Llama-2-7b-chat-hf": ["tokenizer.model", "config.json", "model.safetensors.index.json"]
    + [f"model-0000{i}-of-00002.safetensors" for i in range(1, 3)],
    "meta-llama/Meta-Llama-3-8B": _LLAMA3_8B_FILES,
    "meta-llama/Meta-Llama-3-8B-Instruct": _LLAMA3_8B_FILES,
    "meta-llama/Llama-3.1-8B": _LLAMA3_8B_FILES,
    "meta-llama/Llama-3.1-8B-Instruct": _LLAMA3_8B_FILES,
    "meta-llama/Llama-3.2-1B": ["original/tokenizer.model", "config.json", "model.safetensors"],
    "meta-llama/Llama-3.2-1B-Instruct": ["original/tokenizer.model", "config.json", "model.safetensors"],
    "meta-llama/Llama-3.2-3B": ["original/tokenizer.model", "config.json", "model.safetensors.index.json"]
    + [f"model-0000{i}-of-00002.safetensors" for i in range(1, 3)],
    "meta-llama/Llama-3.2-3B-Instruct": ["original/tokenizer.model", "config.json", "model.safetensors.index.json"]
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
    weight_map = _check_shards(Path(folder), files)
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
    if weight_map is not None and set(weight_map) != set(state_dict):
        extra, missing = sorted(set(state_dict) - set(weight_map)), sorted(set(weight_map) - set(state_dict))
        raise ValueError(
            f"{Path(folder) / _INDEX_NAME} 의 weight_map 과 조각 파일에 든 텐서가 다릅니다(목록에 없는 텐서 {extra[:3]}, "
            f"조각에 없는 텐서 {missing[:3]}). 조각 파일이 다른 모델의 것일 수 있습니다. download_llama_files 로 다시 받으세요."
        )
    state_dict.config = read_checkpoint_config(folder)
    return state_dict


_INDEX_NAME = "model.safetensors.index.json"


def _check_shards(folder, files):
    """여러 조각(``model-00001-of-00004.safetensors`` …)으로 나뉜 체크포인트가 온전한지 확인한다.

    ``model.safetensors.index.json`` 이 있으면 그 ``weight_map`` 이 가리키는 조각이 모두 있어야 하고, 없으면
    조각 이름의 ``-of-N`` 이 말하는 N개가 모두 있어야 한다. 조각 하나가 빠지면 그 층의 가중치가 없으므로
    아무것도 읽기 전에 빠진 파일 이름을 밝힌다. 인덱스의 ``weight_map`` (텐서 이름 -> 파일)을 돌려준다(없으면 None).
    """
    names = {file.name for file in files}
    index_path = folder / _INDEX_NAME
    if index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
            needed = set(weight_map.values())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(
                f"{index_path} 을(를) 조각 목록(weight_map 이 든 JSON)으로 읽지 못했습니다({type(error).__name__}). "
                "download_llama_files 로 다시 받으세요."
            ) from None
    else:
        weight_map, needed = None, set()
        for name in names:
            stem = name.removesuffix(".safetensors")
            if "-of-" in stem and stem.startswith("model-"):
                total = stem.rsplit("-of-", 1)[1]
                if total.isdigit():
                    needed |= {f"model-{i:0{len(total)}d}-of-{total}.safetensors" for i in range(1, int(total) + 1)}
    missing = sorted(needed - names)
    if missing:
        raise FileNotFoundError(
            f"{folder} 에 가중치 조각 {', '.join(missing)} 이(가) 없습니다(있는 조각: {', '.join(sorted(names))}). "
            "조각이 하나라도 빠지면 모델을 만들 수 없습니다. download_llama_files 로 빠진 파일을 받으세요."
        )
    return weight_map


def has_llama_files(repo_id, folder):
    """``folder`` 에 ``LLAMA_FILES[repo_id]`` 의 파일이 모두 있으면 True (``download_llama_files`` 가 저장하는 이름으로)."""
    if repo_id not in LLAMA_FILES:
        raise ValueError(f"{repo_id!r} 의 파일 목록을 모릅니다. 목록이 있는 저장소: {', '.join(LLAMA_FILES)}")
    return all((Path(folder) / Path(name).name).is_file() for name in LLAMA_FILES[repo_id])


def _read_config_file(source):
    path = Path(source)
    if path.is_dir():
        path = next((path / name for name in ("config.json", "params.json") if (path / name).is_file()), None)
        if path is None:
            raise FileNotFoundError(
                f"{source} 에 config.json 도 params.json 도 없습니다. download_llama_files 로 체크포인트를 받으세요."
            )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"체크포인트 설정 파일 {path} 을(를) JSON 으로 읽지 못했습니다({type(error).__name__}).") from None
    if not isinstance(raw, dict):
        raise ValueError(f"체크포인트 설정 {path} 이(가) JSON 객체가 아닙니다.")  # noqa: TRY004
    return raw, path


def llama_config_from_checkpoint(source, vocab_size=None, context_length=None, dtype=None):
    """체크포인트의 ``config.json`` (Hugging Face) 또는 ``params.json`` (Meta)을 이 저장소의 모델 설정으로 바꾼다.

    진짜 Meta-Llama-3-8B 의 config.json 을 주면 ``LLAMA3_CONFIG_8B`` 와 같은 딕셔너리가 나온다. 그래서 진짜
    체크포인트든 여기서 만든 작은 체크포인트든 같은 코드로 모델을 만들 수 있다.

    Args:
        source: 설정 파일이 든 폴더나 그 파일의 경로.
        vocab_size: Meta 의 params.json 처럼 어휘 크기가 -1 이면 토크나이저의 어휘 크기를 준다(Llama 2: 32,000).
        context_length: 문맥 길이. params.json 에는 없으므로 주지 않으면 Llama 2 의 4,096. config.json 이면
            ``max_position_embeddings`` 를 쓰고, 주면 그 값으로 줄인다(RoPE 표가 작아진다).
        dtype: 모델을 만들 dtype. 주지 않으면 config.json 의 ``torch_dtype``, params.json 이면 bfloat16.
    """
    raw, path = _read_config_file(source)
    if "hidden_size" in raw:  # Hugging Face config.json
        rope = raw.get("rope_scaling") or raw.get("rope_parameters") or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in ("default", "llama3"):
            raise ValueError(
                f"{path} 의 RoPE 방식 {rope_type!r} 은(는) 이 모델이 모릅니다. 'default' 나 'llama3' 인 Llama 체크포인트를 쓰세요."
            )
        cfg = {
            "vocab_size": raw["vocab_size"],
            "context_length": raw["max_position_embeddings"],
            "emb_dim": raw["hidden_size"],
            "n_heads": raw["num_attention_heads"],
            "n_layers": raw["num_hidden_layers"],
            "hidden_dim": raw["intermediate_size"],
            "rope_base": float(raw.get("rope_theta") or rope.get("rope_theta") or 10_000.0),
            "rope_freq": None,
            "dtype": getattr(torch, raw.get("torch_dtype") or raw.get("dtype") or "float32"),
        }
        if rope_type == "llama3":
            cfg["rope_freq"] = {
                "factor": float(rope["factor"]),
                "low_freq_factor": float(rope["low_freq_factor"]),
                "high_freq_factor": float(rope["high_freq_factor"]),
                "original_context_length": rope["original_max_position_embeddings"],
            }
        n_kv_heads = raw.get("num_key_value_heads", cfg["n_heads"])
        head_dim = raw.get("head_dim")
        if head_dim is not None and head_dim * cfg["n_heads"] != cfg["emb_dim"]:
            raise ValueError(
                f"{path} 의 head_dim({head_dim}) × 헤드 수({cfg['n_heads']})가 hidden_size({cfg['emb_dim']})와 다릅니다. "
                "이 모델은 head_dim = hidden_size / 헤드 수 인 Llama 만 만듭니다."
            )
    elif "dim" in raw and "n_heads" in raw:  # Meta params.json
        if raw.get("use_scaled_rope"):
            raise ValueError(
                f"{path} 는 Llama 3.1 이후의 params.json 입니다. 주파수 조정 값이 없으므로 같은 저장소의 config.json 을 쓰세요."
            )
        if raw.get("vocab_size", -1) > 0:
            vocab_size = vocab_size or raw["vocab_size"]
        if vocab_size is None:
            raise ValueError(
                f"{path} 의 vocab_size 가 {raw.get('vocab_size', -1)} 입니다(Meta 의 Llama 2 는 -1 로 둡니다). "
                "토크나이저의 어휘 크기를 vocab_size 로 주세요(예: Llama2Tokenizer(...).n_vocab)."
            )
        # Meta 의 계산: 8/3 × dim 을 (ffn_dim_multiplier 를 곱한 뒤) multiple_of 의 배수로 올린다. 4096 -> 11008
        hidden_dim = int(2 * 4 * raw["dim"] / 3)
        if raw.get("ffn_dim_multiplier") is not None:
            hidden_dim = int(raw["ffn_dim_multiplier"] * hidden_dim)
        multiple_of = raw.get("multiple_of", 256)
        hidden_dim = multiple_of * ((hidden_dim + multiple_of - 1) // multiple_of)
        cfg = {
            "vocab_size": vocab_size,
            "context_length": 4096,
            "emb_dim": raw["dim"],
            "n_heads": raw["n_heads"],
            "n_layers": raw["n_layers"],
            "hidden_dim": hidden_dim,
            "rope_base": float(raw.get("rope_theta", 10_000.0)),
            "rope_freq": None,
            "dtype": torch.bfloat16,
        }
        n_kv_heads = raw.get("n_kv_heads") or cfg["n_heads"]
    else:
        raise ValueError(
            f"{path} 은(는) Llama 의 config.json(hidden_size …)도 params.json(dim, n_heads …)도 아닙니다."
        )
    if n_kv_heads != cfg["n_heads"]:
        cfg["n_kv_groups"] = n_kv_heads  # 그룹 쿼리 어텐션(Llama 3). Llama 2 7B 설정에는 이 키가 없다
    if context_length is not None:
        cfg["context_length"] = context_length
    if dtype is not None:
        cfg["dtype"] = dtype
    return cfg


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


# 블록마다 Meta 의 원래 이름 -> Hugging Face 이름. 쿼리·키는 RoPE 배치(짝수·홀수 쌍 / 앞뒤 절반)도 바꿔야 한다
META_TO_HF_LAYER_KEYS = {
    "attention.wq.weight": "self_attn.q_proj.weight",
    "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight",
    "attention.wo.weight": "self_attn.o_proj.weight",
    "attention_norm.weight": "input_layernorm.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
    "feed_forward.w2.weight": "mlp.down_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
_ROPE_KEYS = ("attention.wq.weight", "attention.wk.weight")


def meta_to_hf_rope_layout(weight, n_heads):
    """Meta 체크포인트의 쿼리·키 행렬을 이 모델(과 Hugging Face)의 RoPE 배치로 바꾼다.

    Meta 의 RoPE 는 이웃한 차원 (0, 1), (2, 3), … 을 한 쌍으로 회전하고, 여기서는 (i, i + head_dim/2) 를 한
    쌍으로 회전한다. 헤드마다 출력 행의 순서를 [0, 2, 4, …, 1, 3, 5, …] 로 바꾸면 두 방식의 결과가 같아진다.
    """
    out_dim, in_dim = weight.shape
    head_dim = out_dim // n_heads
    return weight.view(n_heads, head_dim // 2, 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def hf_to_meta_rope_layout(weight, n_heads):
    """``meta_to_hf_rope_layout`` 의 역: 이 모델(Hugging Face)의 쿼리·키 행렬을 Meta 의 RoPE 배치로."""
    out_dim, in_dim = weight.shape
    head_dim = out_dim // n_heads
    return weight.view(n_heads, 2, head_dim // 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


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
        for meta_key, hf_key in META_TO_HF_LAYER_KEYS.items():
            weight = params[meta + meta_key]
            hf_params[hf + hf_key] = meta_to_hf_rope_layout(weight, n_heads) if meta_key in _ROPE_KEYS else weight
    return load_weights_into_llama(model, cfg, hf_params, checkpoint_config)


def load_meta_checkpoint(path):
    """``consolidated.00.pth`` 를 CPU 로 읽는다(가중치만: ``weights_only=True``, 메모리 맵)."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


# ---------------------------------------------------------------------------
# 진짜와 같은 파일 배치의 작은 체크포인트(가중치가 없는 곳에서 같은 코드를 돌려 보려고)
# ---------------------------------------------------------------------------


def _random_hf_state_dict(cfg, tie, seed):
    """Hugging Face ``LlamaForCausalLM`` 의 이름과 모양인 무작위 가중치(진짜 파일과 같은 키 순서)."""
    generator = torch.Generator().manual_seed(seed)
    emb, hidden, n_heads = cfg["emb_dim"], cfg["hidden_dim"], cfg["n_heads"]
    kv_dim = cfg.get("n_kv_groups", n_heads) * (emb // n_heads)

    def matrix(rows, cols):
        return torch.randn(rows, cols, generator=generator) / cols**0.5

    def norm():  # 모두 1이면 잘못 실어도 모르므로 흔든다
        return 0.5 + torch.rand(emb, generator=generator)

    state = {"model.embed_tokens.weight": torch.randn(cfg["vocab_size"], emb, generator=generator)}
    for layer in range(cfg["n_layers"]):
        p = f"model.layers.{layer}."
        state |= {
            p + "self_attn.q_proj.weight": matrix(emb, emb),
            p + "self_attn.k_proj.weight": matrix(kv_dim, emb),
            p + "self_attn.v_proj.weight": matrix(kv_dim, emb),
            p + "self_attn.o_proj.weight": matrix(emb, emb),
            p + "mlp.gate_proj.weight": matrix(hidden, emb),
            p + "mlp.up_proj.weight": matrix(hidden, emb),
            p + "mlp.down_proj.weight": matrix(emb, hidden),
            p + "input_layernorm.weight": norm(),
            p + "post_attention_layernorm.weight": norm(),
        }
    state["model.norm.weight"] = norm()
    if not tie:
        state["lm_head.weight"] = matrix(cfg["vocab_size"], emb)
    dtype = cfg.get("dtype") or torch.float32
    return {key: value.to(dtype) for key, value in state.items()}


def _hf_config_json(cfg, tie, llama3):
    rope_scaling = None
    if cfg.get("rope_freq") is not None:
        freq = cfg["rope_freq"]
        rope_scaling = {
            "factor": freq["factor"],
            "low_freq_factor": freq["low_freq_factor"],
            "high_freq_factor": freq["high_freq_factor"],
            "original_max_position_embeddings": freq["original_context_length"],
            "rope_type": "llama3",
        }
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "bos_token_id": 128_000 if llama3 else 1,
        "eos_token_id": 128_001 if llama3 else 2,
        "hidden_act": "silu",
        "hidden_size": cfg["emb_dim"],
        "intermediate_size": cfg["hidden_dim"],
        "max_position_embeddings": cfg["context_length"],
        "num_attention_heads": cfg["n_heads"],
        "num_hidden_layers": cfg["n_layers"],
        "num_key_value_heads": cfg.get("n_kv_groups", cfg["n_heads"]),
        "rms_norm_eps": 1e-05,
        "rope_scaling": rope_scaling,
        "rope_theta": cfg["rope_base"],
        "tie_word_embeddings": tie,
        "torch_dtype": str(cfg.get("dtype") or torch.float32).removeprefix("torch."),
        "vocab_size": cfg["vocab_size"],
    }


def _write_tokenizer(path, llama3, vocab_size):
    """작은 토크나이저 파일: Llama 3 은 순위 파일, Llama 2 는 SentencePiece 모델."""
    import base64
    import tempfile

    if llama3:  # Llama 3 형식(한 줄에 base64 토큰과 순위), 진짜처럼 128,000줄
        import random

        import tiktoken

        ranks = tiktoken.get_encoding("gpt2")._mergeable_ranks
        tokens = sorted(ranks, key=ranks.get)  # GPT-2 의 50,256개
        seen, rng = set(tokens), random.Random(0)
        while len(tokens) < 128_000:  # 나머지 자리는 GPT-2 토큰 두 개를 이어 붙인 것으로 채운다(모든 ID 가 디코딩된다)
            token = rng.choice(tokens[256:5000]) + rng.choice(tokens[256:5000])
            if token not in seen:
                seen.add(token)
                tokens.append(token)
        path.write_text("".join(f"{base64.b64encode(t).decode()} {i}\n" for i, t in enumerate(tokens)), encoding="utf-8")
        return
    import sentencepiece as spm

    from llm_from_scratch.download import download_data_file

    # Llama 2 와 같은 방식(BPE, byte fallback, <s>=1, </s>=2, 정규화 없음: 줄바꿈은 바이트 토큰)의 작은
    # SentencePiece 모델을 "The Verdict" 로 훈련한다
    with tempfile.TemporaryDirectory() as work:
        text = download_data_file("the-verdict.txt", work).read_text(encoding="utf-8")
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(line for line in text.splitlines() if line.strip()),
            model_prefix=str(Path(work) / "tokenizer"),
            vocab_size=vocab_size,
            model_type="bpe",
            byte_fallback=True,
            pad_id=-1, unk_id=0, bos_id=1, eos_id=2,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            minloglevel=2,
        )
        path.write_bytes((Path(work) / "tokenizer.model").read_bytes())


def write_synthetic_llama_checkpoint(repo_id, folder, cfg, seed=123):
    """``repo_id`` 의 진짜 파일 배치(이름, 키, 조각과 인덱스, 설정 파일, 토크나이저 형식)로 작은 무작위 체크포인트를 쓴다.

    ``download_llama_files(repo_id, folder)`` 가 저장하는 것과 같은 파일 이름이 ``folder`` 에 생기므로, 진짜 가중치를
    읽는 코드를 그대로 돌려 볼 수 있다. 값은 무작위라 이 모델이 만드는 텍스트에는 뜻이 없다.

    - Meta 형식(``consolidated.00.pth``, ``params.json``): 쿼리·키 행렬을 Meta 의 RoPE 배치로 저장한다.
      ``params.json`` 에는 피드 포워드 크기가 없으므로 ``cfg["hidden_dim"]`` 이 Meta 의 계산(multiple_of 256)과 맞아야 한다.
    - Hugging Face 형식: ``config.json``, ``model-0000i-of-0000N.safetensors`` 조각과 ``model.safetensors.index.json``
      (또는 ``model.safetensors`` 하나). Llama 3.2 는 출력층을 임베딩과 묶으므로 ``lm_head.weight`` 가 없다.
    - 토크나이저: Llama 2 는 "The Verdict" 로 훈련한 ``cfg["vocab_size"]`` 개 SentencePiece 모델, Llama 3 은 GPT-2
      어휘 50,256개에 그 토큰 둘을 이은 것을 더한 128,000줄의 순위 파일(특수 토큰 ID 는 진짜와 같다).
    - 값은 ``cfg["dtype"]`` 으로 저장한다(진짜 체크포인트는 bfloat16).

    이미 있는 파일은 덮어쓰지 않고 ValueError 를 낸다. 쓴 파일 경로 목록을 돌려준다.
    """
    from safetensors.torch import save_file

    if repo_id not in LLAMA_FILES:
        raise ValueError(f"{repo_id!r} 의 파일 배치를 모릅니다. 배치를 아는 저장소: {', '.join(LLAMA_FILES)}")
    folder = Path(folder)
    names = [Path(name).name for name in LLAMA_FILES[repo_id]]
    existing = [name for name in names if (folder / name).exists()]
    if existing:
        raise ValueError(
            f"{folder} 에 이미 {', '.join(existing)} 이(가) 있습니다. 덮어쓰지 않았습니다. 빈 폴더를 주세요."
        )
    llama3 = "Llama-3" in repo_id
    tie = "Llama-3.2" in repo_id
    if llama3 and "n_kv_groups" not in cfg:
        raise ValueError(f"{repo_id} 의 설정에는 n_kv_groups 가 있어야 합니다. 예: {{**LLAMA3_CONFIG_8B, ...}}")
    meta_layout = "consolidated.00.pth" in names
    hidden_dim = 256 * ((int(2 * 4 * cfg["emb_dim"] / 3) + 255) // 256)
    if meta_layout and hidden_dim != cfg["hidden_dim"]:
        raise ValueError(
            f"params.json 에는 hidden_dim 이 없어 Meta 의 계산으로 정해집니다: emb_dim {cfg['emb_dim']} 이면 "
            f"{hidden_dim} 입니다(받은 값: {cfg['hidden_dim']}). cfg 의 hidden_dim 을 {hidden_dim} 으로 하세요."
        )
    if llama3 and cfg["vocab_size"] != 128_256:
        raise ValueError(
            f"Llama 3 의 특수 토큰은 128,000번부터라서 작은 체크포인트도 vocab_size 가 128,256 이어야 합니다"
            f"(받은 값: {cfg['vocab_size']}). 차원과 층 수만 줄이세요."
        )
    folder.mkdir(parents=True, exist_ok=True)
    state = _random_hf_state_dict(cfg, tie, seed)
    _write_tokenizer(folder / "tokenizer.model", llama3, cfg["vocab_size"])

    if meta_layout:  # Meta 의 원래 형식
        params = {"dim": cfg["emb_dim"], "multiple_of": 256, "n_heads": cfg["n_heads"], "n_layers": cfg["n_layers"],
                  "norm_eps": 1e-05, "vocab_size": -1}
        n_heads = cfg["n_heads"]
        meta = {"tok_embeddings.weight": state["model.embed_tokens.weight"], "norm.weight": state["model.norm.weight"],
                "output.weight": state["lm_head.weight"]}
        for layer in range(cfg["n_layers"]):
            p, m = f"model.layers.{layer}.", f"layers.{layer}."
            for meta_key, hf_key in META_TO_HF_LAYER_KEYS.items():
                weight = state[p + hf_key]
                meta[m + meta_key] = hf_to_meta_rope_layout(weight, n_heads) if meta_key in _ROPE_KEYS else weight
        torch.save(meta, folder / "consolidated.00.pth")
        (folder / "params.json").write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
    else:  # Hugging Face 형식
        config = _hf_config_json(cfg, tie, llama3)
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        shards = [name for name in names if name.endswith(".safetensors")]
        keys = list(state)
        if len(keys) < len(shards):
            raise ValueError(f"텐서 {len(keys)}개를 조각 {len(shards)}개로 나눌 수 없습니다. n_layers 를 늘리세요.")
        weight_map = {}
        for i, shard in enumerate(shards):  # 진짜처럼 앞 층부터 차례로 나눈다
            part = keys[i * len(keys) // len(shards) : (i + 1) * len(keys) // len(shards)]
            save_file({key: state[key].contiguous() for key in part}, str(folder / shard), metadata={"format": "pt"})
            weight_map |= dict.fromkeys(part, shard)
        if _INDEX_NAME in names:
            total_size = sum(t.numel() * t.element_size() for t in state.values())
            index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
            (folder / _INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return [folder / name for name in names]
