"""The training recipe: one typed dataclass, every hyperparameter on one screen, with named presets.

`kit train` starts from a preset (`--model`), applies the command-line overrides, and saves the effective
recipe in the run's config (kit.runs). The measurements behind the defaults are in docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

from kit.errors import RunError, UsageError
from kit.paths import RUN_ID_RULE, is_run_id

PRECISIONS = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Recipe:
    model: str  # architecture: a function in kit.models, or your own as FILE.py:FUNCTION (kit.user_models)
    epochs: int  # one model (folds=1); also per fold of a K-fold run unless `fold_epochs` says otherwise
    batch_size: int
    learning_rate: float  # the peak learning rate (Adam)
    schedule: str  # "constant"; "onecycle": linear warm-up to the peak, cosine decay to ~0; "exponential": x lr_decay
    warmup: float  # onecycle: fraction of all steps spent warming up
    label_smoothing: float
    dropout: float
    batchnorm: str  # kitnet: "all" convs, only the "stride"-2 ones and the last, or "none" (see the preset)
    augment: bool  # random rotation/zoom/shift, Keras preprocessing layers, training only
    rotation: float  # degrees, +-
    zoom: float  # fraction, +-
    shift: float  # fraction of the side, +-
    tta: bool = False  # predict OOF and test rows as the mean over TTA_VIEWS (below: shifted and rotated views)
    folds: int = 1  # 1 = one model on a stratified 90/10 split; K >= 2 = stratified K-fold ensemble
    repeats: int = 1  # K-fold: R differently seeded K-fold splits, K x R members; a row's OOF is the mean of its R
    fold_epochs: int | None = None  # K-fold runs: the epochs per fold when --epochs is not given (None: `epochs`)
    holdout: float = 0.1  # folds=1 only: the validation fraction
    seed: int = 42
    precision: str = "auto"  # auto: float16 on GPU, bfloat16 on CPUs with AMX/avx512_bf16, else float32
    lr_decay: float = 1.0  # schedule "exponential": the learning rate is multiplied by this after every epoch
    ema: float = 0.0  # > 0: an exponential moving average of the weights (this decay per step) is validated and saved
    pseudo: str = ""  # a finished run (the teacher) whose test probabilities are extra soft targets (kit.pseudo)
    pseudo_min: float = 0.0  # with `pseudo`: only test images whose pseudo-label has at least this probability
    # model "blend": the families, each a recipe trained on this run's folds, blended by weights fitted on their OOF
    families: dict[str, Recipe] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The recipe's fixed parts. Schedule "onecycle": the warm-up starts at the peak learning rate x ONECYCLE_START, the
# cosine decay ends at the peak x ONECYCLE_END.
ONECYCLE_START, ONECYCLE_END = 1 / 25, 1e-3
IDENTITY = (0, 0, 0)  # a TTA view (dx, dy, degrees) that leaves the image alone
# `tta`: the identity, one-pixel shifts in four directions, and +-8 degree rotations.
TTA_VIEWS: list[tuple[float, float, float]] = [IDENTITY, (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 8),
                                               (0, 0, -8)]  # fmt: skip
# Per-epoch validation (val_acc, a member's history) on a fixed sample of this many of a member's validation rows; its
# accuracy and OOF use all of them (all 8,400 took 19-31 s of each 44-epoch fold).
EPOCH_VALIDATION_ROWS = 2048


# A blend's own fields that its families share: they train on the same split (folds, repeats, seed, holdout).
RUN_FIELDS = ("folds", "repeats", "seed", "holdout", "precision", "pseudo", "pseudo_min")


def blend(families: dict[str, Recipe]) -> Recipe:
    """A recipe that trains each family on the same folds and blends them (model "blend"); its other fields are the
    first family's, for display only: the families' own recipes train."""
    first = next(iter(families.values()))
    return dataclasses.replace(first, model="blend", families=dict(families))


def member_count(r: Recipe) -> int:
    """The run's members: K x R models of each family (one family unless the recipe is a blend)."""
    return r.folds * r.repeats * max(1, len(r.families))


