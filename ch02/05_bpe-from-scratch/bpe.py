"""2장 보너스: 바이트 수준 바이트 페어 인코딩(BPE) 토크나이저를 밑바닥부터.

GPT-2 와 같은 방식이다.

1. 정규식(``GPT2_SPLIT_PATTERN``)으로 텍스트를 단어 조각으로 먼저 나눈다(사전 토큰화). 병합은 조각 안에서만 한다.
2. 조각을 UTF-8 바이트로 바꾸고, 바이트 256개를 눈에 보이는 문자 256개에 짝지어 문자열로 다룬다
   (공백 ``' '`` 은 ``'Ġ'``, 줄바꿈 ``'\\n'`` 은 ``'Ċ'`` 이 된다). 그래서 어떤 텍스트도 모르는 토큰 없이 인코딩된다.
3. 훈련은 가장 자주 붙어 나오는 토큰 쌍을 새 토큰으로 합치기를 어휘 사전이 ``vocab_size`` 가 될 때까지 되풀이한다.
4. 인코딩은 조각마다 "병합 순위가 가장 낮은(먼저 배운) 쌍부터 합친다"를 더 합칠 쌍이 없을 때까지 되풀이한다.
   같은 조각은 결과를 캐시에 두고 다시 쓴다.

OpenAI 의 ``encoder.json`` 과 ``vocab.bpe`` 를 읽으면 tiktoken 의 ``gpt2`` 인코딩과 같은 토큰 ID 를 낸다.
"""

import itertools
import json
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import regex

from llm_from_scratch.download import TIKTOKEN_GPT2_FILES, download_file

__all__ = [
    "GPT2_FILE_URLS",
    "GPT2_SPLIT_PATTERN",
    "BPETokenizerSimple",
    "bytes_to_unicode",
    "download_gpt2_tokenizer_files",
]

# GPT-2 의 사전 토큰화 규칙: 영어 축약형('s, 't, ...), 앞에 공백 하나가 붙을 수 있는 글자 묶음·숫자 묶음·기호 묶음,
# 그리고 공백 묶음(다음 단어 앞의 공백 하나는 남겨 두어 그 단어에 붙게 한다)
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

GPT2_FILE_URLS = {
    "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
    "vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
}

DEFAULT_SPECIAL = "<|endoftext|>"


