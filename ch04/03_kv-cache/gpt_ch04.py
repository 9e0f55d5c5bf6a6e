"""영어 원서 저장소의 파일 이름으로 부르는 입구: 4장 ``01_main-chapter-code/gpt.py`` 를 그대로 실행합니다.

원서의 이 폴더 README 는 KV 캐시 없이 생성하는 기준으로 ``python gpt_ch04.py`` 를 먼저 실행합니다. 이 저장소에서는
4장 스크립트(``llm_from_scratch.ch04.gpt``)가 그 일을 하므로, 이 파일은 그 ``main`` 을 부릅니다. 예:

    python gpt_ch04.py --max_new_tokens 200
"""

from llm_from_scratch.ch04.gpt import main

if __name__ == "__main__":
    main()
