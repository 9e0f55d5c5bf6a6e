"""GPT에서 Llama 2, Llama 3/3.1/3.2로: ``llm_from_scratch.llama`` (5장 보너스).

모델은 llama_model.py, 가중치 내려받기·적재는 llama_weights.py, 토크나이저와 채팅 형식은 llama_tokenizer.py 에 있다.
"""

from .llama_model import *
from .llama_tokenizer import *
from .llama_weights import *
