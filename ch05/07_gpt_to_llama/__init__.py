"""GPT에서 Llama 2, Llama 3/3.1/3.2로: ``llm_from_scratch.llama`` (5장 보너스)."""
