"""A tiny Hugging Face Hub on 127.0.0.1: enough of the API for snapshot_download.

It serves one model repo from memory: repo info (`/api/models/<id>/revision/<rev>`),
the file tree (`/api/models/<id>/tree/<sha>`), and files with HEAD metadata and Range
requests (`/<id>/resolve/<sha>/<path>`). `cut_after_bytes` makes the next GETs of a file
stop early, as a dropped connection would, so a test can check that a second pull
resumes instead of starting over.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "a" * 40


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    # file → how many bytes each of the next GETs sends before the connection drops
    cut_after_bytes: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Range)

    def etag(self, name: str) -> str:
        return hashlib.sha256(self.files[name]).hexdigest()


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    repo: FakeRepo  # set on the per-server subclass

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._file(head=True)

    def do_GET(self) -> None:  # noqa: N802
        repo = self.repo
        repo.requests.append(("GET", self.path, self.headers.get("Range", "")))
        api = f"/api/models/{repo.repo_id}/"
        if self.path.startswith(api + "revision/"):
            siblings = [{"rfilename": name} for name in repo.files]
            self._json({"id": repo.repo_id, "modelId": repo.repo_id, "sha": COMMIT, "siblings": siblings})
        elif self.path.startswith(api + "tree/"):
            entries = [
                {"type": "file", "path": name, "size": len(data), "oid": repo.etag(name)[:40]}
                for name, data in repo.files.items()
            ]
            self._json(entries)
        else:
            self._file(head=False)

    def _json(self, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _not_found(self) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _file(self, head: bool) -> None:
        repo = self.repo
        match = re.match(rf"^/{re.escape(repo.repo_id)}/resolve/[^/]+/(?P<name>[^?]+)", self.path)
        if not match or match["name"] not in repo.files:
            self._not_found()
            return
        name = match["name"]
        data = repo.files[name]
        range_header = self.headers.get("Range", "")
        start = int(range_header[6:].split("-")[0]) if range_header.startswith("bytes=") else 0
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{repo.etag(name)}"')
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if head:
            return
        cuts = repo.cut_after_bytes.get(name)
        if cuts:
            self.wfile.write(body[: cuts.pop(0)])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # the connection drops mid-file
            return
        self.wfile.write(body)


@contextmanager
def fake_hub(repo: FakeRepo) -> Iterator[str]:
    """Serve `repo`; yields the endpoint URL for HF_ENDPOINT."""
    handler = type("FakeHubHandler", (_HubHandler,), {"repo": repo})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-hub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
