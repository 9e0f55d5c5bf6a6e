"""영어 원서 저장소의 파일 이름으로 부르는 입구: 같은 폴더의 ``hparam_search.py`` 를 그대로 실행합니다.

원서 README 의 명령을 그대로 입력해도 되도록 둔 파일입니다. 옵션과 동작은 ``hparam_search.py`` 와 같고
(``python hparam_search.py --help``), 원서의 밑줄 옵션 표기도 받습니다. 예:

    python hparameter_tuning.py --max_configs 4
"""

import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).with_name("hparam_search.py")), run_name="__main__")
