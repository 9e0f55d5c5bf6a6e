"""7장 요약: 지시를 따르도록 미세 튜닝하기.

지시 데이터셋 준비(Alpaca 프롬프트, 85/10/5 분할), 사전 토큰화 데이터셋과 패딩·타깃 이동·-100 마스킹을 하는
배치 함수, 데이터 로더, GPT-2 적재, 응답 생성·추출, 그리고 Ollama REST API로 응답을 채점하는 도구를 담는다.
연습문제에 쓰는 변형(Phi-3 프롬프트, 지시 부분 손실 마스킹, Alpaca 52k 데이터)도 매개변수나 하위 클래스로 여기에 있다.
"""

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from llm_from_scratch.ch04 import GPT2_MODEL_CONFIGS, GPTModel
from llm_from_scratch.ch05 import (
    download_and_load_gpt2,
    generate,
    gpt2_config_from_hparams,
    load_weights_into_gpt,
    text_to_token_ids,
    token_ids_to_text,
)
from llm_from_scratch.download import download_data_file, download_file

__all__ = [
    "ALPACA_52K_URL",
    "DEFAULT_OLLAMA_URL",
    "PROMPT_STYLES",
    "InstructionDataset",
    "InstructionDatasetWithMasking",
    "check_if_running",
    "create_instruction_loaders",
    "custom_collate_fn",
    "custom_collate_with_masking_fn",
    "extract_response",
    "format_input",
    "format_input_phi",
    "format_prompt",
    "format_response",
    "format_scoring_prompt",
    "generate_model_scores",
    "generate_responses",
    "load_alpaca_52k",
    "load_gpt2_model",
    "load_instruction_data",
    "model_file_name",
    "parse_score",
    "query_model",
    "split_instruction_data",
]

PAD_TOKEN_ID = 50256  # GPT-2의 <|endoftext|>
IGNORE_INDEX = -100  # 파이토치 cross_entropy가 기본으로 무시하는 타깃 값

ALPACA_52K_URL = "https://raw.githubusercontent.com/tatsu-lab/stanford_alpaca/main/alpaca_data.json"
DEFAULT_OLLAMA_URL = "http://localhost:11434/api/chat"

PROMPT_STYLES = ("alpaca", "phi3")

# 응답 앞에 붙는 표시: 생성된 텍스트에서 응답만 떼어 낼 때도 쓴다
_RESPONSE_MARKERS = {"alpaca": "### Response:", "phi3": "<|assistant|>"}


# ---------------------------------------------------------------------------
# 7.2 데이터셋 준비
# ---------------------------------------------------------------------------


def _check_entry(entry, keys):
    """항목이 ``keys``를 모두 문자열로 갖는지 확인한다. ``input``은 없거나 None 이어도 된다(입력 없음)."""
    if not isinstance(entry, dict):
        raise TypeError(f"데이터 항목은 딕셔너리여야 합니다(받은 것: {type(entry).__name__}).")
    missing = [key for key in keys if key not in entry]
    if missing:
        raise KeyError(f"데이터 항목에 {', '.join(missing)} 키가 없습니다(받은 키: {', '.join(entry) or '없음'}).")
    # JSON의 null이 조용히 "None" 이라는 글자가 되지 않도록 문자열만 받는다
    for key in (*keys, "input"):
        value = entry.get(key)
        if not isinstance(value, str) and not (key == "input" and value is None):
            raise TypeError(f"데이터 항목의 {key!r} 값은 문자열이어야 합니다(받은 값: {value!r}).")
        if isinstance(value, str) and "<|endoftext|>" in value:
            raise ValueError(
                f"데이터 항목의 {key!r} 값에 특수 토큰 문자열 '<|endoftext|>'이 들어 있습니다(값: {value[:60]!r}). "
                "응답의 끝 표시와 헷갈리지 않도록 이 문자열을 지우거나 바꾸세요."
            )


def _check_prompt_style(prompt_style):
    if prompt_style not in PROMPT_STYLES:
        raise ValueError(f"알 수 없는 프롬프트 형식 {prompt_style!r} 입니다. 가능한 형식: {', '.join(PROMPT_STYLES)}")


def format_input(entry):
    """항목을 Alpaca 형식 프롬프트(안내 문장, ``### Instruction:``, 입력이 있으면 ``### Input:``)로 바꾼다."""
    _check_entry(entry, ("instruction",))
    instruction_text = (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request."
        f"\n\n### Instruction:\n{entry['instruction']}"
    )
    input_text = f"\n\n### Input:\n{entry['input']}" if entry.get("input") else ""
    return instruction_text + input_text