def member(r: Recipe, m: int) -> tuple[str, Recipe]:
    """Member m's family and the recipe that trains it: members 0..KR-1 are the first family's, KR..2KR-1 the
    second's, and so on; a run that is no blend has one family, named after its model."""
    if not r.families:
        return r.model, r
    name = list(r.families)[m // (r.folds * r.repeats)]
    return name, r.families[name]


PRESETS: dict[str, Recipe] = {
    # The seed notebook exactly: 3 convs, 280,714 parameters, Adam(1e-3), batch 100, 24 epochs, 9:1 split.
    "seed": Recipe(
        model="seed",
        epochs=24,
        batch_size=100,
        learning_rate=1e-3,
        schedule="constant",
        warmup=0.0,
        label_smoothing=0.0,
        dropout=0.25,
        batchnorm="none",
        augment=False,
        rotation=0.0,
        zoom=0.0,
        shift=0.0,
    ),
    # Our best (docs/benchmarks.md has the runs): stride-2 5x5 convolutions for pooling, one-cycle Adam, label
    # smoothing, light dropout, rotation/zoom/shift in one warp, TTA. One model 99.595 % holdout in ~5 min on 2 cores;
    # 44 epochs per fold (`fold_epochs`) took 5-fold OOF errors from 148-154 (36 epochs) to 146.
    "kitnet": Recipe(
        model="kitnet",
        epochs=36,
        batch_size=256,
        learning_rate=3e-3,
        schedule="onecycle",
        warmup=0.2,
        label_smoothing=0.05,
        dropout=0.25,
        batchnorm="none",
        augment=True,
        rotation=10.0,
        zoom=0.1,
        shift=0.1,
        tta=True,
        fold_epochs=44,
    ),
}
# Deotte's net and training exactly: kitnet's layers with batch norm after every conv (after its ReLU), dropout 0.4,
# batch 64, Adam 1e-3 x 0.95 per epoch, 45 epochs, no label smoothing (his 15-net ensemble: 0.99757 on Kaggle).
PRESETS["deotte"] = Recipe(
    model="deotte", epochs=45, batch_size=64, learning_rate=1e-3, schedule="exponential", lr_decay=0.95, warmup=0.0,
    label_smoothing=0.0, dropout=0.4, batchnorm="all", augment=True, rotation=10.0, zoom=0.1, shift=0.1, tta=True,
)  # fmt: skip
# An et al.'s all-convolutional nets: valid 5x5 (m5) or 3x3 (m3) convs, widening, batch norm + ReLU, no pooling; Adam
# 1e-3 x 0.98 per epoch, batch 120, weights averaged (EMA 0.999), rotation 20 degrees, shift 20 %; 50 of their 150
# epochs (50 -> 150 added 0.02-0.03 points in their logs). About 9x kitnet's multiply-adds per image: GPU families.
PRESETS["m5"] = Recipe(
    model="m5", epochs=50, batch_size=120, learning_rate=1e-3, schedule="exponential", lr_decay=0.98, warmup=0.0,
    label_smoothing=0.0, dropout=0.0, batchnorm="all", augment=True, rotation=20.0, zoom=0.0, shift=0.2, tta=True,
    ema=0.999,
)  # fmt: skip
PRESETS["m3"] = dataclasses.replace(PRESETS["m5"], model="m3")
# The leaderboard run for a GPU: three families on the same 5 folds, blended by weights fitted on their OOF rows.
PRESETS["leaderboard"] = blend(
    {name: dataclasses.replace(PRESETS[name], folds=5) for name in ("kitnet", "deotte", "m5")}
)
# (The CPU blend leaderboard-cpu, kitnet 22 + deotte 14 epochs, did not beat kitnet's 5 folds at about the same compute
# and was retired; a run made with it still loads: its config holds the whole recipe.)
DEFAULT_PRESET = "kitnet"


def recipe(preset: str = DEFAULT_PRESET, **overrides: Any) -> Recipe:
    """The named preset with the given fields replaced (None values are ignored), validated. A K-fold recipe
    trains `fold_epochs` per fold, where the preset sets it and `epochs` is not among the overrides."""
    if preset not in PRESETS and not is_user_model(preset):
        raise UsageError(f"--model {preset!r}: must be one of {', '.join(PRESETS)}, or your own model as "
                         "FILE.py:FUNCTION.")  # fmt: skip
    base = PRESETS.get(preset) or dataclasses.replace(PRESETS[DEFAULT_PRESET], model=preset)
    chosen = override(base, **overrides)
    if overrides.get("epochs") is None:
        chosen = _fold_epochs(chosen)
    return chosen


def _fold_epochs(r: Recipe) -> Recipe:
    if r.families:
        return blend({name: _fold_epochs(family) for name, family in r.families.items()})
    return dataclasses.replace(r, epochs=r.fold_epochs) if r.folds > 1 and r.fold_epochs is not None else r


def for_run(preset: str | None, saved: dict[str, Any] | None, recipe_file: Any = None, sets: list[str] | None = None,
            **overrides: Any) -> Recipe:  # fmt: skip
    """The recipe `kit train` uses: a recipe file's (`--recipe`), else a resumed run's `saved` recipe (its
    config), else the preset's (default: kitnet); then the option overrides, then the --set items (`settings`).
    A resumed run keeps its architecture."""
    if recipe_file is not None:
        if preset is not None:
            raise UsageError("--model and --recipe both name the recipe: give one (a recipe file's `preset` names its "
                             "preset).")  # fmt: skip
        return settings(override(from_file(recipe_file), **overrides), sets or [])
    if saved is None:
        return settings(recipe(preset or DEFAULT_PRESET, **overrides), sets or [])
    return settings(_resumed(preset, saved, **overrides), sets or [])


def _resumed(preset: str | None, saved: dict[str, Any], **overrides: Any) -> Recipe:
    base = from_dict(saved)
    same = model_in_run(preset or "") == base.model or (preset in PRESETS and PRESETS[preset].model == base.model)
    if preset is not None and not same:
        raise UsageError(
            f"This run was trained with --model {base.model}; resume it without --model, or choose a new --run-id."
        )
    return override(base, **overrides)


def override(base: Recipe, **overrides: Any) -> Recipe:
    """`base` with the given fields replaced (None values are ignored), validated."""
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(Recipe)} - {"families"})
    if unknown:
        raise UsageError(f"Unknown recipe field(s): {', '.join(unknown)}.")
    if base.families:  # a blend: every option applies to each family
        chosen = blend({name: dataclasses.replace(f, **given) for name, f in base.families.items()})
    else:
        chosen = dataclasses.replace(base, **given)
    validate(chosen)
    return chosen


