"""The only module that imports `kaggle`: credentials, download, submit, poll, quota; Kaggle's errors mapped.

`import kaggle` authenticates at once (and may call Kaggle), so it happens inside `client()`, never at
module import: `kit --help` and every offline command stay fast and work without credentials.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kit import COMPETITION
from kit.errors import CredentialsError, KaggleError, OfflineError, QuotaError

T = TypeVar("T")

TOKEN_URL = "https://www.kaggle.com/settings/api"
CREDENTIALS_HELP = (
    "No Kaggle credentials found: create an API token at "
    f"{TOKEN_URL} and save it as ~/.kaggle/kaggle.json (or in $KAGGLE_CONFIG_DIR), or set "
    "KAGGLE_USERNAME and KAGGLE_KEY, or put a new-style token in KAGGLE_API_TOKEN or ~/.kaggle/access_token."
)


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
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    home = Path.home() / ".kaggle"
    for token in (home / "access_token", home / "access_token.txt", home / "credentials.json"):
        if token.is_file() and token.read_text().strip():
            return str(token)
    for folder in _config_dirs():
        if (folder / "kaggle.json").is_file():
            return str(folder / "kaggle.json")
    return None


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


def client() -> Any:
    """An authenticated `kaggle.KaggleApi`, or a clear error."""
    source = find_credentials()
    if source is None:
        raise CredentialsError(CREDENTIALS_HELP)
    if source.endswith("kaggle.json"):
        check_kaggle_json(Path(source))
    with contextlib.suppress(OSError):  # made here, race-free; where it cannot be, the client says why
        client_config_dir().mkdir(parents=True, exist_ok=True)
    with _quiet():
        try:
            import kaggle  # authenticates on import; failures are swallowed there and re-raised below
        except Exception as exc:  # a broken kaggle.json, say
            raise CredentialsError(f"The Kaggle client failed to start ({exc}); check your credentials.") from None
        api = kaggle.api
        if not getattr(api, "_authenticated", False):
            try:
                call(api.authenticate, "authenticate")
            except SystemExit:
                raise CredentialsError(CREDENTIALS_HELP) from None
    return api


def call(fn: Callable[..., T], what: str, *args: Any, **kwargs: Any) -> T:
    """Run one kaggle client call, turning HTTP and network failures into kit errors."""
    import requests

    try:
        with _quiet():
            return fn(*args, **kwargs)
    except requests.HTTPError as exc:
        raise _http_error(exc, what) from None
    except requests.RequestException as exc:  # refused, reset, timed out, cut mid-reply: never a folder problem
        raise OfflineError(
            f"Could not reach Kaggle to {what} ({type(exc).__name__}); check your internet connection "
            "(and any proxy settings), then try again."
        ) from None


def _http_error(exc: Any, what: str) -> Exception:
    status = exc.response.status_code if exc.response is not None else 0
    detail = str(exc).strip() or f"HTTP {status}"
    if status == 401:
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
    if status == 403:
        return KaggleError(
            f"Kaggle refused to {what} (403): accept the competition rules at "
            f"https://www.kaggle.com/competitions/{COMPETITION}/rules with your account, then try again."
        )
    if status == 404:
        return KaggleError(
            f"Kaggle found no competition '{COMPETITION}' (404) when trying to {what}; check the name, or "
            "whether your kaggle package is up to date."
        )
    if status == 429:
        return QuotaError(f"Kaggle is rate-limiting you (429) when trying to {what}; wait a while and try again.")
    return KaggleError(f"Kaggle could not {what} (HTTP {status}: {detail}); try again later.")


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


def _submission(item: Any) -> dict[str, Any]:
    """A kagglesdk ApiSubmission as a plain dict with the ledger's names."""
    status = getattr(item.status, "name", str(item.status or "PENDING")).lower()
    date = item.date.strftime("%Y-%m-%dT%H:%M:%SZ") if getattr(item, "date", None) else ""
    return {
        "ref": int(item.ref),
        "status": status,
        "public_score": item.public_score or "",
        "private_score": item.private_score or "",
        "error": (item.error_description or "").strip() if status == "error" else "",
        "message": item.description or "",
        "file": item.file_name or "",
        "utc_time": date,
    }


