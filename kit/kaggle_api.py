"""The only module that imports `kaggle`: credentials, download, submit, poll, quota; Kaggle's errors mapped.

`import kaggle` authenticates at once (and may call Kaggle), so it happens inside `client()`, never at
module import: `kit --help` and every offline command stay fast and work without credentials.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kit import COMPETITION, paths
from kit.errors import (
    CredentialsError,
    KaggleError,
    KaggleUnavailable,
    KitError,
    NothingSent,
    OfflineError,
    QuotaError,
    UsageError,
)

T = TypeVar("T")
log = logging.getLogger("kit")  # notices while kit waits on Kaggle; `kit` prints them on stderr

RATE_LIMIT_WAIT_S = 300.0  # the longest kit waits out Kaggle's 429s (Retry-After) for one call before saying so
POLL_FIRST_S, POLL_MAX_S = 5.0, 30.0  # the client's own minimum between polls is 5 s
KERNELS_CLIENT = (2, 2, 5)  # `kit train --kaggle`: quota_view 2.2.1, live logs 2.2.3, version-pinned status 2.2.5

TOKEN_URL = "https://www.kaggle.com/settings/api"
CREDENTIALS_HELP = (
    "No Kaggle credentials found: create an API token at "
    f"{TOKEN_URL} and save it as ~/.kaggle/kaggle.json (or in $KAGGLE_CONFIG_DIR), or set "
    "KAGGLE_USERNAME and KAGGLE_KEY, or put a new-style token in KAGGLE_API_TOKEN or ~/.kaggle/access_token."
)


def client_version() -> tuple[int, ...]:
    """The installed kaggle client's version, read without importing it (importing authenticates)."""
    from importlib import metadata

    try:
        text = metadata.version("kaggle")
    except metadata.PackageNotFoundError:
        raise KaggleError("The kaggle package is not installed: pip install -U kaggle") from None
    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in text.split(".")[:3]]
    return tuple(parts)


def require_client(need: tuple[int, ...], what: str) -> None:
    """A one-line UsageError when the installed kaggle client is older than `need` for `what`."""
    have = client_version()
    if have < need:
        wanted, installed = ".".join(map(str, need)), ".".join(map(str, have))
        raise UsageError(f"{what} needs kaggle >= {wanted} (this is {installed}): pip install -U kaggle")


def _config_dirs() -> list[Path]:
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return [Path(os.environ["KAGGLE_CONFIG_DIR"])]
    home = Path.home()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    return [home / ".kaggle", xdg / "kaggle"]


def client_config_dir() -> Path:
    """The folder of `_config_dirs` the kaggle client makes at import when it is missing: ~/.kaggle where it exists,
    else (Linux) the XDG one. Its check-then-make races: of two kit commands started at once with neither there, one
    died in `import kaggle` (FileExistsError)."""
    first, *xdg = _config_dirs()
    return xdg[0] if xdg and sys.platform.startswith("linux") and not first.exists() else first


def find_credentials() -> str | None:
    """Where the Kaggle client will find credentials (a short description), or None. Never imports kaggle."""
    home = Path.home() / ".kaggle"
    tokens = [home / "access_token", home / "access_token.txt", home / "credentials.json"]
    jsons = [folder / "kaggle.json" for folder in _config_dirs()]
    there = {path: _credential_file(path) for path in [*tokens, *jsons]}  # every file checked: the client reads
    # them whichever source wins (a pipe among them would hang it, /dev/zero fill the memory)
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    for token in tokens:
        if there[token] and token.read_text(errors="replace").strip():
            return str(token)
    return next((str(path) for path in jsons if there[path]), None)


