"""OpenAI GPT-2 가중치를 내려받아 5장의 ``GPTModel`` 에 싣는 도구 (5.5절).

두 가지 경로가 있다.

- TensorFlow 체크포인트(책의 방법): ``download_and_load_gpt2`` 가 OpenAI 서버(실패하면 백업 서버)에서
  파일 7개를 받아 ``models_dir/<크기>/`` 에 두고, ``load_gpt2_params_from_tf_ckpt`` 로 읽어 중첩 딕셔너리를 만든다.
  TensorFlow 는 체크포인트를 읽는 함수 안에서만 가져오므로 이 모듈을 불러오는 데는 필요 없다.
- Hugging Face safetensors(TensorFlow 없이): ``load_gpt2_safetensors`` 가 ``model.safetensors`` 를 받아
  state_dict 로 돌려주고, ``load_hf_weights_into_gpt`` 가 그것을 모델에 싣는다.

인터넷 없이 코드 경로를 모두 시험할 수 있도록, 같은 형식의 작은 무작위 체크포인트를 쓰는
``write_synthetic_gpt2_checkpoint``, ``write_synthetic_gpt2_safetensors`` 도 들어 있다.

명령줄에서도 쓸 수 있다: ``python gpt_download.py --model-size 124M --models-dir gpt2``
"""

import contextlib
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from llm_from_scratch.download import (
    download_file,
    file_sha256,
    validate_json,
    validate_safetensors,
    validate_tf_checkpoint_index,
)
from llm_from_scratch.utils import QUICK, ArgumentParser

__all__ = [
    "GPT2_FILES",
    "GPT2_HF_MODEL_NAMES",
    "GPT2_SIZES",
    "GPT2CheckpointError",
    "GPT2Params",
    "assign",
    "download_and_load_gpt2",
    "gpt2_config_from_hparams",
    "load_gpt2_params_from_tf_ckpt",
    "load_gpt2_safetensors",
    "load_hf_weights_into_gpt",
    "load_weights_into_gpt",
    "write_synthetic_gpt2_checkpoint",
    "write_synthetic_gpt2_safetensors",
]

GPT2_SIZES = ("124M", "355M", "774M", "1558M")

GPT2_FILES = (
    "checkpoint",
    "encoder.json",
    "hparams.json",
    "model.ckpt.data-00000-of-00001",
    "model.ckpt.index",
    "model.ckpt.meta",
    "vocab.bpe",
)

# 체크포인트 본체 파일들(손상되었을 때 오류 메시지에서 옮기라고 알리는 파일들; 이 모듈은 아무것도 지우지 않는다)
CHECKPOINT_FILES = ("checkpoint", "model.ckpt.data-00000-of-00001", "model.ckpt.index", "model.ckpt.meta")

BASE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/models"
BACKUP_BASE_URL = "https://f001.backblazeb2.com/file/LLMs-from-scratch/gpt2"
ENCODINGS_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main"

# 토크나이저 파일은 모든 크기의 폴더에서 같다(크기·sha256 은 데이터 미러의 README 와 같다)
TOKENIZER_FILES = {
    "encoder.json": {
        "size": 1_042_301,
        "sha256": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        "tiktoken_cache_name": "6c7ea1a7e38e3a7f062df639a5b80947f075ffe6",
    },
    "vocab.bpe": {
        "size": 456_318,
        "sha256": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        "tiktoken_cache_name": "6d1cbeee0f20b3d9449abfede4726ed8212e3aee",
    },
}

# Hugging Face 저장소 이름과 OpenAI 크기 이름의 대응
GPT2_HF_MODEL_NAMES = {"gpt2": "124M", "gpt2-medium": "355M", "gpt2-large": "774M", "gpt2-xl": "1558M"}
HF_BASE_URL = "https://huggingface.co/openai-community"

# 시험용 작은 체크포인트의 기본 하이퍼파라미터(어휘는 진짜 GPT-2 와 같아 tiktoken 토크나이저를 그대로 쓴다)
SYNTHETIC_HPARAMS = {"n_vocab": 50257, "n_ctx": 256, "n_embd": 64, "n_head": 4, "n_layer": 2}

HPARAM_KEYS = ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")


class GPT2CheckpointError(RuntimeError):
    """GPT-2 체크포인트를 읽을 수 없을 때(잘렸거나 손상됨, hparams.json 과 맞지 않음).

    메시지에 문제가 된 파일과 할 일이 들어 있다. 파일은 사용자의 것이므로 아무것도 지우지 않는다.
    """


