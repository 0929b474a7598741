"""A fake Kaggle API on 127.0.0.1 that the real `kaggle` client talks to.

With KAGGLE_API_ENVIRONMENT=LOCALHOST the client sends every call to http://localhost/api/v1/<Service>/<Method>
(a JSON POST); with http_proxy pointing here (and NO_PROXY empty), `requests` sends those requests to this
server as a proxy, absolute URL and all. Blob uploads (PUT) and file downloads (GET) go through the same way.

It answers the calls kit makes: downloading the competition files, the submission flow (start upload, the
blob PUT, create, get, list, limits), scoring a submission against labels it holds, ERROR with a reason
for a bad file, and a daily limit. Switches on the instance make it fail the way Kaggle fails.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
        self.polls_until_scored = 1  # GetSubmission answers PENDING this many times first
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
                else:
                    self._error(404, "Not found")

            def do_PUT(self):
                if self._drop():
                    return
                path = urlsplit(self.path).path
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.calls.append(f"PUT {path}")
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
                        "date": datetime.now(timezone.utc).replace(tzinfo=None),
                        "score": score,
                        "error": error,
                        "polls": 0,
                        "status": "PENDING",
                    }
                )
                self._send(200, {"message": "Successfully submitted to Digit Recognizer", "ref": fake._next_ref})

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
                }

            def _advance(self, s: dict) -> None:
                s["polls"] += 1
                if s["status"] == "PENDING" and s["polls"] > fake.polls_until_scored:
                    s["status"] = "ERROR" if s["error"] else "COMPLETE"

            def _GetSubmission(self, body):
                for s in fake.submissions:
                    if s["ref"] == int(body.get("ref", 0)):
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

        return Handler


def zip_of(files: dict[str, bytes]) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()