def _ask(api: Any, method: str, request: Any, what: str) -> Any:
    """One call of the kagglesdk competitions client (no retries: kit decides when to ask again)."""

    def send() -> Any:
        with api.build_kaggle_client() as kaggle:
            return getattr(kaggle.competitions.competition_api_client, method)(request)

    return call(send, what)


def remaining_today(api: Any) -> int | None:
    """Submissions Kaggle still allows today, or None where the server does not say."""
    from kagglesdk.competitions.types.competition_api_service import ApiGetSubmissionLimitsRequest

    request = ApiGetSubmissionLimitsRequest()
    request.competition_name = COMPETITION
    try:
        limits = _ask(api, "get_submission_limits", request, "check today's submission quota")
    except KaggleError:
        return None  # a server without the limits call: the upload itself will tell
    return int(limits.num_allowed_now)


def upload(api: Any, csv_path: Path, message: str) -> int:
    """Upload a submission file and create the submission; returns Kaggle's submission ref."""
    import requests

    try:
        with _quiet():
            response = api.competition_submit(str(csv_path), message, COMPETITION, quiet=True)
    except requests.HTTPError as exc:
        text = str(exc).lower()
        if "allowance" in text or "limit" in text:
            raise QuotaError(f"Kaggle refused the submission: {exc}") from None
        raise _http_error(exc, "submit") from None
    except requests.RequestException as exc:
        raise OfflineError(
            f"The connection to Kaggle broke while submitting ({type(exc).__name__}), so the submission may have "
            "been created: run `kit leaderboard --sync` (it fills in its ref and score) before submitting again."
        ) from None
    ref = int(getattr(response, "ref", 0) or 0)
    if not ref:
        raise KaggleError(
            f"Kaggle did not accept the upload ({getattr(response, 'message', '') or 'no reason given'}); "
            "try again later."
        )
    return ref


def get_submission(api: Any, ref: int) -> dict[str, Any]:
    from kagglesdk.competitions.types.competition_api_service import ApiGetSubmissionRequest

    request = ApiGetSubmissionRequest()
    request.ref = int(ref)
    return _submission(_ask(api, "get_submission", request, "check the submission's status"))


def list_submissions(api: Any, pages: int = 10) -> list[dict[str, Any]]:
    """Your submissions to the competition, newest first (up to `pages` pages of 100)."""
    from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsRequest

    found: list[dict[str, Any]] = []
    token = ""
    for _ in range(pages):
        request = ApiListSubmissionsRequest()
        request.competition_name = COMPETITION
        request.page_size = 100
        request.page_token = token
        response = _ask(api, "list_submissions", request, "list your submissions")
        found += [_submission(s) for s in response.submissions or []]
        token = response.next_page_token or ""
        if not token:
            break
    return found


def wait_for_score(
    api: Any,
    ref: int,
    timeout: float,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
    first_delay: float = 1.0,
    max_delay: float = 20.0,
) -> dict[str, Any]:
    """Poll a submission until it is complete or in error (backoff doubling up to `max_delay`), or until
    `timeout` seconds pass (then the last status, still pending, is returned)."""
    import time

    deadline = time.monotonic() + timeout
    delay = first_delay
    while True:
        state = get_submission(api, ref)
        if on_poll is not None:
            on_poll(state)
        if state["status"] in ("complete", "error") or time.monotonic() + delay > deadline:
            return state
        time.sleep(delay)
        delay = min(max_delay, delay * 2)


# -------------------------------------------------------------------------------------------------- kernels


def username(api: Any) -> str:
    """The Kaggle user the client authenticated as (a kernel's owner)."""
    name = api.get_config_value(api.CONFIG_NAME_USER) or ""
    if not name:
        raise CredentialsError(f"The Kaggle client knows no username; {CREDENTIALS_HELP}")
    return str(name)


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


def push_kernel(api: Any, folder: Path) -> dict[str, Any]:
    """Push the kernel in `folder` (kernel-metadata.json and its code file) as a new version, which Kaggle queues to
    run; returns {"ref", "url", "version"}. A push Kaggle refuses (an HTTP 200 whose reply carries an error) is a
    KaggleError with Kaggle's reason."""
    try:
        reply = call(api.kernels_push, "push the training kernel", str(folder))
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