def _sendable(source: str) -> None:
    """Credentials travel in HTTP headers, which hold Latin-1 only: a character past it (a pasted curly quote, say)
    is one line naming where it is, before any request, not a puzzle about Kaggle's answer."""
    values = {name: os.environ.get(name, "") for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY")}
    if source.endswith(".json") or "access_token" in source:
        try:
            text = Path(source).read_text(encoding="utf-8", errors="strict")
        except (OSError, UnicodeDecodeError):
            text = ""
        values = {source: text}
    for where, value in values.items():
        try:
            value.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise CredentialsError(f"{where} holds {value[exc.start]!r}, a character HTTP cannot send; copy the "
                                   f"token from {TOKEN_URL} again, as plain text.") from None  # fmt: skip


MAX_CREDENTIALS = 64 << 10  # bytes: a token file is well under 1 KB


def _credential_file(path: Path) -> bool:
    """Whether a credentials file is there to read: False where there is none; a CredentialsError where the name
    is taken by something kit will not read (a folder, a pipe, a device, a huge file), which the client would hang on
    or read whole."""
    import stat

    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise CredentialsError(
            f"{path} cannot be read ({exc.strerror}); download a new API token from {TOKEN_URL}."
        ) from None
    if not stat.S_ISREG(info.st_mode):
        what = "a folder" if stat.S_ISDIR(info.st_mode) else "a pipe" if stat.S_ISFIFO(info.st_mode) else "not a file"
        raise CredentialsError(f"{path} is {what}, not a token file; remove it and save the API token from "
                               f"{TOKEN_URL} there.")  # fmt: skip
    if info.st_size > MAX_CREDENTIALS:
        raise CredentialsError(f"{path} is {info.st_size:,} bytes, too large to be a Kaggle API token; replace it "
                               f"with the token from {TOKEN_URL}.")  # fmt: skip
    return True


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The kaggle client prints to stdout (auth help, progress); kit renders its own output."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def check_kaggle_json(path: Path) -> None:
    """The kaggle.json the client will read, checked for what it needs (a JSON object with "username" and "key"):
    one that is empty, not JSON or incomplete is named with what is wrong, instead of "no credentials found"."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"{path} cannot be read ({exc}); download a new API token from {TOKEN_URL}.") from None
    if not text.strip():
        raise CredentialsError(f"{path} is empty; download a new API token from {TOKEN_URL} and save it there.")
    try:
        token = json.loads(text)
    except ValueError:
        raise CredentialsError(f"{path} is not JSON; it should be the kaggle.json downloaded from {TOKEN_URL} "
                               '({"username": "...", "key": "..."}).') from None  # fmt: skip
    missing = [k for k in ("username", "key") if not (isinstance(token, dict) and isinstance(token.get(k), str)
                                                      and token[k].strip())]  # fmt: skip
    if missing:
        raise CredentialsError(f"{path} has no {' or '.join(repr(k) for k in missing)}; it needs both "
                               f'"username" and "key": download a new API token from {TOKEN_URL}.')  # fmt: skip


def answer_timeout() -> float:
    """Seconds kit waits for any one answer from Kaggle ($KIT_KAGGLE_TIMEOUT, default 120): a silent server is a
    network error, never a hang."""
    try:
        seconds = float(os.environ.get("KIT_KAGGLE_TIMEOUT") or 120)
    except ValueError:
        raise UsageError(f"KIT_KAGGLE_TIMEOUT={os.environ['KIT_KAGGLE_TIMEOUT'][:20]!r}: a number of seconds") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"KIT_KAGGLE_TIMEOUT={seconds:g}: must be a number of seconds > 0")
    return seconds


def _bound_requests(seconds: float) -> None:
    """Give every HTTP request of this process that sets no timeout one (connect and each read): the kaggle client
    sets none and offers no way to, so its transport's default is set here, once."""
    from requests.adapters import HTTPAdapter

    send = getattr(HTTPAdapter.send, "_kit_unbounded", HTTPAdapter.send)

    def bounded(self: Any, request: Any, *args: Any, timeout: Any = None, **kwargs: Any) -> Any:
        return send(self, request, *args, timeout=(min(15.0, seconds), seconds) if timeout is None else timeout,
                    **kwargs)  # fmt: skip

    bounded._kit_unbounded = send  # type: ignore[attr-defined]
    HTTPAdapter.send = bounded  # type: ignore[method-assign]


def client() -> Any:
    """An authenticated `kaggle.KaggleApi`, or a clear error."""
    _bound_requests(answer_timeout())
    source = find_credentials()
    if source is None:
        raise CredentialsError(CREDENTIALS_HELP)
    if source.endswith("kaggle.json"):
        check_kaggle_json(Path(source))
    _sendable(source)
    with contextlib.suppress(OSError):  # made here, race-free; where it cannot be, the client says why
        client_config_dir().mkdir(parents=True, exist_ok=True)
    with _quiet():
        try:
            import kaggle  # authenticates on import; failures are swallowed there and re-raised below
        except Exception as exc:  # a broken kaggle.json, say; or (kaggle 2.0.x) a token Kaggle rejected at import
            if "unauthenticated" in str(exc).lower() or "401" in str(exc):
                raise _rejected("start the Kaggle client") from None
            raise CredentialsError(f"The Kaggle client failed to start ({exc}); check your credentials.") from None
        api = kaggle.api
        if not getattr(api, "_authenticated", False):
            try:
                call(api.authenticate, "authenticate")
            except SystemExit:  # the client's own exit: found none it could use, or (a token) was refused
                raise _rejected("authenticate") if source == "KAGGLE_API_TOKEN" else CredentialsError(
                    CREDENTIALS_HELP) from None  # fmt: skip
    return api


def call(fn: Callable[..., T], what: str, *args: Any, not_found: Any = KaggleError, unseen: bool = False,
         **kwargs: Any) -> T:  # fmt: skip
    """Run one kaggle client call, turning HTTP and network failures into kit errors. A 429 is waited out as its
    Retry-After says, by the client's own retry loop, while the wait stays within RATE_LIMIT_WAIT_S; then one line.
    `not_found`: what a 404 returns instead of raising (KaggleError: raise); with `unseen`, what a 403 returns too:
    Kaggle answers 403 for what the caller cannot see, whether it exists or not."""
    import requests

    started = time.monotonic()
    deadline = started + RATE_LIMIT_WAIT_S

    def once(*a: Any, **kw: Any) -> T:
        try:
            with _quiet():
                return fn(*a, **kw)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if (status == 404 or (status == 403 and unseen)) and not_found is not KaggleError:
                return not_found
            if status == 429:
                delay = _retry_after(exc.response)
                if time.monotonic() + (delay or 0.0) <= deadline:
                    log.warning(f"Kaggle asked kit to slow down (429) while trying to {what}; waiting "
                                f"{f'{delay:.0f} s, as it asked' if delay is not None else 'a little'}.")  # fmt: skip
                    raise  # the client's retry loop waits and asks again
                raise _rate_limited(what, delay, time.monotonic() - started) from None
            raise _http_error(exc, what) from None
        except requests.JSONDecodeError:  # a 200 that is not Kaggle's API: a proxy's, a captive portal's page
            raise _not_json(what) from None
        except requests.RequestException as exc:  # refused, reset, timed out, cut mid-reply: never a folder problem
            raise OfflineError(
                f"Could not reach Kaggle to {what} ({type(exc).__name__}); check your internet connection "
                "(and any proxy settings), then try again."
            ) from None

    client_api = getattr(sys.modules.get("kaggle"), "api", None)
    if client_api is None or not hasattr(client_api, "with_retry"):  # before the client is up (authenticate)
        return once(*args, **kwargs)
    try:  # the client's own retry notices are hidden: kit says it in its words
        with _quiet(), contextlib.redirect_stderr(io.StringIO()):
            return client_api.with_retry(lambda: once(*args, **kwargs))()  # kaggle 2.0.2's passes no kwargs
    except requests.HTTPError as exc:  # the client's retries ran out, still 429
        raise _rate_limited(what, _retry_after(exc.response), time.monotonic() - started) from None


def _not_json(what: str) -> KaggleError:
    return KaggleError(f"Kaggle's answer when trying to {what} was not JSON (a proxy's or a sign-in page?); check "
                       "your network, then try again.")  # fmt: skip


def _retry_after(response: Any) -> float | None:
    """Seconds a 429's Retry-After asks for (a number or an HTTP date), or None."""
    from email.utils import parsedate_to_datetime

    value = (response.headers.get("Retry-After") or "").strip() if response is not None else ""
    if not value:
        return None
    try:
        seconds = float(value)  # delta-seconds
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()  # an HTTP date
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return min(max(0.0, seconds), RETRY_AFTER_MAX_S) if math.isfinite(seconds) else None


RETRY_AFTER_MAX_S = 86_400.0  # a Retry-After past a day (or infinite) is read as "tomorrow"


def _rate_limited(what: str, delay: float | None, waited: float) -> QuotaError:
    """Kaggle still says 429 after kit waited `waited` seconds (measured) as it asked: when to try again."""
    if delay is None or delay < 90:
        later = "in a few minutes"
    elif delay >= RETRY_AFTER_MAX_S:
        later = "tomorrow"
    elif delay >= 2 * 3600:
        later = f"in {delay / 3600:.0f} hours"
    else:
        later = f"in {delay / 60:.0f} minutes"
    return QuotaError(f"Kaggle is rate-limiting you (429) when trying to {what}; kit waited {waited:.0f} s as it "
                      f"asked and stopped: try again {later}.")  # fmt: skip


def _http_error(exc: Any, what: str) -> Exception:
    status = exc.response.status_code if exc.response is not None else 0
    detail = str(exc).strip() or f"HTTP {status}"
    if status == 401:
        return _rejected(what)
    if status == 403:
        return KaggleError(
            f"Kaggle refused to {what} (403): accept the competition rules at "
            f"https://www.kaggle.com/competitions/{COMPETITION}/rules with your account, then try again."
        )
    if "allowance" in detail.lower():  # the daily limit, as Kaggle words it
        return QuotaError(f"Kaggle refused to {what}: {detail}")
    if status == 404:
        return KaggleError(
            f"Kaggle found no competition '{COMPETITION}' (404) when trying to {what}; check the name, or "
            "whether your kaggle package is up to date."
        )
    if status == 429:
        return _rate_limited(what, _retry_after(exc.response), 0.0)
    kind = KaggleUnavailable if status >= 500 else KaggleError
    return kind(f"Kaggle could not {what} (HTTP {status}: {detail[:200]}); try again later.")


def _rejected(what: str) -> CredentialsError:
    """Kaggle said no to the credentials kit found (401): which ones, and how to replace them."""
    source = find_credentials()
    if source == "KAGGLE_API_TOKEN":
        which, fix = "the token in KAGGLE_API_TOKEN", "set KAGGLE_API_TOKEN to it"
    elif source == "KAGGLE_USERNAME/KAGGLE_KEY":
        which, fix = "KAGGLE_USERNAME and KAGGLE_KEY", "set KAGGLE_USERNAME and KAGGLE_KEY to its values"
    else:
        which, fix = f"the credentials in {source}", f"replace {source} with it"
    return CredentialsError(
        f"Kaggle rejected {which} (401) when trying to {what}: create a new API token at {TOKEN_URL} and {fix}."
    )


def download_competition(folder: Path) -> Path:
    """Download the competition's zip into `folder` through the official client; returns the zip's path."""
    api = client()
    call(
        api.competition_download_files,
        "download the competition data",
        COMPETITION,
        path=str(folder),
        force=True,
        quiet=True,
    )
    zips = sorted(Path(folder).glob("*.zip"))
    if not zips:
        raise KaggleError("Kaggle's download finished but produced no zip file; try `kit download --force` again.")
    return zips[0]


# ---------------------------------------------------------------------------------------------- submissions


STATUSES = ("pending", "complete", "error")


def _submission(item: Any) -> dict[str, Any]:
    """A kagglesdk ApiSubmission as a plain dict with the ledger's names, checked: a positive ref, a known status, a
    finite score once complete (else a KaggleError in one line)."""
    ref = _ref(getattr(item, "ref", None))
    if not ref:
        raise KaggleError(f"Kaggle named a submission {_excerpt(item.ref)}, not a submission number; try again later.")
    status = getattr(item.status, "name", str(item.status or "PENDING")).lower()
    status = status.removeprefix("submission_status_")
    if status not in STATUSES:
        raise KaggleError(f"Kaggle gave submission {ref} a status kit does not know ({_excerpt(status)}); "
                          "`pip install -U kaggle kit` may know it.")  # fmt: skip
    public = str(item.public_score or "").strip()
    if status == "complete" and not _is_score(public):
        raise KaggleError(f"Kaggle says submission {ref} is scored but its public score is {_excerpt(public)}; "
                          "`kit leaderboard --sync` reads it again later.")  # fmt: skip
    date = paths.utc_now(item.date) if getattr(item, "date", None) else ""
    return {
        "ref": ref,
        "status": status,
        "public_score": public,
        "private_score": str(item.private_score or "").strip() if _is_score(item.private_score) else "",
        "error": (item.error_description or "").strip()[:500] if status == "error" else "",
        "message": item.description or "",
        "file": item.file_name or "",
        "utc_time": date,
    }


def _ref(value: Any) -> int:
    """A submission ref as Kaggle sends it (a number, or its digits as a string), or 0 where it is none."""
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return int(text) if text.isdigit() and len(text) < 19 else 0


def _is_score(text: Any) -> bool:
    try:
        return math.isfinite(float(str(text).strip()))
    except ValueError:
        return False


def _excerpt(value: Any, limit: int = 40) -> str:
    """A value from outside, quoted short: an error message never carries more than `limit` characters of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ask(api: Any, method: str, request: Any, what: str, not_found: Any = KaggleError) -> Any:
    """One call of the kagglesdk competitions client (`not_found`: as for `call`); an answer the client cannot parse
    (a field of the wrong type, an unknown value) is a KaggleError in one line."""

    def send() -> Any:
        with api.build_kaggle_client() as kaggle:
            try:
                return getattr(kaggle.competitions.competition_api_client, method)(request)
            except json.JSONDecodeError:  # kagglesdk's own parse of a 200 that is not Kaggle's API
                raise _not_json(what) from None
            except (KeyError, TypeError, ValueError) as exc:  # a field kagglesdk does not expect, an unknown value
                raise KaggleError(f"Kaggle's answer when trying to {what} could not be read ({type(exc).__name__}: "
                                  f"{_excerpt(str(exc))}); try again later.") from None  # fmt: skip

    return call(send, what, not_found=not_found)


def remaining_today(api: Any) -> int | None:
    """Submissions Kaggle still allows today, or None where it does not say: a server without the limits call, or a
    client without it (kaggle 2.0.x, as Kaggle's and Colab's notebooks ship): then the upload itself tells."""
    try:
        from kagglesdk.competitions.types.competition_api_service import ApiGetSubmissionLimitsRequest
    except ImportError:
        list_submissions(api, pages=1, page_size=1)  # still: the credentials and the rules, before anything is sent
        return None
    request = ApiGetSubmissionLimitsRequest()
    request.competition_name = COMPETITION
    try:
        limits = _ask(api, "get_submission_limits", request, "check today's submission quota")
    except KaggleError:
        return None
    return int(limits.num_allowed_now)


UPLOAD_FAILED = "Could not submit to competition"  # the client's reply when its upload of the file did not complete


def upload(api: Any, csv_path: Path, message: str) -> int | None:
    """Upload a submission file and create the submission; returns Kaggle's submission ref, or None when Kaggle
    created it without saying its ref (`kit leaderboard --sync` matches it by its message)."""
    try:
        with _told_retries():
            response = call(api.competition_submit, "submit", str(csv_path), message, COMPETITION, quiet=True)
    except OfflineError:
        raise OfflineError(
            "The connection to Kaggle broke while submitting, so the submission may have been created: run "
            "`kit leaderboard --sync` (it fills in its ref and score) before submitting again."
        ) from None
    said = str(getattr(response, "message", "") or "").strip()
    if said == UPLOAD_FAILED:  # the blob upload gave up (after the client's own retries): nothing was created
        raise NothingSent(f"The upload of {csv_path.name} to Kaggle did not complete (the connection dropped?); "
                          "nothing was submitted: check your connection and try again.")  # fmt: skip
    ref = _ref(getattr(response, "ref", None))
    if ref:
        return ref
    if "success" in said.lower():
        return None
    raise KaggleError(f"Kaggle did not accept the upload ({_excerpt(said, 200) if said else 'no reason given'}); "
                      "try again later.")  # fmt: skip


UPLOAD_RETRIES = 3  # the kaggle client retries a broken blob upload 10 times, silently (about 6 minutes)


@contextlib.contextmanager
def _told_retries() -> Iterator[None]:
    """The kaggle client's own retries of a broken file upload (urllib3's Retry, inside the client), bounded to
    UPLOAD_RETRIES and each said as a note, for the block."""
    module = sys.modules.get("kaggle.api.kaggle_api_extended")
    original = getattr(module, "Retry", None)
    if original is None:
        yield
        return

    class Told(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if isinstance(kwargs.get("total"), int):
                kwargs["total"] = min(kwargs["total"], UPLOAD_RETRIES)
            super().__init__(*args, **kwargs)

        def increment(self, *args: Any, **kwargs: Any) -> Any:
            retry = super().increment(*args, **kwargs)  # raises once the retries are spent
            tried = UPLOAD_RETRIES - retry.total if isinstance(retry.total, int) else "?"
            log.warning(f"The upload to Kaggle broke off; the kaggle client tries again ({tried} of {UPLOAD_RETRIES}).")
            return retry

    module.Retry = Told
    try:
        yield
    finally:
        module.Retry = original


def get_submission(api: Any, ref: int) -> dict[str, Any] | None:
    """The submission's state, or None while Kaggle does not know it yet (a 404 right after it was created)."""
    from kagglesdk.competitions.types.competition_api_service import ApiGetSubmissionRequest

    request = ApiGetSubmissionRequest()
    request.ref = int(ref)
    found = _ask(api, "get_submission", request, "check the submission's status", not_found=None)
    return None if found is None else _submission(found)


