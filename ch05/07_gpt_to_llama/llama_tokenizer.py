"""Llama 토크나이저: Llama 2 는 SentencePiece, Llama 3 은 tiktoken 기반 BPE 와 특수 토큰, 그리고 채팅 형식."""

import base64
import binascii
from pathlib import Path

import tiktoken

__all__ = [
    "LLAMA3_PATTERN",
    "LLAMA3_SPECIAL_TOKENS",
    "ChatFormat",
    "Llama2ChatFormat",
    "Llama2Tokenizer",
    "Llama3Tokenizer",
]


def _existing_file(path, what):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} 파일 {path} 가 없습니다. download_llama_files 로 받거나 경로를 확인하세요."
        )
    return path


def load_tiktoken_bpe(path):
    """``토큰(base64) 순위`` 줄들을 읽어 ``{토큰 바이트: 순위}`` 를 돌려준다(tiktoken 의 ``load_tiktoken_bpe`` 와 같은 형식).

    파일은 직접 읽는다(tiktoken 0.11 까지는 로컬 파일을 읽으려면 blobfile 패키지가 더 있어야 했다).
    잘린 파일(마지막 줄이 반쪽)이나 다른 파일(HTML 오류 페이지, SentencePiece 모델 등)은 어느 파일인지 밝힌 ValueError.
    """
    try:
        ranks = {}
        for line in Path(path).read_bytes().splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token, validate=True)] = int(rank)
    except (ValueError, binascii.Error, OSError) as error:  # 칸 수, base64, 정수 변환, 읽기 오류
        raise ValueError(
            f"{Path(path).resolve()} 은(는) Llama 3 토크나이저 파일(한 줄에 base64 토큰과 순위)로 읽히지 않습니다"
            f"({type(error).__name__}). 잘렸거나 다른 파일일 수 있습니다. 지우지 않았습니다. 다른 곳으로 옮긴 뒤 "
            "download_llama_files 로 original/tokenizer.model 을 다시 받으세요."
        ) from None
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError(
            f"{Path(path).resolve()} 의 토큰 순위가 0부터 빈틈없이 이어지지 않습니다(토큰 {len(ranks):,}개). "
            "잘렸거나 고쳐진 파일일 수 있습니다. download_llama_files 로 다시 받으세요."
        )
    return ranks


class Llama2Tokenizer:
    """Llama 2 의 SentencePiece 토크나이저(``tokenizer.model``). 어휘 32,000개, BOS=1, EOS=2."""

    def __init__(self, model_path):
        import sentencepiece as spm

        path = _existing_file(model_path, "SentencePiece 모델")
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(path))
        except (RuntimeError, OSError) as error:
            raise ValueError(
                f"{path.resolve()} 은(는) SentencePiece 모델로 읽히지 않습니다({type(error).__name__}). 잘렸거나 다른 "
                "파일(HTML 오류 페이지 등)일 수 있습니다. 지우지 않았습니다. 다른 곳으로 옮긴 뒤 download_llama_files 로 "
                "tokenizer.model 을 다시 받으세요."
            ) from None
        self.bos_id = self.sp.bos_id()
        self.eos_id = self.sp.eos_id()
        self.n_vocab = self.sp.get_piece_size()

    def encode(self, text, bos=True, eos=False):
        ids = self.sp.encode(text)
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids):
        return self.sp.decode(list(ids))


class Llama2ChatFormat:
    """Llama 2 채팅 모델(``Llama-2-7b-chat``)의 대화 형식.

    사용자 메시지마다 ``<s>[INST] {내용} [/INST]`` 로 감싸고, 모델의 대답 뒤에는 ``</s>`` 를 붙인다. 시스템 메시지는
    첫 사용자 메시지 앞에 ``<<SYS>>\n{시스템}\n<</SYS>>\n\n`` 으로 넣는다. 마지막은 사용자 메시지여야 한다
    (모델이 ``[/INST]`` 뒤에 대답을 이어 쓴다).
    """

    B_INST, E_INST = "[INST]", "[/INST]"
    B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode_dialog(self, messages):
        """``[{"role": "system"|"user"|"assistant", "content": ...}, …]`` 를 모델 입력 토큰으로."""
        messages = [dict(message) for message in messages]
        if messages and messages[0].get("role") == "system":
            system = messages.pop(0)["content"]
            if messages:
                messages[0]["content"] = self.B_SYS + system + self.E_SYS + messages[0]["content"]
        roles = [message.get("role") for message in messages]
        expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(roles))]
        if not roles or roles != expected or roles[-1] != "user":
            raise ValueError(
                f"Llama 2 채팅 형식의 역할 순서는 (system), user, assistant, user, … 이고 user 로 끝나야 합니다"
                f"(받은 순서: {roles}). 메시지 목록을 고치세요."
            )
        ids = []
        for question, answer in zip(messages[::2], messages[1::2]):
            text = f"{self.B_INST} {question['content'].strip()} {self.E_INST} {answer['content'].strip()} "
            ids += self.tokenizer.encode(text, bos=True, eos=True)
        return ids + self.tokenizer.encode(f"{self.B_INST} {messages[-1]['content'].strip()} {self.E_INST}", bos=True)

    def encode(self, user_message, system_message=None):
        """사용자 메시지 하나(와 선택적인 시스템 메시지)로 모델 입력을 만든다."""
        messages = [{"role": "system", "content": system_message}] if system_message else []
        return self.encode_dialog(messages + [{"role": "user", "content": user_message}])

    def decode(self, ids):
        """생성된 토큰에서 첫 ``</s>`` 앞까지를 텍스트로."""
        ids = list(ids)
        if self.tokenizer.eos_id in ids:
            ids = ids[: ids.index(self.tokenizer.eos_id)]
        return self.tokenizer.decode(ids)


