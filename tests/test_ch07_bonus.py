"""7장 보너스: 중복 찾기, LLM 심판(Ollama·OpenAI 가짜 서버), 심판 상관관계, 데이터 생성, 선호 데이터 만들기."""

import json
from pathlib import Path

import pytest
from support import judge_reply, load_module

REPO_ROOT = Path(__file__).resolve().parent.parent
CH07 = REPO_ROOT / "ch07"
UTILS_DIR = CH07 / "02_dataset-utilities"
EVAL_DIR = CH07 / "03_model-evaluation"
GEN_DIR = CH07 / "05_dataset-generation"


dedup = load_module(UTILS_DIR / "find_near_duplicates.py", "find_near_duplicates")
services = load_module(EVAL_DIR / "llm_services.py", "llm_services")
generation = load_module(GEN_DIR / "dataset_generation.py", "dataset_generation")


def _json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------
# 02 중복 찾기
# ---------------------------------------------------------------------------


def test_near_duplicates_in_instruction_examples_are_the_three_known_pairs():
    data = _json(UTILS_DIR / "instruction-examples.json")
    pairs = dedup.find_all_near_duplicates(data, threshold=0.9)
    found = [(data[i]["instruction"], data[j]["instruction"], round(s, 2)) for i, j, s in pairs["instruction"]]
    assert found == [
        ("Edit the following sentence to make it more formal.", "Edit the sentence to make it more formal.", 0.94),
        ("Name a dwarf planet in our solar system.", "Name a dwarf planet in our solar system.", 1.00),
        ("Change the sentences from active voice to passive voice.",
         "Change the sentence from passive to active voice.", 0.91),
    ]
    assert pairs["input"] == []  # 빈 입력끼리는 중복이 아니다
    assert [(i, j) for i, j, _ in pairs["output"]] == [(73, 74)]


def test_remove_near_duplicates_keeps_the_first_of_each_pair():
    data = [{"instruction": "Name a planet."}, {"instruction": "Translate cat."}, {"instruction": "Name a planet!"}]
    pairs = dedup.find_all_near_duplicates(data)
    assert [(i, j) for i, j, _ in pairs["instruction"]] == [(0, 2)]
    assert dedup.remove_near_duplicates(data, pairs) == data[:2]
    with pytest.raises(ValueError, match="threshold"):
        dedup.find_near_duplicates(["a", "b"], threshold=1.5)
    with pytest.raises(KeyError, match="output"):
        dedup.find_all_near_duplicates(data, keys=["output"])


def test_dedup_script_writes_a_new_file_and_never_overwrites(tmp_path, capsys):
    source = tmp_path / "data.json"
    source.write_text((UTILS_DIR / "instruction-examples.json").read_text(encoding="utf-8"), encoding="utf-8")
    before = source.read_bytes()
    dedup.main(["--json-file", str(source), "--remove-duplicates"])
    out = capsys.readouterr().out
    assert "0.94 | [42]" in out and "비슷한 쌍 0개" in out
    cleaned = _json(tmp_path / "data-deduplicated.json")
    assert len(cleaned) == 200 - 3  # instruction 쌍의 뒤쪽 105, 74, 109 (output 의 74 와 겹친다)
    assert source.read_bytes() == before
    for extra, message in (([], "이미 있습니다"), (["--json-output-file", str(source)], "덮어쓰지")):
        with pytest.raises(SystemExit):
            dedup.main(["--json-file", str(source), "--remove-duplicates", *extra])
        assert message in capsys.readouterr().err
    assert source.read_bytes() == before


def test_dedup_script_help_is_korean(capsys):
    with pytest.raises(SystemExit):
        dedup.main(["--help"])
    assert "코사인 유사도" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# 03 LLM 심판과 가짜 서버
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eval_data():
    return _json(EVAL_DIR / "eval-example-data.json")


