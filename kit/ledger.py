"""The leaderboard log: submissions/leaderboard.csv, one row per submission, CV next to the public score.

A plain CSV a person can open. Every change (append or update) takes an exclusive lock, rewrites the file
to a temporary name and renames it over the old one: a crash or Ctrl-C never leaves a torn row, and two
`kit` processes writing at once never lose each other's rows. Only this module writes the log.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kit import files, locks, paths
from kit.errors import DataError

COLUMNS = [
    "id", "utc_time", "run_id", "file", "sha256", "message", "cv_accuracy",
    "ref", "status", "public_score", "private_score", "error",
]  # fmt: skip
# status: pending (sent, or maybe sent, no score yet), complete, error (Kaggle could not score it),
# failed (never reached Kaggle)


def path() -> Path:
    return paths.submissions_dir() / "leaderboard.csv"


@contextlib.contextmanager
def _locked() -> Iterator[Path]:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with locks.exclusive(target.with_name(".leaderboard.lock")):
        yield target


def _read(target: Path) -> list[dict[str, str]]:
    if target.parent.exists() and not target.parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target.parent))
    if not target.is_file():
        return []
    try:
        with open(target, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            found = list(reader)
            header = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _damaged(target, f"{type(exc).__name__}: {str(exc)[:80]}") from None
    if header and header != COLUMNS:  # another CSV (a blend's output, an edited log): never rewritten over
        raise _damaged(target, f"its header is not kit's: {','.join(header)[:80]}")
    for line, row in enumerate(found, start=2):
        if None in row or None in row.values():
            raise _damaged(target, f"row {line} has {'more' if None in row else 'fewer'} fields than the header")
    return [{c: str(row.get(c) or "") for c in COLUMNS} for row in found]


def _damaged(target: Path, what: str) -> DataError:
    return DataError(f"{target} is not kit's leaderboard log ({what}); move it aside and kit starts a new one (it is "
                     "never rewritten as it is).")  # fmt: skip


def _write(target: Path, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_atomic(target, buffer.getvalue().encode())


def rows() -> list[dict[str, str]]:
    """Every row of the log, oldest first. Reading takes no lock (writers replace the file whole, so a reader sees
    the old log or the new), so a read-only submissions folder can be read."""
    return _read(path())


def _clean(fields: dict[str, Any]) -> dict[str, str]:
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown ledger columns: {sorted(unknown)}")
    return {k: "" if v is None else str(v) for k, v in fields.items()}


def _new_row(**fields: Any) -> dict[str, str]:
    """A new row of the log: every column, a fresh id, and `fields` (None: empty)."""
    row = {c: "" for c in COLUMNS}
    row.update(_clean(fields), id=uuid.uuid4().hex[:12])
    return row


def update(row_id: str, **fields: Any) -> None:
    """Change some fields of the row with this id."""
    with _locked() as target:
        current = _read(target)
        for row in current:
            if row["id"] == row_id:
                row.update(_clean(fields))
        _write(target, current)


def claim(sha256: str, force: bool, **fields: Any) -> tuple[str | None, dict[str, str] | None]:
    """The duplicate check and the pending row as one step under the lock: (new row id, None), or (None, the row
    that already sent this content) when not `force`. Five `kit submit` of one file at once upload it once."""
    row = _new_row(utc_time=paths.utc_now(), **fields, sha256=sha256)
    with _locked() as target:
        current = _read(target)
        sent = _sent(current, sha256)
        if sent and not force:
            return None, sent[-1]
        _write(target, [*current, row])
    return row["id"], None


def find_sha(sha256: str) -> dict[str, str] | None:
    """The latest row that sent a file with this content to Kaggle (failed attempts do not count)."""
    found = _sent(rows(), sha256)
    return found[-1] if found else None


def _sent(rows: list[dict[str, str]], sha256: str) -> list[dict[str, str]]:
    """The rows that sent this content to Kaggle, or may have (failed attempts never reached it)."""
    return [r for r in rows if r["sha256"] == sha256 and r["status"] != "failed"]


UNLISTED_S = 600.0  # a row sent this long ago that Kaggle's list does not hold never reached Kaggle


def merge_remote(remote: list[dict[str, Any]], now: float | None = None) -> tuple[int, int]:
    """Fold Kaggle's list of submissions into the log: fill in rows matched by ref (or, for a row whose ref
    was never learnt, by message), add the ones made outside kit. A pending row without a ref that the list does
    not hold UNLISTED_S after it was sent never reached Kaggle (its upload broke before the submission was made): it
    is marked failed, so it blocks no re-submit. Returns (updated, added)."""
    updated = added = 0
    now = time.time() if now is None else now
    with _locked() as target:
        current = _read(target)
        unsettled = [r for r in current if not r["ref"] and r["status"] == "pending"]
        by_ref = {r["ref"]: r for r in current if r["ref"]}
        for item in sorted(remote, key=lambda s: s["ref"]):
            fields = _clean({k: item.get(k) for k in ("status", "public_score", "private_score", "error")})
            row = by_ref.get(str(item["ref"]))
            if row is None:
                row = next((r for r in current if not r["ref"] and r["status"] == "pending"
                            and r["message"] == (item.get("message") or "")), None)  # fmt: skip
            if row is not None:
                before = dict(row)
                row.update(fields, ref=str(item["ref"]))
                updated += row != before
            else:
                row = _new_row(utc_time=item.get("utc_time"), file=item.get("file"), message=item.get("message"),
                               ref=item["ref"], **fields)  # fmt: skip
                current.append(row)
                added += 1
            by_ref[row["ref"]] = row
        for row in unsettled:
            age = seconds_since(row, now)
            if not row["ref"] and age is not None and age > UNLISTED_S:
                row.update(status="failed", error="never reached Kaggle: not in its list of your submissions")
                updated += 1
        _write(target, current)
    return updated, added


def seconds_since(row: dict[str, str], now: float | None = None) -> float | None:
    """How long ago the row was logged (None where its time is not kit's)."""
    logged = paths.utc_seconds(row["utc_time"])
    return None if logged is None else (time.time() if now is None else now) - logged


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None


def table() -> list[dict[str, str]]:
    """The log for reading: best public score first (unscored rows last, oldest first), each row with `gap`, the
    public score minus the CV ("" where either is missing)."""
    found = rows()
    found.sort(key=lambda r: (_number(r["public_score"]) is None, -(_number(r["public_score"]) or 0), r["utc_time"]))
    for r in found:
        cv, lb = _number(r["cv_accuracy"]), _number(r["public_score"])
        r["gap"] = f"{lb - cv:+.5f}" if cv is not None and lb is not None else ""
    return found


def cv_and_lb(found: list[dict[str, str]]) -> tuple[list[tuple[dict[str, str], float, float]], list[tuple[dict, str]]]:
    """The rows with both a CV and a public score, as (row, cv, lb), oldest first; and the others, each with why it
    has no point on a CV-LB plot."""
    points, others = [], []
    for r in sorted(found, key=lambda r: r["utc_time"]):
        cv, lb = _number(r["cv_accuracy"]), _number(r["public_score"])
        if cv is not None and lb is not None:
            points.append((r, cv, lb))
        elif cv is None:
            others.append((r, "made outside kit: no CV" if not r["run_id"] else "no CV in its run"))
        elif r["status"] in ("error", "failed"):
            others.append((r, "Kaggle could not score it" if r["status"] == "error" else "never reached Kaggle"))
        else:
            others.append((r, "no public score yet (`kit leaderboard --sync` fetches it)"))
    return points, others


def best_scores() -> dict[str, str]:
    """Each run's best public score in the log."""
    best: dict[str, str] = {}
    for r in table():  # best first
        if r["run_id"] and _number(r["public_score"]) is not None:
            best.setdefault(r["run_id"], r["public_score"])
    return best


def to_csv() -> str:
    target = path()
    _read(target)  # a damaged log (not UTF-8, not CSV) is one line here too
    return target.read_text(encoding="utf-8") if target.is_file() else ",".join(COLUMNS) + "\n"
