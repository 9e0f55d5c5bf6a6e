"""7장 보너스: LLM으로 지시 데이터 만들기 — Magpie 방식 생성과 리플렉션(reflection) 프롬프트.

- Magpie(Xu 외, 2024): 정렬된 채팅 모델에 채팅 템플릿의 "사용자 차례 머리말"까지만 보내면, 모델은 사용자가 할 법한
  지시를 스스로 이어 쓴다. 그 지시를 다시 보내 답을 받으면 (지시, 응답) 한 쌍이 된다.
- 리플렉션 튜닝(Li 외, 2023): 더 강한 LLM에게 지시와 응답을 비평하고 고쳐 쓰게 한 뒤, 정해 둔 표시
  ``[New Instruction] … [End]``, ``[Better Answer] … [End]`` 사이의 글만 뽑는다.

서비스를 부르는 함수(``generate_raw``, ``answer``, ``ask``)는 매개변수로 받으므로, 진짜 Ollama·OpenAI 클라이언트나
테스트용 가짜 함수를 똑같이 넣을 수 있다.
"""

import re

from tqdm import tqdm

# Llama 3 채팅 템플릿에서 사용자 차례가 시작되는 부분. 내용 없이 여기까지만 보낸다.
LLAMA3_USER_HEADER = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
# 모델이 지시를 다 쓰고 나서 낼 수 있는 템플릿 토큰들: 그 앞까지만 지시로 쓴다
_TEMPLATE_TOKENS = re.compile(r"<\|(?:eot_id|start_header_id|end_header_id|begin_of_text|end_of_text)\|>")


def clean_generated_instruction(text):
    """생성된 지시에서 템플릿 토큰 이후를 잘라 내고 앞뒤 공백을 지운다. 남는 것이 없으면 빈 문자열."""
    return _TEMPLATE_TOKENS.split(text, maxsplit=1)[0].strip()


def generate_magpie_dataset(num_entries, generate_raw, answer, seed=123, max_attempts=3, show_progress=True):
    """Magpie 방식으로 ``num_entries`` 개의 ``{"instruction", "output"}`` 항목을 만든다.

    Args:
        generate_raw: ``generate_raw(prompt, seed=...)`` → 템플릿 없이 이어 쓴 텍스트(예: Ollama 의 raw 생성).
        answer: ``answer(instruction)`` → 응답 텍스트(예: Ollama 채팅).
        seed: 항목 i 는 시드 ``seed + i`` 로 지시를 만든다(같은 시드면 같은 데이터).
        max_attempts: 빈 지시가 나오면 다른 시드로 다시 시도하는 횟수.
    """
    if num_entries < 1:
        raise ValueError(f"num_entries 는 1 이상이어야 합니다(받은 값: {num_entries}).")
    entries = []
    for index in tqdm(range(num_entries), desc="Magpie 생성", disable=not show_progress):
        instruction = ""
        for attempt in range(max_attempts):
            instruction = clean_generated_instruction(
                generate_raw(LLAMA3_USER_HEADER, seed=seed + index + attempt * num_entries)
            )
            if instruction:
                break
        if not instruction:
            raise RuntimeError(f"{index}번 항목: {max_attempts}번 시도했지만 모델이 빈 지시만 냈습니다.")
        entries.append({"instruction": instruction, "output": answer(instruction).strip()})
    return entries


# ---------------------------------------------------------------------------
# 리플렉션: 지시와 응답 고쳐 쓰기
# ---------------------------------------------------------------------------

NEW_INSTRUCTION_TAG = "[New Instruction]"
BETTER_ANSWER_TAG = "[Better Answer]"
END_TAG = "[End]"


def _input_line(input_text):
    return f"Input: {input_text}\n" if input_text else ""


def instruction_reflection_prompt(instruction, output, input_text=""):
    """지시를 비평하고 더 나은 지시를 ``[New Instruction] … [End]`` 로 쓰게 하는 프롬프트."""
    return (
        "You are reviewing one example from a dataset used to teach a language model to follow instructions.\n"
        f"Instruction: {instruction}\n{_input_line(input_text)}Response: {output}\n\n"
        "First, briefly assess the instruction: is it specific, self-contained, and demanding enough to need "
        "careful reasoning? Then write an improved instruction that keeps the original topic but is clearer "
        f"and more challenging. Put only the improved instruction between {NEW_INSTRUCTION_TAG} and {END_TAG}, "
        f"for example: {NEW_INSTRUCTION_TAG} ... {END_TAG}"
    )


def response_reflection_prompt(instruction, output, input_text=""):
    """응답을 비평하고 더 나은 응답을 ``[Better Answer] … [End]`` 로 쓰게 하는 프롬프트."""
    return (
        "You are reviewing one example from a dataset used to teach a language model to follow instructions.\n"
        f"Instruction: {instruction}\n{_input_line(input_text)}Response: {output}\n\n"
        "First, briefly assess the response: is it correct, helpful, complete, and at the right level of detail? "
        "Then write a better response to the same instruction. Put only the better response between "
        f"{BETTER_ANSWER_TAG} and {END_TAG}, for example: {BETTER_ANSWER_TAG} ... {END_TAG}"
    )


def extract_between(text, start_tag, end_tag=END_TAG):
    """``start_tag`` 와 그 뒤 첫 ``end_tag`` 사이의 글(앞뒤 공백 제거). 표시가 없거나 비어 있으면 None.

    표시가 여러 번 나오면 마지막 시작 표시를 쓴다(모델이 설명 중에 형식을 먼저 인용하는 경우가 있다).
    """
    if not isinstance(text, str):
        return None
    matches = re.findall(re.escape(start_tag) + r"(.*?)" + re.escape(end_tag), text, flags=re.DOTALL)
    # 시작 표시 안에 또 시작 표시가 들어 있으면(형식 인용 + 진짜 답) 마지막 것 뒤만 남긴다
    candidates = [m.split(start_tag)[-1].strip() for m in matches]
    candidates = [c for c in candidates if c and c != "..."]
    return candidates[-1] if candidates else None


def extract_new_instruction(text):
    """리플렉션 답에서 ``[New Instruction] … [End]`` 사이의 지시. 형식이 어긋나면 None."""
    return extract_between(text, NEW_INSTRUCTION_TAG)


def extract_better_answer(text):
    """리플렉션 답에서 ``[Better Answer] … [End]`` 사이의 응답. 형식이 어긋나면 None."""
    return extract_between(text, BETTER_ANSWER_TAG)


def reflect_entry(entry, ask):
    """항목 하나의 지시와 응답을 차례로 고쳐 쓴다. 뽑지 못한 쪽은 원래 것을 두고 ``reflection`` 에 적는다.

    지시를 고치면 응답은 새 지시에 맞게 다시 고쳐 쓰게 한다(원래 응답을 함께 보여 준다). ``input`` 이 있으면
    두 프롬프트에 함께 넣고, 항목의 ``input`` 은 그대로 둔다.

    Args:
        ask: ``ask(prompt)`` → LLM 의 답 텍스트(예: OpenAI 채팅).
    """
    input_text = entry.get("input") or ""
    new_instruction = extract_new_instruction(
        ask(instruction_reflection_prompt(entry["instruction"], entry["output"], input_text))
    )
    instruction = new_instruction or entry["instruction"]
    better_answer = extract_better_answer(ask(response_reflection_prompt(instruction, entry["output"], input_text)))
    return {
        **entry,
        "instruction": instruction,
        "output": better_answer or entry["output"],
        "reflection": {"instruction_changed": new_instruction is not None, "output_changed": better_answer is not None},
    }
