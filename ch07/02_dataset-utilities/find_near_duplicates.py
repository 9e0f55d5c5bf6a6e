"""지시 데이터셋에서 거의 같은 항목 쌍을 찾는다(키마다 따로).

문장을 소문자로 바꾸고 문장 부호를 지운 뒤, 문자 n-그램(기본 1~3글자)의 TF-IDF 벡터를 만들고 코사인 유사도가
``--threshold`` 보다 큰 쌍을 보고한다. 단어가 아니라 글자 조각을 보므로 "sentence"와 "sentences" 같은 작은 차이에도
유사도가 높게 나온다. ``--remove-duplicates`` 를 주면 각 쌍에서 앞의 항목만 남긴 새 JSON 파일을 쓴다(입력 파일은 건드리지 않는다).

    python find_near_duplicates.py
    python find_near_duplicates.py --json-file my-data.json --threshold 0.85 --remove-duplicates
"""

import json
import re
import sys
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from llm_from_scratch.utils import ArgumentParser

DEFAULT_JSON = Path(__file__).resolve().parent / "instruction-examples.json"


def preprocess_text(text):
    """소문자로 바꾸고 문장 부호를 지운다(대소문자와 마침표 차이는 중복 판단에 넣지 않는다)."""
    return re.sub(r"[^\w\s]", "", text.lower())


def find_near_duplicates(texts, threshold=0.9, ngram_range=(1, 3)):
    """``texts`` 에서 코사인 유사도가 ``threshold`` 보다 큰 쌍 ``(i, j, 유사도)`` 목록(i < j, 나온 순서).

    빈 문자열은 벡터가 0이라 어떤 것과도 유사도가 0이다(입력이 없는 항목끼리는 중복이 아니다).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold 는 0과 1 사이여야 합니다(받은 값: {threshold}).")
    cleaned = [preprocess_text(text) for text in texts]
    if len(cleaned) < 2 or not any(cleaned):
        return []
    vectors = TfidfVectorizer(analyzer="char", ngram_range=ngram_range).fit_transform(cleaned)
    similarity = cosine_similarity(vectors)
    pairs = []
    for i in range(len(cleaned)):
        for j in range(i + 1, len(cleaned)):
            if similarity[i, j] > threshold:
                pairs.append((i, j, float(similarity[i, j])))
    return pairs


def find_all_near_duplicates(data, threshold=0.9, keys=None):
    """항목 리스트에서 키마다 거의 같은 쌍을 찾는다. ``keys`` 가 None 이면 첫 항목의 문자열 키 전부.

    Returns:
        {키: [(i, j, 유사도), ...]}
    """
    if not isinstance(data, list) or not data or not all(isinstance(entry, dict) for entry in data):
        raise ValueError("데이터는 딕셔너리 항목들의 비어 있지 않은 리스트여야 합니다(지시 데이터셋 JSON 형식).")
    if keys is None:
        keys = [key for key, value in data[0].items() if isinstance(value, str)]
    result = {}
    for key in keys:
        missing = [index for index, entry in enumerate(data) if not isinstance(entry.get(key), str)]
        if missing:
            raise KeyError(f"{len(missing)}개 항목(처음: {missing[0]}번)에 문자열 키 {key!r} 가 없습니다.")
        result[key] = find_near_duplicates([entry[key] for entry in data], threshold)
    return result


def remove_near_duplicates(data, pairs_by_key):
    """각 쌍에서 뒤의 항목을 뺀 새 리스트(앞의 항목을 남긴다). 원래 리스트는 바꾸지 않는다."""
    drop = {j for pairs in pairs_by_key.values() for _, j, _ in pairs}
    return [entry for index, entry in enumerate(data) if index not in drop]


def format_report(data, pairs_by_key):
    """키마다 찾은 쌍을 사람이 읽을 글로 만든다."""
    lines = []
    for key, pairs in pairs_by_key.items():
        lines.append(f"==== 키 {key!r}: 비슷한 쌍 {len(pairs)}개 ====")
        for i, j, score in pairs:
            lines.append(f"{score:.2f} | [{i}] {data[i][key]!r}")
            lines.append(f"     | [{j}] {data[j][key]!r}")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = ArgumentParser(description="지시 데이터셋(JSON)에서 거의 같은 항목 쌍을 키마다 찾습니다.")
    parser.add_argument("--json-file", type=Path, default=DEFAULT_JSON,
                        help="읽을 JSON 파일(기본: 이 폴더의 instruction-examples.json)")
    parser.add_argument("--threshold", type=float, default=0.9,
                        help="이 값보다 코사인 유사도가 크면 비슷한 쌍으로 봅니다(0~1, 기본 0.9)")
    parser.add_argument("--keys", nargs="+", default=None,
                        help="비교할 키(기본: 첫 항목의 문자열 키 전부, 예: instruction input output)")
    parser.add_argument("--remove-duplicates", action="store_true",
                        help="각 쌍에서 앞의 항목만 남긴 JSON을 새 파일로 씁니다")
    parser.add_argument("--json-output-file", type=Path, default=None,
                        help="정리한 JSON을 쓸 파일(기본: 입력 이름에 -deduplicated를 붙인 파일). 이미 있으면 멈춥니다")
    args = parser.parse_args(argv)

    if not args.json_file.is_file():
        parser.error(f"JSON 파일 {args.json_file} 이 없습니다. --json-file 로 경로를 주세요.")
    if not 0.0 <= args.threshold <= 1.0:
        parser.error(f"--threshold 는 0과 1 사이여야 합니다(받은 값: {args.threshold}).")
    if args.remove_duplicates:
        if args.json_output_file is None:
            args.json_output_file = args.json_file.with_name(f"{args.json_file.stem}-deduplicated.json")
        if args.json_output_file.resolve() == args.json_file.resolve():
            parser.error("--json-output-file 이 입력 파일과 같습니다. 입력 파일을 덮어쓰지 않도록 다른 이름을 주세요.")
        if args.json_output_file.exists():
            parser.error(f"{args.json_output_file} 이 이미 있습니다. 덮어쓰지 않으니 지우거나 다른 이름을 주세요.")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        data = json.loads(args.json_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        sys.exit(f"{args.json_file} 을 JSON으로 읽지 못했습니다: {error}")
    except UnicodeDecodeError as error:
        sys.exit(
            f"{args.json_file} 은(는) UTF-8 텍스트가 아닙니다({error.start + 1:,}번째 바이트 {error.object[error.start:error.start + 1]!r}). "
            "JSON 파일을 UTF-8 로 저장한 뒤 다시 실행하세요."
        )
    pairs_by_key = find_all_near_duplicates(data, args.threshold, args.keys)
    print(f"{args.json_file.name}: 항목 {len(data)}개, 임계값 {args.threshold}")
    print(format_report(data, pairs_by_key))

    if args.remove_duplicates:
        cleaned = remove_near_duplicates(data, pairs_by_key)
        args.json_output_file.write_text(json.dumps(cleaned, indent=4, ensure_ascii=False), encoding="utf-8")
        print(f"항목 {len(data) - len(cleaned)}개를 빼고 {len(cleaned)}개를 {args.json_output_file.name} 에 썼습니다.")
    return pairs_by_key


if __name__ == "__main__":
    main()