def list_submissions(api: Any, pages: int = 10, page_size: int = 100) -> list[dict[str, Any]]:
    """Your submissions to the competition, newest first (up to `pages` pages of `page_size`)."""
    from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsRequest

    found: list[dict[str, Any]] = []
    token = ""
    for _ in range(pages):
        request = ApiListSubmissionsRequest()
        request.competition_name = COMPETITION
        request.page_size = page_size
        request.page_token = token
        response = _ask(api, "list_submissions", request, "list your submissions")
        found += [_submission(s) for s in response.submissions or []]
        token = response.next_page_token or ""
        if not token:
            break
    return found


UNSEEN_S = 120.0  # how long a new submission may stay unknown to Kaggle (404) before kit stops waiting for it


def poll(ask: Callable[[], T], ended: Callable[[T], bool], timeout: float | None = None,
         on_poll: Callable[[T], None] | None = None) -> T:  # fmt: skip
    """Ask until `ended(answer)`, or until `timeout` seconds pass (then the last answer): every POLL_FIRST_S seconds
    at first, then half as often again after each ask, up to every POLL_MAX_S."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = POLL_FIRST_S
    while True:
        answer = ask()
        if on_poll is not None:
            on_poll(answer)
        if ended(answer):
            return answer
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return answer
        time.sleep(delay if left is None else min(delay, left))  # the last ask at the deadline, not before it
        delay = min(POLL_MAX_S, delay * 1.5)


def wait_for_score(api: Any, ref: int, timeout: float,
                   on_poll: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Poll a submission until it is complete or in error, or until `timeout` seconds pass (then the last status,
    still pending, is returned). Kaggle may not know a submission for a while after creating it (404): it is
    pending meanwhile, for at most UNSEEN_S seconds; then a KaggleError says what kit knows."""
    pending = {"ref": ref, "status": "pending", "public_score": "", "private_score": "", "error": ""}
    first = time.monotonic()
    failed: list[KitError] = []  # the last ask's transient failure, if it failed

    def ask() -> dict[str, Any]:
        failed.clear()
        try:
            state = get_submission(api, ref)
        except (KaggleUnavailable, OfflineError) as exc:  # a server error or a dropped connection: ask again
            why = "a server error" if isinstance(exc, KaggleUnavailable) else "no connection"
            log.warning(f"Kaggle did not answer about submission {ref} ({why}); asking again.")
            failed.append(exc)
            return pending
        if state is None and time.monotonic() - first > UNSEEN_S:
            raise KaggleError(f"Submission {ref} was created, but Kaggle has not shown it for {UNSEEN_S:.0f} s; "
                              "`kit leaderboard --sync` picks up its score later (do not submit the file "
                              "again).")  # fmt: skip
        return pending if state is None else state

    state = poll(ask, lambda state: state["status"] in ("complete", "error"), timeout, on_poll)
    if failed:  # the wait ran out still failing: say so (kit submit adds the ref and --sync)
        raise failed[0]
    return state


