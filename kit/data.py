"""Read and validate the competition CSVs, install them atomically, cache them, and build the offline sample.

The data directory holds Kaggle's three files as they come, plus `cache.npz` (uint8 arrays, loads in well
under a second) and `kit.json` (where the data came from). Everything is written to a temporary directory
beside the destination and moved into place only when complete, so an interrupted install leaves nothing
half-written behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import secrets
import shutil
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit import locks, paths
from kit.errors import DataError, UsageError
from kit.paths import data_dir

TRAIN, TEST, SAMPLE_SUBMISSION = "train.csv", "test.csv", "sample_submission.csv"
FILES = (TRAIN, TEST, SAMPLE_SUBMISSION)
CACHE, META = "cache.npz", "kit.json"
OLD = ".old-"  # `.<data folder>.old-*`: the previous data, aside while an install swaps in the new
PARTIAL, IN_USE = ".partial-", ".in-use.lock"  # `.<data folder>.partial-*`: an install's scratch folder, and its lock
MARK = ".kit-made"  # `<folder>.kit-made` beside every folder kit makes to remove later: the cleanup touches no other
MARK_TEXT = "made by kit for an install; the next kit command removes it once no install uses it\n"


def _made(parent: Path, prefix: str) -> Path:
    """A new folder's name under `parent`, its mark written beside it first: whatever stops kit from here on (a signal
    before or after the folder is made, or part way through removing it), the next cleanup knows the folder is kit's.
    The caller makes the folder (os.mkdir) and removes it with `_unmade`."""
    for _ in range(100):
        folder = parent / f"{prefix}{secrets.token_hex(4)}"
        mark = folder.with_name(folder.name + MARK)
        try:
            with open(mark, "x", encoding="utf-8") as f:  # "x": never over another file of that name
                f.write(MARK_TEXT)
        except FileExistsError:
            continue
        if not folder.exists() and not folder.is_symlink():
            return folder
        mark.unlink()
    raise FileExistsError(errno.EEXIST, "no free name", str(parent / prefix))


def _kits(folder: Path) -> bool:
    """Whether `folder` is one kit made: its mark beside it, a plain file with kit's text (no symlink followed), and the
    folder, if it is still there, a real folder."""
    mark = folder.with_name(folder.name + MARK)
    try:
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()) or mark.is_symlink() or not mark.is_file():
            return False
        return mark.stat().st_size == len(MARK_TEXT) and mark.read_text(encoding="utf-8") == MARK_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def _made_here(parent: Path, prefix: str) -> list[Path]:
    """The folders under `parent` named `prefix`* that kit made (`_kits`), whether or not they are still there (a mark
    alone is what a removal cut short after the folder went leaves)."""
    names = {p.name.removesuffix(MARK) for p in parent.glob(f"{prefix}*")}
    return [parent / name for name in sorted(names) if _kits(parent / name)]


def _unmade(folder: Path) -> None:
    """Remove a folder kit made, then its mark (last: a removal cut short is finished by the next cleanup)."""
    shutil.rmtree(folder, ignore_errors=True)
    if not folder.exists():
        folder.with_name(folder.name + MARK).unlink(missing_ok=True)


PIXELS = [f"pixel{i}" for i in range(784)]
COLUMNS = {TRAIN: ["label", *PIXELS], TEST: PIXELS, SAMPLE_SUBMISSION: ["ImageId", "Label"]}


@dataclass(frozen=True)
class Competition:
    """The competition as arrays: what every later stage consumes."""

    train_images: np.ndarray  # uint8 (N, 28, 28, 1)
    train_labels: np.ndarray  # uint8 (N,)
    test_images: np.ndarray  # uint8 (M, 28, 28, 1)
    source: str  # "kaggle", "zip", or "sample"
    path: Path | None  # the data folder it was loaded from; None: built in memory (a worker process cannot load it)
    rows: int | None = None  # only the first `rows` training rows (`head`), else all

    @property
    def is_sample(self) -> bool:
        return self.source == "sample"


def read_meta(dest: Path) -> dict | None:
    """What `kit.json` says about installed data, or None when nothing complete is installed."""
    try:
        meta = json.loads((dest / META).read_text())
    except (OSError, ValueError):
        return None
    if not all((dest / name).is_file() for name in (*FILES, CACHE)):
        return None
    if not _is_kit_meta(dest / META):
        raise DataError(f"{dest / META} is damaged (it is not what kit wrote); delete {dest} and run `kit download`.")
    return meta


# --------------------------------------------------------------------------------------------- validation


def _fail(path: Path, row: int, column: str, problem: str) -> DataError:
    # Row numbers are the file's line numbers (the header is line 1), so a user can jump straight there.
    return DataError(f"{path.name}: line {row + 2}, column '{column}': {problem}; fix or re-download the file.")


def read_csv_checked(path: Path, kind: str) -> np.ndarray:
    """Read one competition CSV and check every cell; returns an int array of its values.

    `kind` is one of FILES; it decides the expected header and value ranges.
    """
    expected = COLUMNS[kind]
    try:
        with warnings.catch_warnings():  # mixed types in a column (a DtypeWarning) are named below, cell by cell
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            frame = pd.read_csv(path)  # the C parser types clean columns as int64; only bad columns need a look
    except FileNotFoundError:
        raise DataError(f"{path} is missing; run `kit download` to fetch the competition data.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{path.name} is not a valid CSV ({first}); re-download it with `kit download --force`."
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path.name} is empty; re-download it with `kit download --force`.") from None

    columns = [str(c) for c in frame.columns]
    if columns != expected:
        missing = [c for c in expected if c not in columns]
        extra = [c for c in columns if c not in expected]
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected column(s) {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
        if not parts:
            parts.append("columns out of order")
        raise DataError(
            f"{path.name}: {'; '.join(parts)}; the header must be {','.join(expected[:3])},... "
            f"({len(expected)} columns)."
        )
    if frame.empty:
        raise DataError(f"{path.name} has a header but no rows; re-download it with `kit download --force`.")

    problems = []  # (row, column index, message) of the first bad cell in each column
    for col, name in enumerate(expected):
        series = frame[name]
        low, high = {"label": (0, 9), "Label": (0, 9), "ImageId": (1, len(frame))}.get(name, (0, 255))
        what = "label" if name == "label" else "pixel" if name.startswith("pixel") else name
        # checked as parsed, before any conversion to int64: a cell too big for it is named, never wrapped
        numeric = series if pd.api.types.is_integer_dtype(series) else pd.to_numeric(series, errors="coerce")
        unusable = numeric.isna() | (numeric != numeric.round())
        outside = ~unusable & ((numeric < low) | (numeric > high))
        if not (unusable | outside).any():
            continue  # whole numbers in range, also when written as floats ("12.0")
        row = int(np.argmax((unusable | outside).to_numpy()))
        cell = str(series.iloc[row]).strip()
        cell = cell if len(cell) <= 24 else cell[:21] + "..."  # an excerpt of the cell, never the whole of it
        if outside.iloc[row]:
            message = f"{what} {cell} is outside {low}..{high}"
        elif pd.isna(series.iloc[row]) or cell == "":
            message = "the cell is empty or NaN"
        elif pd.isna(numeric.iloc[row]):
            message = f"'{cell}' is not a number"
        else:
            message = f"{cell} is not a whole number"
        problems.append((row, col, message))
    if problems:
        row, col, message = min(problems)
        raise _fail(path, row, expected[col], message)
    return frame.to_numpy(dtype=np.int64)


def _to_images(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(pixels.astype(np.uint8).reshape(-1, 28, 28, 1))


def read_competition_csvs(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the three CSVs in `folder`; returns (train_images, train_labels, test_images)."""
    train = read_csv_checked(folder / TRAIN, TRAIN)
    test = read_csv_checked(folder / TEST, TEST)
    sample = read_csv_checked(folder / SAMPLE_SUBMISSION, SAMPLE_SUBMISSION)
    if len(sample) != len(test):
        raise DataError(
            f"{SAMPLE_SUBMISSION} has {len(sample)} rows but {TEST} has {len(test)}; "
            "the download is inconsistent: run `kit download --force`."
        )
    if not np.array_equal(sample[:, 0], np.arange(1, len(test) + 1)):
        raise DataError(f"{SAMPLE_SUBMISSION}: ImageId must run 1..{len(test)} in order; run `kit download --force`.")
    return _to_images(train[:, 1:]), train[:, 0].astype(np.uint8), _to_images(test)


