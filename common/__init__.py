"""밑바닥부터 만들면서 배우는 LLM — 예제 코드 패키지.

각 장의 요약 모듈은 하위 패키지다(``llm_from_scratch.ch02`` … ``llm_from_scratch.appendix_e``).
이 최상위 패키지에는 여러 장이 함께 쓰는 도구만 둔다.

- ``llm_from_scratch.download``: 캐시·백업 URL·미러를 쓰는 파일 내려받기
- ``llm_from_scratch.utils``: 장치 선택, 시드 고정, QUICK 모드 플래그
"""

from llm_from_scratch.download import ensure_tiktoken_cache, install_tiktoken_offline_guard

__version__ = "0.1.0"

# tiktoken 의 gpt2 인코딩이 인터넷 없이도 동작하도록 캐시에 없는 파일을 저장소 사본(data/gpt2)으로 채운다
ensure_tiktoken_cache()
# LLMFS_OFFLINE=1 이면 tiktoken 도 네트워크에 나가지 않는다(캐시가 없으면 준비하는 법을 알리는 오류)
install_tiktoken_offline_guard()
