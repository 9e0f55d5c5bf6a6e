"""2장 보너스: 같은 GPT-2 BPE 를 구현한 토크나이저 넷(tiktoken, 밑바닥부터 만든 BPE, Hugging Face 둘)을 만들고 잰다."""

import statistics
import time

import tiktoken

from llm_from_scratch.bpe import BPETokenizerSimple

__all__ = ["build_tokenizers", "load_hf_gpt2_tokenizer", "median_ms"]


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
    """이름 -> ``encode(text) -> list[int]`` 함수. 넷 모두 ``<|endoftext|>`` 를 특수 토큰으로 인코딩한다."""
    tik = tiktoken.get_encoding("gpt2")
    ours = BPETokenizerSimple().load_vocab_and_merges_from_openai(encoder_path, vocab_bpe_path)
    hf_slow = load_hf_gpt2_tokenizer(encoder_path, vocab_bpe_path, fast=False)
    hf_fast = load_hf_gpt2_tokenizer(encoder_path, vocab_bpe_path, fast=True)
    allowed = {"<|endoftext|>"}
    return {
        "tiktoken": lambda text: tik.encode(text, allowed_special=allowed),
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
