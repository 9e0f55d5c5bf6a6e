"""2장 보너스: 같은 GPT-2 BPE 를 구현한 토크나이저 다섯(tiktoken, OpenAI 원래 인코더의 알고리즘, 밑바닥부터 만든 BPE,
Hugging Face 둘)을 만들고 잰다.

``get_pairs``, ``GPT2Encoder``, ``load_gpt2_encoder`` 는 OpenAI 가 GPT-2 와 함께 공개한 ``encoder.py`` 의 알고리즘
(바이트 -> 문자 짝, 이웃 쌍, 캐시를 둔 병합 루프, encode/decode)을 우리 글로 다시 쓴 것이다. compare-bpe-tiktoken.ipynb 가
같은 코드를 셀에서 정의하며 설명한다.
"""

import itertools
import json
import statistics
import time
from pathlib import Path

import regex
import tiktoken

from llm_from_scratch.bpe import GPT2_SPLIT_PATTERN, BPETokenizerSimple, bytes_to_unicode

__all__ = ["GPT2Encoder", "build_tokenizers", "get_pairs", "load_gpt2_encoder", "load_hf_gpt2_tokenizer", "median_ms"]


def get_pairs(word):
    """단어(기호들의 튜플)에서 이웃한 두 기호의 쌍을 모두 모은 집합.

    예: ``("l", "o", "w", "e", "r")`` -> ``{("l", "o"), ("o", "w"), ("w", "e"), ("e", "r")}``.
    """
    return set(itertools.pairwise(word))


class GPT2Encoder:
    """OpenAI 의 GPT-2 ``encoder.py`` 와 같은 알고리즘의 바이트 수준 BPE 인코더.

    Args:
        encoder: 토큰 문자열 -> ID (``encoder.json``).
        bpe_merges: 병합 규칙 ``(왼쪽, 오른쪽)`` 목록. 앞에 있을수록 먼저 배운(순위가 높은) 규칙이다(``vocab.bpe``).
        errors: 디코딩한 바이트가 올바른 UTF-8 이 아닐 때 ``bytes.decode`` 에 줄 방법(기본: 대체 문자 ``\ufffd``).
    """

    def __init__(self, encoder, bpe_merges, errors="replace"):
        self.encoder = encoder
        self.decoder = {i: token for token, i in encoder.items()}
        self.errors = errors
        self.byte_encoder = bytes_to_unicode()  # 바이트 256개 -> 눈에 보이는 문자 256개
        self.byte_decoder = {char: b for b, char in self.byte_encoder.items()}
        self.bpe_ranks = {pair: rank for rank, pair in enumerate(bpe_merges)}
        self.cache = {}  # 조각(문자열) -> 병합을 마친 기호 튜플
        self.pat = regex.compile(GPT2_SPLIT_PATTERN)
        self.special_tokens = {token: i for token, i in encoder.items() if token.startswith("<|") and token.endswith("|>")}

    def bpe(self, token):
        """조각 하나(바이트를 문자로 적은 문자열)를 병합 순위대로 합친 기호들의 튜플. 결과는 캐시에 둔다."""
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        pairs = get_pairs(word)
        while pairs:
            # 지금 이웃한 쌍 가운데 가장 먼저 배운 규칙. 규칙에 없는 쌍밖에 없으면 끝난다
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    new_word.append(first + second)  # 왼쪽부터 겹치지 않게 합친다
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            pairs = get_pairs(word)
        self.cache[token] = word
        return word

    def encode(self, text, allowed_special=frozenset()):
        """텍스트 -> 토큰 ID 목록.

        Args:
            text: 인코딩할 문자열.
            allowed_special: 한 토큰으로 인코딩할 특수 토큰들(예: ``{"<|endoftext|>"}``). 여기에 없는 특수 토큰 문자열은
                OpenAI 의 원래 인코더처럼 보통 텍스트로 인코딩한다(tiktoken 의 ``disallowed_special=()`` 과 같다).
        """
        if isinstance(allowed_special, str):
            raise TypeError(
                f"allowed_special 은 문자열 하나가 아니라 집합이어야 합니다. {{{allowed_special!r}}} 처럼 주세요."
            )
        unknown = sorted(set(allowed_special) - set(self.special_tokens))
        if unknown:
            raise ValueError(
                f"allowed_special 의 {unknown} 은(는) 이 어휘 사전의 특수 토큰이 아닙니다. "
                f"다음 가운데서 고르세요: {sorted(self.special_tokens)}."
            )
        if allowed_special:
            # 특수 토큰을 괄호 그룹으로 나누면 결과 목록의 홀수 번째가 특수 토큰이다
            pattern = "(" + "|".join(regex.escape(s) for s in sorted(allowed_special, key=len, reverse=True)) + ")"
            parts = regex.split(pattern, text)
        else:
            parts = [text]
        ids = []
        for k, part in enumerate(parts):
            if k % 2 == 1:
                ids.append(self.encoder[part])
                continue
            for piece in self.pat.findall(part):
                symbols = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
                ids.extend(self.encoder[symbol] for symbol in self.bpe(symbols))
        return ids

    def decode(self, ids):
        """토큰 ID 목록 -> 텍스트. 토큰의 문자를 바이트로 되돌린 뒤 UTF-8 로 읽는다."""
        try:
            text = "".join(self.decoder[i] for i in ids)
        except (KeyError, TypeError):
            bad = next(i for i in ids if not isinstance(i, int) or i not in self.decoder)
            raise ValueError(
                f"토큰 ID {bad!r} 는 어휘 사전(0 이상 {len(self.decoder) - 1} 이하의 정수)에 없습니다. "
                "이 인코더로 만든 ID 인지 확인하세요."
            ) from None
        return bytes(self.byte_decoder[char] for char in text).decode("utf-8", errors=self.errors)