# ----------------------------------------------------------------------------------------------- install


def _write_cache(folder: Path, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray) -> None:
    # Uncompressed .npz: np.load of the full 42,000 + 28,000 images takes ~0.1 s against ~4 s for the CSVs.
    tmp = folder / (CACHE + ".tmp.npz")
    np.savez(tmp, train_images=train_images, train_labels=train_labels, test_images=test_images)
    os.replace(tmp, folder / CACHE)


def check_destination(dest: Path) -> Path:
    """`dest` as an absolute, normalised path, when kit may install into it: it does not exist, is an empty
    directory, or holds data that kit installed (its kit.json). Anything else belongs to the user and is refused,
    whatever --force says: an install replaces the whole directory."""
    dest = Path(os.path.abspath(dest))  # '.' and 'a/..' get a real name for the scratch and old folders
    if not dest.exists() and not dest.is_symlink():
        return dest
    if not dest.is_dir():
        raise DataError(f"{dest} is a file, not a data directory; choose another --data-dir (or $KIT_DATA_DIR).")
    try:
        entries = [p.name for p in dest.iterdir()]
    except OSError as exc:
        raise DataError(f"Cannot read {dest} ({exc.strerror}); choose another --data-dir (or $KIT_DATA_DIR).") from None
    if not entries or _is_kit_meta(dest / META):
        return dest
    raise DataError(
        f"{dest} holds files that kit did not install (no {META}); kit installs the data only into a new or empty "
        "directory or one it installed itself, so choose another --data-dir (or $KIT_DATA_DIR)."
    )