class GPT2Params(dict):
    """가중치 딕셔너리에 그 가중치의 하이퍼파라미터(``hparams``: n_vocab, n_ctx, n_embd, n_head, n_layer)를 붙인 것.

    보통의 딕셔너리처럼 쓰면 되고, ``load_weights_into_gpt`` 가 ``hparams`` 로 모델 설정(헤드 수 포함)을 확인한다.
    """

    def __init__(self, *args, hparams=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.hparams = dict(hparams) if hparams is not None else None


def _validate_hparams_file(path):
    validate_json(path)
    settings = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(settings, dict):
        raise ValueError("hparams.json 이 JSON 객체가 아닙니다")  # noqa: TRY004
    _check_hparams(settings)


def _validate_checkpoint_file(path):
    if "model_checkpoint_path" not in Path(path).read_text(encoding="utf-8", errors="replace"):
        raise ValueError("checkpoint 파일에 model_checkpoint_path 가 없습니다")


# 크기·해시를 모르는 체크포인트 파일을 믿기 전에 읽어 보는 함수들(메타 그래프와 데이터 파일은 Content-Length 로 확인한다)
_TF_FILE_VALIDATORS = {
    "checkpoint": _validate_checkpoint_file,
    "hparams.json": _validate_hparams_file,
    "model.ckpt.index": validate_tf_checkpoint_index,
}


# ---------------------------------------------------------------------------
# TensorFlow 체크포인트 경로
# ---------------------------------------------------------------------------


def _check_model_size(model_size):
    if model_size not in GPT2_SIZES:
        raise ValueError(f"알 수 없는 모델 크기 {model_size!r} 입니다. 가능한 크기: {', '.join(GPT2_SIZES)}")


def _import_triton_before_tensorflow():
    """CUDA 빌드의 torch 와 함께 설치된 triton 을 TensorFlow 보다 먼저 가져온다.

    TensorFlow(tensorflow-cpu 2.21)를 가져온 뒤에 triton 3.8 을 가져오면 프로세스가 세그멘테이션 오류로 죽는다.
    torch 의 옵티마이저(AdamW 등)는 처음 만들어질 때 ``torch._dynamo`` 를 거쳐 triton 을 가져오므로, 체크포인트를
    읽은 뒤 미세 튜닝을 시작하는 순간 죽게 된다. 반대 순서(triton 먼저)는 문제가 없다.
    triton 이 없는 환경(CPU 빌드의 torch, macOS)에서는 아무 일도 하지 않는다.
    """
    if "tensorflow" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    with contextlib.suppress(ImportError, RuntimeError, OSError):  # triton 이 깨져 있어도 TF 경로는 쓸 수 있어야 한다
        import triton  # noqa: F401


def _import_tensorflow():
    """TensorFlow 를 필요할 때만 가져온다(가져오는 데 몇 초가 걸리고, 없는 환경도 있다)."""
    # TensorFlow 의 긴 시작 로그를 숨긴다(여기서는 파일을 읽고 쓰기만 하므로 oneDNN 최적화도 필요 없다)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    _import_triton_before_tensorflow()
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "OpenAI 체크포인트를 읽으려면 TensorFlow 가 필요합니다: pip install tensorflow-cpu "
            "(또는 TensorFlow 없이 load_gpt2_safetensors 와 load_hf_weights_into_gpt 를 쓰세요)."
        ) from error
    return tf


def download_and_load_gpt2(model_size, models_dir):
    """OpenAI GPT-2 체크포인트를 (필요하면) 내려받아 ``(settings, params)`` 를 돌려준다.

    파일은 ``models_dir/model_size/`` 에 저장되고, 이미 받아 둔 파일은 다시 받지 않는다.
    체크포인트가 잘렸거나 손상되었거나 hparams.json 과 맞지 않으면 원인과 파일을 밝히는 ``GPT2CheckpointError`` 를
    낸다. 폴더의 파일은 사용자의 것이므로 어떤 경우에도 지우지 않는다.

    Args:
        model_size: "124M", "355M", "774M", "1558M" 중 하나.
        models_dir: 모델 폴더들을 둘 상위 폴더(예: "gpt2").

    Returns:
        settings: hparams.json 의 내용(n_vocab, n_ctx, n_embd, n_head, n_layer).
        params: ``load_gpt2_params_from_tf_ckpt`` 가 만든 중첩 딕셔너리.
    """
    _check_model_size(model_size)
    model_dir = Path(models_dir) / model_size
    for file_name in GPT2_FILES:
        tokenizer_info = TOKENIZER_FILES.get(file_name, {})
        mirror_names = [f"gpt2/{model_size}/{file_name}"]
        if tokenizer_info:
            mirror_names.append(f"gpt2/{file_name}")
        download_file(
            f"{BASE_URL}/{model_size}/{file_name}",
            model_dir / file_name,
            backup_url=f"{BACKUP_BASE_URL}/{model_size}/{file_name}",
            expected_size=tokenizer_info.get("size"),
            sha256=tokenizer_info.get("sha256"),
            mirror_names=mirror_names,
            validate=_TF_FILE_VALIDATORS.get(file_name),
        )

    settings = json.loads((model_dir / "hparams.json").read_text(encoding="utf-8"))  # 위에서 읽히는지 확인했다
    tf = _import_tensorflow()
    try:
        ckpt_path = tf.train.latest_checkpoint(str(model_dir))
        if ckpt_path is None:
            raise ValueError("checkpoint 파일이 가리키는 체크포인트가 없습니다")
        params = load_gpt2_params_from_tf_ckpt(ckpt_path, settings)
    except GPT2CheckpointError:
        raise  # hparams.json 과 체크포인트가 맞지 않음: 메시지가 이미 원인을 말한다
    except (tf.errors.OpError, ValueError, KeyError, IndexError) as error:
        reason = getattr(error, "message", None) or str(error)
        files = ", ".join(str(model_dir / name) for name in CHECKPOINT_FILES)
        raise GPT2CheckpointError(
            f"{model_dir} 의 체크포인트가 잘렸거나 손상되어 읽을 수 없습니다: {reason.strip()}\n"
            f"아무 파일도 지우지 않았습니다. 원본을 다시 받으려면 체크포인트 파일({files})을 다른 곳으로 옮기거나 "
            "지운 뒤 다시 실행하세요."
        ) from error
    return settings, params


