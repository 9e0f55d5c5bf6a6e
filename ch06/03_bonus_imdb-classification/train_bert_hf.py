"""IMDb 긍정/부정 분류: BERT 계열 인코더 모델을 Hugging Face ``transformers`` 로 미세 튜닝한다.

먼저 ``python download_prepare_dataset.py`` 로 CSV를 만든 뒤:

    python train_bert_hf.py --model distilbert                 # 허브에서 모델을 받는다
    python train_bert_hf.py --model modernbert-base --trainable-layers all
    python train_bert_hf.py --model roberta --use-attention-mask false
    python train_bert_hf.py --model ./my-local-model           # 로컬 폴더(save_pretrained 로 저장한 것)

``AutoModelForSequenceClassification`` 이 모델마다 분류 헤드(2 클래스)를 새로 붙인다.
``--trainable-layers`` 는 all(전부), last_block(마지막 인코더 블록+풀러+헤드), last_layer(헤드만)다.
``--use-attention-mask false`` 면 어텐션 마스크를 주지 않아 패딩 토큰도 어텐션에 들어간다.

SMS 스팸 데이터로 같은 일을 하는 ``train_bert_hf_spam.py`` 가 이 파일의 함수를 가져다 쓴다.
"""

import argparse
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from llm_from_scratch.utils import QUICK, ArgumentParser, get_device, set_seed

# 짧은 이름 -> Hugging Face 허브 이름(원서 저장소와 같은 이름을 쓴다)
MODELS = {
    "distilbert": "distilbert/distilbert-base-uncased",
    "bert": "google-bert/bert-base-uncased",
    "roberta": "FacebookAI/roberta-large",
    "modernbert-base": "answerdotai/ModernBERT-base",
    "modernbert-large": "answerdotai/ModernBERT-large",
    "deberta-v3-base": "microsoft/deberta-v3-base",
}
# 같은 모델의 다른 이름(이 저장소의 예전 이름)
MODEL_ALIASES = {"modernbert": "modernbert-base", "deberta-v3": "deberta-v3-base"}
TRAINABLE_LAYERS = ("all", "last_block", "last_layer")
SPLITS = ("train", "validation", "test")
QUICK_SETTINGS = {"num_epochs": 1, "max_steps": 3, "num_eval_batches": 2}


def resolve_model_name(model):
    """짧은 이름이면 허브 이름으로, 로컬 폴더면 그 경로로. 둘 다 아니면 ValueError."""
    model = MODEL_ALIASES.get(model, model)
    if model in MODELS:
        return MODELS[model]
    if Path(model).is_dir():
        return str(model)
    names = ", ".join([*MODELS, *MODEL_ALIASES])
    raise ValueError(f"알 수 없는 모델 {model!r} 입니다. {names} 중 하나나 로컬 모델 폴더를 주세요.")


def parse_bool(value):
    """``--use-attention-mask`` 값: true/false(원서의 표기), yes/no, 1/0."""
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"true 또는 false 여야 합니다(받은 값: {value!r}).")