MODELS = ("seed", "kitnet", "deotte", "m5", "m3")  # the architectures: kit.models has a function of each name
USER_MODEL = re.compile(r"(?P<file>.+\.py):(?P<function>[A-Za-z_][A-Za-z0-9_]*)")  # your own: FILE.py:FUNCTION
SCHEDULES = ("constant", "onecycle", "exponential")

# Every field's check, in scikit-learn's form: (field, the name a user knows it by, ok(value), the requirement).
_RULES: list[tuple[str, str, Any, str]] = [
    (
        "model",
        "--model",
        lambda v: v in (*MODELS, "blend") or is_user_model(v),
        f"must be one of {', '.join(MODELS)}, or your own model as FILE.py:FUNCTION",
    ),
    ("epochs", "--epochs", lambda v: _int(v) and v >= 1, "must be a whole number >= 1"),
    ("batch_size", "--batch-size", lambda v: _int(v) and v >= 1, "must be a whole number >= 1"),
    ("learning_rate", "--lr", lambda v: _num(v) and 0 < v < 1, "must be in (0, 1)"),
    ("schedule", "schedule", lambda v: v in SCHEDULES, f"must be one of {', '.join(SCHEDULES)}"),
    ("warmup", "warmup", lambda v: _num(v) and 0 <= v < 1, "must be in [0, 1)"),
    ("label_smoothing", "label_smoothing", lambda v: _num(v) and 0 <= v < 1, "must be in [0, 1)"),
    ("dropout", "dropout", lambda v: _num(v) and 0 <= v < 1, "must be in [0, 1)"),
    ("batchnorm", "batchnorm", lambda v: v in ("all", "stride", "none"), "must be 'all', 'stride' or 'none'"),
    ("augment", "--augment", lambda v: isinstance(v, bool), "must be true or false"),
    ("rotation", "rotation", lambda v: _num(v) and 0 <= v <= 180, "must be in [0, 180] degrees"),
    ("zoom", "zoom", lambda v: _num(v) and 0 <= v < 1, "must be in [0, 1)"),
    ("shift", "shift", lambda v: _num(v) and 0 <= v < 1, "must be in [0, 1) (a fraction of the side)"),
    ("tta", "--tta", lambda v: isinstance(v, bool), "must be true or false"),
    ("folds", "--folds", lambda v: _int(v) and 1 <= v <= 100, "must be a whole number in [1, 100]"),
    ("repeats", "--repeats", lambda v: _int(v) and 1 <= v <= 100, "must be a whole number in [1, 100]"),
    ("fold_epochs", "fold_epochs", lambda v: v is None or (_int(v) and v >= 1), "must be a whole number >= 1"),
    ("holdout", "holdout", lambda v: _num(v) and 0 < v < 1, "must be in (0, 1)"),
    ("seed", "--seed", lambda v: _int(v) and 0 <= v < 2**32, "must be a whole number in [0, 2**32)"),
    ("precision", "--precision", lambda v: v in PRECISIONS, f"must be one of {', '.join(PRECISIONS)}"),
    ("lr_decay", "lr_decay", lambda v: _num(v) and 0 < v <= 1, "must be in (0, 1]"),
    ("ema", "ema", lambda v: _num(v) and 0 <= v < 1, "must be in [0, 1) (0: no weight averaging)"),
    (
        "pseudo",
        "--pseudo",
        lambda v: v == "" or is_run_id(v),
        f"must be a run id: {RUN_ID_RULE}",
    ),
    ("pseudo_min", "--pseudo-min", lambda v: _num(v) and 0 <= v < 1, "must be in [0, 1)"),
]