def _hparams_from_tf_shapes(shapes):
    """체크포인트 변수의 모양에서 알 수 있는 하이퍼파라미터(n_head 는 모양으로 알 수 없다)."""
    found = {}
    if "model/wte" in shapes and len(shapes["model/wte"]) == 2:
        found["n_vocab"], found["n_embd"] = (int(v) for v in shapes["model/wte"])
    if "model/wpe" in shapes and len(shapes["model/wpe"]) == 2:
        found["n_ctx"] = int(shapes["model/wpe"][0])
    found["n_layer"] = len({name.split("/")[1] for name in shapes if name.startswith("model/h")})
    return found


def _check_hparams_match_checkpoint(settings, shapes, ckpt_path):
    """hparams.json 의 값이 체크포인트 변수의 모양과 다르면, 다른 값을 모두 밝히는 ``GPT2CheckpointError``."""
    found = _hparams_from_tf_shapes(shapes)
    differences = [
        f"{key}: hparams.json 은 {settings[key]}, 체크포인트는 {found[key]}"
        for key in HPARAM_KEYS
        if key in found and settings[key] != found[key]
    ]
    if differences:
        hparams_path = Path(ckpt_path).parent / "hparams.json"
        raise GPT2CheckpointError(
            f"hparams.json 이 체크포인트와 맞지 않습니다({'; '.join(differences)}). 체크포인트 파일은 온전하며 "
            f"아무것도 지우지 않았습니다. {hparams_path} 가 이 체크포인트의 것인지 확인하세요(원본을 받으려면 그 "
            "파일만 다른 곳으로 옮기고 다시 실행하세요)."
        )


def _check_hparams(settings):
    missing = [key for key in HPARAM_KEYS if key not in settings]
    if missing:
        raise ValueError(f"hparams 에 {', '.join(missing)} 가 없습니다(받은 키: {', '.join(settings) or '없음'}).")


def load_gpt2_params_from_tf_ckpt(ckpt_path, settings):
    """TensorFlow 체크포인트에서 GPT-2 가중치를 읽어 중첩 딕셔너리로 돌려준다.

    결과의 모양: ``{"wte", "wpe", "blocks": [블록마다 {"attn": {"c_attn": {"w", "b"}, "c_proj": {...}},
    "mlp": {"c_fc": {...}, "c_proj": {...}}, "ln_1": {"g", "b"}, "ln_2": {"g", "b"}}], "g", "b"}``.
    OpenAI 는 선형층을 1x1 합성곱으로 저장해서 가중치가 [1, 입력, 출력] 모양이므로 앞의 1 차원을 없앤다.

    Args:
        ckpt_path: 체크포인트 접두 경로(예: ``gpt2/124M/model.ckpt``) 또는 그것이 든 폴더.
        settings: hparams.json 의 내용. 블록 수와 각 가중치의 모양을 확인하는 데 쓴다.
    """
    _check_hparams(settings)
    tf = _import_tensorflow()
    if Path(ckpt_path).is_dir():
        found = tf.train.latest_checkpoint(str(ckpt_path))
        if found is None:
            raise ValueError(f"폴더 {ckpt_path} 에서 체크포인트(checkpoint 파일)를 찾지 못했습니다.")
        ckpt_path = found
    reader = tf.train.load_checkpoint(str(ckpt_path))
    shapes = reader.get_variable_to_shape_map()
    _check_hparams_match_checkpoint(settings, shapes, ckpt_path)
    expected = _expected_tf_shapes(settings)
    missing = [name for name in expected if name not in shapes]
    if missing:
        raise KeyError(f"체크포인트에 변수 {', '.join(missing[:5])} 가 없습니다(모두 {len(missing)}개).")

    def read(name):
        if list(shapes[name]) != expected[name]:
            raise ValueError(
                f"변수 {name} 의 모양이 {list(shapes[name])} 인데 hparams 로는 {expected[name]} 여야 합니다."
            )
        array = reader.get_tensor(name)
        return array[0] if name.endswith("/w") else array  # [1, 입력, 출력] -> [입력, 출력]

    def linear(scope):
        return {"w": read(f"{scope}/w"), "b": read(f"{scope}/b")}

    def norm(scope):
        return {"g": read(f"{scope}/g"), "b": read(f"{scope}/b")}

    blocks = []
    for i in range(settings["n_layer"]):
        h = f"model/h{i}"
        blocks.append(
            {
                "attn": {"c_attn": linear(f"{h}/attn/c_attn"), "c_proj": linear(f"{h}/attn/c_proj")},
                "mlp": {"c_fc": linear(f"{h}/mlp/c_fc"), "c_proj": linear(f"{h}/mlp/c_proj")},
                "ln_1": norm(f"{h}/ln_1"),
                "ln_2": norm(f"{h}/ln_2"),
            }
        )
    params = {
        "wte": read("model/wte"),
        "wpe": read("model/wpe"),
        "blocks": blocks,
        "g": read("model/ln_f/g"),
        "b": read("model/ln_f/b"),
    }
    return GPT2Params(params, hparams={key: settings[key] for key in HPARAM_KEYS})


