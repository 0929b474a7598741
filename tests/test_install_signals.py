"""`kit download --force` swaps the installed data for the new: a real signal at every step of the swap leaves the
old data or the new, never neither, and the next kit command clears what the swap left aside."""

from __future__ import annotations

import os
import shutil
import signal
import sys

import numpy as np
import pytest

from kit import data

STEPS = [("mkdir", "before"), ("mkdir", "after"), ("replace", "before"), ("replace", "after"),
         ("replace#2", "before"), ("replace#2", "after"), ("rmtree", "before"), ("rmtree", "during"),
         ("rmtree", "after")]  # fmt: skip


def _csvs(folder, reverse: bool) -> None:
    train_x, train_y, test_x, _ = data.sample_arrays(test_size=300)
    test_x = test_x[:60][::-1] if reverse else test_x[:60]
    data.write_csvs(folder, train_x[:200], train_y[:200], test_x)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    old, new = tmp_path_factory.mktemp("old"), tmp_path_factory.mktemp("new")
    _csvs(old, reverse=False)
    _csvs(new, reverse=True)
    return old, new


def _mark(folder):
    """kit's mark beside a folder, as kit writes it before it makes one."""
    folder.with_name(folder.name + data.MARK).write_text(data.MARK_TEXT)


def _copy(folder, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(("step", "when"), STEPS, ids=[f"{s}-{w}" for s, w in STEPS])
def test_a_signal_at_any_step_of_the_swap_keeps_the_old_data_or_the_new(
    tmp_path, monkeypatch, sources, step, when, signum
):
    dest = tmp_path / "digit-recognizer"
    data.install_folder(_copy(sources[0], tmp_path, "first"), dest, "zip")
    old_test = data.load_competition(dest).test_images
    # kit's CLI turns SIGTERM into SystemExit(143), as it does for `kit download`; SIGINT is Python's own Ctrl-C
    # (set here too: a library loaded by an earlier test in this process may have replaced it)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})

    real = {"mkdir": os.mkdir, "replace": os.replace, "rmtree": shutil.rmtree}
    seen: dict[str, int] = {}

    def hooked(name):
        def call(*args, **kwargs):
            if sys._getframe(1).f_code.co_name != "install_folder":
                return real[name](*args, **kwargs)
            seen[name] = seen.get(name, 0) + 1
            here = name if seen[name] == 1 else f"{name}#{seen[name]}"
            if here == step and when == "before":
                os.kill(os.getpid(), signum)  # delivered at the next bytecode: before the real call
            if here == step and when == "during":  # the removal gets part way, then the signal lands
                victim = next(p for p in sorted(os.scandir(args[0]), key=lambda e: e.name))
                real["rmtree"](victim.path)
                os.kill(os.getpid(), signum)
            result = real[name](*args, **kwargs)
            if here == step and when == "after":
                os.kill(os.getpid(), signum)
            return result

        return call

    monkeypatch.setattr(os, "mkdir", hooked("mkdir"))
    monkeypatch.setattr(os, "replace", hooked("replace"))
    monkeypatch.setattr(shutil, "rmtree", hooked("rmtree"))
    new_src = _copy(sources[1], tmp_path, "second")
    try:
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            data.install_folder(new_src, dest, "zip")
            for _ in range(1000):  # a signal that lands at the very end is raised within a few bytecodes
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        monkeypatch.undo()
    assert (step, when) in {(s, w) for s, w in STEPS} and seen, "the hook never fired"

    assert dest.is_dir(), "neither the old data nor the new is installed"
    comp = data.load_competition(dest)  # the next kit command: finishes what the swap left aside
    new_test = old_test[::-1]
    assert np.array_equal(comp.test_images, old_test) or np.array_equal(comp.test_images, new_test)
    assert data.read_meta(dest) is not None
    assert not list(tmp_path.glob(f".{dest.name}.old-*")), "the aside copy was left behind"


def test_recover_puts_back_data_a_kill_left_aside(tmp_path, sources):
    """SIGKILL between the two renames: nothing in kit runs, so the next command moves the old data back."""
    dest = tmp_path / "digit-recognizer"
    data.install_folder(_copy(sources[0], tmp_path, "first"), dest, "zip")
    aside = tmp_path / f".{dest.name}.old-abc123"  # as the swap makes it: kit's mark beside it
    aside.mkdir()
    _mark(aside)
    os.replace(dest, aside / dest.name)
    data.recover(dest)
    assert data.read_meta(dest) is not None and not aside.exists()
    # an aside copy of data that was since replaced is removed, and the installed data stays
    aside.mkdir()
    _mark(aside)
    (aside / dest.name).mkdir()
    data.recover(dest)
    assert data.read_meta(dest) is not None and not aside.exists()