def format_input_phi(entry):
    """항목을 Phi-3 형식 프롬프트(``<|user|>`` 다음 줄에 지시, 입력이 있으면 그다음 줄에)로 바꾼다(연습문제 7.1)."""
    _check_entry(entry, ("instruction",))
    input_text = f"\n{entry['input']}" if entry.get("input") else ""
    return f"<|user|>\n{entry['instruction']}{input_text}"


def format_response(entry, prompt_style="alpaca"):
    """프롬프트 뒤에 이어 붙일 정답 부분(``### Response:`` 또는 ``<|assistant|>``와 출력)."""
    _check_prompt_style(prompt_style)
    _check_entry(entry, ("output",))
    separator = "\n\n" if prompt_style == "alpaca" else "\n"
    return f"{separator}{_RESPONSE_MARKERS[prompt_style]}\n{entry['output']}"


def format_prompt(entry, prompt_style="alpaca"):
    """``prompt_style``에 맞는 프롬프트: "alpaca" 면 ``format_input``, "phi3" 면 ``format_input_phi``."""
    _check_prompt_style(prompt_style)
    return format_input(entry) if prompt_style == "alpaca" else format_input_phi(entry)


def load_instruction_data(folder="."):
    """지시 데이터셋 ``instruction-data.json`` (1,100개 항목)을 ``folder``에 받아 리스트로 읽는다."""
    path = download_data_file("instruction-data.json", folder)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_alpaca_52k(folder="."):
    """스탠퍼드 Alpaca의 52k 지시 데이터(``alpaca_data.json``)를 ``folder``에 받아 읽는다(연습문제 7.3).

    미러가 없는 파일이라 인터넷이 필요하다. 받을 수 없으면 ``DownloadError``가 난다.
    """
    path = download_file(ALPACA_52K_URL, Path(folder) / "alpaca_data.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def split_instruction_data(data, train_frac=0.85, test_frac=0.10):
    """데이터를 순서대로 훈련 85%, 테스트 10%, 나머지(5%)는 검증으로 나눈다.

    Returns:
        (train_data, val_data, test_data). 1,100개 항목이면 935 / 55 / 110개다.
    """
    if not (0 < train_frac < 1 and 0 <= test_frac < 1 and train_frac + test_frac <= 1):
        raise ValueError(
            f"train_frac({train_frac})와 test_frac({test_frac})는 0과 1 사이이고 합이 1 이하여야 합니다."
        )
    train_end = int(len(data) * train_frac)
    test_end = train_end + int(len(data) * test_frac)
    return data[:train_end], data[test_end:], data[train_end:test_end]


# ---------------------------------------------------------------------------
# 7.3 배치 만들기
# ---------------------------------------------------------------------------


class InstructionDataset(Dataset):
    """프롬프트와 정답을 이어 붙인 텍스트를 미리 토큰화해 두는 데이터셋.

    Args:
        data: ``instruction``, ``input``, ``output`` 키가 있는 항목들의 리스트.
        tokenizer: tiktoken의 gpt2 인코딩 같은 토크나이저.
        prompt_style: "alpaca"(책의 본문) 또는 "phi3"(연습문제 7.1).
    """

    def __init__(self, data, tokenizer, prompt_style="alpaca"):
        _check_prompt_style(prompt_style)
        self.data = data
        self.encoded_texts = [
            tokenizer.encode(format_prompt(entry, prompt_style) + format_response(entry, prompt_style))
            for entry in data
        ]

    def __getitem__(self, index):
        return self.encoded_texts[index]

    def __len__(self):
        return len(self.data)


class InstructionDatasetWithMasking(InstructionDataset):
    """``(프롬프트 토큰 수, 토큰 ID)``를 돌려주는 데이터셋: 지시 부분을 손실에서 빼는 데 쓴다(연습문제 7.2)."""

    def __init__(self, data, tokenizer, prompt_style="alpaca"):
        super().__init__(data, tokenizer, prompt_style)
        self.instruction_lengths = [len(tokenizer.encode(format_prompt(entry, prompt_style))) for entry in data]

    def __getitem__(self, index):
        return self.instruction_lengths[index], self.encoded_texts[index]


def custom_collate_fn(batch, pad_token_id=PAD_TOKEN_ID, ignore_index=IGNORE_INDEX, allowed_max_length=None, device="cpu"):
    """토큰 ID 리스트들을 입력·타깃 텐서 한 쌍으로 묶는다.

    1. 각 예제 끝에 ``pad_token_id``를 하나 붙이고, 배치에서 가장 긴 것보다 한 칸 길게 같은 ID로 채운다.
    2. 입력은 마지막 칸을 뺀 것(길이는 가장 긴 예제와 같다), 타깃은 입력을 한 칸 왼쪽으로 민 것이다.
    3. 타깃의 패딩 중 첫 번째(텍스트의 끝을 배우는 토큰)만 남기고 나머지는 ``ignore_index``로 바꾼다.
    4. ``allowed_max_length``가 있으면 그 길이로 자르고, ``device``로 옮긴다.

    Returns:
        (inputs, targets): 둘 다 (배치 크기, 길이) 모양의 정수 텐서.
    """
    if len(batch) == 0:
        raise ValueError("빈 배치는 묶을 수 없습니다(예제가 하나 이상 있어야 합니다).")
    if allowed_max_length is not None and allowed_max_length < 1:
        raise ValueError(f"allowed_max_length는 1 이상이거나 None 이어야 합니다(받은 값: {allowed_max_length}).")
    items = [list(item) for item in batch]
    if any(len(item) == 0 for item in items):
        raise ValueError("토큰이 하나도 없는 예제가 배치에 있습니다.")

    batch_max_length = max(len(item) for item in items)
    inputs_lst, targets_lst = [], []
    for item in items:
        # 끝 표시 자리까지 한 칸 더 채운 뒤, 입력은 마지막 칸을 빼고 타깃은 첫 칸을 뺀다
        padded = item + [pad_token_id] * (batch_max_length + 1 - len(item))
        inputs = torch.tensor(padded[:-1])
        targets = torch.tensor(padded[1:])
        # 타깃에서 위치 len(item)-1이 첫 번째 패딩(끝 표시)이고, 그 뒤는 모두 손실에서 뺀다
        targets[len(item):] = ignore_index
        if allowed_max_length is not None:
            inputs = inputs[:allowed_max_length]
            targets = targets[:allowed_max_length]
        inputs_lst.append(inputs)
        targets_lst.append(targets)

    return torch.stack(inputs_lst).to(device), torch.stack(targets_lst).to(device)


def custom_collate_with_masking_fn(
    batch, pad_token_id=PAD_TOKEN_ID, ignore_index=IGNORE_INDEX, allowed_max_length=None, device="cpu"
):
    """``custom_collate_fn``에 더해, 프롬프트(지시·입력) 부분의 타깃도 ``ignore_index``로 바꾼다(연습문제 7.2).

    ``batch``의 각 원소는 ``InstructionDatasetWithMasking``이 주는 ``(프롬프트 토큰 수, 토큰 ID)`` 다.
    타깃 위치 j는 토큰 j+1을 맞히므로, 프롬프트 토큰(0 … L-1)을 맞히는 위치 0 … L-2를 가린다.
    위치 L-1은 응답의 첫 토큰을 맞히므로 남는다.
    """
    if len(batch) == 0:
        raise ValueError("빈 배치는 묶을 수 없습니다(예제가 하나 이상 있어야 합니다).")
    instruction_lengths = [length for length, _ in batch]
    inputs, targets = custom_collate_fn(
        [token_ids for _, token_ids in batch], pad_token_id, ignore_index, allowed_max_length, device
    )
    for row, length in enumerate(instruction_lengths):
        targets[row, : length - 1] = ignore_index
    return inputs, targets


# ---------------------------------------------------------------------------
# 7.4 데이터 로더
# ---------------------------------------------------------------------------


def create_instruction_loaders(
    train_data,
    val_data,
    test_data,
    tokenizer,
    device="cpu",
    batch_size=8,
    allowed_max_length=1024,
    prompt_style="alpaca",
    mask_instructions=False,
    num_workers=0,
    seed=123,
):
    """훈련·검증·테스트 데이터 로더를 만든다(훈련만 섞고 마지막 불완전 배치를 버린다).

    Args:
        device: 배치 함수가 텐서를 옮길 장치.
        batch_size: 배치 크기(책: 8).
        allowed_max_length: 이 길이보다 긴 예제는 자른다(모델의 문맥 길이 이하로 두어야 한다).
        prompt_style: "alpaca" 또는 "phi3".
        mask_instructions: True 면 프롬프트 부분을 손실에서 뺀다(연습문제 7.2).
        seed: 훈련 로더가 섞는 순서를 정하는 시드.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size는 1 이상이어야 합니다(받은 값: {batch_size}).")
    dataset_cls = InstructionDatasetWithMasking if mask_instructions else InstructionDataset
    collate = custom_collate_with_masking_fn if mask_instructions else custom_collate_fn
    collate = partial(collate, device=device, allowed_max_length=allowed_max_length)

    def loader(data, training):
        return DataLoader(
            dataset_cls(data, tokenizer, prompt_style),
            batch_size=batch_size,
            collate_fn=collate,
            shuffle=training,
            drop_last=training,
            num_workers=num_workers,
            generator=torch.Generator().manual_seed(seed) if training else None,
        )

    return loader(train_data, True), loader(val_data, False), loader(test_data, False)


# ---------------------------------------------------------------------------
# 7.5 사전 훈련된 LLM 적재, 7.7 응답 추출
# ---------------------------------------------------------------------------


def load_gpt2_model(model_size="355M", models_dir="gpt2", device="cpu"):
    """OpenAI GPT-2 체크포인트를 받아(이미 있으면 그것을 읽어) 평가 모드의 ``GPTModel``로 돌려준다.

    미세 튜닝에서는 드롭아웃을 쓰지 않으므로 ``drop_rate``는 0 이다.

    Returns:
        (model, cfg): 모델과 그 설정 딕셔너리(책의 키).
    """
    settings, params = download_and_load_gpt2(model_size, models_dir)
    cfg = gpt2_config_from_hparams(settings, drop_rate=0.0)
    model = GPTModel(cfg)
    load_weights_into_gpt(model, params)
    return model.to(device).eval(), cfg


def model_file_name(model_size="355M", suffix=""):
    """미세 튜닝한 모델을 저장할 파일 이름(책의 규칙): 355M 이면 ``gpt2-medium355M-sft.pth``."""
    name = next((key for key in GPT2_MODEL_CONFIGS if key.endswith(f"({model_size})")), None)
    if name is None:
        raise ValueError(f"알 수 없는 모델 크기 {model_size!r} 입니다. 가능한 크기: 124M, 355M, 774M, 1558M")
    return f"{re.sub(r'[ ()]', '', name)}-sft{suffix}.pth"


def extract_response(generated_text, input_text, prompt_style="alpaca"):
    """생성된 전체 텍스트에서 프롬프트를 떼고 응답 표시(``### Response:`` 등)를 지운 응답만 남긴다."""
    _check_prompt_style(prompt_style)
    return generated_text[len(input_text):].replace(_RESPONSE_MARKERS[prompt_style], "").strip()


def generate_responses(
    model, entries, tokenizer, device, max_new_tokens=256, prompt_style="alpaca", show_progress=True
):
    """각 항목의 프롬프트로 응답을 생성해 ``model_response`` 키를 더한 새 항목 리스트를 돌려준다.

    그리디 디코딩이며 ``<|endoftext|>``가 나오면 멈춘다.
    """
    model.eval()
    context_size = model.pos_emb.num_embeddings
    results = []
    for entry in tqdm(entries, desc="응답 생성", disable=not show_progress):
        input_text = format_prompt(entry, prompt_style)
        token_ids = generate(
            model,
            text_to_token_ids(input_text, tokenizer).to(device),
            max_new_tokens=max_new_tokens,
            context_size=context_size,
            eos_id=PAD_TOKEN_ID,
        )
        generated_text = token_ids_to_text(token_ids.cpu(), tokenizer)
        results.append({**entry, "model_response": extract_response(generated_text, input_text, prompt_style)})
    return results


# ---------------------------------------------------------------------------
# 7.8 Ollama로 응답 평가하기
# ---------------------------------------------------------------------------


def _server_root(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"Ollama 주소 {url!r}이(가) 올바르지 않습니다. 예: {DEFAULT_OLLAMA_URL}")
    return f"{parts.scheme}://{parts.netloc}/"


def check_if_running(url=DEFAULT_OLLAMA_URL, timeout=2.0):
    """``url``의 Ollama 서버가 응답하면 True. 서버의 루트 주소에 GET 요청을 보내 본다."""
    try:
        with urllib.request.urlopen(_server_root(url), timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def query_model(prompt, model="llama3", url=DEFAULT_OLLAMA_URL, seed=123, temperature=0.0, num_ctx=2048, timeout=600):
    """Ollama의 ``/api/chat``에 프롬프트를 보내고, 줄마다 오는 JSON 조각을 이어 붙인 답을 돌려준다.

    Args:
        prompt: 사용자 메시지.
        model: Ollama 모델 이름(책: llama3).
        url: chat API 주소.
        seed, temperature: 같은 답이 나오도록 고정하는 생성 옵션(온도 0 이면 결정적).
        num_ctx: 문맥 길이.
        timeout: 초 단위 제한 시간.
    """
    payload = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "options": {"seed": seed, "temperature": temperature, "num_ctx": num_ctx},
    }
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST"
    )
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout은 0보다 큰 초 단위 수여야 합니다(받은 값: {timeout!r}).")
    pieces = []
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            for raw_line in response:
                line = raw_line.decode("utf-8", errors="replace").strip()
                if not line:
                    continue
                try:
                    chunk = json.loads(line)
                except json.JSONDecodeError:
                    raise ValueError(f"Ollama({url})의 답이 JSON이 아닙니다: {line[:200]!r}. 주소가 /api/chat인지 확인하세요.") from None
                if isinstance(chunk, dict) and "error" in chunk:
                    raise RuntimeError(f"Ollama가 오류를 돌려주었습니다: {chunk['error']}")
                message = chunk.get("message", {}) if isinstance(chunk, dict) else None
                content = message.get("content", "") if isinstance(message, dict) else None
                if not isinstance(content, str):
                    raise ValueError(  # noqa: TRY004 - 타입이 아니라 서버가 보낸 답의 모양이 틀렸다
                        f"Ollama({url})의 답이 예상한 모양({{'message': {{'content': 문자열}}}})이 아닙니다: {line[:200]!r}. "
                        "/api/chat 주소인지 확인하세요."
                    )
                pieces.append(content)
                if chunk.get("done"):
                    break
    except TimeoutError as error:
        raise TimeoutError(
            f"Ollama 서버({url})가 {timeout}초 안에 답하지 않았습니다. 서버 상태를 확인하거나 timeout을 늘리세요."
        ) from error
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", errors="replace").strip()
        raise RuntimeError(f"Ollama({url})가 HTTP {error.code}로 답했습니다: {detail}") from error
    except urllib.error.URLError as error:
        raise ConnectionError(
            f"Ollama 서버({url})에 연결하지 못했습니다: {error.reason}. 'ollama serve'로 서버를 먼저 띄우세요."
        ) from error
    return "".join(pieces)


def format_scoring_prompt(entry, json_key="model_response"):
    """심판 모델에게 ``entry[json_key]``를 0~100점으로 매기라고 하는 프롬프트(정답과 함께 보여 준다)."""
    _check_entry(entry, ("output", json_key))
    return (
        f"Here is a task prompt: `{format_input(entry)}`\n"
        f"The reference answer is `{entry['output']}`.\n"
        f"Rate the following answer `{entry[json_key]}` on a scale from 0 to 100, "
        "where 100 means a perfect answer. Reply with the integer score only."
    )


def parse_score(reply):
    """심판의 답이 0~100 사이 정수 하나(끝에 마침표 허용)면 그 값을, 아니면 None을 돌려준다."""
    match = re.fullmatch(r"\s*(\d{1,3})\s*\.?\s*", reply)
    if match is None or int(match.group(1)) > 100:
        return None
    return int(match.group(1))


def generate_model_scores(
    json_data, json_key="model_response", model="llama3", url=DEFAULT_OLLAMA_URL, show_progress=True, timeout=600
):
    """각 항목의 ``json_key`` 응답을 Ollama 심판 모델로 채점해 점수 리스트를 돌려준다.

    숫자로 읽을 수 없는 답은 알리고 건너뛴다. 그래서 점수 개수가 항목 수보다 적을 수 있다.
    ``timeout``은 질문 하나의 제한 시간(초)이다.
    """
    scores = []
    for entry in tqdm(json_data, desc="채점", disable=not show_progress):
        reply = query_model(format_scoring_prompt(entry, json_key), model=model, url=url, timeout=timeout)
        score = parse_score(reply)
        if score is None:
            print(f"점수로 읽을 수 없는 답을 건너뜁니다: {reply!r}")
            continue
        scores.append(score)
    return scores