# Llama 3 이 텍스트를 조각으로 나누는 정규식: GPT-2 의 것과 비슷하지만 숫자를 세 자리까지만 묶는다
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# 이름이 있는 특수 토큰. 128,000 부터 256개가 특수 토큰 자리이고, 나머지 251개는 <|reserved_special_token_0|> … _250
LLAMA3_SPECIAL_TOKENS = {
    "<|begin_of_text|>": 128_000,
    "<|end_of_text|>": 128_001,
    "<|start_header_id|>": 128_006,
    "<|end_header_id|>": 128_007,
    "<|eot_id|>": 128_009,
}


class Llama3Tokenizer:
    """Llama 3 의 tiktoken 기반 BPE 토크나이저(``original/tokenizer.model``: base64 토큰과 순위가 한 줄씩)."""

    def __init__(self, model_path):
        path = _existing_file(model_path, "Llama 3 토크나이저")
        mergeable_ranks = load_tiktoken_bpe(str(path))
        self.special = dict(LLAMA3_SPECIAL_TOKENS)
        # 128,000–128,255 의 남은 자리 251개를 차례로 <|reserved_special_token_0|> … _250 이 채운다(Meta 의 배치)
        free = [token_id for token_id in range(128_000, 128_256) if token_id not in self.special.values()]
        self.special.update({f"<|reserved_special_token_{i}|>": token_id for i, token_id in enumerate(free)})
        self.model = tiktoken.Encoding(
            name=path.name, pat_str=LLAMA3_PATTERN, mergeable_ranks=mergeable_ranks, special_tokens=self.special
        )
        self.bos_id = self.special["<|begin_of_text|>"]
        self.eos_id = self.special["<|end_of_text|>"]
        self.eot_id = self.special["<|eot_id|>"]

    def encode(self, text, bos=False, eos=False, allowed_special=frozenset()):
        """텍스트를 토큰 ID 로. 특수 토큰 문자열은 ``allowed_special`` 에 있을 때만 특수 토큰이 된다."""
        ids = self.model.encode(text, allowed_special=allowed_special, disallowed_special=())
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids):
        return self.model.decode(list(ids))


class ChatFormat:
    """Llama 3 지시(Instruct) 모델의 대화 형식.

    ``<|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\n{내용}<|eot_id|>`` 처럼 메시지마다
    역할 머리글과 ``<|eot_id|>`` 를 붙이고, 끝에 어시스턴트 머리글을 두어 모델이 대답을 이어 쓰게 한다.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode_header(self, role):
        special = self.tokenizer.special
        return (
            [special["<|start_header_id|>"]]
            + self.tokenizer.encode(role)
            + [special["<|end_header_id|>"]]
            + self.tokenizer.encode("\n\n")
        )

    def encode_message(self, role, content):
        return self.encode_header(role) + self.tokenizer.encode(content.strip()) + [self.tokenizer.eot_id]

    def encode_dialog(self, messages):
        """``[{"role": "system"|"user"|"assistant", "content": ...}, …]`` 를 모델 입력 토큰으로."""
        ids = [self.tokenizer.bos_id]
        for message in messages:
            if message.get("role") not in ("system", "user", "assistant"):
                raise ValueError(f"역할은 system, user, assistant 중 하나여야 합니다(받은 값: {message.get('role')!r}).")
            ids += self.encode_message(message["role"], message["content"])
        return ids + self.encode_header("assistant")

    def encode(self, user_message, system_message=None):
        """사용자 메시지 하나(와 선택적인 시스템 메시지)로 모델 입력을 만든다."""
        messages = [{"role": "system", "content": system_message}] if system_message else []
        return self.encode_dialog(messages + [{"role": "user", "content": user_message}])

    def decode(self, ids):
        """생성된 토큰에서 첫 ``<|eot_id|>`` 앞까지를 텍스트로."""
        ids = list(ids)
        if self.tokenizer.eot_id in ids:
            ids = ids[: ids.index(self.tokenizer.eot_id)]
        return self.tokenizer.decode(ids)
