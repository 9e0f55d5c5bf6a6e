"""채팅 UI 세 개(5장 두 개, 6장, 7장)가 함께 쓰는 도구.

- 체크포인트 찾기와 그 ``state_dict`` 에 맞는 ``GPTModel`` 설정 만들기
- 체크포인트가 없을 때 빠른 모드에서 쓰는 작은 무작위 모델
- 5장의 ``generate`` 를 한 토큰씩 불러 텍스트 조각을 내놓는 스트리밍 생성기
- chainlit 메시지에 그 조각들을 한 토큰씩 흘려보내는 코루틴(chainlit 을 직접 가져오지 않는다)

6장·7장 앱은 이 파일을 경로로 읽어 쓴다(복사하지 않는다).
"""

import asyncio
import os
from pathlib import Path

import torch

from llm_from_scratch.ch04 import GPTModel
from llm_from_scratch.ch05 import generate

__all__ = [
    "CHECKPOINT_DIR_ENV",
    "TINY_CONFIG",
    "checkpoint_dirs",
    "config_from_state_dict",
    "find_checkpoint",
    "load_state_dict",
    "quick_notice",
    "send_streamed",
    "stream_text",
    "tiny_random_model",
]

# 빠른 모드에서 체크포인트 대신 쓰는 작은 모델(어휘는 GPT-2 그대로라서 토크나이저를 바꾸지 않아도 된다)
TINY_CONFIG = {
    "vocab_size": 50257,
    "context_length": 64,
    "emb_dim": 32,
    "n_heads": 2,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": False,
}

# 헤드 수는 가중치 모양에서 알 수 없으므로, 이 저장소의 스크립트가 만드는 임베딩 차원별 헤드 수를 쓴다
# (GPT-2 네 크기, 5장 gpt_train.py 의 빠른 설정 32, 합성 GPT-2 체크포인트 64)
HEADS_BY_EMB_DIM = {32: 2, 64: 4, 768: 12, 1024: 16, 1280: 20, 1600: 25}


# 이 환경 변수가 폴더를 가리키면 체크포인트를 그 폴더에서만 찾는다(다른 곳에 저장한 모델을 쓸 때, 테스트할 때)
CHECKPOINT_DIR_ENV = "LLMFS_CHAT_CHECKPOINT_DIR"


def checkpoint_dirs(*default_dirs):
    """체크포인트를 찾을 폴더들: ``LLMFS_CHAT_CHECKPOINT_DIR`` 가 있으면 그 폴더만, 없으면 ``default_dirs``."""
    folder = os.environ.get(CHECKPOINT_DIR_ENV, "").strip()
    return (Path(folder),) if folder else tuple(Path(d) for d in default_dirs)


def find_checkpoint(file_name, folders):
    """``folders`` 를 차례로 보며 ``file_name`` 이 처음 있는 경로를 돌려준다(없으면 None)."""
    for folder in folders:
        path = Path(folder) / file_name
        if path.is_file():
            return path
    return None


def load_state_dict(path):
    """``torch.save`` 로 저장한 가중치를 읽는다. 모델+옵티마이저 묶음이면 모델 부분만 꺼낸다.

    잘린 파일이나 다른 파일(HTML 오류 페이지 등)이면 어느 파일인지 밝힌 한국어 ValueError 를 낸다
    (torch 의 오류 문구에는 안전하지 않은 ``weights_only=False`` 권유가 들어 있어 그대로 보이지 않는다).
    """
    path = Path(path)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (잘린 zip, pickle, HTML 등 torch 의 오류 종류가 여러 가지다)
        raise ValueError(
            f"{path.resolve()} 은(는) torch.save 로 저장한 가중치 파일로 읽히지 않습니다({type(error).__name__}). "
            "저장하다 끊겼거나(잘린 파일) 다른 파일(HTML 페이지 등)일 수 있습니다. 이 파일은 지우지 않았습니다. "
            "훈련 스크립트로 다시 만들거나 온전한 파일로 바꾸세요."
        ) from None
    if not isinstance(state_dict, dict):
        raise ValueError(  # noqa: TRY004 (앱은 ValueError 하나로 안내문을 만든다)
            f"{path.resolve()} 에 든 것이 state dict(딕셔너리)가 아닙니다({type(state_dict).__name__})."
        )
    return state_dict.get("model_state_dict", state_dict)


