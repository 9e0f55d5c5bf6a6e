"""6장의 SMS 스팸 분류를 BERT 계열 인코더 모델(Hugging Face ``transformers``)로 미세 튜닝한다.

데이터 준비(내려받기, 햄·스팸 균형 맞추기, 70/10/20 분할)는 6장 모듈(``llm_from_scratch.ch06.prepare_spam_data``)을,
모델 읽기·훈련할 층 고르기·어텐션 마스크·훈련 루프는 옆의 ``train_bert_hf.py`` 를 그대로 쓴다.
GPT-2로 같은 데이터를 분류한 6장의 결과(테스트 정확도 약 95%)와 비교해 볼 수 있다.

    python train_bert_hf_spam.py                               # DistilBERT, 모든 층, 어텐션 마스크 씀
    python train_bert_hf_spam.py --model bert --trainable-layers last_block
    python train_bert_hf_spam.py --model roberta --use-attention-mask false

CSV는 ``--data-dir`` (기본: sms_spam_data)에 만든다. IMDb CSV(이 폴더의 train.csv 등)와 섞이지 않게 폴더를 나눴다.
"""

import importlib.util
from pathlib import Path

import pandas as pd

from llm_from_scratch.ch06 import prepare_spam_data

HERE = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = "sms_spam_data"


def _load_shared():
    """같은 폴더의 ``train_bert_hf.py`` 를 모듈로 읽는다(이 폴더는 패키지가 아니므로 경로로 읽는다)."""
    spec = importlib.util.spec_from_file_location("imdb_train_bert_hf", HERE / "train_bert_hf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shared = _load_shared()


def load_spam_splits(folder):
    """``folder`` 의 SMS 스팸 CSV 세 개를 읽는다. 하나도 없으면 6장 코드로 받아 만든다.

    일부만 있으면 그 파일이 사용자의 다른 데이터일 수 있으므로 덮어쓰지 않고 멈춘다.
    """
    folder = Path(folder)
    paths = {name: folder / f"{name}.csv" for name in shared.SPLITS}
    existing = [path.name for path in paths.values() if path.exists()]
    if not existing:
        folder.mkdir(parents=True, exist_ok=True)
        prepare_spam_data(folder)
    elif len(existing) < len(paths):
        raise FileExistsError(
            f"{folder} 에 {', '.join(existing)} 만 있습니다. 덮어쓰지 않으려고 멈췄습니다. "
            "세 파일(train/validation/test.csv)을 모두 두거나 빈 폴더를 --data-dir 로 주세요."
        )
    return {name: pd.read_csv(path) for name, path in paths.items()}


def parse_args(argv=None):
    parser = shared.build_parser(
        "SMS 스팸 분류: BERT 계열 모델 미세 튜닝(6장 데이터, transformers).",
        default_data_dir=DEFAULT_DATA_DIR,
        data_help="SMS 스팸 train/validation/test.csv 를 두는 폴더(없으면 받아서 만든다)",
    )
    args = shared.check_args(parser, parser.parse_args(argv))
    if Path(args.data_dir).exists() and not Path(args.data_dir).is_dir():
        parser.error(f"--data-dir {args.data_dir!r} 는 폴더가 아니라 파일입니다. 폴더 경로를 주세요.")
    existing = [f"{name}.csv" for name in shared.SPLITS if (Path(args.data_dir) / f"{name}.csv").exists()]
    if 0 < len(existing) < len(shared.SPLITS):
        parser.error(
            f"{args.data_dir} 에 {', '.join(existing)} 만 있습니다. 덮어쓰지 않으려고 멈췄습니다. "
            "세 파일(train/validation/test.csv)을 모두 두거나 빈 폴더를 --data-dir 로 주세요."
        )
    return args


def main(argv=None):
    """SMS 스팸 데이터로 훈련하고 {"train": …, "validation": …, "test": …} 정확도를 돌려준다."""
    args = parse_args(argv)
    return shared.train_and_evaluate(args, load_spam_splits(args.data_dir))


if __name__ == "__main__":
    main()
