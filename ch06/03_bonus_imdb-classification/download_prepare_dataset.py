"""IMDb 영화 리뷰 데이터(aclImdb, 긍정/부정 50,000개)를 받아 풀고, 섞어서 train/validation/test CSV로 나눈다.

    python download_prepare_dataset.py                 # 현재 폴더에 aclImdb_v1.tar.gz, aclImdb/, CSV 세 개

- 내려받기는 공용 도구(``llm_from_scratch.download.download_file``)가 맡는다(캐시, 이어 받기, 크기 확인, 미러 폴더).
- 압축은 안전하게 푼다: 폴더 밖으로 나가는 경로(``../``, 절대 경로)나 링크·장치 파일이 하나라도 있으면 아무것도 풀지 않는다.
- 시드 123으로 섞어 35,000 / 5,000 / 10,000개(70% / 10% / 20%)로 나누고, 6장의 CSV 형식(열: Text, Label;
  긍정 1, 부정 0)으로 저장한다. 6장의 ``random_split`` 을 그대로 쓴다.
"""

import tarfile
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from llm_from_scratch.ch06 import random_split
from llm_from_scratch.download import download_file
from llm_from_scratch.utils import ArgumentParser

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SIZE = 84_125_825  # 바이트
EXTRACTED_DIR = "aclImdb"
CSV_NAMES = ("train.csv", "validation.csv", "test.csv")
LABELS = {"pos": 1, "neg": 0}


def check_tar_members(archive, target_dir):
    """모든 항목이 ``target_dir`` 안에 놓이는 보통 파일이나 폴더인지 확인한다. 아니면 ValueError.

    하나라도 수상하면 풀기 전에 멈추므로 아무것도 쓰이지 않는다.
    """
    target = Path(target_dir).resolve()
    for member in archive.getmembers():
        if not (member.isfile() or member.isdir()):
            raise ValueError(
                f"압축 파일의 항목 {member.name!r} 은 보통 파일이나 폴더가 아니라(링크·장치 파일 등) 풀지 않았습니다. "
                "믿을 수 있는 원본 파일인지 확인하세요."
            )
        destination = (target / member.name).resolve()
        if destination != target and not destination.is_relative_to(target):
            raise ValueError(
                f"압축 파일의 항목 {member.name!r} 은 대상 폴더 밖에 풀리게 되어 있어 풀지 않았습니다. "
                "믿을 수 있는 원본 파일인지 확인하세요."
            )


def safe_extract_tar(tar_path, target_dir):
    """tar(.gz) 파일을 ``target_dir`` 에 안전하게 푼다(``check_tar_members`` 를 모두 통과해야 푼다)."""
    target_dir = Path(target_dir)
    with tarfile.open(tar_path) as archive:
        check_tar_members(archive, target_dir)
        target_dir.mkdir(parents=True, exist_ok=True)
        members = archive.getmembers()
        # 파이썬 3.12+(와 보안 패치된 3.10/3.11)의 "data" 필터가 한 번 더 막는다
        extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        for member in tqdm(members, desc="압축 풀기", unit="파일"):
            archive.extract(member, target_dir, **extra)
    return target_dir


def read_reviews(extracted_dir):
    """aclImdb/{train,test}/{pos,neg}/*.txt 를 모두 읽어 (Text, Label) 데이터프레임으로 돌려준다."""
    extracted_dir = Path(extracted_dir)
    files = [
        (path, label)
        for split in ("train", "test")
        for name, label in LABELS.items()
        for path in sorted((extracted_dir / split / name).glob("*.txt"))
    ]
    if not files:
        raise FileNotFoundError(
            f"{extracted_dir} 에 train/pos 같은 리뷰 폴더가 없습니다. aclImdb 압축을 푼 폴더를 주세요."
        )
    rows = [
        {"Text": path.read_text(encoding="utf-8"), "Label": label}
        for path, label in tqdm(files, desc="리뷰 읽기", unit="파일")
    ]
    return pd.DataFrame(rows)


def split_and_save(df, folder, seed=123):
    """시드 ``seed`` 로 섞어 70/10/20 으로 나누고 CSV 세 개로 저장한다. 저장한 경로들을 돌려준다."""
    paths = tuple(Path(folder) / name for name in CSV_NAMES)
    for part, path in zip(random_split(df, 0.7, 0.1, random_state=seed), paths, strict=True):
        part.to_csv(path, index=False)
    return paths


POSITIVE_WORDS = ("wonderful", "moving", "brilliant", "funny", "beautiful", "superb", "charming", "great")
NEGATIVE_WORDS = ("boring", "awful", "dull", "clumsy", "terrible", "weak", "predictable", "bad")
NEUTRAL_WORDS = ("the", "movie", "film", "plot", "actors", "scene", "story", "music", "ending", "director", "was")


def synthetic_reviews(num_reviews=2_000, seed=123):
    """IMDb를 받을 수 없을 때 쓰는 작은 가짜 리뷰 데이터(Text, Label). 긍정 리뷰에 긍정 단어가 더 자주 나온다.

    단어 몇 개가 레이블을 거의 정하므로 실제 IMDb보다 훨씬 쉽다(코드 경로를 보여 주는 용도다).
    """
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(num_reviews):
        label = i % 2
        cue, other = (POSITIVE_WORDS, NEGATIVE_WORDS) if label == 1 else (NEGATIVE_WORDS, POSITIVE_WORDS)
        words = [rng.choice(NEUTRAL_WORDS) for _ in range(rng.randint(8, 20))]
        words += [rng.choice(cue) for _ in range(rng.randint(1, 3))]
        words += [rng.choice(other) for _ in range(rng.randint(0, 1))]
        rng.shuffle(words)
        rows.append({"Text": " ".join(words).capitalize() + ".", "Label": label})
    return pd.DataFrame(rows)


def main(argv=None):
    parser = ArgumentParser(description="IMDb 리뷰 데이터를 받아 train/validation/test CSV로 나눈다.")
    parser.add_argument("--output-dir", default=".", help="압축 파일, 푼 폴더, CSV를 둘 폴더(기본: 현재 폴더)")
    parser.add_argument("--seed", type=int, default=123, help="섞을 때 쓰는 시드(기본: 123)")
    args = parser.parse_args(argv)
    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)

    existing = [name for name in CSV_NAMES if (folder / name).exists()]
    if existing:
        print(f"{', '.join(existing)} 이(가) 이미 있어 다시 만들지 않습니다(새로 만들려면 먼저 지우세요).")
        return tuple(folder / name for name in CSV_NAMES)
    if not (folder / EXTRACTED_DIR).is_dir():
        tar_path = download_file(IMDB_URL, folder / "aclImdb_v1.tar.gz", expected_size=IMDB_SIZE)
        safe_extract_tar(tar_path, folder)
    df = read_reviews(folder / EXTRACTED_DIR)
    paths = split_and_save(df, folder, args.seed)
    sizes = [len(pd.read_csv(path)) for path in paths]
    print(f"리뷰 {len(df):,}개 -> 훈련 {sizes[0]:,} / 검증 {sizes[1]:,} / 테스트 {sizes[2]:,}개를 CSV로 저장했습니다.")
    return paths


if __name__ == "__main__":
    main()