def encoder_blocks(model):
    """인코더 블록 목록: 모델 안에서 가장 긴 ``nn.ModuleList`` (BERT·RoBERTa·DeBERTa 의 encoder.layer 등)."""
    lists = [module for module in model.modules() if isinstance(module, torch.nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(model).__name__} 에서 인코더 블록 목록을 찾지 못했습니다.")
    return max(lists, key=len)


def set_trainable_layers(model, trainable_layers):
    """``trainable_layers`` 에 맞게 ``requires_grad`` 를 정한다(제자리에서). 분류 헤드는 늘 훈련한다.

    헤드는 기반 모델(``model.base_model``) 밖의 모든 파라미터다(모델마다 classifier, pre_classifier, head 등 이름이 다르다).
    """
    if trainable_layers not in TRAINABLE_LAYERS:
        raise ValueError(
            f"trainable_layers 는 {', '.join(TRAINABLE_LAYERS)} 중 하나여야 합니다(받은 값: {trainable_layers!r})."
        )
    for param in model.parameters():
        param.requires_grad = trainable_layers == "all"
    base_params = {id(p) for p in model.base_model.parameters()}
    for param in model.parameters():
        if id(param) not in base_params:
            param.requires_grad = True
    if trainable_layers == "last_block":
        modules = [encoder_blocks(model)[-1]]
        for name in ("pooler", "final_norm"):  # BERT 의 풀러, ModernBERT 의 마지막 층 정규화
            if getattr(model.base_model, name, None) is not None:
                modules.append(getattr(model.base_model, name))
        for module in modules:
            for param in module.parameters():
                param.requires_grad = True
    return model


def make_loader(df, tokenizer, max_length, batch_size, shuffle=False, seed=123, use_attention_mask=True):
    """(Text, Label) 데이터프레임을 토큰화하는 데이터 로더. 배치마다 가장 긴 텍스트에 맞춰 채운다.

    ``use_attention_mask`` 가 거짓이면 배치에서 ``attention_mask`` 를 빼므로, 모델은 패딩 토큰도 진짜 토큰처럼 본다.
    """
    texts = df["Text"].fillna("").astype(str).tolist()
    labels = df["Label"].astype(int).tolist()

    def collate(batch):
        encoded = tokenizer([text for text, _ in batch], truncation=True, max_length=max_length, padding=True,
                            return_tensors="pt")
        if not use_attention_mask:
            encoded.pop("attention_mask", None)
        encoded["labels"] = torch.tensor([label for _, label in batch])
        return encoded

    generator = torch.Generator().manual_seed(seed)
    return DataLoader(list(zip(texts, labels, strict=True)), batch_size=batch_size, shuffle=shuffle,
                      collate_fn=collate, generator=generator)


@torch.no_grad()
def accuracy(model, loader, device, num_batches=None):
    model.eval()
    correct, total = 0, 0
    for i, batch in enumerate(loader):
        if num_batches is not None and i >= num_batches:
            break
        batch = {key: value.to(device) for key, value in batch.items()}
        predictions = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.argmax(dim=-1)
        correct += (predictions == batch["labels"]).sum().item()
        total += len(predictions)
    return correct / total if total else float("nan")


def build_parser(description, default_data_dir=".", data_help="train/validation/test.csv 가 있는 폴더"):
    """두 스크립트(IMDb, SMS 스팸)가 함께 쓰는 옵션. 원서의 밑줄 표기(--use_attention_mask 등)도 받는다."""
    parser = ArgumentParser(description=description)
    parser.add_argument("--model", "--bert-model", default="distilbert",
                        help=f"{', '.join(MODELS)} 중 하나나 로컬 모델 폴더(기본: distilbert)")
    parser.add_argument("--trainable-layers", default="all", choices=TRAINABLE_LAYERS,
                        help="훈련할 층: all(기본), last_block, last_layer")
    parser.add_argument("--use-attention-mask", type=parse_bool, nargs="?", const=True, default=True,
                        metavar="{true,false}",
                        help="패딩 토큰을 가리는 어텐션 마스크를 줄지(기본: true). false 면 패딩도 어텐션에 들어간다")
    parser.add_argument("--data-dir", default=default_data_dir, help=f"{data_help}(기본: {default_data_dir})")
    parser.add_argument("--max-length", type=int, default=256, help="텍스트를 자를 토큰 수(기본: 256)")
    parser.add_argument("--num-epochs", type=int, default=1, help="에포크 수(기본: 1)")
    parser.add_argument("--batch-size", type=int, default=8, help="배치 크기(기본: 8)")
    parser.add_argument("--lr", "--learning-rate", type=float, default=5e-6, help="AdamW 학습률(기본: 5e-6)")
    parser.add_argument("--max-steps", type=int, default=None, help="이 스텝 수만큼만 훈련한다")
    parser.add_argument("--seed", type=int, default=123, help="난수 시드(기본: 123)")
    parser.add_argument("--device", default=None, help="cuda, mps, cpu 중 하나(기본: 자동 선택)")
    parser.add_argument("--quick", action=argparse.BooleanOptionalAction, default=QUICK,
                        help="몇 스텝만 훈련한다(LLMFS_QUICK=1 이면 기본으로 켜짐, --no-quick 으로 끔)")
    return parser


def check_args(parser, args):
    """읽은 옵션을 일을 시작하기 전에 검사한다(잘못되면 argparse 오류로 멈춘다)."""
    for name in ("max_length", "num_epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} 는 1 이상이어야 합니다(받은 값: {getattr(args, name)}).")
    if args.max_steps is not None and args.max_steps < 1:
        parser.error(f"--max-steps 는 1 이상이어야 합니다(받은 값: {args.max_steps}).")
    if not args.lr > 0:
        parser.error(f"--lr 은 0보다 커야 합니다(받은 값: {args.lr}).")
    try:
        args.model_name = resolve_model_name(args.model)
    except ValueError as error:
        parser.error(str(error))
    return args


def parse_args(argv=None):
    parser = build_parser("IMDb 긍정/부정 분류: BERT 계열 모델 미세 튜닝(transformers).")
    args = check_args(parser, parser.parse_args(argv))
    missing = [f"{name}.csv" for name in SPLITS if not (Path(args.data_dir) / f"{name}.csv").is_file()]
    if missing:
        parser.error(f"{args.data_dir} 에 {', '.join(missing)} 이(가) 없습니다. 먼저 download_prepare_dataset.py 를 실행하세요.")
    return args


def load_model(model_name, trainable_layers):
    """허브 이름이나 로컬 폴더에서 토크나이저와 2 클래스 분류 모델을 읽고 훈련할 층을 정한다."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_name)
    model = AutoModelForSequenceClassification.from_pretrained(model_name, num_labels=2)
    return tokenizer, set_trainable_layers(model, trainable_layers)


def train_and_evaluate(args, splits):
    """``splits`` ({"train": df, "validation": df, "test": df})로 훈련하고 세 세트의 정확도를 돌려준다."""
    max_steps, num_epochs, num_eval_batches = args.max_steps, args.num_epochs, None
    if args.quick:
        max_steps, num_epochs, num_eval_batches = (QUICK_SETTINGS[k] for k in ("max_steps", "num_epochs",
                                                                                "num_eval_batches"))
    device = get_device(args.device)
    set_seed(args.seed)
    tokenizer, model = load_model(args.model_name, args.trainable_layers)
    model.to(device)
    num_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"모델: {args.model_name} | 장치: {device} | 훈련할 파라미터: {num_trainable:,}개 | "
          f"어텐션 마스크: {'씀' if args.use_attention_mask else '안 씀'}")

    loaders = {name: make_loader(df, tokenizer, args.max_length, args.batch_size, shuffle=name == "train",
                                 seed=args.seed, use_attention_mask=args.use_attention_mask)
               for name, df in splits.items()}
    optimizer = torch.optim.AdamW((p for p in model.parameters() if p.requires_grad), lr=args.lr)
    start, step = time.time(), 0
    for epoch in range(num_epochs):
        model.train()
        for batch in tqdm(loaders["train"], desc=f"에포크 {epoch + 1}"):
            batch = {key: value.to(device) for key, value in batch.items()}
            optimizer.zero_grad()
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        print(f"에포크 {epoch + 1}: 마지막 배치 손실 {loss.item():.3f}, "
              f"검증 정확도 {accuracy(model, loaders['validation'], device, num_eval_batches) * 100:.2f}%")
        if max_steps is not None and step >= max_steps:
            break
    print(f"훈련 시간: {(time.time() - start) / 60:.2f}분")
    accuracies = {name: accuracy(model, loader, device, num_eval_batches) for name, loader in loaders.items()}
    print(f"훈련 정확도: {accuracies['train'] * 100:.2f}% | 검증 정확도: {accuracies['validation'] * 100:.2f}% | "
          f"테스트 정확도: {accuracies['test'] * 100:.2f}%")
    return accuracies


def main(argv=None):
    """IMDb CSV로 훈련하고 {"train": …, "validation": …, "test": …} 정확도를 돌려준다."""
    args = parse_args(argv)
    splits = {name: pd.read_csv(Path(args.data_dir) / f"{name}.csv") for name in SPLITS}
    return train_and_evaluate(args, splits)


if __name__ == "__main__":
    main()