def test_eval_data_has_100_entries_with_two_model_responses(eval_data):
    assert len(eval_data) == 100
    assert {"instruction", "input", "output", "model 1 response", "model 2 response"} <= set(eval_data[0])


def _right_and_wrong(entry, key):
    return [{**entry, key: entry["output"]}, {**entry, key: "I do not know, maybe something else entirely."}]


def test_ollama_judge_scores_a_wrong_answer_lower_than_the_right_one(eval_data):
    with services.FakeOllamaServer(judge_reply) as server:
        assert services.ollama_available(server.chat_url)
        judge = services.OllamaJudge(url=server.chat_url)
        right, wrong = judge.score_all(_right_and_wrong(eval_data[0], "model 1 response"), "model 1 response",
                                       show_progress=False)
    assert wrong < right == 100
    body = server.requests[0]
    assert body["model"] == "llama3" and body["options"]["temperature"] == 0.0
    assert f"`{eval_data[0]['output']}`" in body["messages"][-1]["content"]


def test_unparsable_judge_reply_becomes_none_in_place(eval_data):
    replies = iter(["87", "I think 40", "100."])
    with services.FakeOllamaServer(lambda prompt: next(replies)) as server:
        scores = services.OllamaJudge(url=server.chat_url).score_all(eval_data[:3], "model 2 response",
                                                                     show_progress=False)
    assert scores == [87, None, 100]
    assert services.summarize_scores(scores) == {"count": 2, "mean": 93.5, "unparsed": 1}


def test_ollama_raw_generate_sends_the_prompt_untemplated():
    with services.FakeOllamaServer(lambda prompt: "What is the capital of France?<|eot_id|>") as server:
        text = services.ollama_generate_raw(generation.LLAMA3_USER_HEADER, url=server.generate_url, seed=7)
    assert text == "What is the capital of France?<|eot_id|>"
    assert server.requests[0]["raw"] is True and server.requests[0]["prompt"] == generation.LLAMA3_USER_HEADER
    assert server.requests[0]["options"]["seed"] == 7


