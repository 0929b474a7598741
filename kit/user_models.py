"""Your own model, by import path: `kit train --model nets.py:build` (a blend family's `model` in a recipe file too).

`build(recipe)` in nets.py gets the run's recipe (a kit.config.Recipe: read `recipe.dropout`, `recipe.batchnorm` and
the rest as you like) and returns an uncompiled Keras model that takes float32 images (N, 28, 28, 1) scaled to [0, 1]
and returns (N, 10) class probabilities (end it in a softmax). kit puts its own layers in front (the raw pixels
scaled, the recipe's rotation, zoom and shift while training; kit.models.own) and compiles and trains it with the
recipe: optimizer, schedule, label smoothing, precision, EMA, TTA. Custom layers load back for `kit predict` when
Keras can rebuild them from their `get_config` (Keras' own rule for saved models).

A run keeps a copy of the file (runs/<id>/nets.py), and its recipe names the model by that file's name
(`nets.py:build`): resume, the fold workers, Ray tasks, the Kaggle kernel and `kit predict` all use the copy, so the
run trains and predicts the same on another checkout whatever happens to your file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from kit import config
from kit.config import Recipe
from kit.errors import UsageError


def specs(r: Recipe) -> list[str]:
    """The user models a recipe trains (a blend's families' included), in order, each once."""
    models = [family.model for family in r.families.values()] if r.families else [r.model]
    return list(dict.fromkeys(m for m in models if config.is_user_model(m)))


def _parts(spec: str) -> tuple[str, str]:
    file, _, function = spec.rpartition(":")
    return file, function


def file_name(spec: str) -> str:
    """The name of the model's file in a run ("nets.py" for experiments/nets.py:build)."""
    return _parts(config.model_in_run(spec))[0]


def files(r: Recipe, run_dir: Path | None = None) -> dict[str, Path]:
    """The file of each user model the recipe trains, by its name in the run: the run's own copy where `run_dir` has
    one, else the path as given (relative to the working directory). A missing file, or two different files of one
    name, is a UsageError."""
    found: dict[str, Path] = {}
    for spec in specs(r):
        name = file_name(spec)
        kept = source(spec, run_dir) if run_dir is not None else None
        path = kept if kept is not None and kept.is_file() else source(spec, None)
        if not path.is_file():
            raise UsageError(f"--model {spec}: there is no file {path} (your own model is FILE.py:FUNCTION, the file's "
                             "path relative to this folder).")  # fmt: skip
        if name in found and found[name].resolve() != path.resolve():
            raise UsageError(f"--model {spec}: two model files are named {name}; rename one.")
        found[name] = path
    return found


def named(r: Recipe) -> Recipe:
    """The recipe as a run keeps it: each user model named by its file's name in the run (nets.py:build)."""
    if r.families:
        return config.blend({n: dataclasses.replace(f, model=config.model_in_run(f.model))
                             for n, f in r.families.items()})  # fmt: skip
    return dataclasses.replace(r, model=config.model_in_run(r.model))


def source(spec: str, folder: Path | None) -> Path:
    """Where the model's file is read from: the run `folder`'s copy, else (None) the path as the spec gives it."""
    return folder / file_name(spec) if folder is not None else Path(_parts(spec)[0])


def builder(spec: str, path: Path) -> Callable[[Recipe], Any]:
    """The model's build function, from its file at `path`."""
    function = _parts(spec)[1]
    module = _module(path, spec)
    build = getattr(module, function, None)
    if not callable(build):
        raise UsageError(f"--model {spec}: {file_name(spec)} has no function {function!r}.")
    return build


def custom_objects(r: Recipe, folder: Path) -> dict[str, Any]:
    """The Keras layers (and other Keras classes) the run's model files define, by name: what loading its saved
    models needs for the ones not registered with `keras.saving.register_keras_serializable`."""
    import keras

    found: dict[str, Any] = {}
    for spec in specs(r):
        module = _module(source(spec, folder), spec)
        for name, value in vars(module).items():
            keras_class = isinstance(value, type) and issubclass(value, keras.layers.Layer | keras.losses.Loss)
            if keras_class and value.__module__ == module.__name__:
                found[name] = value
    return found


_LOADED: dict[tuple[str, str], ModuleType] = {}

# What the user's code may raise that kit turns into one line (`contained`): its errors and a sys.exit; never
# KeyboardInterrupt, so Ctrl-C still stops kit.
USER_CODE_ERRORS = (Exception, SystemExit, GeneratorExit)


def _module(path: Path, spec: str) -> ModuleType:
    """The model file imported once per content (a module of its own, so two runs' nets.py never mix)."""
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--model {spec}: {path} cannot be read ({exc.strerror or exc}).") from None
    key = (str(path.resolve()), hashlib.sha256(source).hexdigest())
    if key in _LOADED:
        return _LOADED[key]
    name = f"kit_user_model_{key[1][:16]}"
    loader = importlib.util.spec_from_file_location(name, path)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module  # dataclasses and pickling look classes up by their module
    try:
        loader.loader.exec_module(module)
    except USER_CODE_ERRORS as exc:
        del sys.modules[name]
        raise contained(spec, exc, f"{path.name} does not import", "importing it") from None
    _LOADED[key] = module
    return module


def contained(spec: str, exc: BaseException, failed: str, doing: str) -> UsageError:
    """What the user's code raised while kit was `doing` something with it, as one line: an error in its words
    (`failed (TypeError: ...)`), a `sys.exit` as what it is (never kit's own exit, whose codes mean other things).
    KeyboardInterrupt is never caught here: Ctrl-C still stops kit."""
    if isinstance(exc, SystemExit):
        return UsageError(f"--model {spec}: {file_name(spec)} called sys.exit({exc.code!r}) while kit was {doing}; a "
                          "model file should raise an error, not exit.")  # fmt: skip
    return UsageError(f"--model {spec}: {failed} ({reason(exc)}).")


def reason(exc: BaseException) -> str:
    """An error in the user's code, in a few words: its type and its first 200 characters (Keras' preamble and
    terminal colours left out)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", " ".join(str(exc).split()))
    text = re.sub(r"^Exception encountered when calling [\w.]+\(\)\. ", "", text)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