def is_user_model(name: Any) -> bool:
    """Whether a recipe's `model` names your own model (FILE.py:FUNCTION, kit.user_models) rather than kit's."""
    return isinstance(name, str) and USER_MODEL.fullmatch(name) is not None


def model_in_run(name: str) -> str:
    """A model as a run's recipe names it: your own by its file's name in the run (experiments/nets.py:build ->
    nets.py:build, kit.user_models), kit's as they are."""
    if not is_user_model(name):
        return name
    file, _, function = name.rpartition(":")
    return file.replace("\\", "/").rsplit("/", 1)[-1] + ":" + function


def model_label(name: str) -> str:
    """A model's name as a run id's label: kit's architectures as they are, your own by its file's name."""
    if not is_user_model(name):
        return name
    stem = model_in_run(name).rpartition(":")[0].removesuffix(".py")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:40] or "model"


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v  # NaN is no number here


# Each recipe field's kind, read once from its annotation (int, float, bool, str; dict: a blend's families), and the
# fields that may also be None: what --set parses a value as, and what a saved recipe's values are checked against.
_KIND = {f.name: str(f.type).split(" | ")[0].split("[")[0] for f in dataclasses.fields(Recipe)}
_OPTIONAL = {f.name for f in dataclasses.fields(Recipe) if str(f.type).endswith("| None")}
_IS = {"int": _int, "float": _num, "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str)}


def field_kind(name: str) -> str | None:
    """Recipe field `name`'s kind: "int", "float", "bool" or "str" (None: no such field)."""
    return _KIND.get(name) if name in SETTABLE else None


_KIND_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "text"}


def kind_error(name: str, value: Any) -> str | None:
    """Why `value` cannot be recipe field `name` ("must be a whole number, not 'three'"), or None: the field's type,
    said with the field's name, before any rule compares it (a list where a number goes is no TypeError later)."""
    kind = _KIND.get(name)
    check = _IS.get(kind or "")
    if check is None or check(value) or (value is None and name in _OPTIONAL):
        return None
    return f"must be {_KIND_WORDS[kind or '']}{' (or none)' if name in _OPTIONAL else ''}, not {str(value)[:30]!r}"


INVALID_POOL = (-1, 0, 0.5, 1, 1.5, 180.5, 2**32, -0.25, float("nan"), float("inf"), True, "x", "", [1], {"a": 1})