def bytes_to_unicode():
    """바이트 값(0~255) -> 눈에 보이는 유니코드 문자 하나. GPT-2 의 ``encoder.json`` 이 쓰는 짝과 같다.

    출력할 수 있는 라틴-1 문자(``!``~``~``, ``¡``~``¬``, ``®``~``ÿ``)는 그대로 두고, 나머지 바이트
    (공백, 제어 문자 등 68개)에는 차례로 U+0100 부터의 문자를 준다. 그래서 공백(32)은 ``'Ġ'``(U+0120)이 된다.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {c: b for b, c in BYTE_ENCODER.items()}


def download_gpt2_tokenizer_files(folder="gpt2"):
    """OpenAI 의 GPT-2 토크나이저 파일 ``encoder.json``, ``vocab.bpe`` 를 ``folder`` 에 받아 두 경로를 돌려준다.

    저장소의 ``data/gpt2`` 사본이 있으면 인터넷 대신 그것을 복사한다(크기·해시를 확인한다).
    """
    paths = []
    for name, url in GPT2_FILE_URLS.items():
        info = TIKTOKEN_GPT2_FILES[f"gpt2/{name}"]
        paths.append(
            download_file(
                url,
                Path(folder) / name,
                expected_size=info["size"],
                sha256=info["sha256"],
                mirror_names=[f"gpt2/{name}"],
                show_progress=False,
            )
        )
    return tuple(paths)


def _check_special_tokens(special_tokens, what):
    if isinstance(special_tokens, str):
        raise TypeError(f"{what} 는 문자열 하나가 아니라 집합이어야 합니다(예: {{{special_tokens!r}}}).")
    for token in special_tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"{what} 의 특수 토큰은 빈 문자열이 아닌 문자열이어야 합니다(받은 값: {token!r}).")


class BPETokenizerSimple:
    """바이트 수준 BPE 토크나이저. ``train`` 으로 배우거나 ``load_*`` 로 읽은 뒤 ``encode``/``decode`` 한다.

    Attributes:
        vocab: 토큰 ID -> 토큰 문자열(바이트를 ``bytes_to_unicode`` 문자로 적은 것, 예: ``'Ġthe'``).
        inverse_vocab: 토큰 문자열 -> 토큰 ID.
        bpe_merges: ``(왼쪽 ID, 오른쪽 ID) -> 합친 토큰의 ID``. 배운 순서(= 병합 순위)대로 들어 있다.
        special_tokens: 특수 토큰 문자열 -> ID(예: ``{'<|endoftext|>': 50256}``).
        pre_tokenizer: GPT-2 정규식보다 먼저 텍스트를 나누는 함수(기본: 없음). 문자열을 받아 이어 붙이면 그 문자열이
            되는 조각 목록을 돌려준다(예: 한국어 형태소 경계에서 나누기). 정규식은 그 조각 안에서 다시 적용되므로
            병합이 조각 경계를 넘지 않는다. 함수는 저장 파일에 들어가지 않으니 읽을 때 같은 함수를 다시 준다.
    """

    def __init__(self, pre_tokenizer=None):
        if pre_tokenizer is not None and not callable(pre_tokenizer):
            raise TypeError(
                f"pre_tokenizer 는 문자열을 받아 조각 목록을 돌려주는 함수여야 합니다(받은 것: {type(pre_tokenizer).__name__})."
            )
        self.pre_tokenizer = pre_tokenizer
        self.vocab = {}
        self.inverse_vocab = {}
        self.bpe_merges = {}
        self.special_tokens = {}
        self._ranks = {}  # (왼쪽 토큰 문자열, 오른쪽 토큰 문자열) -> 순위(작을수록 먼저 합친다)
        self._cache = {}
        self._split = regex.compile(GPT2_SPLIT_PATTERN)

    # ------------------------------------------------------------------ 훈련
    def train(self, text, vocab_size, allowed_special=frozenset({DEFAULT_SPECIAL})):
        """``text`` 에서 BPE 병합을 배워 어휘 사전을 ``vocab_size`` 개로 만든다.

        어휘 사전은 바이트 256개, 배운 병합, 특수 토큰(맨 뒤) 순서다. ``text`` 안의 특수 토큰은 병합에 쓰지 않는다.

        Args:
            text: 훈련 텍스트.
            vocab_size: 만들 어휘 사전의 크기(바이트 256개와 특수 토큰을 포함).
            allowed_special: 어휘 사전 맨 뒤에 넣을 특수 토큰들.
        """
        if not isinstance(text, str) or not text:
            raise ValueError("훈련 텍스트 text 는 비어 있지 않은 문자열이어야 합니다.")
        _check_special_tokens(allowed_special, "allowed_special")
        specials = sorted(allowed_special)
        if not isinstance(vocab_size, int) or vocab_size < 256 + len(specials):
            raise ValueError(
                f"vocab_size({vocab_size!r})는 바이트 256개와 특수 토큰 {len(specials)}개를 담을 수 있게 "
                f"{256 + len(specials)} 이상의 정수여야 합니다."
            )
        self.__init__(self.pre_tokenizer)
        self.vocab = {i: BYTE_ENCODER[i] for i in range(256)}
        self.inverse_vocab = {token: i for i, token in self.vocab.items()}

        # 단어 조각마다 (ID 목록, 나온 횟수). 같은 조각은 한 번만 두고 횟수로 센다
        counts = Counter(self._pieces(text, specials, keep_specials=False))
        words = [[b for b in piece.encode("utf-8")] for piece in counts]
        freqs = list(counts.values())

        # 쌍 -> 전체 빈도, 쌍 -> 그 쌍이 들어 있는 단어 번호들
        pair_counts = Counter()
        where = defaultdict(set)
        for w, (ids, freq) in enumerate(zip(words, freqs)):
            for pair in itertools.pairwise(ids):
                pair_counts[pair] += freq
                where[pair].add(w)

        num_merges = vocab_size - 256 - len(specials)
        for _ in range(num_merges):
            if not pair_counts:
                warnings.warn(
                    f"텍스트에 합칠 쌍이 더 없어 어휘 사전이 {len(self.vocab) + len(specials)}개에서 멈췄습니다"
                    f"(요청: {vocab_size}). 더 긴 텍스트로 훈련하세요.",
                    stacklevel=2,
                )
                break
            # 가장 흔한 쌍. 횟수가 같으면 ID가 작은 쌍(먼저 생긴 토큰끼리)을 골라 결과가 늘 같게 한다
            best = max(pair_counts, key=lambda p: (pair_counts[p], -p[0], -p[1]))
            new_id = len(self.vocab)
            new_token = self.vocab[best[0]] + self.vocab[best[1]]
            self.vocab[new_id] = new_token
            self.inverse_vocab.setdefault(new_token, new_id)
            self.bpe_merges[best] = new_id
            for w in list(where[best]):
                self._merge_word(words, w, freqs[w], best, new_id, pair_counts, where)

        for token in specials:
            self._add_special(token, len(self.vocab))
        self._build_ranks()
        return self

    @staticmethod
    def _merge_word(words, w, freq, pair, new_id, pair_counts, where):
        """단어 ``w`` 안의 ``pair`` 를 모두 ``new_id`` 로 합치고, 쌍 빈도와 색인을 그 단어 몫만큼 고친다."""
        ids = words[w]
        for old in itertools.pairwise(ids):
            pair_counts[old] -= freq
            if pair_counts[old] <= 0:
                del pair_counts[old]
            where[old].discard(w)
        merged, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                merged.append(new_id)
                i += 2
            else:
                merged.append(ids[i])
                i += 1
        words[w] = merged
        for new in itertools.pairwise(merged):
            pair_counts[new] += freq
            where[new].add(w)

    # ------------------------------------------------------------------ 읽기·저장
    def load_vocab_and_merges_from_openai(self, vocab_path, bpe_merges_path):
        """OpenAI GPT-2 의 ``encoder.json``(토큰 -> ID)과 ``vocab.bpe``(병합 목록)를 읽는다.

        두 파일이 서로 맞는지도 확인한다: 바이트 256개도 병합 결과도 아닌 토큰은 특수 토큰(``<|...|>``)뿐이어야 한다.
        ``vocab.bpe`` 가 잘리면 병합으로 만들어야 할 보통 토큰이 남으므로, 그 수와 예를 밝혀 ValueError 를 낸다.
        """
        try:
            encoder = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{vocab_path} 를 JSON 으로 읽지 못했습니다({type(error).__name__}: {error}). 잘렸거나 다른 파일일 수 "
                "있습니다. download_gpt2_tokenizer_files() 로 원본을 받으세요."
            ) from None
        if not isinstance(encoder, dict) or not all(isinstance(i, int) for i in encoder.values()):
            raise ValueError(f"{vocab_path} 는 '토큰: ID' 딕셔너리인 GPT-2 encoder.json 이 아닙니다.")
        try:
            lines = Path(bpe_merges_path).read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError as error:
            raise ValueError(f"{bpe_merges_path} 는 UTF-8 텍스트가 아닙니다({error.start + 1:,}번째 바이트).") from None
        if not lines or not lines[0].startswith("#version"):
            raise ValueError(f"{bpe_merges_path} 는 '#version' 으로 시작하는 GPT-2 vocab.bpe 파일이 아닙니다.")
        self.__init__(self.pre_tokenizer)
        self.vocab = {int(i): token for token, i in encoder.items()}
        self.inverse_vocab = dict(encoder)
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{bpe_merges_path} 의 {number}번째 줄 {line!r} 은 '왼쪽 오른쪽' 형식이 아닙니다.")
            left, right = parts
            try:
                self.bpe_merges[(encoder[left], encoder[right])] = encoder[left + right]
            except KeyError as error:
                raise ValueError(
                    f"{bpe_merges_path} 의 {number}번째 줄 {line!r} 의 토큰 {error} 이 {vocab_path} 에 없습니다."
                ) from None
        merged_ids = set(self.bpe_merges.values())
        orphans = []
        for i, token in sorted(self.vocab.items()):
            if i >= 256 and i not in merged_ids:
                if token.startswith("<|") and token.endswith("|>"):
                    self.special_tokens[token] = i  # 바이트도 병합 결과도 아닌 토큰 = 특수 토큰(<|endoftext|>)
                else:
                    orphans.append(token)
        if orphans:
            self.__init__(self.pre_tokenizer)
            raise ValueError(
                f"{vocab_path} 의 보통 토큰 {len(orphans):,}개(예: {orphans[:3]})를 만드는 병합 규칙이 {bpe_merges_path} "
                f"에 없습니다(병합 규칙 {len(lines) - 1:,}줄). vocab.bpe 가 잘렸거나 두 파일이 서로 다른 토크나이저의 "
                "것입니다. download_gpt2_tokenizer_files() 로 원본을 받으세요."
            )
        self._build_ranks()
        return self

    def save_vocab_and_merges(self, vocab_path, bpe_merges_path):
        """어휘 사전(``{ID: 토큰}`` JSON)과 병합 목록(``[[왼쪽 ID, 오른쪽 ID, 새 ID], ...]`` JSON)을 저장한다."""
        if not self.vocab:
            raise ValueError("저장할 어휘 사전이 없습니다. 먼저 train() 이나 load_*() 를 호출하세요.")
        vocab = {"vocab": {str(i): token for i, token in self.vocab.items()}, "special_tokens": self.special_tokens}
        Path(vocab_path).write_text(json.dumps(vocab, ensure_ascii=False, indent=1), encoding="utf-8")
        merges = [[a, b, new_id] for (a, b), new_id in self.bpe_merges.items()]
        Path(bpe_merges_path).write_text(json.dumps(merges), encoding="utf-8")

    def load_vocab_and_merges(self, vocab_path, bpe_merges_path):
        """``save_vocab_and_merges`` 로 저장한 두 파일을 읽는다."""
        saved = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        if not isinstance(saved, dict) or "vocab" not in saved:
            raise ValueError(
                f"{vocab_path} 는 save_vocab_and_merges() 가 저장한 파일이 아닙니다. "
                "OpenAI 의 encoder.json 이면 load_vocab_and_merges_from_openai() 를 쓰세요."
            )
        self.__init__(self.pre_tokenizer)
        self.vocab = {int(i): token for i, token in saved["vocab"].items()}
        self.inverse_vocab = {}
        for i, token in self.vocab.items():
            self.inverse_vocab.setdefault(token, i)
        self.special_tokens = {token: int(i) for token, i in saved["special_tokens"].items()}
        for a, b, new_id in json.loads(Path(bpe_merges_path).read_text(encoding="utf-8")):
            self.bpe_merges[(a, b)] = new_id
        self._build_ranks()
        return self

    def _add_special(self, token, new_id):
        self.vocab[new_id] = token
        self.inverse_vocab[token] = new_id
        self.special_tokens[token] = new_id

    def _build_ranks(self):
        self._ranks = {(self.vocab[a], self.vocab[b]): rank for rank, (a, b) in enumerate(self.bpe_merges)}
        self._cache = {}

    # ------------------------------------------------------------------ 인코딩·디코딩
    def _pieces(self, text, specials, keep_specials):
        """텍스트를 사전 토큰화한 조각들. ``specials`` 의 특수 토큰은 조각 사이의 경계가 된다."""
        if specials:
            pattern = "(" + "|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")"
            parts = regex.split(pattern, text)
        else:
            parts = [text]
        for k, part in enumerate(parts):
            if k % 2 == 1:  # 특수 토큰(split 의 괄호 그룹)
                if keep_specials:
                    yield part
            elif part:
                for chunk in self._pre_tokenize(part):
                    yield from self._split.findall(chunk)

    def _pre_tokenize(self, text):
        """``pre_tokenizer`` 가 있으면 그것으로 나눈 조각들, 없으면 ``[text]``. 조각이 원문을 그대로 덮는지 확인한다."""
        if self.pre_tokenizer is None:
            return [text]
        chunks = list(self.pre_tokenizer(text))
        if "".join(chunks) != text:
            raise ValueError(
                f"pre_tokenizer 가 돌려준 조각을 이어 붙이면 원문({text[:30]!r}…)과 다릅니다. 조각은 글자를 빼거나 "
                "바꾸지 않고 원문을 나누기만 해야 합니다."
            )
        return chunks

    def _bpe(self, piece):
        """조각 하나(바이트 문자열)를 병합 순위대로 합친 토큰 문자열 목록."""
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        tokens = list(piece)
        ranks = self._ranks
        while len(tokens) > 1:
            best_rank, best = None, None
            for pair in itertools.pairwise(tokens):
                rank = ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best = rank, pair
            if best is None:
                break
            merged, i = [], 0
            while i < len(tokens):
                if i + 1 < len(tokens) and tokens[i] == best[0] and tokens[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(tokens[i])
                    i += 1
            tokens = merged
        self._cache[piece] = tokens
        return tokens

    def encode(self, text, allowed_special=None):
        """텍스트를 토큰 ID 목록으로 바꾼다.

        Args:
            text: 인코딩할 문자열.
            allowed_special: 특수 토큰으로 인코딩할 토큰들(예: ``{"<|endoftext|>"}``) 또는 ``"all"``.
                여기에 없는 특수 토큰이 텍스트에 있으면 tiktoken 처럼 ValueError 를 낸다.
        """
        if not self.vocab:
            raise ValueError("어휘 사전이 비어 있습니다. 먼저 train() 이나 load_*() 를 호출하세요.")
        if not isinstance(text, str):
            raise TypeError(f"text 는 문자열이어야 합니다(받은 것: {type(text).__name__}).")
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        else:
            _check_special_tokens(allowed_special or (), "allowed_special")
            allowed = set(allowed_special or ())
            unknown = allowed - set(self.special_tokens)
            if unknown:
                raise ValueError(
                    f"특수 토큰 {sorted(unknown)} 은 어휘 사전에 없습니다. 있는 특수 토큰: {sorted(self.special_tokens)}"
                )
        disallowed = [s for s in self.special_tokens if s not in allowed and s in text]
        if disallowed:
            raise ValueError(
                f"텍스트에 특수 토큰 {disallowed[0]!r} 이 있습니다. 특수 토큰으로 인코딩하려면 "
                f"allowed_special={{{disallowed[0]!r}}} 를 주고, 보통 텍스트로 다루려면 먼저 텍스트에서 바꾸세요."
            )
        ids = []
        for piece in self._pieces(text, allowed, keep_specials=True):
            if piece in allowed:
                ids.append(self.special_tokens[piece])
                continue
            byte_piece = "".join(BYTE_ENCODER[b] for b in piece.encode("utf-8"))
            ids.extend(self.inverse_vocab[token] for token in self._bpe(byte_piece))
        return ids

    def decode(self, ids):
        """토큰 ID 목록을 텍스트로 되돌린다. 토큰 경계가 UTF-8 글자를 가르면 그 조각은 '�' 로 보인다."""
        data = bytearray()
        for i in ids:
            token = self.vocab.get(i)
            if token is None:
                raise ValueError(f"토큰 ID {i!r} 는 어휘 사전(크기 {len(self.vocab):,})에 없습니다.")
            if token in self.special_tokens and self.special_tokens[token] == i:
                data.extend(token.encode("utf-8"))
            else:
                data.extend(BYTE_DECODER[c] for c in token)
        return data.decode("utf-8", errors="replace")

    def clear_cache(self):
        """조각별 인코딩 캐시를 비운다(처음 인코딩하는 속도를 잴 때)."""
        self._cache = {}

    def token_bytes(self, token_id):
        """토큰 하나가 나타내는 바이트(토큰을 사람이 읽을 수 있게 보여 줄 때 쓴다)."""
        token = self.vocab[token_id]
        if token in self.special_tokens:
            return token.encode("utf-8")
        return bytes(BYTE_DECODER[c] for c in token)