def load_gpt2_encoder(encoder_path, vocab_bpe_path):
    """``encoder.json`` 과 ``vocab.bpe`` 를 읽어 ``GPT2Encoder`` 를 만든다(OpenAI ``encoder.py`` 의 ``get_encoder`` 에 해당).

    ``vocab.bpe`` 의 첫 줄은 ``#version: 0.2`` 이고, 그다음 줄마다 ``왼쪽 오른쪽`` 병합 규칙이 순위대로 하나씩 있다.
    """
    try:
        encoder = json.loads(Path(encoder_path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{encoder_path} 를 JSON 으로 읽지 못했습니다({type(error).__name__}). 잘렸거나 다른 파일일 수 있습니다. "
            "download_gpt2_tokenizer_files() 로 원본을 받으세요."
        ) from None
    if not isinstance(encoder, dict) or not all(isinstance(i, int) for i in encoder.values()):
        raise ValueError(f"{encoder_path} 는 '토큰: ID' 딕셔너리인 GPT-2 encoder.json 이 아닙니다. 원본 파일을 주세요.")
    lines = Path(vocab_bpe_path).read_text(encoding="utf-8").split("\n")
    if not lines[0].startswith("#version"):
        raise ValueError(f"{vocab_bpe_path} 는 '#version' 으로 시작하는 GPT-2 vocab.bpe 가 아닙니다. 원본 파일을 주세요.")
    bpe_merges = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        pair = tuple(line.split(" "))
        if len(pair) != 2 or "".join(pair) not in encoder:
            raise ValueError(
                f"{vocab_bpe_path} 의 {number}번째 줄 {line!r} 은 encoder.json 에 있는 토큰을 만드는 '왼쪽 오른쪽' 규칙이 "
                "아닙니다. 두 파일이 같은 토크나이저의 원본인지 확인하세요."
            )
        bpe_merges.append(pair)
    return GPT2Encoder(encoder, bpe_merges)


def load_hf_gpt2_tokenizer(encoder_path, vocab_bpe_path, fast=True):
    """Hugging Face ``GPT2Tokenizer``/``GPT2TokenizerFast`` 를 허브 없이 로컬 파일 두 개로 만든다.

    transformers 5 는 파일을 ``vocab=``, ``merges=`` 로 받는다. 4 에서 쓰던 ``vocab_file=``, ``merges_file=`` 을 5 에 주면
    오류 없이 무시되어 ``<|endoftext|>`` 하나뿐인 빈 토크나이저가 생기므로, 어휘 사전 크기를 확인한다.
    """
    import transformers
    from transformers import GPT2Tokenizer, GPT2TokenizerFast

    cls = GPT2TokenizerFast if fast else GPT2Tokenizer
    if int(transformers.__version__.split(".")[0]) >= 5:
        tokenizer = cls(vocab=str(encoder_path), merges=str(vocab_bpe_path))
    else:
        tokenizer = cls(vocab_file=str(encoder_path), merges_file=str(vocab_bpe_path))
    if len(tokenizer) != 50257:
        raise RuntimeError(
            f"{cls.__name__} 의 어휘 사전이 {len(tokenizer):,}개입니다(50,257개여야 합니다). "
            f"transformers {transformers.__version__} 에 맞는 키워드로 파일을 넘겼는지 확인하세요."
        )
    return tokenizer


def build_tokenizers(encoder_path, vocab_bpe_path):
    """이름 -> ``encode(text) -> list[int]`` 함수. 다섯 모두 ``<|endoftext|>`` 를 특수 토큰으로 인코딩한다."""
    tik = tiktoken.get_encoding("gpt2")
    openai_style = load_gpt2_encoder(encoder_path, vocab_bpe_path)
    ours = BPETokenizerSimple().load_vocab_and_merges_from_openai(encoder_path, vocab_bpe_path)
    hf_slow = load_hf_gpt2_tokenizer(encoder_path, vocab_bpe_path, fast=False)
    hf_fast = load_hf_gpt2_tokenizer(encoder_path, vocab_bpe_path, fast=True)
    allowed = {"<|endoftext|>"}
    return {
        "tiktoken": lambda text: tik.encode(text, allowed_special=allowed),
        "GPT2Encoder (OpenAI)": lambda text: openai_style.encode(text, allowed_special=allowed),
        "BPETokenizerSimple": lambda text: ours.encode(text, allowed_special=allowed),
        "HF GPT2Tokenizer": lambda text: hf_slow.encode(text),
        "HF GPT2TokenizerFast": lambda text: hf_fast.encode(text),
    }


def median_ms(function, text, repeats=5, warmup=1):
    """``function(text)`` 한 번에 걸린 시간의 중앙값(밀리초). 처음 ``warmup`` 번은 재지 않는다."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats 는 1 이상, warmup 은 0 이상이어야 합니다(repeats={repeats}, warmup={warmup}).")
    for _ in range(warmup):
        function(text)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(text)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000