def _is_kit_meta(path: Path) -> bool:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(meta, dict)
        and isinstance(meta.get("source"), str)
        and all(isinstance(meta.get(k), int) and not isinstance(meta.get(k), bool) for k in ("train_rows", "test_rows"))
    )


def install_folder(src: Path, dest: Path, source: str) -> dict:
    """Validate the CSVs in `src` (a scratch folder that is consumed), cache them, move them to `dest`.

    An existing `dest` is replaced only once the new data is complete and valid, and only when kit installed
    it (`check_destination`).
    """
    dest = check_destination(dest)
    train_images, train_labels, test_images = read_competition_csvs(src)
    _write_cache(src, train_images, train_labels, test_images)
    meta = {
        "source": source,
        "train_rows": int(len(train_labels)),
        "test_rows": int(len(test_images)),
        "installed_utc": paths.utc_now(),
    }
    (src / META).write_text(json.dumps(meta, indent=2) + "\n")
    for extra in src.iterdir():
        if extra.name not in (*FILES, CACHE, META):
            shutil.rmtree(extra) if extra.is_dir() else extra.unlink()

    # The swap: the old data moves aside, the new moves in, then the old goes. Whatever stops it (an error, Ctrl-C,
    # SIGTERM) puts the old data back unless the new is in place; a kill between the two renames, or during the
    # removal, leaves `.<name>.old-*`, which `recover` finishes at the next kit command.
    old = None
    try:
        if dest.exists():
            old = _made(dest.parent, f".{dest.name}{OLD}")
            os.mkdir(old)
            os.replace(dest, old / dest.name)
        os.replace(src, dest)
    except BaseException as exc:
        if old is not None and (old / dest.name).exists() and not dest.exists():
            os.replace(old / dest.name, dest)  # put the previous data back
        if old is not None and dest.exists():  # the old data or the new is in place: the aside copy can go
            shutil.rmtree(old, ignore_errors=True)
            _unmade(old)
        if isinstance(exc, OSError):
            raise _unwritable(dest, exc) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
        _unmade(old)
    return meta