def _expected_tf_shapes(settings):
    """OpenAI 체크포인트의 변수 이름과 모양(합성곱 가중치는 [1, 입력, 출력])."""
    d, v, n = settings["n_embd"], settings["n_vocab"], settings["n_ctx"]
    shapes = {"model/wte": [v, d], "model/wpe": [n, d], "model/ln_f/g": [d], "model/ln_f/b": [d]}
    for i in range(settings["n_layer"]):
        h = f"model/h{i}"
        for scope, d_in, d_out in (
            ("attn/c_attn", d, 3 * d),
            ("attn/c_proj", d, d),
            ("mlp/c_fc", d, 4 * d),
            ("mlp/c_proj", 4 * d, d),
        ):
            shapes[f"{h}/{scope}/w"] = [1, d_in, d_out]
            shapes[f"{h}/{scope}/b"] = [d_out]
        for scope in ("ln_1", "ln_2"):
            shapes[f"{h}/{scope}/g"] = [d]
            shapes[f"{h}/{scope}/b"] = [d]
    return shapes


def gpt2_config_from_hparams(settings, drop_rate=0.0):
    """hparams.json(또는 Hugging Face config.json) 내용으로 책의 키를 쓰는 GPTModel 설정을 만든다.

    OpenAI 가중치는 쿼리·키·값에 편향이 있으므로 ``qkv_bias=True`` 다.

    Args:
        settings: n_vocab, n_ctx, n_embd, n_head, n_layer 가 든 딕셔너리
            (Hugging Face 의 vocab_size, n_positions 라는 이름도 받는다).
        drop_rate: 드롭아웃 비율(추론만 하면 0.0).
    """
    aliases = {"n_vocab": "vocab_size", "n_ctx": "n_positions"}
    settings = {key: settings.get(key, settings.get(aliases.get(key, key))) for key in HPARAM_KEYS}
    _check_hparams({key: value for key, value in settings.items() if value is not None})
    return {
        "vocab_size": settings["n_vocab"],
        "context_length": settings["n_ctx"],
        "emb_dim": settings["n_embd"],
        "n_heads": settings["n_head"],
        "n_layers": settings["n_layer"],
        "drop_rate": drop_rate,
        "qkv_bias": True,
    }


def assign(left, right, name):
    """``right`` 의 값을 담은 새 ``nn.Parameter`` 를 돌려준다. 모양이 ``left`` 와 다르면 ValueError.

    Args:
        left: 모델에 지금 있는 파라미터(모양·dtype·장치의 기준).
        right: 실을 값(NumPy 배열 또는 텐서).
        name: 오류 메시지에 쓸 파라미터 이름(예: ``trf_blocks.0.att.W_query.weight``).
    """
    if left is None:
        raise ValueError(
            f"모델에 파라미터 {name} 가 없습니다. GPT-2 가중치는 qkv_bias=True 로 만든 모델에 실어야 합니다."
        )
    right = right.detach() if isinstance(right, torch.Tensor) else torch.from_numpy(np.array(right))
    if tuple(left.shape) != tuple(right.shape):
        raise ValueError(
            f"{name} 의 모양이 맞지 않습니다: 모델은 {tuple(left.shape)}, 불러온 가중치는 {tuple(right.shape)} 입니다. "
            "모델 설정(emb_dim, n_layers, context_length 등)이 체크포인트와 같은지 확인하세요."
        )
    return torch.nn.Parameter(right.to(device=left.device, dtype=left.dtype).clone())


def _as_tensor(value):
    return value.detach() if isinstance(value, torch.Tensor) else torch.from_numpy(np.array(value))