def invalid_values(field: str) -> list[Any]:
    """Values recipe field `field` refuses, drawn from INVALID_POOL by the field's own declared kind and rule (as
    scikit-learn's generate_invalid_param_val draws them from its constraints): what tests feed to --set, recipe
    files and kit.train to see each refused in one line."""
    rule = next((ok for name, _, ok, _ in _RULES if name == field), lambda v: True)

    def refused(value: Any) -> bool:
        try:
            return kind_error(field, value) is not None or not rule(value)
        except TypeError:  # a rule comparing a value of another kind: refused by the kind check first anyway
            return True

    return [v for v in INVALID_POOL if refused(v)]


def validate(r: Recipe) -> None:
    """Check every field of the recipe; the first bad one is a UsageError ("--dropout 1.2: must be in [0, 1)")."""
    for field, name, ok, requirement in _RULES:
        value = getattr(r, field)
        if not ok(value):
            raise UsageError(f"{name} {value!r}: {requirement}.")
    if r.repeats > 1 and r.folds < 2:
        raise UsageError(f"--repeats {r.repeats}: needs --folds 2 or more (repeated K-fold).")
    if (r.model == "blend") != bool(r.families):
        raise UsageError("A blend recipe needs its families, and only a blend has them.")
    if r.families and len(r.families) < 2:
        raise UsageError(f"A blend needs at least two families, not {', '.join(r.families)}.")
    for name, family in r.families.items():
        if not isinstance(family, Recipe) or family.families:
            raise UsageError(f"Family {name!r} of the blend must be a recipe of one architecture.")
        validate(family)
        differ = [f for f in RUN_FIELDS if getattr(family, f) != getattr(r, f)]
        if differ:
            raise UsageError(f"Family {name!r} must share the blend's {', '.join(differ)} (the folds it trains on).")


def check_fold(r: Recipe, fold: int | None) -> None:
    """`--fold I` names one of the run's K x R members."""
    total = member_count(r)
    if fold is not None and not 0 <= fold < total:
        what = f"{r.folds}-fold run" + (f" with {r.repeats} repeats" if r.repeats > 1 else "")
        what += f" of {len(r.families)} families" if r.families else ""
        raise UsageError(f"--fold {fold}: must be between 0 and {total - 1} for a {what}.")


SETTABLE = tuple(f.name for f in dataclasses.fields(Recipe) if f.name not in ("model", "families"))


def settings(base: Recipe, items: list[str]) -> Recipe:
    """`base` with `kit train --set FIELD=VALUE` applied in order (a blend's families all, or one with
    FAMILY.FIELD=VALUE), each value read as its field's type, the result checked by `validate`. A bad name or value
    is a UsageError naming the setting, the field and what it takes."""
    chosen = base
    for item in items:
        name, sep, text = item.partition("=")
        family, _, field = name.strip().rpartition(".")
        if not sep or field not in SETTABLE:
            raise UsageError(f"--set {item}: {'write it FIELD=VALUE' if not sep else f'no recipe field {field!r}'}; "
                             f"the fields are {', '.join(SETTABLE)}.")  # fmt: skip
        if family and family not in chosen.families:
            where = f"the families are {', '.join(chosen.families)}" if chosen.families else "this recipe is no blend"
            raise UsageError(f"--set {item}: no family {family!r} ({where}).")
        value = _parse(field, text.strip(), item)
        if family:
            families = {**chosen.families, family: dataclasses.replace(chosen.families[family], **{field: value})}
            chosen = dataclasses.replace(chosen, families=families)
        elif chosen.families:
            families = {n: dataclasses.replace(f, **{field: value}) for n, f in chosen.families.items()}
            chosen = blend(families)
        else:
            chosen = dataclasses.replace(chosen, **{field: value})
    try:
        validate(chosen)
    except UsageError as exc:
        raise UsageError(f"--set: {exc}") from None
    return chosen


