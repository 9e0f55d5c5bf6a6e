"""7장 보너스: LLM으로 지시 데이터 만들기 — Magpie 방식 생성과 리플렉션(reflection) 프롬프트.

- Magpie(Xu 외, 2024): 정렬된 채팅 모델에 채팅 템플릿의 "사용자 차례 머리말"까지만 보내면, 모델은 사용자가 할 법한
  지시를 스스로 이어 쓴다. 그 지시를 다시 보내 답을 받으면 (지시, 응답) 한 쌍이 된다.
- 리플렉션 튜닝(Li 외, 2023, arXiv:2310.11716; 선택적 리플렉션 튜닝, Li 외, 2024, arXiv:2402.10110): 더 강한 LLM이
  두 단계로 데이터를 다시 쓴다. 1단계는 지시를 기준(복잡도, 자세함, 필요한 지식, 모호함, 논리적 추론)에 비추어
  되돌아보고 새 지시를 ``[New Instruction] … [End]`` 사이에 쓴다. 2단계는 (새) 지시에 대한 응답을 기준(도움이 되는가,
  관련성, 정확성, 자세함)에 비추어 되돌아보고 더 나은 응답을 ``[Better Answer] … [End]`` 사이에 쓴다. 표시 사이의
  글만 뽑고, 표시가 없으면 원래 것을 둔다. 프롬프트는 이 저장소가 직접 쓴 영어 문장이다.

서비스를 부르는 함수(``generate_raw``, ``answer``, ``ask``)는 매개변수로 받으므로, 진짜 Ollama·OpenAI 클라이언트나
테스트용 가짜 함수를 똑같이 넣을 수 있다. ``demo_reflection_reply`` 는 API 키가 없을 때 127.0.0.1 의 가짜
OpenAI 서버가 돌려줄 답을 만든다(미리 써 둔 예시 답, LLM 의 답이 아니다).
"""

import json
import re
from pathlib import Path

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
# 리플렉션 튜닝: 1단계(지시) → 2단계(응답)
# ---------------------------------------------------------------------------

NEW_INSTRUCTION_TAG = "[New Instruction]"
BETTER_ANSWER_TAG = "[Better Answer]"
END_TAG = "[End]"

# 1단계: 지시를 되돌아볼 기준(Reflection-Tuning 논문의 지시 리플렉션 기준)
INSTRUCTION_CRITERIA = {
    "Complexity": "Is the task demanding enough to be worth learning from, or is it trivial?",
    "Level of detail": "Does the instruction say clearly what the answer should contain?",
    "Knowledge required": "Does answering it draw on relevant knowledge, and could it ask for more of it?",
    "Ambiguity": "Could the instruction be read in more than one way?",
    "Logical reasoning": "Does answering it require reasoning that the answer can show?",
}
# 2단계: 응답을 되돌아볼 기준(같은 논문의 응답 리플렉션 기준)
RESPONSE_CRITERIA = {
    "Helpfulness": "Does the response do everything the instruction asks?",
    "Relevance": "Does it stay on the task, without unrelated material?",
    "Accuracy": "Is every statement in it correct?",
    "Level of detail": "Is it as detailed as the instruction requires, neither too terse nor padded?",
}
_PLACEHOLDERS = {"...", "…", "<the new instruction only>", "<the better answer only>"}


def _example_block(instruction, input_text, output):
    """프롬프트 안의 데이터 항목. 가짜 서버와 테스트가 같은 머리말로 다시 읽는다(``parse_reflection_prompt``)."""
    return (f"[Instruction]\n{instruction}\n\n[Input]\n{input_text or '(none)'}\n\n"
            f"[Response]\n{output}\n\n[Reflection task]\n")


def _criteria_lines(criteria):
    return "\n".join(f"{number}. {name}: {question}" for number, (name, question) in enumerate(criteria.items(), 1))


