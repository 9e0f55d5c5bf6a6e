"""IMDb 긍정/부정 분류의 기준선: 단어 수 세기(CountVectorizer) + 로지스틱 회귀, 그리고 가장 많은 클래스만 답하는 더미 분류기.

먼저 ``python download_prepare_dataset.py`` 로 CSV를 만든 뒤 ``python train_sklearn_logreg.py``.
"""

from pathlib import Path

import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from llm_from_scratch.utils import ArgumentParser

SPLITS = ("train", "validation", "test")


def load_splits(data_dir):
    """``data_dir`` 의 train/validation/test.csv 를 {"train": df, …} 로 읽는다."""
    paths = {name: Path(data_dir) / f"{name}.csv" for name in SPLITS}
    missing = [path.name for path in paths.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{data_dir} 에 {', '.join(missing)} 이(가) 없습니다. 먼저 download_prepare_dataset.py 를 실행하세요."
        )
    return {name: pd.read_csv(path) for name, path in paths.items()}


def fit_baselines(train_df):
    """단어 수 세기 벡터라이저와 두 분류기(더미, 로지스틱 회귀)를 훈련 세트로 맞춰 돌려준다."""
    vectorizer = CountVectorizer(lowercase=True, max_df=0.95)
    features = vectorizer.fit_transform(train_df["Text"].fillna(""))
    models = {"dummy": DummyClassifier(strategy="most_frequent"), "logreg": LogisticRegression(max_iter=1000)}
    for model in models.values():
        model.fit(features, train_df["Label"])
    return vectorizer, models


def train_and_evaluate(splits):
    """두 분류기를 훈련 세트로 맞추고 세 세트의 정확도를 {"dummy": {...}, "logreg": {...}} 로 돌려준다."""
    vectorizer, models = fit_baselines(splits["train"])
    features = {name: vectorizer.transform(splits[name]["Text"].fillna("")) for name in SPLITS}
    return {
        model_name: {name: accuracy_score(splits[name]["Label"], model.predict(features[name])) for name in SPLITS}
        for model_name, model in models.items()
    }


def main(argv=None):
    parser = ArgumentParser(description="IMDb 기준선: CountVectorizer + 로지스틱 회귀, 더미 분류기.")
    parser.add_argument("--data-dir", default=".", help="train/validation/test.csv 가 있는 폴더(기본: 현재 폴더)")
    args = parser.parse_args(argv)
    results = train_and_evaluate(load_splits(args.data_dir))
    for model_name, title in (("dummy", "더미 분류기(가장 많은 클래스)"), ("logreg", "로지스틱 회귀")):
        accs = results[model_name]
        print(f"{title}: 훈련 {accs['train'] * 100:.2f}% | 검증 {accs['validation'] * 100:.2f}% | "
              f"테스트 {accs['test'] * 100:.2f}%")
    return results


if __name__ == "__main__":
    main()
