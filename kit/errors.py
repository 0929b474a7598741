"""The errors a user can cause, each with its exit code and one sentence of advice.

Stages raise these; `kit.cli.main` prints the message on stderr (no traceback) and exits with the code.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

# Who is talking to kit: the command line (messages name its flags, `--folds -1`) or Python (`kit.train(folds=-1)`:
# the same messages, naming the function's arguments). kit.cli.main sets it; everyone else reads `for_python`.
FROM_CLI: ContextVar[bool] = ContextVar("kit_from_cli", default=False)
ARGUMENTS = {"lr": "learning_rate", "set": "sets", "no-predict": "predict=False", "model": "model"}


def for_python(message: str) -> str:
    """A message written for the CLI, naming Python's arguments instead: `--folds -1: ...` -> `folds=-1: ...`,
    `--run-id` -> `run_id`."""

    def name(flag: str) -> str:
        return ARGUMENTS.get(flag, flag.replace("-", "_"))

    message = re.sub(r"(?<![\w-])--([a-z][a-z-]*) ('[^']*'|\S+?):", lambda m: f"{name(m[1])}={m[2]}:", message)
    return re.sub(r"(?<![\w-])--([a-z][a-z-]*)", lambda m: name(m[1]), message)


class KitError(Exception):
    """Base class: `str(error)` is the whole message a user sees."""

    exit_code = 1


class UsageError(KitError):
    """A bad option value or combination."""

    exit_code = 2


class CredentialsError(KitError):
    """No Kaggle credentials, or Kaggle rejected them (401)."""

    exit_code = 3


class KaggleError(KitError):
    """Kaggle answered, but said no: rules not accepted (403), not found (404), a failed submission."""

    exit_code = 4


class KaggleUnavailable(KaggleError):
    """Kaggle answered with a server error (HTTP 5xx): worth asking again a little later."""


class OfflineError(KitError):
    """Kaggle could not be reached at all."""

    exit_code = 5


class NothingSent(OfflineError):
    """The connection failed before Kaggle created anything (a submission's upload that did not complete)."""


class DataError(KitError):
    """A corrupt zip, a malformed CSV, missing data files, an invalid submission."""

    exit_code = 6


class QuotaError(KitError):
    """No submissions left today, or a file that was already submitted."""

    exit_code = 7


class RunError(KitError):
    """A run directory that is missing, incomplete or does not match the recipe."""

    exit_code = 8


class Detached(KitError):
    """Ctrl-C while kit waits for a Kaggle kernel: the kernel keeps running, and kit says how to come back to it."""

    exit_code = 130