def instruction_reflection_prompt(instruction, output, input_text=""):
    """1단계 프롬프트: 지시를 다섯 기준으로 되돌아본 뒤 새 지시를 ``[New Instruction] … [End]`` 사이에 쓰게 한다."""
    return (
        "You are improving a dataset that teaches a language model to follow instructions. Below is one example "
        "from it: an instruction, an optional input, and the response currently paired with it.\n\n"
        + _example_block(instruction, input_text, output)
        + "First, reflect on the INSTRUCTION. For each criterion, write one or two sentences on how it falls short "
        "and how it could be improved:\n"
        + _criteria_lines(INSTRUCTION_CRITERIA)
        + "\n\nThen write a new instruction that keeps the original task and topic but addresses your reflection. "
        "It will be paired with the same input, so refer to the input instead of copying it, unless the task "
        "needs the text itself. Do not answer the instruction.\n\n"
        "Reply in exactly this format:\n[Reflection]\n<one line per criterion>\n"
        f"{NEW_INSTRUCTION_TAG}\n<the new instruction only>\n{END_TAG}"
    )


def response_reflection_prompt(instruction, output, input_text=""):
    """2단계 프롬프트: (새) 지시에 대한 응답을 네 기준으로 되돌아본 뒤 ``[Better Answer] … [End]`` 를 쓰게 한다."""
    return (
        "You are improving a dataset that teaches a language model to follow instructions. Below is one example "
        "from it: an instruction, an optional input, and a response.\n\n"
        + _example_block(instruction, input_text, output)
        + "First, reflect on the RESPONSE as an answer to the instruction above. The instruction may have been "
        "rewritten after the response was written, so judge the response against the instruction exactly as it "
        "stands. For each criterion, write one or two sentences:\n"
        + _criteria_lines(RESPONSE_CRITERIA)
        + "\n\nThen write a better answer that fully follows the instruction, keeping what was right in the "
        "response and fixing what your reflection found.\n\n"
        "Reply in exactly this format:\n[Reflection]\n<one line per criterion>\n"
        f"{BETTER_ANSWER_TAG}\n<the better answer only>\n{END_TAG}"
    )


def _tag_pattern(tag):
    """``[New Instruction]`` → 대소문자, 괄호 안 공백, 마크다운 굵게(``**``), 뒤의 콜론을 너그럽게 받는 정규식."""
    words = r"\s+".join(re.escape(word) for word in tag.strip("[]").split())
    return r"(?:\*\*)?\[\s*" + words + r"\s*\]:?(?:\*\*)?"


def extract_between(text, start_tag, end_tag=END_TAG):
    """``start_tag`` 와 그 뒤 첫 ``end_tag`` 사이의 글(앞뒤 공백 제거). 표시가 없거나 비었거나 자리표시면 None.

    표시는 대소문자와 괄호 안 공백, ``**[New Instruction]**`` 같은 굵게 표시를 가리지 않는다. 표시 쌍이 여러 번
    나오면 마지막 것을 쓴다(모델이 형식을 먼저 인용하고 나서 진짜 답을 쓰는 경우가 있다).
    """
    if not isinstance(text, str):
        return None
    start, end = _tag_pattern(start_tag), _tag_pattern(end_tag)
    candidates = []
    for match in re.finditer(start + r"(.*?)" + end, text, flags=re.DOTALL | re.IGNORECASE):
        # 시작 표시 안에 또 시작 표시가 있으면(형식 인용 + 진짜 답) 마지막 것 뒤만 남긴다
        body = re.split(start, match.group(1), flags=re.IGNORECASE)[-1].strip()
        if body and body not in _PLACEHOLDERS:
            candidates.append(body)
    return candidates[-1] if candidates else None


def extract_new_instruction(text):
    """1단계 답에서 ``[New Instruction] … [End]`` 사이의 지시. 형식이 어긋나면 None."""
    return extract_between(text, NEW_INSTRUCTION_TAG)