# -------------------------------------------------------------------------------------------------- kernels


def username(api: Any) -> str:
    """The Kaggle user the client authenticated as (a kernel's owner)."""
    name = api.get_config_value(api.CONFIG_NAME_USER) or ""
    if not name:
        raise CredentialsError(f"The Kaggle client knows no username; {CREDENTIALS_HELP}")
    return str(name)


def kernel_version(api: Any, ref: str) -> int:
    """The newest version number of kernel `ref` ("owner/slug"), 0 where there is no such kernel yet. Kaggle answers
    a kernel that does not exist yet with a 403 as often as a 404 (it hides which slugs exist), so both mean 0 here:
    a real refusal shows on the push, in its own words."""
    from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest

    owner, _, name = ref.partition("/")
    request = ApiGetKernelRequest()
    request.user_name, request.kernel_slug = owner, name

    def send() -> Any:
        with api.build_kaggle_client() as kaggle:
            return kaggle.kernels.kernels_api_client.get_kernel(request)

    reply = call(send, "look up the training kernel", not_found=None, unseen=True)
    metadata = getattr(reply, "metadata", None)
    return int(getattr(metadata, "current_version_number", 0) or 0) if metadata is not None else 0


def gpu_quota(api: Any) -> dict[str, float] | None:
    """This week's Kaggle GPU quota: {"used_s", "allowed_s"}; None where the server does not say."""
    try:
        reply = call(api.quota_view, "read your GPU quota")
    except KaggleError:
        return None
    gpu = getattr(reply, "gpu_quota", None)
    if gpu is None or not gpu.total_time_allowed:
        return None
    return {"used_s": gpu.time_used.total_seconds() if gpu.time_used else 0.0,
            "allowed_s": gpu.total_time_allowed.total_seconds()}  # fmt: skip


