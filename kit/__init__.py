"""kit: the Digit Recognizer competition toolkit.

From Python (a notebook cell): `kit.train(...)`, `kit.predict(run)`, `kit.submit(run)`, `kit.load_run(id)`, `kit.Run`,
`kit.tune(...)`, `kit.study(name)`, `kit.confirm(name, k)`; see kit.api. They load on first use, so `import kit` stays
light (no TensorFlow, no pandas, no Kaggle client).

A member's saved model (in its run folder: kit.runs) loads with plain `keras.models.load_model` once `kit` is imported:
kit's layers (kit.layers) are registered with Keras as soon as Keras is imported, before or after kit.
"""

import importlib.abc
import importlib.util
import sys
from typing import Any

__version__ = "0.1.0"
COMPETITION = "digit-recognizer"

_API = ("train", "predict", "submit", "load_run", "make_report", "Run", "tune", "study", "confirm")


def __getattr__(name: str) -> Any:
    if name in _API:
        from kit import api

        return getattr(api, name)
    if name == "KitError":
        from kit.errors import KitError

        return KitError
    raise AttributeError(f"module 'kit' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What `kit.<TAB>` offers in a notebook: the verbs too, though they load on first use."""
    return sorted({"COMPETITION", "__version__", *_API, "KitError"})


class _ThenKitLayers(importlib.abc.Loader):
    """Keras' own loader, then kit's layers registered (Keras imports no module of a saved layer's but its own)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        importlib.import_module("kit.layers")


class _WhenKerasLoads(importlib.abc.MetaPathFinder):
    """Finds nothing itself: once, when `keras` is first imported, wraps its loader in _ThenKitLayers."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenKitLayers(spec.loader)
        return spec


if "keras" in sys.modules:
    importlib.import_module("kit.layers")
elif not any(isinstance(finder, _WhenKerasLoads) for finder in sys.meta_path):
    sys.meta_path.insert(0, _WhenKerasLoads())