def recover(dest: Path) -> None:
    """Finish a swap that was killed (`install_folder`): the previous data moved aside while `dest` is missing goes
    back; aside copies of data that `dest` has replaced are removed, and so are scratch folders no install holds.
    Only folders kit made (`_kits`: its mark beside it, no symlink) are touched: a user's folder of a kit-like name
    beside the data, or a symlink, is never removed, followed or written into."""
    dest = Path(os.path.abspath(dest))
    with contextlib.suppress(OSError):
        for aside in _made_here(dest.parent, f".{dest.name}{OLD}"):
            previous = aside / dest.name
            if previous.is_dir() and not previous.is_symlink() and not dest.exists() and _is_kit_meta(previous / META):
                os.replace(previous, dest)
            _unmade(aside)
        for partial in _made_here(dest.parent, f".{dest.name}{PARTIAL}"):  # a killed install's scratch folder
            if not partial.exists():  # killed between its mark and its folder, or after its removal
                _unmade(partial)
                continue
            unused = locks.try_exclusive(partial / IN_USE)
            if unused is not None:  # no install holds it: its process is gone
                unused.release()
                _unmade(partial)


def _unwritable(dest: Path, exc: OSError) -> DataError:
    return DataError(
        f"Cannot write the data to {dest} ({exc.strerror or exc}); choose a writable --data-dir (or $KIT_DATA_DIR)."
    )


@contextlib.contextmanager
def scratch_dir(dest: Path) -> Iterator[str]:
    """A temporary directory on the same filesystem as `dest` (so the final move is an atomic rename), locked while it
    is in use: one left by a killed install (`.<name>.partial-*`) is removed by the next `recover`."""
    dest = Path(os.path.abspath(dest))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        folder = _made(dest.parent, f".{dest.name}{PARTIAL}")
        folder.mkdir(mode=0o700)
        tmp = str(folder)
        held = locks.try_exclusive(Path(tmp) / IN_USE)
    except OSError as exc:
        raise _unwritable(dest, exc) from None
    try:
        yield tmp
    finally:
        if held is not None:
            held.release()
        _unmade(Path(tmp))


MAX_MEMBER = 512 << 20  # bytes: the competition's largest file (train.csv) is 73 MB; a zip bomb stops here


def install_zip(zip_path: Path, dest: Path, source: str = "zip") -> dict:
    """Install the competition from a zip laid out as `kaggle competitions download` makes it."""
    zip_path = Path(zip_path)
    dest = check_destination(dest)
    if not zip_path.is_file():
        raise DataError(f"{zip_path} does not exist; pass the path of the digit-recognizer.zip you downloaded.")
    with scratch_dir(dest) as tmp:
        work = Path(tmp) / "data"
        work.mkdir()
        try:
            with zipfile.ZipFile(zip_path) as archive:
                names = {Path(n).name: n for n in archive.namelist() if not n.endswith("/")}
                missing = [f for f in FILES if f not in names]
                if missing:
                    raise DataError(
                        f"{zip_path.name} does not contain {', '.join(missing)}; it is not the digit-recognizer "
                        "data: download it again with `kit download`."
                    )
                for name in FILES:
                    _extract(archive, names[name], work / name, zip_path)
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise DataError(
                f"{zip_path.name} is corrupt or truncated ({str(exc)[:120]}); delete it and download it again "
                "(`kit download --force`)."
            ) from None
        return install_folder(work, dest, source)


def _extract(archive: zipfile.ZipFile, member: str, target: Path, zip_path: Path) -> None:
    """One member to `target`, bounded: checked before (encryption, compression method, declared size) and while
    (at most MAX_MEMBER bytes written, whatever the member declares)."""
    info = archive.getinfo(member)
    what = f"{zip_path.name}: {member[:80]}"
    if info.flag_bits & 0x1:
        raise DataError(f"{what} is encrypted; kit reads the competition's own zip: download it again with `kit "
                        "download --force`.")  # fmt: skip
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        raise DataError(f"{what} is compressed in a way Python cannot read (method {info.compress_type}); zip it "
                        "again with the usual Deflate, or download it again with `kit download --force`.")  # fmt: skip
    if info.file_size > MAX_MEMBER:
        raise DataError(f"{what} says it unpacks to {info.file_size / 2**20:,.0f} MB, far more than the competition's "
                        "files; it is not the digit-recognizer data: download it again.")  # fmt: skip
    written = 0
    with archive.open(info) as src, open(target, "wb") as out:
        while chunk := src.read(1 << 20):  # a CRC or truncation error raises here
            written += len(chunk)
            if written > MAX_MEMBER:
                raise DataError(f"{what} unpacks to more than {MAX_MEMBER >> 20} MB; it is not the digit-recognizer "
                                "data: download it again.")  # fmt: skip
            out.write(chunk)