def push_kernel(api: Any, folder: Path, timeout_s: int) -> dict[str, Any]:
    """Push the kernel in `folder` (kernel-metadata.json and its code file) as a new version, which Kaggle queues to
    run and stops after `timeout_s` seconds; returns {"ref", "url", "version"}. A push Kaggle refuses (an HTTP 200
    whose reply carries an error) is a KaggleError with Kaggle's reason."""
    try:
        reply = call(api.kernels_push, "push the training kernel", str(folder), timeout=str(int(timeout_s)))
    except ValueError as exc:  # the client's own checks of the metadata
        raise KaggleError(
            f"The kaggle client refused the kernel ({exc}); this is a bug in kit: please report it."
        ) from None
    if reply is None or reply.error:
        reason = (reply.error if reply is not None else "") or "no reason given"
        rules = f"https://www.kaggle.com/competitions/{COMPETITION}/rules"
        hint = f"accept the competition rules at {rules}, then try again" if "rule" in reason.lower() else "try again"
        raise KaggleError(f"Kaggle refused the training kernel: {reason}; {hint}.")
    return {"ref": reply.ref, "url": reply.url, "version": int(reply.version_number or 0)}


def _kernel(ref: str, version: int) -> str:
    return f"{ref}/{version}" if version else ref


def kernel_status(api: Any, ref: str, version: int) -> dict[str, str]:
    """{"status": queued | running | complete | error | cancel_requested | cancel_acknowledged | new_script,
    "failure": Kaggle's failure message} of that version of the kernel."""
    try:
        reply = call(api.kernels_status, "check the kernel's status", _kernel(ref, version))
    except ValueError as exc:  # the client's 401/403 message: another account's or a deleted kernel
        raise KaggleError(f"Kaggle will not show kernel {ref} to you ({exc})") from None
    status = getattr(reply.status, "name", str(reply.status or "queued")).lower()
    return {"status": status, "failure": (reply.failure_message or "").strip()}


