"""A local stand-in for huggingface.co and the GitHub release host, for download tests.

Two real HTTP servers on 127.0.0.1. The "hub" answers ``/{repo}/resolve/{revision}/{file}``
the way the Hub does for LFS files: a 302 to a storage host on another origin, carrying
X-Repo-Commit, X-Linked-Etag (the file's SHA-256) and X-Linked-Size; 404 with
X-Error-Code EntryNotFound / RevisionNotFound otherwise. The "storage" server holds the
blobs the hub redirects to and the release assets under ``/release/{file}``. Every request
is logged so tests can count actual downloads.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

Route = Callable[[str], tuple[int, dict[str, str], bytes]]


@dataclass
class FakeHub:
    """Files the fake Hub serves (``hub_files``) and release assets (``release_files``)."""

    repo: str
    revision: str
    hub_files: dict[str, bytes] = field(default_factory=dict)
    release_files: dict[str, bytes] = field(default_factory=dict)
    seconds_per_chunk: float = 0.0
    requests: list[tuple[str, str]] = field(default_factory=list)

    def start(self) -> FakeHub:
        self._storage = _serve(self, self._storage_route)
        self._hub = _serve(self, self._hub_route)
        return self

    def stop(self) -> None:
        for server in (self._hub, self._storage):
            server.shutdown()
            server.server_close()

    @property
    def endpoint(self) -> str:
        return _origin(self._hub)

    def release_url(self, filename: str) -> str:
        return f"{_origin(self._storage)}/release/{filename}"

    def downloads(self) -> int:
        """How many GETs fetched file bytes, from either the blob store or the release."""
        return sum(1 for method, path in self.requests if method == "GET" and path.startswith(("/blobs/", "/release/")))

    def _hub_route(self, path: str) -> tuple[int, dict[str, str], bytes]:
        prefix = f"/{self.repo}/resolve/"
        revision, _, filename = path.removeprefix(prefix).partition("/")
        if not path.startswith(prefix) or revision != self.revision:
            return 404, {"X-Error-Code": "RevisionNotFound"}, b""
        commit = {"X-Repo-Commit": self.revision}
        if filename not in self.hub_files:
            return 404, {**commit, "X-Error-Code": "EntryNotFound"}, b""
        data = self.hub_files[filename]
        sha = hashlib.sha256(data).hexdigest()
        return 302, {
            **commit,
            "Location": f"{_origin(self._storage)}/blobs/{sha}",
            "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(len(data)),
            "ETag": '"0123456789abcdef0123456789abcdef01234567"',
        }, b""

    def _storage_route(self, path: str) -> tuple[int, dict[str, str], bytes]:
        blobs = {hashlib.sha256(data).hexdigest(): data for data in self.hub_files.values()}
        kind, _, key = path.strip("/").partition("/")
        data = blobs.get(key) if kind == "blobs" else self.release_files.get(key) if kind == "release" else None
        if data is None:
            return 404, {}, b""
        return 200, {"ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, data


def _origin(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


def _serve(hub: FakeHub, route: Route) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def _answer(self, with_body: bool) -> None:
            hub.requests.append((self.command, self.path))
            status, headers, body = route(self.path)
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            if with_body:
                self._send_slowly(body)

        def _send_slowly(self, body: bytes) -> None:
            for start in range(0, len(body), 8192):
                self.wfile.write(body[start : start + 8192])
                time.sleep(hub.seconds_per_chunk)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def resolve_in_child(entries: dict, name: str) -> str:
    """Run ``zoo.resolve`` in a spawned process against a test zoo (for lock tests)."""
    from restore_cli.model import manifest
    from restore_cli.model import zoo as model_zoo

    manifest.load_manifest = lambda: entries
    return str(model_zoo.resolve(name, progress=False))
