"""책의 예제 코드(리스팅)가 장 노트북의 코드 셀에 있고, 요약 모듈의 코드와 같은지 확인한다.

d2l 방식: 독자가 노트북에서 읽는 코드가 뒤의 장이 가져다 쓰는 모듈의 코드와 같아야 한다. 노트북의 코드 셀을
ast 로 읽어 이름마다 (마지막) 정의를 찾고, 독스트링을 뺀 ``ast.dump`` 를 모듈의 정의와 비교한다(주석과 공백은
ast 에 남지 않으므로 달라도 된다).

새 장을 더하려면 ``LISTINGS`` 에 (노트북 경로, 모듈 이름, [이름들]) 한 줄을 더한다.
"""

import ast
import importlib
import inspect
import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# (저장소 기준 노트북 경로, 요약 모듈, 노트북이 책의 순서대로 보여 주는 리스팅 이름들)
LISTINGS = [
    (
        "ch02/01_main-chapter-code/ch02.ipynb",
        "llm_from_scratch.ch02",
        ["SimpleTokenizerV1", "SimpleTokenizerV2", "GPTDatasetV1", "create_dataloader_v1"],
    ),
    (
        "ch03/01_main-chapter-code/ch03.ipynb",
        "llm_from_scratch.ch03",
        ["SelfAttention_v1", "SelfAttention_v2", "CausalAttention", "MultiHeadAttentionWrapper", "MultiHeadAttention"],
    ),
    (
        "ch04/01_main-chapter-code/ch04.ipynb",
        "llm_from_scratch.ch04",
        ["LayerNorm", "GELU", "FeedForward", "TransformerBlock", "GPTModel", "generate_text_simple"],
    ),
    (
        "appendix-A/01_main-chapter-code/code-part1.ipynb",
        "llm_from_scratch.appendix_a",
        ["NeuralNetwork", "ToyDataset", "compute_accuracy"],
    ),
    (
        "ch05/01_main-chapter-code/ch05.ipynb",
        "llm_from_scratch.ch05",
        [
            "text_to_token_ids", "token_ids_to_text", "calc_loss_batch", "calc_loss_loader", "train_model_simple",
            "evaluate_model", "generate_and_print_sample", "generate", "assign", "load_weights_into_gpt",
        ],
    ),
    ("ch05/01_main-chapter-code/ch05.ipynb", "llm_from_scratch.ch05.ch05", ["_is_int"]),
    ("ch05/01_main-chapter-code/ch05.ipynb", "llm_from_scratch.ch05.gpt_download", ["_as_tensor"]),
    (
        "ch06/01_main-chapter-code/ch06.ipynb",
        "llm_from_scratch.ch06",
        [
            "create_balanced_dataset", "random_split", "SpamDataset", "calc_accuracy_loader", "calc_loss_batch",
            "calc_loss_loader", "evaluate_model", "train_classifier_simple", "plot_values", "classify_review",
        ],
    ),
    (
        "ch07/01_main-chapter-code/ch07.ipynb",
        "llm_from_scratch.ch07.ch07",  # 밑줄로 시작하는 검증 도우미까지 비교하려고 모듈 파일을 직접 본다
        [
            "_check_entry", "format_input", "_check_prompt_style", "InstructionDataset", "custom_collate_fn", "query_model",
            "generate_model_scores",
        ],
    ),
    (
        "appendix-D/01_main-chapter-code/appendix-D.ipynb",
        "llm_from_scratch.appendix_d.appendix_d",
        ["_check_int", "lr_at_step", "_gradients", "find_highest_gradient", "global_grad_norm", "train_model"],
    ),
    (
        "appendix-E/01_main-chapter-code/appendix-E.ipynb",
        "llm_from_scratch.appendix_e.appendix_e",
        ["_check_rank_and_alpha", "LoRALayer", "LinearWithLoRA", "replace_linear_with_lora"],
    ),
    (
        "ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb",
        "llm_from_scratch.llama.llama_model",
        ["RMSNorm", "SiLU", "FeedForward", "compute_rope_params", "apply_rope", "MultiHeadAttention",
         "TransformerBlock", "Llama2Model"],
    ),
    (
        "ch05/07_gpt_to_llama/converting-llama2-to-llama3.ipynb",
        "llm_from_scratch.llama.llama_model",
        ["GroupedQueryAttention", "scale_rope_frequencies", "Llama3Model"],
    ),
    (
        "ch05/07_gpt_to_llama/standalone-llama32.ipynb",
        "llm_from_scratch.llama.llama_model",
        ["RMSNorm", "SiLU", "FeedForward", "compute_rope_params", "apply_rope", "scale_rope_frequencies",
         "MultiHeadAttention", "GroupedQueryAttention", "TransformerBlock", "Llama2Model", "Llama3Model",
         "_next_token", "generate_cached"],
    ),
    (
        "ch05/07_gpt_to_llama/standalone-llama32.ipynb",
        "llm_from_scratch.llama.llama_tokenizer",
        ["_existing_file", "Llama3Tokenizer", "ChatFormat"],
    ),
    (
        "ch02/05_bpe-from-scratch/bpe-from-scratch.ipynb",
        "llm_from_scratch.bpe.bpe",  # 밑줄로 시작하는 도우미까지 비교하려고 모듈 파일을 직접 본다
        ["bytes_to_unicode", "_check_special_tokens", "BPETokenizerSimple"],
    ),
    (
        "ch07/04_preference-tuning-with-dpo/dpo-from-scratch.ipynb",
        "llm_from_scratch.dpo.dpo",
        [
            "PreferenceDataset", "preference_collate_fn", "create_preference_loaders", "compute_logprobs",
            "compute_dpo_loss", "compute_dpo_loss_batch", "compute_dpo_loss_loader", "evaluate_dpo_loss_loader",
            "_print_sample", "train_model_dpo", "plot_dpo_metrics",
        ],
    ),
    ("ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb", "llm_from_scratch.llama.llama_tokenizer", ["Llama2ChatFormat"]),
    # 보너스 폴더의 도우미 파일은 패키지가 아니므로(폴더 이름에 '-') 모듈 자리에 저장소 기준 .py 경로를 적는다
    (
        "ch03/02_bonus_efficient-multihead-attention/mha-implementations.ipynb",
        "ch03/02_bonus_efficient-multihead-attention/mha_variants.py",
        ["_check_heads", "_check_length", "_causal_mask", "MultiHeadAttentionWrapperWithProj",
         "MultiHeadAttentionCombinedQKV", "MHAEinsum", "MHAPyTorchSDPA", "MHAPyTorchSDPAMath", "MHAPyTorchClass",
         "MHAPyTorchFlexAttention", "_copy", "copy_weights_from_mha", "build_variants", "benchmark_ms"],
    ),
    (
        "ch04/02_performance-analysis/flops-analysis.ipynb",
        "ch04/02_performance-analysis/flops_analysis.py",
        ["gpt2_config", "_check_sizes", "count_forward_flops", "analytic_linear_flops", "analytic_attention_flops",
         "train_tokens_per_second", "activation_bytes_per_sample", "estimate_max_batch", "find_max_batch_cuda"],
    ),
    (
        "ch05/09_extending-tokenizers/extend-tiktoken.ipynb",
        "ch05/09_extending-tokenizers/extend_vocab.py",
        ["extend_encoding", "_grown_rows", "resize_token_embeddings"],
    ),
    (
        "ch05/08_memory_efficient_weight_loading/memory-efficient-state-dict.ipynb",
        "ch05/08_memory_efficient_weight_loading/memory_benchmark.py",
        ["save_per_tensor_files", "load_model", "PeakMemoryMonitor", "measure_in_this_process"],
    ),
    (
        "ch02/02_bonus_bytepair-encoder/compare-bpe-tiktoken.ipynb",
        "ch02/02_bonus_bytepair-encoder/tokenizer_comparison.py",
        ["get_pairs", "GPT2Encoder", "load_gpt2_encoder"],
    ),
]

