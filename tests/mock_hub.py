"""A minimal Hugging Face Hub on 127.0.0.1 for tests: enough of the download and upload API for ``huggingface_hub``.

Download: ``HEAD``/``GET /{org}/{repo}/resolve/{revision}/{path}`` answer with ``X-Repo-Commit``,
``ETag`` and ``Content-Length``; a missing file gets 404 with ``X-Error-Code: EntryNotFound``, an
unknown revision ``RevisionNotFound``, an unknown repo ``RepoNotFound`` (as the Hub does).

Upload (what ``HfApi.create_repo`` + ``create_commit`` call): ``POST /api/repos/create``,
``/api/validate-yaml``, ``/api/models/{repo}/preupload/{rev}`` (every file "regular", i.e. inline)
and ``/api/models/{repo}/commit/{rev}`` (NDJSON with base64 file contents).

Every request is logged in ``requests`` as ``(method, path)`` so tests can assert what was (not) fetched.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit


class MockHub:
    """An in-memory Hub: ``repos[repo_id] = {"commits": {sha: {path: bytes}}, "refs": {name: sha}}``."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> MockHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_commit(self, repo_id: str, files: dict[str, bytes], branch: str = "main", *, replace: bool = False) -> str:
        """Commit ``files`` on ``branch`` (on top of its files unless ``replace``); returns the commit hash."""
        with self.lock:
            repo = self.repos.setdefault(repo_id, {"commits": {}, "refs": {}})
            parent = repo["refs"].get(branch)
            tree = {} if replace or parent is None else dict(repo["commits"][parent])
            tree.update(files)
            digest = hashlib.sha1(f"{repo_id}:{parent}:{len(repo['commits'])}".encode())
            for path in sorted(tree):
                digest.update(path.encode() + hashlib.sha256(tree[path]).digest())
            sha = digest.hexdigest()
            repo["commits"][sha] = tree
            repo["refs"][branch] = sha
            return sha

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo["commits"][repo["refs"].get(revision, revision)]

    def fetched(self, filename: str, method: str = "GET") -> int:
        """How many ``method`` requests asked for ``filename``."""
        return sum(1 for m, path in self.requests if m == method and path.endswith(f"/{filename}"))


def _etag(path: str, data: bytes) -> str:
    # The Hub's ETag is the git blob sha1 for regular files and the sha256 for LFS files.
    if path.endswith(".safetensors"):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _handler_for(hub: MockHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, *, head: bool = False) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, status: int, payload: Any) -> None:
            self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

        def _resolve(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            with hub.lock:
                hub.requests.append(("HEAD" if head else "GET", path))
            parts = path.lstrip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                return self._send(404, b"not found", {"X-Error-Code": "RepoNotFound"}, head=head)
            repo_id, revision, filename = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._send(404, b"Repository not found", {"X-Error-Code": "RepoNotFound"}, head=head)
            sha = repo["refs"].get(revision, revision if revision in repo["commits"] else None)
            if sha is None:
                return self._send(404, b"Invalid rev id", {"X-Error-Code": "RevisionNotFound"}, head=head)
            tree = repo["commits"][sha]
            if filename not in tree:
                headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha}
                return self._send(404, b"Entry not found", headers, head=head)
            data = tree[filename]
            headers = {"X-Repo-Commit": sha, "ETag": f'"{_etag(filename, data)}"', "Content-Type": "application/octet-stream"}
            self._send(200, data, headers, head=head)

        def do_HEAD(self) -> None:
            self._resolve(head=True)

        def do_GET(self) -> None:
            self._resolve(head=False)

        def do_POST(self) -> None:
            path = unquote(urlsplit(self.path).path)
            with hub.lock:
                hub.requests.append(("POST", path))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if path == "/api/repos/create":
                request = json.loads(body)
                repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
                if repo_id in hub.repos:
                    return self._json(409, {"error": "You already created this model repo", "url": f"{hub.endpoint}/{repo_id}"})
                with hub.lock:
                    hub.repos[repo_id] = {"commits": {}, "refs": {}}
                return self._json(200, {"url": f"{hub.endpoint}/{repo_id}", "name": repo_id})
            if path == "/api/validate-yaml":
                return self._json(200, {"errors": [], "warnings": []})
            parts = path.lstrip("/").split("/")
            if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload", "commit"):
                repo_id, action, revision = f"{parts[2]}/{parts[3]}", parts[4], parts[5]
                if repo_id not in hub.repos:
                    return self._send(404, b"Repository not found", {"X-Error-Code": "RepoNotFound"})
                if action == "preupload":
                    files = json.loads(body)["files"]
                    answer = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in files]
                    return self._json(200, {"files": answer, "commitOid": hub.repos[repo_id]["refs"].get(revision)})
                added: dict[str, bytes] = {}
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "file" and item["value"].get("encoding") == "base64":
                        added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] != "header":
                        return self._json(400, {"error": f"the mock Hub does not support {item['key']!r} operations"})
                sha = hub.add_commit(repo_id, added, branch=revision)
                return self._json(200, {"commitUrl": f"{hub.endpoint}/{repo_id}/commit/{sha}", "commitOid": sha})
            self._json(404, {"error": f"the mock Hub does not serve POST {path}"})

    return Handler