def _parse(field: str, text: str, item: str) -> Any:
    """A --set value as its field's type (the dataclass's annotation: int, float, bool, str, or int | None)."""
    kind = _KIND[field]
    if field in _OPTIONAL and text.lower() in ("none", ""):
        return None
    try:
        if kind == "bool":
            return {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False,
                    "0": False}[text.lower()]  # fmt: skip
        return {"int": int, "float": float, "str": str}[kind](text)
    except (KeyError, ValueError):
        what = {"int": "a whole number", "float": "a number", "bool": "true or false"}.get(kind, kind)
        raise UsageError(f"--set {item}: {field} takes {what}, not {text[:20]!r}.") from None


def from_file(path: Any) -> Recipe:
    """`kit train --recipe FILE`: a recipe in TOML (as `kit runs --recipe RUN` writes one). Fields it leaves out come
    from its `preset` (default: the preset named by its model); a blend is `[families.NAME]` tables, each filled from
    its own preset (its model's, else NAME's), with the top level's fields shared by all. Checked by `validate`."""
    import tomllib

    try:
        values = tomllib.loads(recipe_text(path))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--recipe {path}: not TOML ({str(exc)[:120]}).") from None
    except RecursionError:
        raise UsageError(f"--recipe {path}: nested too deeply to be a recipe (a recipe is fields and "
                         "[families.NAME] tables).") from None  # fmt: skip
    try:
        families = values.pop("families", None)
        if families is not None:
            if not isinstance(families, dict) or not all(isinstance(f, dict) for f in families.values()):
                raise UsageError("its families must be [families.NAME] tables")
            if not families:
                raise UsageError("its [families] table is empty; a blend is two or more [families.NAME] tables")
        for table in [values, *(families or {}).values()]:
            for name, value in table.items():
                text = name in ("preset", "model")
                wrong = kind_error(name, value) if not text else None if isinstance(value, str) else (
                    f"must be text, not {str(value)[:30]!r}")  # fmt: skip
                if wrong:
                    raise UsageError(f"{name} {wrong}")
        if families is not None:
            shared = {k: v for k, v in values.items() if k not in ("preset", "model")}
            # a family's own value wins over the shared top level: the file means what each table says
            chosen = blend({name: _filled(name, {**shared, **f}) for name, f in families.items()})
        else:
            chosen = _filled(None, values)
        validate(chosen)
    except (UsageError, TypeError) as exc:
        raise UsageError(f"--recipe {path}: {str(exc).rstrip('.')}.") from None
    return chosen


RECIPE_FILE_MAX = 1 << 20  # bytes: a recipe is a few hundred; a bigger file is not one (a log, a device, /dev/zero)


def recipe_text(path: Any, option: str = "--recipe") -> str:
    """A recipe file's text, read as kaggle.json is: a regular file (a FIFO would hang kit, a device never end) of at
    most RECIPE_FILE_MAX bytes, or a UsageError naming it (as `option`)."""
    import os
    import stat
    from pathlib import Path

    try:
        with open(Path(path), "rb", opener=lambda p, flags: os.open(p, flags | getattr(os, "O_NONBLOCK", 0))) as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise UsageError(f"{option} {path}: not a regular file (a recipe is a TOML file).")
            raw = f.read(RECIPE_FILE_MAX + 1)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot be read ({exc.strerror or exc}).") from None
    if len(raw) > RECIPE_FILE_MAX:
        raise UsageError(f"{option} {path}: over {RECIPE_FILE_MAX >> 20} MB, too big to be a recipe.")
    return raw.decode("utf-8")


def _filled(name: str | None, values: dict[str, Any]) -> Recipe:
    """A recipe of one architecture: `values` over its preset's fields (your own model's: kitnet's by default)."""
    model = values.get("model")
    preset = values.pop("preset", None) or (DEFAULT_PRESET if is_user_model(model) else model) or name or DEFAULT_PRESET
    if preset not in PRESETS or PRESETS[preset].families:
        raise UsageError(f"preset {preset!r} must be one of {', '.join(p for p in PRESETS if not PRESETS[p].families)}")
    unknown = sorted(set(values) - set(SETTABLE) - {"model"})
    if unknown:
        raise UsageError(f"no recipe field {unknown[0]!r}; the fields are {', '.join(SETTABLE)}")
    base = PRESETS[preset]
    if "epochs" not in values and values.get("folds", base.folds) > 1 and base.fold_epochs is not None:
        values = {**values, "epochs": base.fold_epochs}  # as `kit train --folds K` trains the preset
    return dataclasses.replace(base, **values)


