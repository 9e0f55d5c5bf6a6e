"""7장 스크립트: 미세 튜닝한 모델의 응답을 Ollama 의 심판 모델(기본 llama3)로 0~100점 채점한다 (7.8절).

먼저 Ollama 를 설치하고 ``ollama serve`` 로 서버를 띄운 뒤 ``ollama pull llama3`` 로 모델을 받아 두세요.

    python ollama_evaluate.py --file instruction-data-with-response.json

서버 주소는 ``--url`` 이나 환경 변수 ``LLMFS_OLLAMA_URL`` 로 바꿀 수 있다(기본: http://localhost:11434/api/chat).
서버에 연결할 수 없으면 그렇게 알리고 채점을 건너뛴다(오류로 끝나지 않는다).
"""

import argparse
import json
import os
from pathlib import Path

from llm_from_scratch.ch07 import DEFAULT_OLLAMA_URL, check_if_running, generate_model_scores
from llm_from_scratch.utils import QUICK

QUICK_NUM_ENTRIES = 3  # 빠른 모드에서 채점할 항목 수


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--file",
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
        "--quick",
        action="store_true",
        default=QUICK,
        help=f"앞의 {QUICK_NUM_ENTRIES}개 항목만 채점한다 (LLMFS_QUICK=1 과 같음)",
    )
    args = parser.parse_args(argv)

    path = Path(args.file)
    if not path.is_file():
        parser.error(f"파일 {args.file} 이 없습니다. 먼저 gpt_instruction_finetuning.py 로 응답 파일을 만드세요.")
    with open(path, encoding="utf-8") as f:
        test_data = json.load(f)
    if args.quick:
        test_data = test_data[:QUICK_NUM_ENTRIES]
    print(f"항목 수: {len(test_data)}")

    if not check_if_running(args.url):
        print(
            f"Ollama 서버({args.url})에 연결할 수 없어 채점을 건너뜁니다. "
            "'ollama serve' 로 서버를 띄우고 다시 실행하세요."
        )
        return None

    scores = generate_model_scores(test_data, args.json_key, model=args.model, url=args.url)
    print(f"점수 개수: {len(scores)} / {len(test_data)}")
    if scores:
        print(f"평균 점수: {sum(scores) / len(scores):.2f}")
    return scores


if __name__ == "__main__":
    main()
