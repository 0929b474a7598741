"""A fake Kaggle API on 127.0.0.1 that the real `kaggle` client talks to.

With KAGGLE_API_ENVIRONMENT=LOCALHOST the client sends every call to http://localhost/api/v1/<Service>/<Method>
(a JSON POST); with http_proxy pointing here (and NO_PROXY empty), `requests` sends those requests to this
server as a proxy, absolute URL and all. Blob uploads (PUT) and file downloads (GET) go through the same way.

It answers the calls kit makes: downloading the competition files, the submission flow (start upload, the
blob PUT, create, get, list, limits), scoring a submission against labels it holds, ERROR with a reason
for a bad file, and a daily limit. Switches on the instance make it fail the way Kaggle fails.

Kernels: a pushed kernel (SaveKernel) really runs: its code file is executed by this Python in a folder of its own,
with the competition's files attached under input/ (kit's KIT_KAGGLE_INPUT points there, standing in for
/kaggle/input) and working/ as its working directory (/kaggle/working), Kaggle's KAGGLE_KERNEL_RUN_TYPE set, and no
credentials or proxy. Its status goes QUEUED, RUNNING, then COMPLETE or ERROR by the code's exit status; its output
files (signed URLs that can be made to expire), its log (Kaggle's JSON list of events, and the live SSE stream) and
the GPU quota are served as Kaggle serves them. A kernel the caller cannot see (not pushed yet, or another account's)
is a 403 `Permission 'kernels.get' was denied`, as on Kaggle, never a 404.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

COMPETITION = "digit-recognizer"


class _Server(ThreadingHTTPServer):
    request_queue_size = 64  # the default 5 refuses connections when several kit processes call at once


class FakeKaggle:
    def __init__(
        self,
        zip_bytes: bytes = b"",
        test_labels: list[int] | None = None,
        username: str = "alice",
        key: str = "secret",
        daily_limit: int = 5,
    ):
        self.zip_bytes = zip_bytes
        self.test_labels = test_labels or []
        self.username, self.key = username, key
        self.daily_limit = daily_limit
        self.rules_accepted = True
        self.known_competitions = {COMPETITION}
        self.die_after: str | None = None  # method name after which every request is dropped
        self.die_during: str | None = None  # method name whose reply is never sent (it takes effect), then all dropped
        self.dead = False
        self.polls_until_scored = 0  # GetSubmission answers PENDING this many times first
        self.unseen_polls = 0  # GetSubmission answers 404 for a new submission this many times first (as Kaggle may)
        self.throttle: dict[str, int] = {}  # method -> answer 429 this many times first ("*": every method, each)
        self.retry_after = "1"  # the Retry-After header of those 429s ("": none)
        self.throttled: list[str] = []  # the methods answered 429
        self.submission_fields: dict = {}  # merged into every submission Kaggle describes (damaged answers)
        self.create_reply: dict | None = None  # CreateSubmission's reply instead of the real one (it still creates)
        self.html: set[str] = set()  # methods that answer 200 with an HTML page (a proxy's, a sign-in page)
        self.fail_uploads = False  # the blob PUT of a submission's file fails
        self.drop_uploads = 0  # this many blob PUTs lose their connection without an answer (the client retries)
        self.silent: set[str] = set()  # methods that never answer (the connection stays open, for up to 60 s)
        self.unavailable: dict[str, int] = {}  # method -> answer 500 (a server error) this many times first
        # kernels
        self.push_error: str | None = None  # SaveKernel answers HTTP 200 with this error
        self.gpu_used_s, self.gpu_allowed_s = 3600.0, 30 * 3600.0
        self.queued_polls = 1  # GetKernelSessionStatus answers QUEUED this many times first
        self.expire_urls = 0  # the next N output downloads answer as an expired signed URL does
        self.attach = True  # attach the competition's files to a pushed kernel
        self.hang = False  # a pushed kernel hangs (sleeps) instead of running its code, until its session's limit
        self.kernels: dict[str, list[dict]] = {}  # slug -> its versions: {folder, process, polls, log}
        self.root = Path(tempfile.mkdtemp(prefix="fake-kaggle-"))
        self.pushes: list[dict] = []  # the SaveKernel requests, as sent
        self.signed = 0  # output listings so far (each signs its URLs anew)
        self.calls: list[str] = []  # "Service/Method", "PUT /upload/..", "GET /storage/.."
        self.uploads: dict[str, bytes] = {}
        self.submissions: list[dict] = []
        self._next_ref = 1000
        self._lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def env(self) -> dict[str, str]:
        """Environment for a kit process that should talk to this server (credentials included)."""
        proxy = f"http://127.0.0.1:{self.port}"
        return {
            "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
            "http_proxy": proxy,
            "HTTP_PROXY": proxy,
            "https_proxy": proxy,
            "HTTPS_PROXY": proxy,
            "NO_PROXY": "",
            "no_proxy": "",
            "KAGGLE_USERNAME": self.username,
            "KAGGLE_KEY": self.key,
        }

    def start(self) -> FakeKaggle:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for versions in self.kernels.values():
            for v in versions:
                if v["process"].poll() is None:
                    v["process"].kill()
                    v["process"].wait()
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------------------------------- kernels

    def _run_kernel(self, slug: str, text: str, timeout_s: float = 0) -> dict:
        """Start a pushed kernel's code, as Kaggle would, in root/<slug>/v<N>/{input,working}."""
        versions = self.kernels.setdefault(slug, [])
        folder = self.root / slug / f"v{len(versions) + 1}"
        (folder / "working").mkdir(parents=True)
        (folder / "input" / COMPETITION).mkdir(parents=True)
        if self.attach and self.zip_bytes:
            zipfile.ZipFile(io.BytesIO(self.zip_bytes)).extractall(folder / "input" / COMPETITION)
        (folder / "script.py").write_text(text, encoding="utf-8")
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder), "KAGGLE_KERNEL_RUN_TYPE": "Batch",
               "KIT_KAGGLE_INPUT": str(folder / "input"), "TF_CPP_MIN_LOG_LEVEL": "3",
               "KERAS_BACKEND": "tensorflow"}  # fmt: skip
        log = open(folder / "log.txt", "wb")  # noqa: SIM115 - the process writes it until it ends
        code = ["-c", "import time; time.sleep(3600)"] if self.hang else [str(folder / "script.py")]
        process = subprocess.Popen([sys.executable, *code], cwd=folder / "working", env=env,
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        version = {"folder": folder, "process": process, "polls": 0, "started": time.time(), "timeout_s": timeout_s,
                   "timed_out": False}  # fmt: skip
        versions.append(version)
        return version

    def kernel(self, slug: str, version: int | None = None) -> dict:
        versions = self.kernels[slug]
        return versions[(version or len(versions)) - 1]

    def _kernel_status(self, v: dict) -> tuple[str, str]:
        v["polls"] += 1
        if v["polls"] <= self.queued_polls:
            return "QUEUED", ""
        code = v["process"].poll()
        if code is None and v["timeout_s"] and time.time() - v["started"] > v["timeout_s"]:  # the session's limit
            v["process"].kill()
            v["process"].wait()
            v["timed_out"] = True
        if v["timed_out"]:
            return "ERROR", "Your notebook was stopped because it exceeded the maximum allowed execution duration."
        if code is None:
            return "RUNNING", ""
        if code == 0:
            return "COMPLETE", ""
        return "ERROR", f"Your notebook hit an unhandled error while executing (exit code {code})."

    def _log_events(self, v: dict) -> list[dict]:
        text = (v["folder"] / "log.txt").read_text(errors="replace")
        return [{"stream_name": "stdout", "time": 0.0, "data": line} for line in text.splitlines(keepends=True)]

    def methods(self) -> list[str]:
        return [c.split("/")[-1] for c in self.calls]

    # ------------------------------------------------------------------------------------------- scoring

    def _score(self, content: bytes) -> tuple[str, str | None]:
        """(public score, None) or ("", error description), like Kaggle's scorer."""
        lines = content.decode("utf-8", "replace").strip().splitlines()
        if not lines or lines[0].strip() != "ImageId,Label":
            return "", "Submission must have the header 'ImageId,Label'."
        rows = lines[1:]
        if len(rows) != len(self.test_labels):
            return "", f"Submission must have {len(self.test_labels)} rows; found {len(rows)}."
        try:
            labels = [int(r.split(",")[1]) for r in rows]
        except (IndexError, ValueError):
            return "", "Label column must contain integers."
        right = sum(a == b for a, b in zip(labels, self.test_labels, strict=True))
        return f"{right / len(self.test_labels):.5f}", None

    # ------------------------------------------------------------------------------------------ handlers

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _drop(self) -> bool:
                if fake.dead:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return True
                return False

            def _send(self, status: int, payload: dict | bytes, content_type="application/json", headers=None):
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, message: str):
                self._send(status, {"code": status, "message": message})

            def _denied(self, what: str):
                """Kaggle's answer for a kernel you cannot see, whether it exists or not (never a 404: nobody can
                probe another account's slugs)."""
                self._error(403, f"Permission 'kernels.{what}' was denied")

            def _authorised(self) -> bool:
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, key = base64.b64decode(header[6:]).decode().partition(":")
                    if (user, key) == (fake.username, fake.key):
                        return True
                self._error(401, "Unauthenticated")
                return False

            def do_GET(self):
                if self._drop():
                    return
                path = urlsplit(self.path).path
                fake.calls.append(f"GET {path}")
                if path == f"/storage/{COMPETITION}.zip":
                    self._send(
                        200,
                        fake.zip_bytes,
                        "application/zip",
                        {"Last-Modified": formatdate(usegmt=True), "Accept-Ranges": "none"},
                    )
                elif path.startswith("/kernel-output/"):  # a signed output URL: /kernel-output/<slug>/<N>/<name>
                    _, _, slug, version, name = path.split("/", 4)
                    if fake.expire_urls > 0:
                        fake.expire_urls -= 1
                        self._send(400, b"<Error><Code>ExpiredToken</Code>Request has expired</Error>", "text/xml")
                        return
                    body = (fake.kernel(slug, int(version))["folder"] / "working" / name).read_bytes()
                    self._send(200, body, "application/octet-stream", {"Last-Modified": formatdate(usegmt=True)})
                elif path.startswith("/api/v1/kernels/logs/stream/"):  # the live log (SSE), what is written so far
                    if not self._authorised():
                        return
                    slug = path.rstrip("/").rsplit("/", 1)[-1]
                    label = dict(p.split("=", 1) for p in urlsplit(self.path).query.split("&") if "=" in p)
                    v = fake.kernel(slug, int(label.get("versionLabel", "v0")[1:] or 0) or None)
                    lines = [f"data: {json.dumps(e)}\n\n" for e in fake._log_events(v)] + ["data: END_OF_LOG\n\n"]
                    self._send(200, "".join(lines).encode(), "text/event-stream")
                else:
                    self._error(404, "Not found")

            def do_PUT(self):
                if self._drop():
                    return
                if fake.drop_uploads > 0:  # the connection goes mid-upload
                    fake.drop_uploads -= 1
                    fake.calls.append("PUT dropped")
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                path = urlsplit(self.path).path
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.calls.append(f"PUT {path}")
                if fake.fail_uploads:  # the storage refuses the blob: the client gives up on the upload
                    self._send(400, b"<Error><Code>UploadFailed</Code></Error>", "text/xml")
                    return
                token = path.rsplit("/", 1)[-1]
                fake.uploads[token] = body
                self._send(200, {})

            def do_POST(self):
                if self._drop():
                    return
                path = urlsplit(self.path).path
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                service_method = path.removeprefix("/api/v1/")
                fake.calls.append(service_method)
                if not self._authorised():
                    return
                method = service_method.split("/")[-1]
                handler = getattr(self, f"_{method}", None)
                if self._throttled(method):
                    return
                if fake.unavailable.get(method, 0) > 0:
                    fake.unavailable[method] -= 1
                    self._error(500, "Internal error")
                    return
                if method in fake.silent:
                    time.sleep(60)
                    self.close_connection = True
                    return
                if method in fake.html:
                    self._send(200, b"<html><body>Sign in</body></html>", "text/html")
                    return
                if handler is None:
                    self._error(404, f"Unknown method {service_method}")
                elif fake.die_during == method:  # the call takes effect; its reply is lost with the connection
                    self._send = lambda *args, **kwargs: None
                    with fake._lock:
                        handler(body)
                        fake.dead = True
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                else:
                    with fake._lock:
                        handler(body)
                if fake.die_after == method:
                    fake.dead = True

            def _throttled(self, method: str) -> bool:
                """A 429 with Retry-After, as Kaggle rate-limits: `throttle[method]` times, or once for each method
                with "*"."""
                with fake._lock:
                    left = fake.throttle.get(method, fake.throttle.get("*", 0) if method not in fake.throttled else 0)
                    if left <= 0:
                        return False
                    fake.throttle[method] = left - 1
                    fake.throttled.append(method)
                headers = {"Retry-After": fake.retry_after} if fake.retry_after else {}
                self._send(429, {"code": 429, "message": "Too many requests"}, headers=headers)
                return True

            def _competition_ok(self, body) -> bool:
                if body.get("competitionName") not in fake.known_competitions:
                    self._error(404, "Competition not found")
                    return False
                if not fake.rules_accepted:
                    self._error(403, "You must accept this competition's rules before you can continue")
                    return False
                return True

            def _DownloadDataFiles(self, body):
                if self._competition_ok(body):
                    self.send_response(302)
                    self.send_header("Location", f"http://localhost/storage/{COMPETITION}.zip")
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def _GetSubmissionLimits(self, body):
                if self._competition_ok(body):
                    used = len(fake.submissions)
                    self._send(
                        200,
                        {
                            "numToday": used,
                            "numTotal": used,
                            "numAllowedNow": max(0, fake.daily_limit - used),
                            "limitedByTotal": False,
                        },
                    )

            def _StartSubmissionUpload(self, body):
                if self._competition_ok(body):
                    token = f"blob-{len(fake.uploads) + len(fake.calls)}"
                    self._send(200, {"token": token, "createUrl": f"http://localhost/upload/{token}"})

            def _CreateSubmission(self, body):
                if not self._competition_ok(body):
                    return
                if len(fake.submissions) >= fake.daily_limit:
                    self._error(
                        400,
                        f"Submission not allowed: Your team has used its daily Submission allowance "
                        f"({fake.daily_limit}) today, please try again tomorrow UTC.",
                    )
                    return
                token = body.get("blobFileTokens")
                if token not in fake.uploads:
                    self._error(400, "Unknown blob token")
                    return
                score, error = fake._score(fake.uploads[token])
                fake._next_ref += 1
                fake.submissions.append(
                    {
                        "ref": fake._next_ref,
                        "description": body.get("submissionDescription", ""),
                        "fileName": "submission.csv",
                        "date": datetime.now(UTC).replace(tzinfo=None),
                        "score": score,
                        "error": error,
                        "polls": 0,
                        "unseen": fake.unseen_polls,
                        "status": "PENDING",
                    }
                )
                reply = {"message": "Successfully submitted to Digit Recognizer", "ref": fake._next_ref}
                self._send(200, reply if fake.create_reply is None else fake.create_reply)

            def _api_submission(self, s: dict) -> dict:
                return {
                    "ref": s["ref"],
                    "date": s["date"].isoformat(timespec="milliseconds") + "Z",
                    "description": s["description"],
                    "fileName": s["fileName"],
                    "status": s["status"],
                    "publicScore": s["score"] if s["status"] == "COMPLETE" else "",
                    "privateScore": "",
                    "errorDescription": s["error"] or "",
                    **fake.submission_fields,
                }

            def _advance(self, s: dict) -> None:
                s["polls"] += 1
                if s["status"] == "PENDING" and s["polls"] > fake.polls_until_scored:
                    s["status"] = "ERROR" if s["error"] else "COMPLETE"

            def _GetSubmission(self, body):
                for s in fake.submissions:
                    if s["ref"] == int(body.get("ref", 0)):
                        if s["unseen"] > 0:  # created, not yet readable (eventual consistency)
                            s["unseen"] -= 1
                            break
                        self._advance(s)
                        self._send(200, self._api_submission(s))
                        return
                self._error(404, "Submission not found")

            def _ListSubmissions(self, body):
                if self._competition_ok(body):
                    for s in fake.submissions:
                        self._advance(s)
                    newest_first = sorted(fake.submissions, key=lambda s: -s["ref"])
                    self._send(
                        200, {"submissions": [self._api_submission(s) for s in newest_first], "nextPageToken": ""}
                    )

            # ----------------------------------------------------------------------------------- kernels

            def _GetAcceleratorQuotaStatistics(self, body):
                self._send(200, {"gpuQuota": {"timeUsed": f"{fake.gpu_used_s:.0f}s",
                                              "totalTimeAllowed": f"{fake.gpu_allowed_s:.0f}s"},
                                 "tpuQuota": {"timeUsed": "0s", "totalTimeAllowed": "72000s"}})  # fmt: skip

            def _SaveKernel(self, body):
                slug = str(body.get("slug", ""))
                owner, _, name = slug.partition("/")
                if fake.push_error:
                    self._send(200, {"error": fake.push_error})
                    return
                if owner != fake.username or not name or not body.get("text"):
                    self._send(200, {"error": "Notebook not found"})
                    return
                fake.pushes.append(body)
                fake._run_kernel(name, body["text"], float(body.get("sessionTimeoutSeconds") or 0))
                number = len(fake.kernels[name])
                self._send(200, {"ref": f"/code/{owner}/{name}", "url": f"https://www.kaggle.com/code/{owner}/{name}",
                                 "versionNumber": number, "kernelId": 7000 + len(fake.kernels)})  # fmt: skip

            def _GetKernel(self, body):
                name = body.get("kernelSlug", "")
                if body.get("userName") != fake.username or name not in fake.kernels:
                    self._denied("get")
                    return
                self._send(200, {"metadata": {"ref": f"{fake.username}/{name}", "title": name,
                                              "currentVersionNumber": len(fake.kernels[name])}})  # fmt: skip

            def _version_of(self, body) -> dict | None:
                name, label = body.get("kernelSlug", ""), body.get("versionLabel") or ""
                if body.get("userName") != fake.username or name not in fake.kernels:
                    self._denied("get")
                    return None
                number = int(label[1:]) if label.startswith("v") and label[1:].isdigit() else None
                if number is not None and not 1 <= number <= len(fake.kernels[name]):
                    self._error(404, "Kernel version not found")
                    return None
                return fake.kernel(name, number)

            def _GetKernelSessionStatus(self, body):
                v = self._version_of(body)
                if v is not None:
                    status, failure = fake._kernel_status(v)
                    self._send(200, {"status": status, **({"failureMessage": failure} if failure else {})})

            def _ListKernelSessionOutput(self, body):
                v = self._version_of(body)
                if v is None:
                    return
                name, number = body["kernelSlug"], fake.kernels[body["kernelSlug"]].index(v) + 1
                files = sorted(p.name for p in (v["folder"] / "working").iterdir() if p.is_file())
                fake.signed += 1
                listed = [{"url": f"http://localhost/kernel-output/{name}/{number}/{f}?sig={fake.signed}",
                           "fileName": f} for f in files]  # fmt: skip
                self._send(200, {"files": listed, "log": json.dumps(fake._log_events(v)), "nextPageToken": ""})

        return Handler


def zip_of(files: dict[str, bytes]) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()