_MAGIC = re.compile(r"^\s*[!%].*$", re.MULTILINE)  # IPython 매직(!git, %pip)은 파이썬 문법이 아니다


def _strip_docstrings(node):
    for child in ast.walk(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = child.body
            first = body[0] if body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                child.body = body[1:] or [ast.Pass()]
    return node


def _dump(node):
    return ast.dump(_strip_docstrings(node), include_attributes=False)


def notebook_definitions(notebook_path):
    """노트북 코드 셀의 맨 위 수준 정의를 셀 순서대로 모은다: [(이름, 셀 번호, ast 노드)]."""
    cells = json.loads(Path(notebook_path).read_text(encoding="utf-8"))["cells"]
    found = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = _MAGIC.sub("", "".join(cell["source"]))
        try:
            tree = ast.parse(source)
        except SyntaxError as error:
            raise AssertionError(
                f"{notebook_path}의 코드 셀 {index}을(를) 파이썬으로 읽을 수 없습니다({error}). 셀의 문법을 고치세요."
            ) from None
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.append((node.name, index, node))
    return found


def _module(module_name):
    """패키지 모듈 이름이면 import 하고, ``.py`` 로 끝나는 저장소 기준 경로면 그 파일을 읽는다(보너스 폴더의 도우미)."""
    if module_name.endswith(".py"):
        from support import load_module

        path = REPO_ROOT / module_name
        return sys.modules.get(f"listing_{path.stem}") or load_module(path, f"listing_{path.stem}")
    return importlib.import_module(module_name)


def _short(module_name):
    return Path(module_name).stem if module_name.endswith(".py") else module_name.split(".")[-1]


def module_definition(module_name, name):
    obj = getattr(_module(module_name), name)
    node = ast.parse(textwrap.dedent(inspect.getsource(obj))).body[0]
    assert node.name == name
    return node


CASES = [(nb, mod, name) for nb, mod, names in LISTINGS for name in names]


@pytest.mark.parametrize(
    ("notebook", "module_name", "name"), CASES, ids=[f"{Path(nb).stem}-{n}" for nb, _, n in CASES]
)
def test_listing_in_notebook_is_the_module_code(notebook, module_name, name):
    definitions = [node for def_name, _, node in notebook_definitions(REPO_ROOT / notebook) if def_name == name]
    assert definitions, f"{notebook}의 코드 셀에 `{name}` 정의가 없습니다. 책의 리스팅을 코드 셀로 보여 주세요."
    shown = _dump(definitions[-1])
    expected = _dump(module_definition(module_name, name))
    assert shown == expected, (
        f"{notebook}의 `{name}`(마지막 정의)이 {module_name}의 코드와 다릅니다. 둘을 같은 코드로 맞추세요."
    )


@pytest.mark.parametrize(
    ("notebook", "module_name", "names"), LISTINGS, ids=[f"{Path(nb).stem}-{_short(mod)}" for nb, mod, _ in LISTINGS]
)
def test_listings_appear_in_the_books_order(notebook, module_name, names):
    first_cell = {}
    for def_name, index, _ in notebook_definitions(REPO_ROOT / notebook):
        first_cell.setdefault(def_name, index)
    positions = [first_cell.get(name, -1) for name in names]
    assert positions == sorted(positions), f"{notebook}: 리스팅이 책의 순서가 아닙니다: {dict(zip(names, positions))}"