def kernel_output(api: Any, ref: str, version: int, folder: Path, again: str, tries: int = 3) -> list[Path]:
    """Download that version's output files and log into `folder`. An output URL is signed and expires: a file that
    cannot be fetched is listed again (up to `tries` times) for fresh URLs. `again`: the command that fetches it
    later, for the messages."""
    import requests

    for attempt in range(tries):
        try:
            with _quiet():
                files, _ = api.kernels_output(_kernel(ref, version), str(folder), force=True, quiet=True)
            return [Path(f) for f in files]
        except requests.HTTPError as exc:
            url = exc.response.url if exc.response is not None else ""
            if "/api/v1/" in url or attempt == tries - 1:  # the listing itself failed, or the URLs keep failing
                where = "list" if "/api/v1/" in url else "download"
                raise KaggleError(f"Kaggle could not {where} the kernel's output ({exc}); try again later: "
                                  f"`{again}` fetches it again.") from None  # fmt: skip
        except requests.RequestException as exc:
            raise OfflineError(f"The connection to Kaggle broke while downloading the kernel's output "
                               f"({type(exc).__name__}); the kernel's output stays on Kaggle: `{again}` fetches "
                               "it.") from None  # fmt: skip
        except ValueError as exc:  # a 401/403 on the listing, or a file name that would land outside `folder`
            raise KaggleError(f"kit could not fetch the kernel's output: {exc}") from None
    raise AssertionError("unreachable")


def kernel_log_lines(api: Any, ref: str, version: int) -> Iterator[str]:
    """The kernel's log as it is written (Kaggle's live log stream; the saved log once it ended), line by line."""
    for event in api.kernels_logs_stream(_kernel(ref, version)):
        yield from str(event.get("data", "")).splitlines()