def test_missing_services_give_korean_messages(monkeypatch, tmp_path):
    closed = "http://127.0.0.1:9/api/chat"  # 9번 포트(discard)에는 아무도 듣지 않는다
    assert not services.ollama_available(closed)
    with pytest.raises(ConnectionError, match="ollama serve"):
        services.require_ollama(closed)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="OPENAI_API_KEY"):
        services.load_openai_api_key(tmp_path / "config.json")
    (tmp_path / "config.json").write_text('{"OPENAI_API_KEY": "sk-from-file"}', encoding="utf-8")
    assert services.load_openai_api_key(tmp_path / "config.json") == "sk-from-file"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert services.load_openai_api_key(tmp_path / "config.json") == "sk-from-env"
    client = services.make_openai_client(base_url="http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(ConnectionError, match="연결할 수 없습니다"):
        services.openai_chat(client, "hi")


def test_openai_judge_scores_a_wrong_answer_lower_than_the_right_one(eval_data):
    with services.FakeOpenAIServer(judge_reply) as server:
        client = services.make_openai_client(api_key="sk-test", base_url=server.base_url)
        right, wrong = services.OpenAIJudge(client, model="gpt-4o-mini").score_all(
            _right_and_wrong(eval_data[1], "model 2 response"), "model 2 response", show_progress=False
        )
        reply = services.openai_chat(client, "Say hi", system="Be brief.")
    assert wrong < right == 100
    assert server.requests[0]["model"] == "gpt-4o-mini" and server.requests[0]["seed"] == 123
    assert server.requests[-1]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert reply == "50"  # 채점 프롬프트가 아니면 가짜 심판은 50을 답한다


def test_overlap_judge_reply_rewards_matching_answers():
    from llm_from_scratch.ch07 import format_scoring_prompt

    entry = {"instruction": "Name a dwarf planet.", "input": "", "output": "Pluto is a dwarf planet."}
    perfect = format_scoring_prompt({**entry, "r": "Pluto is a dwarf planet."}, "r")
    wrong = format_scoring_prompt({**entry, "r": "Mars."}, "r")
    assert services.overlap_judge_reply(perfect) == "100"
    assert services.overlap_judge_reply(wrong) == "0"


def test_judge_correlation_between_gpt4_and_llama3_for_model_1():
    from scipy import stats

    gpt4 = _json(EVAL_DIR / "scores" / "gpt4-model-1-response.json")
    llama3 = _json(EVAL_DIR / "scores" / "llama3-8b-model-1-response.json")
    assert len(gpt4) == len(llama3) == 100
    assert round(stats.pearsonr(gpt4, llama3)[0], 5) == 0.80489
    assert round(stats.spearmanr(gpt4, llama3)[0], 6) == 0.698406
    assert round(stats.kendalltau(gpt4, llama3)[0], 5) == 0.57292
    assert len(_json(EVAL_DIR / "scores" / "llama3-8b-model-2-response.json")) == 99


# ---------------------------------------------------------------------------
# 05 데이터 생성
# ---------------------------------------------------------------------------


def test_magpie_generation_sends_only_the_user_header_then_asks_for_the_answer():
    sent = []

    def generate_raw(prompt, seed):
        sent.append((prompt, seed))
        return "" if seed == 124 else f"Instruction number {seed}.<|eot_id|><|start_header_id|>assistant"

    entries = generation.generate_magpie_dataset(3, generate_raw, lambda text: f" Answer to: {text} ",
                                                 seed=123, show_progress=False)
    assert [e["instruction"] for e in entries] == ["Instruction number 123.", "Instruction number 127.",
                                                   "Instruction number 125."]
    assert entries[0]["output"] == "Answer to: Instruction number 123."
    assert all(prompt == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" for prompt, _ in sent)
    with pytest.raises(RuntimeError, match="빈 지시"):
        generation.generate_magpie_dataset(1, lambda prompt, seed: "<|eot_id|>", str, show_progress=False)


def test_shipped_magpie_data_has_instruction_and_output():
    data = _json(GEN_DIR / "instruction-data-llama3-7b.json")
    assert len(data) == 5 and all({"instruction", "output"} <= set(e) for e in data)


@pytest.mark.parametrize(
    ("reply", "instruction", "answer"),
    [
        ("Good.\n[New Instruction] Explain photosynthesis to a child. [End]\n[Better Answer]\nPlants eat light.\n[End]",
         "Explain photosynthesis to a child.", "Plants eat light."),
        ("Format: [New Instruction] ... [End]\nHere it is: [New Instruction] Name two moons. [End]",
         "Name two moons.", None),
        ("[New Instruction]\n<the new instruction only>\n[End]\n[New Instruction]\nName a moon.\n[End]", "Name a moon.", None),
        ("**[New Instruction]** Explain tides. **[END]**", "Explain tides.", None),
        ("[ new instruction ]: Explain tides.\n[ End ]", "Explain tides.", None),
        ("[New Instruction] Missing end tag", None, None),
        ("[Revised Instruction] Wrong tag. [End]", None, None),
        ("[Better Answer]   [End] and nothing else", None, None),
        ("No tags at all.", None, None),
        ("[End] [Better Answer] Real answer. [End]", None, "Real answer."),
        ("[Better Answer]\n**Step 1**: add.\n[End]", None, "**Step 1**: add."),
        (None, None, None),
    ],
)
def test_reflection_extraction_handles_canned_and_malformed_replies(reply, instruction, answer):
    assert generation.extract_new_instruction(reply) == instruction
    assert generation.extract_better_answer(reply) == answer


REFLECTION_ENTRIES = [
    {"instruction": "Name a color.", "input": "", "output": "Red."},
    {"instruction": "Fix the grammar.", "input": "She go home.", "output": "She goes home."},
    {"instruction": "Add 2 and 3.", "input": "", "output": "5"},
]


def _scripted_reflection(stage1, stage2):
    """리플렉션 프롬프트를 읽어 단계와 지시에 따라 정해 둔 답을 돌려주는 가짜 서버용 함수."""

    def reply(prompt):
        parsed = generation.parse_reflection_prompt(prompt)
        assert parsed is not None, prompt
        table = stage1 if parsed["stage"] == 1 else stage2
        return table[parsed["instruction"]]

    return reply


def _run_reflection_through_fake_openai(entries, reply_fn):
    with services.FakeOpenAIServer(reply_fn) as server:
        client = services.make_openai_client(api_key="sk-test", base_url=server.base_url)
        reflected, summary = generation.reflect_dataset(
            entries, lambda prompt: services.openai_chat(client, prompt, model="gpt-4o"), show_progress=False
        )
    prompts = [request["messages"][-1]["content"] for request in server.requests]
    return reflected, summary, prompts, server.requests


def test_two_stage_reflection_sends_the_methods_prompts_in_order_and_extracts_the_tagged_text():
    stage1 = {"Name a color.": "[Reflection]\n1. Complexity: trivial.\n[New Instruction]\nName a primary color and "
                               "say why it is primary.\n[End]",
              "Fix the grammar.": "[Reflection] ok\n[New Instruction]\nCorrect the sentence and name the rule.\n[End]",
              "Add 2 and 3.": "[Reflection] ok\n[New Instruction]\nAdd 2 and 3 and show the sum.\n[End]"}
    stage2 = {"Name a primary color and say why it is primary.": "[Reflection] brief\n[Better Answer]\nBlue: it "
                                                                 "cannot be mixed from other colors.\n[End]",
              "Correct the sentence and name the rule.": "[Better Answer]\nShe goes home (subject-verb agreement).\n[End]",
              "Add 2 and 3 and show the sum.": "[Better Answer]\n2 + 3 = 5\n[End]"}
    reflected, summary, prompts, requests = _run_reflection_through_fake_openai(
        REFLECTION_ENTRIES, _scripted_reflection(stage1, stage2))

    # 항목마다 두 번: 1단계(원래 지시) 다음에 2단계(1단계에서 뽑은 새 지시와 원래 응답)
    assert len(prompts) == 2 * len(REFLECTION_ENTRIES)
    assert all(request["model"] == "gpt-4o" for request in requests)
    for index, entry in enumerate(REFLECTION_ENTRIES):
        first = generation.parse_reflection_prompt(prompts[2 * index])
        second = generation.parse_reflection_prompt(prompts[2 * index + 1])
        assert first == {"stage": 1, "instruction": entry["instruction"], "input": entry["input"],
                         "output": entry["output"]}
        assert second == {"stage": 2, "instruction": reflected[index]["instruction"], "input": entry["input"],
                          "output": entry["output"]}
    stage1_prompt, stage2_prompt = prompts[0], prompts[1]
    for criterion in ("Complexity", "Level of detail", "Knowledge required", "Ambiguity", "Logical reasoning"):
        assert f"{criterion}:" in stage1_prompt
    for criterion in ("Helpfulness", "Relevance", "Accuracy", "Level of detail"):
        assert f"{criterion}:" in stage2_prompt
    assert "Ambiguity" not in stage2_prompt and "Helpfulness" not in stage1_prompt
    assert stage1_prompt.rstrip().endswith("[New Instruction]\n<the new instruction only>\n[End]")
    assert stage2_prompt.rstrip().endswith("[Better Answer]\n<the better answer only>\n[End]")
    assert "[Better Answer]" not in stage1_prompt and "[New Instruction]" not in stage2_prompt

    assert [(e["instruction"], e["output"]) for e in reflected] == [
        ("Name a primary color and say why it is primary.", "Blue: it cannot be mixed from other colors."),
        ("Correct the sentence and name the rule.", "She goes home (subject-verb agreement)."),
        ("Add 2 and 3 and show the sum.", "2 + 3 = 5"),
    ]
    assert summary["instructions_rewritten"] == summary["outputs_rewritten"] == 3 and summary["notes"] == []


def test_missing_tags_keep_the_original_and_are_counted():
    stage1 = {"Name a color.": "I think the instruction is fine as it is.",  # 표시 없음
              "Fix the grammar.": "[New Instruction]\nCorrect the sentence and name the rule.\n[End]",
              "Add 2 and 3.": "[New Instruction]\nAdd 2 and 3 and explain.\n[End]"}
    stage2 = {"Name a color.": "[Better Answer]\nRed, the color of blood.\n[End]",
              "Correct the sentence and name the rule.": "[Better Answer]\nShe goes home. The rule is",  # 끊긴 답
              "Add 2 and 3 and explain.": "[Better Answer]\n5, because 2 + 3 = 5.\n[End]"}
    reflected, summary, prompts, _ = _run_reflection_through_fake_openai(
        REFLECTION_ENTRIES, _scripted_reflection(stage1, stage2))
    # 1단계가 실패하면 2단계는 원래 지시로 묻는다
    assert generation.parse_reflection_prompt(prompts[1])["instruction"] == "Name a color."
    assert (reflected[0]["instruction"], reflected[0]["output"]) == ("Name a color.", "Red, the color of blood.")
    # 2단계가 실패하면 원래 응답과 짝이 맞는 원래 지시로 되돌린다
    assert (reflected[1]["instruction"], reflected[1]["output"]) == ("Fix the grammar.", "She goes home.")
    assert reflected[1]["reflection"] == {"new_instruction_found": True, "better_answer_found": False,
                                          "instruction_rewritten": False, "output_rewritten": False}
    assert reflected[2]["instruction"] == "Add 2 and 3 and explain."
    assert {key: summary[key] for key in summary if key != "notes"} == {
        "entries": 3, "instructions_rewritten": 1, "instructions_kept": 2, "outputs_rewritten": 2, "outputs_kept": 1,
        "new_instruction_tag_missing": 1, "better_answer_tag_missing": 1,
    }
    assert len(summary["notes"]) == 2
    assert summary["notes"][0].startswith("항목 0: 1단계 답에 [New Instruction] … [End]가 없어 원래 지시")
    assert summary["notes"][1].startswith("항목 1: 2단계 답에 [Better Answer] … [End]가 없어") and "되돌렸습니다" in (
        summary["notes"][1])


def test_reflected_dataset_saves_as_chapter7_json_with_originals(tmp_path):
    stage1 = {e["instruction"]: f"[New Instruction] {e['instruction']} Explain. [End]" for e in REFLECTION_ENTRIES}
    stage2 = {f"{e['instruction']} Explain.": f"[Better Answer] Because {e['output']} [End]" for e in REFLECTION_ENTRIES}
    reflected, _, _, _ = _run_reflection_through_fake_openai(REFLECTION_ENTRIES, _scripted_reflection(stage1, stage2))
    path = tmp_path / "instruction-data-reflection.json"
    path.write_text(json.dumps(reflected, indent=4, ensure_ascii=False), encoding="utf-8")
    loaded = _json(path)
    assert [list(e) for e in loaded] == [["instruction", "input", "output", "original_instruction", "original_output",
                                          "reflection"]] * 3
    for entry, original in zip(loaded, REFLECTION_ENTRIES):
        assert entry["input"] == original["input"]
        assert (entry["original_instruction"], entry["original_output"]) == (original["instruction"], original["output"])
        assert entry["output"] == f"Because {original['output']}"
    # 7장의 프롬프트 형식으로 그대로 쓸 수 있다
    from llm_from_scratch.ch07 import format_input

    assert "Fix the grammar. Explain." in format_input(loaded[1]) and "She go home." in format_input(loaded[1])


def test_demo_replies_match_the_first_chapter7_entries_and_show_both_fallbacks():
    data = _json(REPO_ROOT / "data" / "instruction-data.json")[:6]  # 저장소가 싣고 있는 7장 데이터(내려받은 사본이 아니라)
    reflected, summary, prompts, _ = _run_reflection_through_fake_openai(data, generation.demo_reflection_reply)
    assert [(e["reflection"]["new_instruction_found"], e["reflection"]["better_answer_found"]) for e in reflected] == [
        (True, True), (True, False), (False, True), (True, True), (True, True), (False, False),
    ]  # 항목 1은 끊긴 2단계 답, 항목 2는 틀린 표시, 항목 5는 예시가 없는 지시
    assert "weird" in reflected[0]["output"] and reflected[4]["output"].count("odd numbers") == 1
    assert reflected[5] | {"reflection": None} == {
        "instruction": data[5]["instruction"], "input": data[5]["input"], "output": data[5]["output"],
        "original_instruction": data[5]["instruction"], "original_output": data[5]["output"], "reflection": None,
    }
    assert summary["new_instruction_tag_missing"] == 2 and summary["better_answer_tag_missing"] == 2
    assert len(prompts) == 12
    assert "local stand-in" in generation.demo_reflection_reply("Hello?")


def test_reflection_rejects_entries_without_text():
    with pytest.raises(ValueError, match="'output' 가 비었거나"):
        generation.reflect_entry({"instruction": "Name a color.", "output": ""}, str)
    with pytest.raises(TypeError, match="항목은 dict"):
        generation.reflect_entry("Name a color.", str)
    with pytest.raises(TypeError, match="entries 는 항목의 리스트"):
        generation.reflect_dataset({"instruction": "x", "output": "y"}, str)


# ---------------------------------------------------------------------------
# 04 선호 데이터 만들기
# ---------------------------------------------------------------------------


def test_preference_data_is_reproducible_and_maps_polite_to_chosen():
    from llm_from_scratch.dpo.preference_data import create_preference_data, rewrite_prompt

    entries = [{"instruction": f"Task {i}", "input": "", "output": f"Answer {i}."} for i in range(6)]

    def ask(prompt):
        tone = "impolite" if "more impolite" in prompt else "polite"
        return f"[{tone}] rewrite"

    first = create_preference_data(entries, ask, seed=123, show_progress=False)
    assert first == create_preference_data(entries, ask, seed=123, show_progress=False)
    for entry, result in zip(entries, first):
        if result["chosen"] == "[polite] rewrite":
            assert result["rejected"] == entry["output"]
        else:
            assert result["chosen"] == entry["output"] and result["rejected"] == "[impolite] rewrite"
    assert {r["chosen"] == "[polite] rewrite" for r in first} == {True, False}
    assert "Task 0" in rewrite_prompt(entries[0], "polite")
    with pytest.raises(ValueError, match="politeness"):
        rewrite_prompt(entries[0], "rude")


def test_preference_rewrites_go_through_fake_ollama_deterministically():
    from llm_from_scratch.dpo.preference_data import create_preference_data

    entries = [{"instruction": "Say hello.", "input": "", "output": "Hello."}] * 2
    with services.FakeOllamaServer(lambda prompt: "Hello there, friend." if "more polite" in prompt else "What.") as srv:
        data = create_preference_data(entries, lambda p: services.ollama_chat(p, url=srv.chat_url), show_progress=False)
    # 공손하게 고친 답이 뽑히면 원래 답이 거절되고, 무례하게 고친 답이 뽑히면 원래 답이 선택된다
    assert {(e["chosen"], e["rejected"]) for e in data} <= {("Hello there, friend.", "Hello."), ("Hello.", "What.")}
    assert len(data) == 2 and srv.requests[0]["options"]["temperature"] == 0.0