def attached_competition(root: Path) -> Path | None:
    """The folder under `root` (a Kaggle Notebook's /kaggle/input) holding the attached digit-recognizer files; its
    path differs between notebooks (input/digit-recognizer, input/competitions/digit-recognizer, ...). A folder
    whose train.csv starts `label,pixel0` wins, the shallowest first; None when there is none."""
    found = []
    for folder, dirs, files in os.walk(root):
        if len(Path(folder).relative_to(root).parts) >= 4:
            dirs[:] = []
        if TRAIN in files and TEST in files:
            try:
                with open(Path(folder) / TRAIN, encoding="utf-8", errors="replace") as f:
                    header = f.readline(64)
            except OSError:
                continue
            found.append((not header.startswith("label,pixel0"), len(Path(folder).parts), folder))
    return Path(min(found)[2]) if found else None


def install_attached(root: Path, dest: Path) -> dict:
    """Install the competition data attached to a Kaggle Notebook (found under `root`) through the same checks
    as a download; no credentials needed. The input folder is read-only, so the files are copied."""
    dest = check_destination(dest)
    folder = attached_competition(root)
    if folder is None:
        raise DataError(
            f"No digit-recognizer data is attached under {root}; in the notebook's sidebar choose Add Input -> "
            "Competitions -> Digit Recognizer (or set KIT_KAGGLE_INPUT to the folder that holds it)."
        )
    with scratch_dir(dest) as tmp:
        work = Path(tmp) / "data"
        work.mkdir()
        for name in FILES:
            if not (folder / name).is_file():
                raise DataError(f"{folder} has no {name}; attach the whole Digit Recognizer competition data.")
            shutil.copyfile(folder / name, work / name)
        return install_folder(work, dest, "kaggle-notebook")


@dataclass
class Installed:
    dest: Path
    meta: dict  # kit.json: source, train_rows, test_rows, installed_utc
    new: bool  # False: the data was there already, and nothing was done


def install(
    dest: Path | None = None,
    force: bool = False,
    from_zip: Path | None = None,
    sample: bool = False,
    downloading: Callable[[], AbstractContextManager] = contextlib.nullcontext,
) -> Installed:
    """`kit download`: install the competition data into `dest` from the offline sample, a zip the user has, the
    data attached to a Kaggle Notebook, or else a Kaggle download (inside `downloading()`, a progress display).
    Data already there is loaded (a damaged cache is rebuilt) and kept, unless `force`."""
    if sample and from_zip:
        raise UsageError("Use either --sample or --from-zip, not both.")
    dest = data_dir(dest)
    recover(dest)
    meta = read_meta(dest)
    if meta and not force and (meta["source"] == "sample") == sample:
        load_competition(dest)
        return Installed(dest, meta, new=False)
    if meta and not force and sample:
        raise UsageError(
            f"{dest} holds the real competition data; put the sample elsewhere with --data-dir (or $KIT_DATA_DIR), "
            "or pass --force to replace the real data with it."
        )
    dest = check_destination(dest)  # before any download: kit never replaces a folder it did not install
    if sample:
        return Installed(dest, install_sample(dest), new=True)
    if from_zip:
        return Installed(dest, install_zip(from_zip, dest, source="zip"), new=True)
    if paths.in_kaggle_notebook():  # the competition's files are attached to the notebook: no credentials needed
        return Installed(dest, install_attached(paths.kaggle_input(), dest), new=True)
    from kit import kaggle_api

    with downloading(), scratch_dir(dest) as tmp:
        archive = kaggle_api.download_competition(Path(tmp))
        return Installed(dest, install_zip(archive, dest, source="kaggle"), new=True)


