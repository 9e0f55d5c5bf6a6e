"""한국어 형태소 경계에서 텍스트를 나누는 사전 토크나이저(kiwipiepy 의 Kiwi 형태소 분석기를 쓴다).

korean-tokenization.ipynb 가 이 코드를 단계별로 설명한다. ``BPETokenizerSimple(pre_tokenizer=...)`` 에 주면
BPE 병합이 형태소 경계를 넘지 않는다.

    from llm_from_scratch.bpe import BPETokenizerSimple
    from morphemes import MorphemeSplitter

    tokenizer = BPETokenizerSimple(pre_tokenizer=MorphemeSplitter()).train(text, vocab_size=1000)

나누기만 하고 글자는 바꾸지 않는다: 조각을 이어 붙이면 언제나 원문이다. 형태소 분석기가 돌려준 형태(``했`` ->
``하`` + ``었``)는 쓰지 않고, 원문 안의 위치(``start``, ``len``)만 쓴다.
"""

import itertools

__all__ = ["MorphemeSplitter", "morpheme_boundaries", "split_at"]


def morpheme_boundaries(text, tokens):
    """형태소 분석 결과 ``tokens``(``start``, ``len`` 속성)에서 ``text`` 를 나눌 위치들을 고른다.

    어절(공백 사이의 덩어리) 안의 형태소 경계와 공백이 시작하는 위치에서 나눈다. 형태소 바로 뒤의 공백 앞에서는
    나누지 않으므로, 공백은 GPT-2 처럼 다음 조각의 앞에 붙은 채로 남는다(``" 국민"`` + ``"은"``).
    """
    positions = set()
    for token in tokens:
        positions.update((token.start, token.start + token.len))
    inside_words = {p for p in positions if 0 < p < len(text) and not text[p - 1].isspace() and not text[p].isspace()}
    space_starts = {p for p in range(1, len(text)) if text[p].isspace() and not text[p - 1].isspace()}
    return sorted(inside_words | space_starts)


def split_at(text, boundaries):
    """``text`` 를 ``boundaries`` 위치들에서 자른 조각 목록(이어 붙이면 ``text``)."""
    edges = [0, *boundaries, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(edges) if b > a]


class MorphemeSplitter:
    """텍스트를 형태소 경계에서 나누는 함수 객체. ``splitter(text)`` 는 조각 목록을 돌려준다.

    Args:
        kiwi: 쓸 ``kiwipiepy.Kiwi`` 객체(기본: 새로 만든다. 모델을 읽는 데 1~2초 걸린다).
    """

    def __init__(self, kiwi=None):
        if kiwi is None:
            try:
                from kiwipiepy import Kiwi
            except ImportError:
                raise ImportError(
                    "형태소 분석기 kiwipiepy 가 설치되어 있지 않습니다. `pip install kiwipiepy` 로 설치하세요"
                    "(모델은 kiwipiepy-model 패키지로 함께 설치됩니다)."
                ) from None
            kiwi = Kiwi()
        self.kiwi = kiwi

    def __call__(self, text):
        if not isinstance(text, str):
            raise TypeError(f"text 는 문자열이어야 합니다(받은 것: {type(text).__name__}).")
        if not text.strip():
            return [text] if text else []
        return split_at(text, morpheme_boundaries(text, self.kiwi.tokenize(text)))