def _model_hparams(gpt):
    """``GPTModel`` 의 설정을 hparams 이름으로(헤드 수는 첫 블록의 어텐션에서)."""
    att = gpt.trf_blocks[0].att if len(gpt.trf_blocks) else None
    return {
        "n_vocab": gpt.tok_emb.num_embeddings,
        "n_ctx": gpt.pos_emb.num_embeddings,
        "n_embd": gpt.tok_emb.embedding_dim,
        "n_head": getattr(att, "num_heads", None),
        "n_layer": len(gpt.trf_blocks),
    }


# hparams 이름 -> 책의 설정 키
_BOOK_KEYS = {"n_vocab": "vocab_size", "n_ctx": "context_length", "n_embd": "emb_dim", "n_head": "n_heads", "n_layer": "n_layers"}


def _check_model_matches_weights(gpt, params, settings=None):
    """모델 설정과 가중치가 다르면(헤드 수는 하이퍼파라미터를 알 때만) 다른 값을 모두 밝히는 ValueError."""
    weights = dict(settings) if settings is not None else dict(getattr(params, "hparams", None) or {})
    wte = _as_tensor(params["wte"]) if "wte" in params else None
    if wte is not None and wte.ndim == 2:
        weights.setdefault("n_vocab", wte.shape[0])
        weights.setdefault("n_embd", wte.shape[1])
    if "wpe" in params and _as_tensor(params["wpe"]).ndim == 2:
        weights.setdefault("n_ctx", _as_tensor(params["wpe"]).shape[0])
    weights.setdefault("n_layer", len(params["blocks"]))
    model = _model_hparams(gpt)
    differences = [
        f"{_BOOK_KEYS[key]}: 모델 {model[key]}, 가중치 {weights[key]}"
        for key in HPARAM_KEYS
        if weights.get(key) is not None and model[key] is not None and int(model[key]) != int(weights[key])
    ]
    if differences:
        raise ValueError(
            f"모델 설정이 불러온 가중치와 다릅니다({'; '.join(differences)}). 가중치를 싣지 않았습니다. "
            "gpt2_config_from_hparams(settings) 로 만든 설정으로 모델을 만드세요."
        )


def load_weights_into_gpt(gpt, params, settings=None):
    """``params``(TF 체크포인트 또는 Hugging Face 에서 만든 중첩 딕셔너리)를 ``GPTModel`` 에 싣는다.

    - ``c_attn`` 은 쿼리·키·값을 이어 붙인 것이므로 마지막 축을 따라 셋으로 나눈다.
    - GPT-2 는 [입력, 출력] 으로 저장하고 ``nn.Linear`` 는 [출력, 입력] 이므로 전치한다.
    - GPT-2 는 출력층과 토큰 임베딩이 가중치를 공유하므로 ``out_head`` 에 ``wte`` 를 싣는다.

    모델 설정(어휘, 문맥 길이, 임베딩 차원, 층 수, 그리고 ``params`` 가 하이퍼파라미터를 지니면 헤드 수)이 가중치와
    다르면 아무것도 싣지 않고 두 값을 모두 밝히는 ValueError 를 낸다.

    Args:
        gpt: 가중치를 실을 ``GPTModel``.
        params: ``load_gpt2_params_from_tf_ckpt`` 가 만든 중첩 딕셔너리(``GPT2Params``).
        settings: 가중치의 하이퍼파라미터(hparams.json 내용). 주지 않으면 ``params.hparams`` 를 쓴다.
    """
    _check_model_matches_weights(gpt, params, settings)
    blocks = params["blocks"]
    gpt.pos_emb.weight = assign(gpt.pos_emb.weight, params["wpe"], "pos_emb.weight")
    gpt.tok_emb.weight = assign(gpt.tok_emb.weight, params["wte"], "tok_emb.weight")

    for i, (block, p) in enumerate(zip(gpt.trf_blocks, blocks)):
        att, ff, prefix = block.att, block.ff, f"trf_blocks.{i}"
        q_w, k_w, v_w = _as_tensor(p["attn"]["c_attn"]["w"]).chunk(3, dim=-1)
        q_b, k_b, v_b = _as_tensor(p["attn"]["c_attn"]["b"]).chunk(3, dim=-1)
        for layer_name, w, b in (("W_query", q_w, q_b), ("W_key", k_w, k_b), ("W_value", v_w, v_b)):
            layer = getattr(att, layer_name)
            layer.weight = assign(layer.weight, w.T, f"{prefix}.att.{layer_name}.weight")
            layer.bias = assign(layer.bias, b, f"{prefix}.att.{layer_name}.bias")

        for layer, source, name in (
            (att.out_proj, p["attn"]["c_proj"], "att.out_proj"),
            (ff.layers[0], p["mlp"]["c_fc"], "ff.layers.0"),
            (ff.layers[2], p["mlp"]["c_proj"], "ff.layers.2"),
        ):
            layer.weight = assign(layer.weight, _as_tensor(source["w"]).T, f"{prefix}.{name}.weight")
            layer.bias = assign(layer.bias, source["b"], f"{prefix}.{name}.bias")

        for norm, source, name in ((block.norm1, p["ln_1"], "norm1"), (block.norm2, p["ln_2"], "norm2")):
            norm.scale = assign(norm.scale, source["g"], f"{prefix}.{name}.scale")
            norm.shift = assign(norm.shift, source["b"], f"{prefix}.{name}.shift")

    gpt.final_norm.scale = assign(gpt.final_norm.scale, params["g"], "final_norm.scale")
    gpt.final_norm.shift = assign(gpt.final_norm.shift, params["b"], "final_norm.shift")
    gpt.out_head.weight = assign(gpt.out_head.weight, params["wte"], "out_head.weight")


