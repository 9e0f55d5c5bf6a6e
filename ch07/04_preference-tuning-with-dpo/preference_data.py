"""LLM으로 선호 데이터 만들기: 응답을 더 공손하게(또는 더 무례하게) 고쳐 써 ``chosen``/``rejected`` 쌍을 만든다.

항목마다 시드를 고정한 난수로 "polite" 나 "impolite" 를 고른다. 공손하게 고친 답은 chosen, 원래 답은 rejected,
무례하게 고친 답은 rejected, 원래 답은 chosen 이 된다. LLM(책: Ollama 의 llama3)은 온도 0, 시드 고정으로 부르므로
같은 시드로 다시 돌리면 같은 파일이 나온다.
"""

import random

from tqdm import tqdm

from llm_from_scratch.ch07 import format_input

POLITENESS = ("polite", "impolite")


def rewrite_prompt(entry, politeness):
    """``entry`` 의 정답을 ``politeness`` ("polite"/"impolite") 쪽으로 조금만 고쳐 쓰게 하는 프롬프트."""
    if politeness not in POLITENESS:
        raise ValueError(f"politeness 는 {POLITENESS} 중 하나여야 합니다(받은 값: {politeness!r}).")
    return (
        f"Here is a task: `{format_input(entry)}`\n"
        f"Here is a correct answer to it: `{entry['output']}`\n"
        f"Rewrite the answer so that its tone is slightly more {politeness}. Change as little as possible and "
        "keep the content correct. Reply with the rewritten answer only."
    )


def make_preference_entry(entry, politeness, rewritten):
    """원래 항목에 ``chosen``/``rejected`` 를 더한 새 항목(원래 딕셔너리는 바꾸지 않는다)."""
    rewritten = rewritten.strip()
    if politeness == "polite":
        return {**entry, "chosen": rewritten, "rejected": entry["output"]}
    return {**entry, "chosen": entry["output"], "rejected": rewritten}


def create_preference_data(entries, ask, seed=123, show_progress=True):
    """항목마다 공손함 방향을 고르고 ``ask(prompt)`` 로 고쳐 쓴 답을 받아 선호 데이터 리스트를 만든다."""
    rng = random.Random(seed)
    result = []
    for entry in tqdm(entries, desc="선호 데이터", disable=not show_progress):
        politeness = rng.choice(POLITENESS)
        result.append(make_preference_entry(entry, politeness, ask(rewrite_prompt(entry, politeness))))
    return result
