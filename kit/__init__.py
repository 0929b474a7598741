"""kit: the Digit Recognizer competition toolkit.

From Python (a notebook cell): `kit.train(...)`, `kit.submit(run)`, `kit.load_run(id)`, `kit.Run`; see kit.api. They
load on first use, so `import kit` stays light (no TensorFlow, no pandas, no Kaggle client).
"""

from typing import Any

__version__ = "0.1.0"
COMPETITION = "digit-recognizer"

_API = ("train", "submit", "load_run", "make_report", "Run")


def __getattr__(name: str) -> Any:
    if name in _API:
        from kit import api

        return getattr(api, name)
    if name == "KitError":
        from kit.errors import KitError

        return KitError
    raise AttributeError(f"module 'kit' has no attribute {name!r}")