def _synthetic_params(hparams, seed):
    """OpenAI 와 같은 이름·모양의 작은 무작위 가중치(합성곱 가중치는 [1, 입력, 출력])."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in _expected_tf_shapes(hparams).items():
        values = 0.02 * rng.standard_normal(shape)
        if name.endswith("/g"):
            values += 1.0  # 층 정규화 scale 은 1 근처
        arrays[name] = values.astype(np.float32)
    return arrays


def _copy_tokenizer_files(model_dir):
    """encoder.json, vocab.bpe 를 tiktoken 캐시 -> 데이터 미러 -> 인터넷 순서로 찾아 ``model_dir`` 에 둔다.

    두 파일은 진짜 GPT-2 의 것(모든 크기에서 같은 파일)이라, 시험용 체크포인트도 진짜 토크나이저와 짝이 맞는다.
    """
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    for file_name, info in TOKENIZER_FILES.items():
        target = Path(model_dir) / file_name
        cached = Path(cache_dir) / info["tiktoken_cache_name"] if cache_dir else None
        if cached is not None and cached.is_file() and file_sha256(cached) == info["sha256"]:
            shutil.copyfile(cached, target)
            continue
        download_file(
            f"{ENCODINGS_URL}/{file_name}",
            target,
            expected_size=info["size"],
            sha256=info["sha256"],
            mirror_names=(f"gpt2/{file_name}",),
            show_progress=False,
        )


def _refuse_to_overwrite_other_checkpoint(settings_path, settings_text, file_names):
    """폴더에 이 함수가 쓸 것과 다른 체크포인트(진짜 GPT-2 등)가 있으면 덮어쓰지 않고 오류를 낸다.

    같은 설정으로 전에 만든 시험용 체크포인트(설정 파일의 내용이 똑같음)만 다시 쓴다.
    """
    folder = Path(settings_path).parent
    present = [name for name in file_names if (folder / name).exists()]
    if not present:
        return
    if Path(settings_path).is_file() and Path(settings_path).read_text(encoding="utf-8") == settings_text:
        return
    raise GPT2CheckpointError(
        f"{folder} 에 이미 다른 체크포인트 파일({', '.join(present)})이 있어 시험용 무작위 체크포인트로 덮어쓰지 "
        "않았습니다. 다른 폴더(--models-dir)를 고르세요."
    )


def write_synthetic_gpt2_checkpoint(models_dir, model_size="124M", hparams=None, seed=123):
    """OpenAI 와 똑같은 형식의 작은 무작위 GPT-2 체크포인트를 ``models_dir/model_size/`` 에 쓴다.

    ``tf.compat.v1.train.Saver`` 로 저장하므로 변수 이름(``model/h0/attn/c_attn/w`` 등)과 모양, 파일 구성
    (checkpoint, hparams.json, model.ckpt.data/index/meta)이 진짜와 같다. encoder.json, vocab.bpe 는 진짜
    GPT-2 파일을 tiktoken 캐시(``TIKTOKEN_CACHE_DIR``)나 데이터 미러(``LLMFS_DATA_MIRROR``)에서 복사하고,
    둘 다 없으면 OpenAI 서버에서 받는다. 그러고 나면 ``download_and_load_gpt2(model_size, models_dir)`` 가
    네트워크 없이 이 체크포인트를 읽는다. 가중치는 무작위이므로 생성되는 문장은 의미가 없다.

    Args:
        models_dir: 상위 폴더.
        model_size: 폴더 이름으로 쓸 크기("124M" 등). 가중치의 실제 크기는 ``hparams`` 가 정한다.
        hparams: n_vocab, n_ctx, n_embd, n_head, n_layer (기본: 어휘 50257, 문맥 256, 임베딩 64, 헤드 4, 층 2).
        seed: 난수 시드.

    Returns:
        체크포인트 폴더 경로.
    """
    _check_model_size(model_size)
    hparams = dict(SYNTHETIC_HPARAMS if hparams is None else hparams)
    _check_hparams(hparams)
    model_dir = Path(models_dir) / model_size
    _refuse_to_overwrite_other_checkpoint(model_dir / "hparams.json", json.dumps(hparams, indent=2), GPT2_FILES)
    model_dir.mkdir(parents=True, exist_ok=True)
    arrays = _synthetic_params(hparams, seed)

    tf = _import_tensorflow()
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(value, name=name) for name, value in arrays.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.variables_initializer(variables))
            # write_state=False: checkpoint 파일은 OpenAI 처럼 상대 경로로 아래에서 직접 쓴다
            saver.save(session, str(model_dir / "model.ckpt"), write_state=False)
    (model_dir / "checkpoint").write_text(
        'model_checkpoint_path: "model.ckpt"\nall_model_checkpoint_paths: "model.ckpt"\n', encoding="utf-8"
    )
    (model_dir / "hparams.json").write_text(json.dumps(hparams, indent=2), encoding="utf-8")
    _copy_tokenizer_files(model_dir)
    return model_dir


# ---------------------------------------------------------------------------
# Hugging Face safetensors 경로 (TensorFlow 불필요)
# ---------------------------------------------------------------------------

# 모델 상태 딕셔너리에 있어도 가중치가 아닌 것(어텐션 마스크 버퍼, wte 와 공유하는 lm_head)
_HF_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
_HF_IGNORED_KEYS = ("lm_head.weight",)


def load_gpt2_safetensors(model_name, models_dir):
    """Hugging Face 의 GPT-2 ``model.safetensors`` 를 (필요하면) 받아 state_dict 로 돌려준다.

    ``models_dir/model_name/`` 에 ``model.safetensors`` 와 ``config.json`` 을 둔다. config.json 은
    ``gpt2_config_from_hparams(json.load(...))`` 로 모델 설정을 만드는 데 쓸 수 있다.

    Args:
        model_name: "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl" 중 하나.
        models_dir: 상위 폴더.
    """
    if model_name not in GPT2_HF_MODEL_NAMES:
        raise ValueError(f"알 수 없는 모델 이름 {model_name!r} 입니다. 가능한 이름: {', '.join(GPT2_HF_MODEL_NAMES)}")
    from safetensors.torch import load_file

    model_dir = Path(models_dir) / model_name
    for file_name, validate in (("config.json", validate_json), ("model.safetensors", validate_safetensors)):
        download_file(
            f"{HF_BASE_URL}/{model_name}/resolve/main/{file_name}",
            model_dir / file_name,
            mirror_names=(f"{model_name}/{file_name}",),
            validate=validate,  # 손상된 파일은 원래 이름을 얻지 못하고, 이미 있는 손상된 파일은 믿지 않는다
        )
    path = model_dir / "model.safetensors"
    try:
        state_dict = load_file(str(path))
    except Exception as error:
        raise GPT2CheckpointError(
            f"{path} 를 safetensors 로 읽을 수 없습니다({type(error).__name__}: {error}). 아무것도 지우지 않았습니다. "
            "원본을 다시 받으려면 이 파일을 다른 곳으로 옮기거나 지운 뒤 다시 실행하세요."
        ) from error
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return GPT2Params(state_dict, hparams=_hparams_from_config(config))


def _hparams_from_config(config):
    """hparams.json 이나 Hugging Face config.json(vocab_size, n_positions)에서 있는 하이퍼파라미터만 꺼낸다."""
    aliases = {"n_vocab": "vocab_size", "n_ctx": "n_positions"}
    values = {key: config.get(key, config.get(aliases.get(key, key))) for key in HPARAM_KEYS}
    return {key: value for key, value in values.items() if value is not None}


def _hf_state_dict_to_params(state_dict):
    """Hugging Face 키(``h.0.attn.c_attn.weight`` 등)를 ``load_weights_into_gpt`` 의 중첩 딕셔너리로 바꾼다."""
    weights = {}
    for key, value in state_dict.items():
        key = key.removeprefix("transformer.")  # GPT2LMHeadModel 의 state_dict 는 앞에 transformer. 가 붙는다
        if key in _HF_IGNORED_KEYS or key.endswith(_HF_IGNORED_SUFFIXES):
            continue
        weights[key] = value

    used = set()

    def take(key):
        if key not in weights:
            raise KeyError(f"state_dict 에 {key!r} 가 없습니다. Hugging Face GPT-2 의 가중치인지 확인하세요.")
        used.add(key)
        return weights[key]

    def linear(scope):
        return {"w": take(f"{scope}.weight"), "b": take(f"{scope}.bias")}

    def norm(scope):
        return {"g": take(f"{scope}.weight"), "b": take(f"{scope}.bias")}

    n_layers = len({key.split(".")[1] for key in weights if key.startswith("h.")})
    params = {
        "wte": take("wte.weight"),
        "wpe": take("wpe.weight"),
        "blocks": [
            {
                "attn": {"c_attn": linear(f"h.{i}.attn.c_attn"), "c_proj": linear(f"h.{i}.attn.c_proj")},
                "mlp": {"c_fc": linear(f"h.{i}.mlp.c_fc"), "c_proj": linear(f"h.{i}.mlp.c_proj")},
                "ln_1": norm(f"h.{i}.ln_1"),
                "ln_2": norm(f"h.{i}.ln_2"),
            }
            for i in range(n_layers)
        ],
        "g": take("ln_f.weight"),
        "b": take("ln_f.bias"),
    }
    unexpected = sorted(set(weights) - used)
    if unexpected:
        raise KeyError(f"GPT-2 에 없는 키가 state_dict 에 있습니다: {', '.join(unexpected[:5])}")
    return params


def load_hf_weights_into_gpt(gpt, state_dict, settings=None):
    """Hugging Face GPT-2 의 state_dict 를 ``GPTModel`` 에 싣는다.

    ``model.safetensors`` 의 키(``h.0.attn.c_attn.weight``, [입력, 출력] 모양)와
    ``transformers`` 의 ``GPT2LMHeadModel.state_dict()`` 키(앞에 ``transformer.``)를 모두 받는다.
    어텐션 마스크 버퍼(``attn.bias``, ``attn.masked_bias``)와 ``lm_head.weight``(wte 와 공유)는 건너뛴다.
    ``settings``(config.json 내용)나 ``load_gpt2_safetensors`` 가 붙인 하이퍼파라미터가 있으면 헤드 수까지 확인한다.
    """
    hparams = _hparams_from_config(settings) if settings is not None else getattr(state_dict, "hparams", None)
    load_weights_into_gpt(gpt, _hf_state_dict_to_params(state_dict), hparams)


def _tf_name_to_hf_key(name):
    """``model/h0/attn/c_attn/w`` -> ``h.0.attn.c_attn.weight``, ``model/wte`` -> ``wte.weight``."""
    parts = name.split("/")[1:]
    if parts[0] in ("wte", "wpe"):
        return f"{parts[0]}.weight"
    scope = parts[:-1]
    if scope[0].startswith("h"):
        scope = ["h", scope[0][1:], *scope[1:]]
    return ".".join([*scope, {"w": "weight", "g": "weight", "b": "bias"}[parts[-1]]])


def write_synthetic_gpt2_safetensors(path, hparams=None, seed=123):
    """Hugging Face GPT-2 와 같은 키·모양의 작은 무작위 ``model.safetensors`` 와 옆에 ``config.json`` 을 쓴다.

    Args:
        path: 쓸 safetensors 파일 경로(예: ``gpt2/gpt2/model.safetensors``).
        hparams: n_vocab, n_ctx, n_embd, n_head, n_layer (기본은 ``write_synthetic_gpt2_checkpoint`` 와 같다).
        seed: 난수 시드.

    Returns:
        safetensors 파일 경로.
    """
    from safetensors.torch import save_file

    hparams = dict(SYNTHETIC_HPARAMS if hparams is None else hparams)
    _check_hparams(hparams)
    state_dict = {}
    for name, array in _synthetic_params(hparams, seed).items():
        state_dict[_tf_name_to_hf_key(name)] = torch.from_numpy(array[0] if name.endswith("/w") else array)
    path = Path(path)
    config = {
        "model_type": "gpt2",
        "vocab_size": hparams["n_vocab"],
        "n_positions": hparams["n_ctx"],
        "n_embd": hparams["n_embd"],
        "n_head": hparams["n_head"],
        "n_layer": hparams["n_layer"],
    }
    config_text = json.dumps(config, indent=2)
    _refuse_to_overwrite_other_checkpoint(path.parent / "config.json", config_text, ("config.json", path.name))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state_dict, str(path))
    (path.parent / "config.json").write_text(config_text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# 명령줄
# ---------------------------------------------------------------------------


def main(argv=None):
    parser = ArgumentParser(description="OpenAI GPT-2 체크포인트를 내려받아 읽어 본다.")
    parser.add_argument("--model-size", default="124M", choices=GPT2_SIZES, help="모델 크기 (기본: 124M)")
    parser.add_argument("--models-dir", default="gpt2", help="체크포인트를 둘 폴더 (기본: gpt2)")
    parser.add_argument(
        "--quick",
        action="store_true",
        default=QUICK,
        help="내려받는 대신 작은 무작위 체크포인트를 만들어 읽는다 (LLMFS_QUICK=1 과 같음)",
    )
    args = parser.parse_args(argv)

    if args.quick:
        write_synthetic_gpt2_checkpoint(args.models_dir, args.model_size)
        print(
            f"빠른 모드: 진짜 가중치 대신 작은 무작위 체크포인트를 {args.models_dir}/{args.model_size} 에 만들었습니다."
        )
    settings, params = download_and_load_gpt2(args.model_size, args.models_dir)
    print("설정:", settings)
    print("파라미터 딕셔너리 키:", list(params))
    print("블록 수:", len(params["blocks"]), "/ 토큰 임베딩 모양:", tuple(params["wte"].shape))


if __name__ == "__main__":
    main()