def config_from_state_dict(state_dict, drop_rate=0.0):
    """``GPTModel`` 의 ``state_dict`` 에서 설정(책의 키)을 읽어 낸다.

    어휘 크기·문맥 길이·임베딩 차원은 임베딩 모양에서, 블록 수는 키에서, ``qkv_bias`` 는 편향 키가 있는지로 안다.
    """
    if "tok_emb.weight" not in state_dict or "pos_emb.weight" not in state_dict:
        raise ValueError("GPTModel 의 가중치가 아닙니다(tok_emb.weight, pos_emb.weight 키가 없습니다).")
    vocab_size, emb_dim = state_dict["tok_emb.weight"].shape
    context_length = state_dict["pos_emb.weight"].shape[0]
    n_layers = len({key.split(".")[1] for key in state_dict if key.startswith("trf_blocks.")})
    if emb_dim not in HEADS_BY_EMB_DIM:
        raise ValueError(
            f"임베딩 차원 {emb_dim}의 헤드 수를 알 수 없습니다. 알려진 차원: {sorted(HEADS_BY_EMB_DIM)}."
        )
    return {
        "vocab_size": int(vocab_size),
        "context_length": int(context_length),
        "emb_dim": int(emb_dim),
        "n_heads": HEADS_BY_EMB_DIM[emb_dim],
        "n_layers": n_layers,
        "drop_rate": drop_rate,
        "qkv_bias": "trf_blocks.0.att.W_query.bias" in state_dict,
    }


def tiny_random_model(seed=123):
    """빠른 모드용 작은 무작위 ``GPTModel`` (평가 모드)."""
    torch.manual_seed(seed)
    return GPTModel(TINY_CONFIG).eval()


def quick_notice(missing, script):
    """체크포인트 없이 빠른 모드로 시작했다는 한국어 안내문."""
    return (
        f"빠른 모드(LLMFS_QUICK=1): `{missing}`이(가) 없어 작은 무작위 모델로 시작했습니다. "
        f"답은 의미 없는 토큰입니다. 진짜 모델은 `{script}`로 만듭니다."
    )


def stream_text(model, tokenizer, token_ids, max_new_tokens, temperature=0.0, top_k=None, eos_id=None):
    """5장의 ``generate`` 를 한 토큰씩 불러, 새 토큰이 나올 때마다 새로 생긴 텍스트 조각을 내놓는다.

    여러 토큰에 걸친 글자(한글 등)는 바이트가 다 모일 때까지 기다렸다가 내놓는다.

    Args:
        token_ids: 프롬프트 토큰 ID 텐서, 모양 (1, 토큰 수).
        eos_id: 이 토큰이 나오면 멈춘다.
    """
    context_size = model.pos_emb.num_embeddings
    idx, new_ids, emitted = token_ids, [], ""
    for _ in range(max_new_tokens):
        next_idx = generate(model, idx, 1, context_size, temperature=temperature, top_k=top_k, eos_id=eos_id)
        if next_idx.shape[1] == idx.shape[1]:
            break  # eos_id 가 나왔다
        idx = next_idx
        new_ids.append(int(idx[0, -1]))
        text = tokenizer.decode(new_ids)
        if text.endswith("\ufffd") or len(text) == len(emitted):
            continue  # 글자가 아직 완성되지 않았다
        yield text[len(emitted):]
        emitted = text


async def send_streamed(reply, pieces, empty_text="(모델이 빈 답을 냈습니다.)"):
    """텍스트 조각을 chainlit 메시지 ``reply`` 에 하나씩 흘려보낸 뒤 메시지를 마무리한다.

    생성은 CPU를 오래 쓰므로 조각 하나를 만들 때마다 작업 스레드에서 돌려 서버가 멈추지 않게 한다.
    """
    pieces = iter(pieces)
    while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
        await reply.stream_token(piece)
    if not reply.content:
        reply.content = empty_text
    await reply.send()
    return reply.content