def extract_better_answer(text):
    """2단계 답에서 ``[Better Answer] … [End]`` 사이의 응답. 형식이 어긋나면 None."""
    return extract_between(text, BETTER_ANSWER_TAG)


def _check_entry(entry):
    if not isinstance(entry, dict):
        raise TypeError(f"항목은 dict 여야 합니다(받은 값: {entry!r}). 7장 형식의 "
                        '{"instruction", "input", "output"} 항목을 주세요.')
    for key in ("instruction", "output"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ValueError(f"항목의 {key!r} 가 비었거나 문자열이 아닙니다(받은 항목: {entry!r}). "
                             '7장 형식의 {"instruction", "input", "output"} 항목을 주세요.')


def reflect_entry(entry, ask):
    """항목 하나를 두 단계로 다시 쓴다: 1단계는 지시, 2단계는 (새) 지시에 대한 응답.

    1단계 답에서 새 지시를 뽑지 못하면 원래 지시를 두고 2단계로 간다. 2단계는 그 지시와 원래 응답을 보여 주고
    더 나은 응답을 받는다. 2단계에서 응답을 뽑지 못하면 원래 응답을 두는데, 원래 응답은 새 지시의 답이 아니므로
    새 지시도 버리고 원래 지시로 되돌린다(짝이 맞지 않는 항목을 만들지 않는다).
    ``reflection`` 에는 두 표시를 찾았는지(``new_instruction_found``, ``better_answer_found``)와 결과 항목의 지시·응답이
    다시 쓴 것인지(``instruction_rewritten``, ``output_rewritten``)를 남긴다. ``input`` 은 두 프롬프트에 함께 넣고
    그대로 둔다. 원래 지시와 응답은 ``original_instruction``, ``original_output`` 에 남긴다.

    Args:
        ask: ``ask(prompt)`` → LLM 의 답 텍스트(예: OpenAI 호환 채팅 API).
    """
    _check_entry(entry)
    input_text = entry.get("input") or ""
    new_instruction = extract_new_instruction(
        ask(instruction_reflection_prompt(entry["instruction"], entry["output"], input_text))
    )
    instruction = new_instruction or entry["instruction"]
    better_answer = extract_better_answer(ask(response_reflection_prompt(instruction, entry["output"], input_text)))
    if better_answer is None:
        instruction = entry["instruction"]  # 원래 응답과 짝이 맞는 것은 원래 지시다
    return {
        "instruction": instruction,
        "input": entry.get("input", ""),
        "output": better_answer or entry["output"],
        "original_instruction": entry["instruction"],
        "original_output": entry["output"],
        "reflection": {
            "new_instruction_found": new_instruction is not None,
            "better_answer_found": better_answer is not None,
            "instruction_rewritten": new_instruction is not None and better_answer is not None,
            "output_rewritten": better_answer is not None,
        },
    }


def reflect_dataset(entries, ask, show_progress=True):
    """항목마다 ``reflect_entry`` 를 부르고 (다시 쓴 항목들, 요약)을 돌려준다.

    요약은 다시 쓴 지시·응답의 수, 원래 것을 둔 수, 단계마다 표시가 없던 답의 수, 그리고 원래 것을 둔 항목마다
    이유를 밝힌 한국어 안내 한 줄씩(``notes``)이다.
    """
    if not isinstance(entries, (list, tuple)):
        raise TypeError(f"entries 는 항목의 리스트여야 합니다(받은 값의 형: {type(entries).__name__}). "
                        "load_instruction_data 가 돌려준 리스트를 주세요.")
    reflected = [reflect_entry(entry, ask) for entry in tqdm(entries, desc="리플렉션", disable=not show_progress)]
    notes = []
    for index, entry in enumerate(reflected):
        found = entry["reflection"]
        if not found["new_instruction_found"]:
            notes.append(f"항목 {index}: 1단계 답에 {NEW_INSTRUCTION_TAG} … {END_TAG}가 없어 원래 지시를 그대로 두었습니다.")
        if not found["better_answer_found"]:
            reverted = ("새 지시도 원래 응답과 짝이 맞지 않아 버리고 원래 지시로 되돌렸습니다."
                        if found["new_instruction_found"] else "")
            notes.append(f"항목 {index}: 2단계 답에 {BETTER_ANSWER_TAG} … {END_TAG}가 없어 원래 응답을 그대로 두었습니다."
                         + (" " + reverted if reverted else ""))
    count = len(reflected)
    instructions = sum(e["reflection"]["instruction_rewritten"] for e in reflected)
    outputs = sum(e["reflection"]["output_rewritten"] for e in reflected)
    summary = {
        "entries": count,
        "instructions_rewritten": instructions, "instructions_kept": count - instructions,
        "outputs_rewritten": outputs, "outputs_kept": count - outputs,
        "new_instruction_tag_missing": sum(not e["reflection"]["new_instruction_found"] for e in reflected),
        "better_answer_tag_missing": sum(not e["reflection"]["better_answer_found"] for e in reflected),
        "notes": notes,
    }
    return reflected, summary


# ---------------------------------------------------------------------------
# API 키가 없을 때의 가짜 서버가 쓰는 답
# ---------------------------------------------------------------------------

DEMO_REPLIES_PATH = Path(__file__).with_name("reflection-demo-replies.json")


def parse_reflection_prompt(prompt):
    """리플렉션 프롬프트를 거꾸로 읽는다: ``{"stage", "instruction", "input", "output"}``. 다른 글이면 None.

    ``stage`` 는 1(지시 리플렉션) 또는 2(응답 리플렉션). 입력이 없던 항목의 ``input`` 은 빈 문자열이다.
    """
    match = re.search(r"\[Instruction\]\n(.*?)\n\n\[Input\]\n(.*?)\n\n\[Response\]\n(.*?)\n\n\[Reflection task\]\n",
                      prompt, flags=re.DOTALL)
    if match is None:
        return None
    if f"\n{NEW_INSTRUCTION_TAG}\n" in prompt:
        stage = 1
    elif f"\n{BETTER_ANSWER_TAG}\n" in prompt:
        stage = 2
    else:
        return None
    input_text = "" if match.group(2) == "(none)" else match.group(2)
    return {"stage": stage, "instruction": match.group(1), "input": input_text, "output": match.group(3)}


def load_demo_replies(path=DEMO_REPLIES_PATH):
    """미리 써 둔 예시 답(``reflection-demo-replies.json``)을 읽는다: 원래 지시마다 1단계 답과 2단계 답."""
    return json.loads(Path(path).read_text(encoding="utf-8"))["replies"]


def demo_reflection_reply(prompt, replies=None):
    """가짜 OpenAI 서버의 답: 프롬프트의 지시에 맞춰 미리 써 둔 1단계·2단계 예시 답을 돌려준다.

    2단계 프롬프트의 지시는 1단계 답에서 뽑은 새 지시(뽑지 못했으면 원래 지시)로 찾는다. 예시가 없는 지시나
    리플렉션 프롬프트가 아닌 글에는 표시 없이 그 사실만 답하므로, 그 항목은 원래 내용이 그대로 남는다.
    """
    replies = load_demo_replies() if replies is None else replies
    parsed = parse_reflection_prompt(prompt)
    if parsed is None:
        return "(local stand-in) This is not a reflection prompt, so there is nothing to rewrite."
    for item in replies:
        if parsed["stage"] == 1 and parsed["instruction"] == item["instruction"]:
            return item["instruction_reflection"]
        new_instruction = extract_new_instruction(item["instruction_reflection"]) or item["instruction"]
        if parsed["stage"] == 2 and parsed["instruction"] == new_instruction:
            return item["answer_reflection"]
    return "(local stand-in) No prepared reflection for this instruction, so no rewritten text is given."