def load_competition(dest: Path | None = None) -> Competition:
    """The installed competition as numpy arrays, from the uint8 cache (rebuilt if the CSVs are newer)."""
    dest = data_dir(dest)
    recover(dest)
    meta = read_meta(dest)
    if meta is None:
        raise DataError(
            f"No competition data in {dest}; run `kit download` (or `kit download --sample` for the offline sample)."
        )
    cache = dest / CACHE
    if any((dest / f).stat().st_mtime > cache.stat().st_mtime for f in FILES):
        _write_cache(dest, *read_competition_csvs(dest))
    try:
        arrays = _read_cache(cache)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        _write_cache(dest, *read_competition_csvs(dest))  # a damaged cache is rebuilt from the (checked) CSVs
        arrays = _read_cache(cache)
    return Competition(*arrays, source=meta.get("source", "zip"), path=dest)


def _read_cache(cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(cache) as arrays:
        train_images, train_labels, test_images = (arrays[k] for k in ("train_images", "train_labels", "test_images"))
    if (
        train_images.shape[1:] != (28, 28, 1)
        or len(train_images) != len(train_labels)
        or test_images.shape[1:] != (28, 28, 1)
    ):
        raise ValueError("the cache's arrays have the wrong shapes")
    return train_images, train_labels, test_images


# ---------------------------------------------------------------------------------------- offline sample


def sample_arrays(test_size: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8x8 digits, resized to MNIST's shape: (train_x, train_y, test_x, test_y).

    Like MNIST, each digit fills a 20x20 box centred in 28x28, with values 0..255.
    """
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    big = zoom(digits.images / 16.0, (1, 20 / 8, 20 / 8), order=1)  # (1797, 20, 20), bilinear
    images = np.zeros((len(big), 28, 28, 1), np.uint8)
    images[:, 4:24, 4:24, 0] = np.clip(np.round(big * 255), 0, 255).astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=test_size, stratify=labels, random_state=seed
    )
    return train_x, train_y, test_x, test_y


def write_csvs(folder: Path, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> None:
    """Write arrays as Kaggle-shaped train.csv, test.csv and sample_submission.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    train = pd.DataFrame(train_x.reshape(len(train_x), -1), columns=PIXELS)
    train.insert(0, "label", train_y.astype(int))
    train.to_csv(folder / TRAIN, index=False)
    pd.DataFrame(test_x.reshape(len(test_x), -1), columns=PIXELS).to_csv(folder / TEST, index=False)
    ids = np.arange(1, len(test_x) + 1)
    pd.DataFrame({"ImageId": ids, "Label": 0}).to_csv(folder / SAMPLE_SUBMISSION, index=False)


def install_sample(dest: Path) -> dict:
    """Build the offline sample (from sklearn's digits) and install it into `dest` like real data."""
    dest = check_destination(dest)
    train_x, train_y, test_x, _ = sample_arrays()
    with scratch_dir(dest) as tmp:
        work = Path(tmp) / "data"
        write_csvs(work, train_x, train_y, test_x)
        return install_folder(work, dest, "sample")


def head(comp: Competition, rows: int) -> Competition:
    """The competition with only its first `rows` training rows (the test set stays whole)."""
    if rows >= len(comp.train_labels):  # all of them: not limited
        return comp
    return dataclasses.replace(comp, train_images=comp.train_images[:rows], train_labels=comp.train_labels[:rows],
                               rows=rows)  # fmt: skip


def where(comp: Competition) -> dict[str, Any] | None:
    """How another process loads the same data (`load_again`), or None when it was built in memory."""
    return None if comp.path is None else {"path": str(Path(comp.path).resolve()), "rows": comp.rows}


def load_again(where: dict[str, Any]) -> Competition:
    """The competition `where` describes: the installed data of that folder, cut to the same rows."""
    comp = load_competition(Path(where["path"]))
    return head(comp, where["rows"]) if where["rows"] is not None else comp
