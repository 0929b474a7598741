"""Write and validate ImageId,Label submission files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kit import files
from kit.errors import DataError

HEADER = "ImageId,Label"
REAL_TEST_ROWS = 28_000


def expected_rows(data_dir: Path | None = None) -> int:
    """Rows a submission needs: test.csv's count when the data is installed, else the real competition's."""
    from kit import data

    meta = data.read_meta(data.data_dir(data_dir))
    return meta["test_rows"] if meta else REAL_TEST_ROWS


def write(labels: np.ndarray, path: Path) -> Path:
    """Write predicted labels (one per test row, in test.csv order) as ImageId,Label; atomic."""
    path = Path(path)
    body = HEADER + "\n" + "".join(f"{i},{int(v)}\n" for i, v in enumerate(labels, start=1))
    files.write_atomic(path, body.encode())
    return path


def _lines(rows: list[int], limit: int = 5) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return f"line{'s' if len(rows) > 1 else ''} {shown}{' ...' if len(rows) > limit else ''}"


def problems(path: Path, expected_rows: int) -> list[str]:
    """Every problem with the file as a submission (empty when it is valid), each naming its first lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return [f"{path} does not exist"]
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{path} cannot be read as text ({exc})"]
    lines = text.splitlines()
    if not lines:
        return ["the file is empty"]
    found: list[str] = []
    header = lines[0].strip()
    if header != HEADER:
        found.append(f"the header is '{header[:60]}', it must be exactly '{HEADER}'")
    body = lines[1:]
    while body and not body[-1].strip():
        body.pop()  # trailing blank lines are harmless
    if len(body) != expected_rows:
        found.append(f"{len(body):,} rows, expected {expected_rows:,} (one per test.csv row)")

    bad_shape, bad_id, bad_label, blank = [], [], [], []
    ids = []
    for n, line in enumerate(body, start=2):
        cells = [c.strip() for c in line.split(",")]
        if not line.strip() or any(c == "" or c.lower() == "nan" for c in cells):
            blank.append(n)
            continue
        if len(cells) != 2:
            bad_shape.append(n)
            continue
        image_id, label = cells
        if image_id.isascii() and image_id.isdigit():
            ids.append((n, int(image_id)))
        else:
            bad_id.append(n)
        if not (label.isascii() and label.isdigit() and len(label) == 1):
            bad_label.append(n)
    if blank:
        found.append(f"blank or NaN cells at {_lines(blank)}")
    if bad_shape:
        found.append(f"rows without exactly two columns at {_lines(bad_shape)}")
    if bad_id:
        found.append(f"ImageId is not a positive integer at {_lines(bad_id)}")
    if bad_label:
        found.append(f"Label is not an integer 0..9 at {_lines(bad_label)}")
    seen: dict[int, int] = {}
    duplicate = []
    for n, image_id in ids:
        if image_id in seen:
            duplicate.append(n)
        seen[image_id] = n
    if duplicate:
        found.append(f"duplicate ImageId at {_lines(duplicate)}")
    out_of_order = [n for k, (n, image_id) in enumerate(ids, start=1) if image_id != k]
    if ids and out_of_order and not duplicate:
        found.append(f"ImageId must run 1..{expected_rows:,} in order; first mismatch at {_lines(out_of_order)}")
    return found


def validate(path: Path, expected_rows: int, consequence: str = "fix the file or write it again") -> None:
    """Raise a DataError listing every problem, or return quietly when the file is a valid submission."""
    found = problems(path, expected_rows)
    if found:
        raise DataError(f"{path} is not a valid submission: {'; '.join(found)}; {consequence}.")
