"""7장 스크립트: 미세 튜닝한 모델의 응답을 Ollama 의 심판 모델(기본 llama3)로 0~100점 채점한다 (7.8절).

먼저 Ollama 를 설치하고 ``ollama serve`` 로 서버를 띄운 뒤 ``ollama pull llama3`` 로 모델을 받아 두세요.

    python ollama_evaluate.py --file instruction-data-with-response.json

서버 주소는 ``--url`` 이나 환경 변수 ``LLMFS_OLLAMA_URL`` 로 바꿀 수 있다(기본: http://localhost:11434/api/chat).
서버에 연결할 수 없으면 그렇게 알리고 채점을 건너뛴다(오류로 끝나지 않는다).
요청마다 기다리는 시간은 ``--timeout`` 초(기본 600)이고, 서버의 답이 JSON 이 아니거나 Ollama 의 모양이 아니면
그렇다고 알리는 오류로 끝난다.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from llm_from_scratch.ch07 import DEFAULT_OLLAMA_URL, check_if_running, generate_model_scores
from llm_from_scratch.utils import QUICK, ArgumentParser, existing_file, positive_float

QUICK_NUM_ENTRIES = 3  # 빠른 모드에서 채점할 항목 수
DEFAULT_TIMEOUT = 600.0  # 요청 하나를 기다리는 최대 시간(초): CPU 에서 도는 llama3 는 한 답에 몇 분 걸리기도 한다


class ResponseFileError(ValueError):
    """응답 파일이 JSON 이 아니거나 기대한 모양이 아닐 때."""


class OllamaReplyError(RuntimeError):
    """Ollama 서버의 답이 JSON 이 아니거나 기대한 모양이 아니거나, 제한 시간 안에 오지 않을 때."""


def load_responses(path, json_key):
    """응답 파일을 읽고 모양을 확인한다: 항목(딕셔너리)의 리스트이고, 항목마다 instruction, output, ``json_key``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ResponseFileError(f"응답 파일 {path} 가 UTF-8 텍스트가 아닙니다({error.start} 바이트째).") from None
    except json.JSONDecodeError as error:
        raise ResponseFileError(
            f"응답 파일 {path} 를 JSON 으로 읽을 수 없습니다({error.lineno}번째 줄, {error.colno}번째 열: {error.msg})."
        ) from None
    if not isinstance(data, list):
        raise ResponseFileError(f"응답 파일 {path} 는 항목의 리스트([...])여야 하는데 {type(data).__name__} 입니다.")
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ResponseFileError(f"응답 파일 {path} 의 {index}번 항목이 딕셔너리가 아닙니다({type(entry).__name__}).")
        for key in ("instruction", "output", json_key):
            if not isinstance(entry.get(key), str):
                found = "없습니다" if key not in entry else f"문자열이 아닙니다({type(entry[key]).__name__})"
                raise ResponseFileError(
                    f"응답 파일 {path} 의 {index}번 항목에서 {key!r} 가 {found}. "
                    f"gpt_instruction_finetuning.py 가 만든 파일인지, --json-key 가 맞는지 확인하세요."
                )
    return data


def score_responses(test_data, json_key, model, url, timeout, show_progress=True):
    """``generate_model_scores`` 로 채점한다(요청마다 ``timeout`` 초까지 기다린다).

    답이 JSON 이 아니거나 Ollama 의 모양이 아니면, 또는 ``timeout`` 초 안에 답이 없으면 ``OllamaReplyError``.
    """
    try:
        return generate_model_scores(
            test_data, json_key, model=model, url=url, show_progress=show_progress, timeout=timeout
        )
    except TimeoutError:
        raise OllamaReplyError(
            f"Ollama 서버({url})가 {timeout:g}초 안에 답하지 않았습니다. --timeout 을 늘리거나 서버 상태를 확인하세요."
        ) from None
    except ConnectionError:
        raise
    except RuntimeError as error:  # Ollama 가 돌려준 오류(HTTP 오류, {"error": ...})는 그 메시지 그대로
        raise OllamaReplyError(str(error)) from None
    except (ValueError, AttributeError, TypeError, KeyError, UnicodeDecodeError) as error:
        raise OllamaReplyError(
            f"Ollama 서버({url})의 답이 JSON 이 아니거나 기대한 모양({{'message': {{'content': ...}}}})이 아닙니다"
            f"({error}). --url 이 Ollama 의 /api/chat 주소인지 확인하세요."
        ) from None


def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--file",
        "--file-path",
        type=existing_file,
        default="instruction-data-with-response.json",
        help="model_response 가 든 json 파일 (기본: instruction-data-with-response.json)",
    )
    parser.add_argument("--model", default="llama3", help="심판으로 쓸 Ollama 모델 (기본: llama3)")
    parser.add_argument(
        "--url",
        default=os.environ.get("LLMFS_OLLAMA_URL", DEFAULT_OLLAMA_URL),
        help=f"Ollama chat API 주소 (기본: 환경 변수 LLMFS_OLLAMA_URL 또는 {DEFAULT_OLLAMA_URL})",
    )
    parser.add_argument("--json-key", default="model_response", help="채점할 응답의 키 (기본: model_response)")
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        help=f"요청 하나를 기다릴 최대 시간(초, 0보다 큼) (기본: {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        default=QUICK,
        help=f"앞의 {QUICK_NUM_ENTRIES}개 항목만 채점한다 (LLMFS_QUICK=1 과 같음)",
    )
    args = parser.parse_args(argv)

    try:
        test_data = load_responses(args.file, args.json_key)
    except ResponseFileError as error:
        parser.error(str(error))
    if args.quick:
        test_data = test_data[:QUICK_NUM_ENTRIES]
    print(f"항목 수: {len(test_data)}")

    if not check_if_running(args.url):
        print(
            f"Ollama 서버({args.url})에 연결할 수 없어 채점을 건너뜁니다. "
            "'ollama serve' 로 서버를 띄우고 다시 실행하세요."
        )
        return None

    try:
        scores = score_responses(test_data, args.json_key, args.model, args.url, args.timeout)
    except (OllamaReplyError, ConnectionError) as error:
        sys.exit(f"오류: {error}")
    print(f"점수 개수: {len(scores)} / {len(test_data)}")
    if scores:
        print(f"평균 점수: {sum(scores) / len(scores):.2f}")
    return scores


if __name__ == "__main__":
    main()