def to_toml(r: Recipe, title: str = "") -> str:
    """The recipe as a TOML file `kit train --recipe` reads back to the same recipe (fields that are None are left
    out: their preset's value is the same or unused). A flat file of numbers, strings and booleans: no writer needed."""

    def table(values: dict[str, Any]) -> list[str]:
        return [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None and k != "families"]

    lines = [f"# {title}"] if title else []
    if r.families:
        lines += table({k: getattr(r, k) for k in RUN_FIELDS})
        for name, family in r.families.items():
            lines += ["", f"[families.{name}]"]
            lines += table({k: v for k, v in family.to_dict().items() if k not in RUN_FIELDS})
    else:
        lines += table(r.to_dict())
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string: the same escapes
    return repr(v)


def changes(saved: dict[str, Any]) -> list[str]:
    """What a run's recipe (its config's) changed from its preset as `kit train --folds K` would train it, as --set
    would write it ("rotation=15"); folds and repeats are left out (the run's members say them)."""
    try:
        r = from_dict(saved)
    except (RunError, UsageError, TypeError):
        return []
    if r.families:
        candidates = [p for p, v in PRESETS.items() if v.families and set(v.families) == set(r.families)]
        if not candidates:
            return [f"families={'+'.join(r.families)}"]
        base = PRESETS[candidates[0]]
        pairs = [(f"{n}.", r.families[n], _fold_epochs(dataclasses.replace(base.families[n], folds=r.folds)))
                 for n in r.families]  # fmt: skip
    else:
        if r.model not in PRESETS and not is_user_model(r.model):
            return []
        base = PRESETS.get(r.model) or PRESETS[DEFAULT_PRESET]  # your own model trains kitnet's recipe by default
        pairs = [("", r, _fold_epochs(dataclasses.replace(base, folds=r.folds, repeats=r.repeats)))]
    found = []
    for prefix, mine, preset in pairs:
        for field in SETTABLE:
            if field in ("folds", "repeats", "precision") or getattr(mine, field) == getattr(preset, field):
                continue
            value = getattr(mine, field)
            found.append(f"{prefix}{field}={_toml_value(value).strip(chr(34)) if value is not None else 'none'}")
    return found


def mistyped(values: Any) -> str | None:
    """The first field of a saved recipe whose value is not of its field's kind (a number as text, say), or None:
    a check that reads any kit's recipes, fields it does not know or lacks included (`from_dict` is the strict one)."""
    if not isinstance(values, dict):
        return f"it is {type(values).__name__}, not a recipe"
    for name, value in values.items():
        check = _IS.get(_KIND.get(name, ""))
        if value is not None and check is not None and not check(value):
            return f"its {name} is {str(value)[:20]!r}"
    return None


def differences(theirs: Recipe, mine: Recipe, ignore: tuple[str, ...] = ()) -> list[str]:
    """The fields two recipes disagree on, as "field THEIRS vs MINE" (a run's recipe against the one asked for)."""
    a, b = theirs.to_dict(), mine.to_dict()
    return [f"{k} {a[k]!r} vs {b[k]!r}" for k in a if k not in ignore and a[k] != b[k]]


def from_dict(values: dict[str, Any]) -> Recipe:
    """A recipe read back from a run's config, validated: an unknown model or a missing field is named."""
    fields = {f.name for f in dataclasses.fields(Recipe)}
    try:
        if not isinstance(values, dict):
            raise UsageError(f"it is {type(values).__name__}, not a recipe")
        chosen = Recipe(**{k: v for k, v in values.items() if k in fields and k != "families"})
        families = values.get("families") or {}
        if not isinstance(families, dict):
            raise UsageError("its families are not recipes")
        if families:
            chosen = dataclasses.replace(chosen, families={k: from_dict(v) for k, v in families.items()})
        validate(chosen)
    except TypeError as exc:  # a required field is missing
        raise RunError(f"The run's recipe is incomplete ({exc}); it was not written by this kit.") from None
    except UsageError as exc:
        raise RunError(f"The run's recipe is not one kit can train: {exc}") from None
    return chosen
