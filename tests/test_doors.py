"""Every door a value comes in by refuses what the recipe refuses, in one line that names it: `--set`, a recipe file
and `kit.train(...)`, fed each field's invalid values (kit.config.invalid_values, drawn from the declared rules);
recipe files are read as bounded as credentials are; the Python API checks each argument's type before anything
runs."""

from __future__ import annotations

import json
import math
import os
import sys

import pytest

import kit
from kit import config
from tests.conftest import kit_here


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _one_line(ran) -> None:
    assert ran.returncode == 2, ran.stdout + ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in ran.stderr, ran.stderr


CASES = [(field, value) for field in config.SETTABLE for value in config.invalid_values(field)]


@pytest.mark.parametrize("field", config.SETTABLE)
def test_every_invalid_value_of_every_field_is_one_line_at_every_door(env, tmp_path, field):
    for value in config.invalid_values(field):
        # --set reads text: 0 and 1 are how a command line spells false and true, and any text can name a teacher run
        spelled = field == "pseudo" or (isinstance(getattr(config.PRESETS["kitnet"], field), bool) and value in (0, 1))
        if not spelled:
            _one_line(kit_here(["train", "--set", f"{field}={_toml(value)}"], env))
        recipe = tmp_path / "r.toml"
        recipe.write_text(f"{field} = {_toml(value)}\n")
        ran = kit_here(["train", "--recipe", str(recipe)], env)
        _one_line(ran)
        said = {field, *(flag for name, flag, _, _ in config._RULES if name == field)}  # the field, or its option
        assert any(name in ran.stderr for name in said), (field, value, ran.stderr)
        with pytest.raises(kit.KitError, match=field):
            kit.train(**{field: value}, show=False)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("families = {}\n", "its [families] table is empty"),
        ("[families]\n", "its [families] table is empty"),
        ("folds = 'three'\n", "folds must be a whole number, not 'three'"),
        ("model = [1]\n", "model must be text, not '[1]'"),
        ("preset = [1]\n", "preset must be text, not '[1]'"),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("epochs = ", "not TOML"),
    ],
)
def test_a_bad_recipe_file_is_one_line_naming_it(env, tmp_path, content, needle):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    ran = kit_here(["train", "--recipe", str(path)], env)
    _one_line(ran)
    assert needle in ran.stderr and str(path) in ran.stderr, ran.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero are POSIX")
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "huge"])
def test_a_recipe_file_that_is_no_file_is_refused_before_it_is_read(env, tmp_path, kind):
    path = tmp_path / "recipe.toml"
    if kind == "fifo":
        os.mkfifo(path)  # reading it would wait forever for a writer
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")  # reading it would never end
    elif kind == "folder":
        path.mkdir()
    else:
        path.write_text("# " + "x" * (config.RECIPE_FILE_MAX + 10) + "\n")
    ran = kit_here(["train", "--recipe", str(path)], env)
    _one_line(ran)
    assert f"--recipe {path}" in ran.stderr


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        (dict(limit="abc"), "limit='abc': must be a whole number or None"),
        (dict(limit=2.5), "limit=2.5: must be a whole number or None"),
        (dict(jobs="x"), "jobs='x': must be a whole number"),
        (dict(run_id=5), "run_id=5: must be text or None"),
        (dict(ray=5), "ray=5: must be text or None"),
        (dict(recipe=5), "recipe=5: must be text or a path"),
        (dict(data_dir=5), "data_dir=5: must be a path"),
        (dict(sets=[5]), "sets=[5]: must be a list of text"),
        (dict(kaggle="yes"), "kaggle='yes': must be True or False"),
        (dict(rotation="a"), "rotation='a': must be a number"),
        (dict(epochs=True), "epochs=True: must be a whole number"),
    ],
)
def test_the_api_checks_each_arguments_type_at_the_door(env, arguments, needle):
    with pytest.raises(kit.KitError, match="^" + needle.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        kit.train(**arguments, show=False)


def test_a_text_where_a_list_of_text_goes_is_one_item_and_every_verb_has_the_door(env):
    with pytest.raises(kit.KitError, match=r"^sets: epochs=0: must be a whole number >= 1"):
        kit.train(sets="epochs=0", show=False)  # read whole, not one character at a time
    with pytest.raises(kit.KitError, match=r"^data_dir=5: must be a path"):
        kit.make_report(data_dir=5)
    with pytest.raises(kit.KitError, match=r"^tta='yes': must be True or False"):
        kit.predict("r1", tta="yes")
    with pytest.raises(kit.KitError, match=r"^timeout='soon': must be a number"):
        kit.submit("r1", timeout="soon")
