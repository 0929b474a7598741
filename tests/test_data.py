"""CSV validation: every bad cell is named by file, line and column."""

from __future__ import annotations

import re

import numpy as np
import pytest

from kit import data
from kit.errors import DataError


@pytest.fixture
def folder(tmp_path, tiny):
    data.write_csvs(tmp_path, tiny.train_x[:50], tiny.train_y[:50], tiny.test_x[:20])
    return tmp_path


def _edit(path, line: int, column: str, value: str) -> None:
    rows = path.read_text().splitlines()
    header = rows[0].split(",")
    cells = rows[line - 1].split(",")
    cells[header.index(column)] = value
    rows[line - 1] = ",".join(cells)
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize(
    ("file", "line", "column", "value", "message"),
    [
        ("train.csv", 5, "pixel300", "abc", "train.csv: line 5, column 'pixel300': 'abc' is not a number"),
        ("train.csv", 7, "pixel3", "", "train.csv: line 7, column 'pixel3': the cell is empty or NaN"),
        ("train.csv", 8, "pixel9", "NaN", "train.csv: line 8, column 'pixel9': the cell is empty or NaN"),
        ("train.csv", 3, "pixel12", "300", "train.csv: line 3, column 'pixel12': pixel 300 is outside 0..255"),
        ("train.csv", 4, "pixel12", "-1", "pixel -1 is outside 0..255"),
        ("train.csv", 9, "label", "10", "train.csv: line 9, column 'label': label 10 is outside 0..9"),
        ("train.csv", 2, "pixel1", "2.5", "2.5 is not a whole number"),
        ("test.csv", 6, "pixel783", "256", "test.csv: line 6, column 'pixel783': pixel 256 is outside 0..255"),
        # numbers int64 cannot hold are named with their real value, never an OverflowError or a wrapped number
        ("train.csv", 3, "pixel40", "99999999999999999999", "pixel 99999999999999999999 is outside 0..255"),
        ("train.csv", 3, "pixel41", "18446744073709551615", "pixel 18446744073709551615 is outside 0..255"),
        ("test.csv", 4, "pixel5", "1e30", "test.csv: line 4, column 'pixel5': pixel 1e+30 is outside 0..255"),
    ],
)
def test_bad_cells_are_named(folder, file, line, column, value, message):
    _edit(folder / file, line, column, value)
    with pytest.raises(DataError, match=re.escape(message)):
        data.read_competition_csvs(folder)


def test_missing_and_extra_columns(folder):
    train = folder / "train.csv"
    rows = train.read_text().splitlines()
    train.write_text("\n".join(",".join(r.split(",")[:-1]) for r in rows) + "\n")
    with pytest.raises(DataError, match="train.csv: missing column\\(s\\) pixel783"):
        data.read_competition_csvs(folder)
    test = folder / "test.csv"
    rows = test.read_text().splitlines()
    test.write_text("\n".join([rows[0] + ",extra"] + [r + ",0" for r in rows[1:]]) + "\n")
    with pytest.raises(DataError, match="test.csv: unexpected column\\(s\\) extra"):
        data.read_csv_checked(test, "test.csv")


def test_inconsistent_sample_submission(folder):
    sub = folder / "sample_submission.csv"
    sub.write_text("\n".join(sub.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match="sample_submission.csv has 19 rows but test.csv has 20"):
        data.read_competition_csvs(folder)


def test_cache_matches_csvs_and_is_rebuilt_when_csvs_change(tmp_path, tiny):
    src = tmp_path / "src"
    data.write_csvs(src, tiny.train_x[:40], tiny.train_y[:40], tiny.test_x[:10])
    dest = tmp_path / "dest"
    data.install_folder(src, dest, "zip")
    comp = data.load_competition(dest)
    np.testing.assert_array_equal(comp.train_images, tiny.train_x[:40])
    assert comp.train_images.shape == (40, 28, 28, 1) and comp.test_images.shape == (10, 28, 28, 1)
    # a user edits train.csv by hand: the next load sees it
    import os
    import time

    _edit(dest / "train.csv", 2, "label", str((int(tiny.train_y[0]) + 1) % 10))
    later = time.time() + 5
    os.utime(dest / "train.csv", (later, later))
    assert data.load_competition(dest).train_labels[0] == (tiny.train_y[0] + 1) % 10


def test_load_without_data_says_what_to_run(tmp_path):
    with pytest.raises(DataError, match="run `kit download`"):
        data.load_competition(tmp_path / "nothing")


def test_whole_numbers_written_as_floats_are_accepted_and_a_fraction_is_named_at_its_line(folder, tiny):
    _edit(folder / "train.csv", 5, "pixel300", "12.0")
    train_images, _, _ = data.read_competition_csvs(folder)
    assert train_images[3].reshape(-1)[300] == 12  # line 5 is row 3
    _edit(folder / "train.csv", 7, "pixel300", "12.5")
    with pytest.raises(DataError, match=r"train\.csv: line 7, column 'pixel300': 12\.5 is not a whole number"):
        data.read_competition_csvs(folder)


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"\x00garbage" * 100], ids=["cut", "bytes"])
def test_a_damaged_cache_is_rebuilt_from_the_csvs(tmp_path, tiny, damage):
    src, dest = tmp_path / "src", tmp_path / "dest"
    data.write_csvs(src, tiny.train_x[:40], tiny.train_y[:40], tiny.test_x[:10])
    data.install_folder(src, dest, "zip")
    cache = dest / data.CACHE
    cache.write_bytes(damage(cache.read_bytes()))
    comp = data.load_competition(dest)
    np.testing.assert_array_equal(comp.train_images, tiny.train_x[:40])
    np.testing.assert_array_equal(data.load_competition(dest).test_images, tiny.test_x[:10])  # the cache is whole again
