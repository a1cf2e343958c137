"""A small Hugging Face Hub-compatible HTTP server for tests (stdlib only).

It speaks the subset of the Hub protocol that `huggingface_hub` 2.x uses to create repos, commit files (regular
and LFS, without Xet: clients must run with `HF_HUB_DISABLE_XET=1`) and download them back:

    GET  /api/whoami-v2
    POST /api/repos/create                              409 with {"url"} when the repo exists
    POST /api/validate-yaml                             README.md front matter check before a commit
    GET  /api/models/{repo}[/revision/{rev}]            repo info with sha and siblings
    GET  /api/models/{repo}/tree/{rev}[/{path}]         file listing (recursive or not)
    POST /api/models/{repo}/paths-info/{rev}            form-encoded `paths`
    GET  /api/models/{repo}/refs
    POST /api/models/{repo}/branch/{branch}             409 when it exists
    POST /api/models/{repo}/preupload/{rev}             upload mode + remote oid (drives no-op detection)
    POST /api/models/{repo}/commit/{rev}                ndjson: header, file, lfsFile, deletedFile, deletedFolder
    POST /{repo}.git/info/lfs/objects/batch             LFS basic transfer: PUT to /__lfs__/{oid}, then verify
    HEAD/GET /{repo}/resolve/{rev}/{path}               X-Repo-Commit + ETag; Range supported

Errors follow the Hub: 404 with `X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound`; a private repo
read without a token gets 401 + RepoNotFound (the Hub does not reveal that it exists), with another user's valid
token 404 + RepoNotFound; an unknown token gets 401 "Invalid credentials in Authorization header".

Repos live in memory (metadata) and on disk under `root` (content-addressed blobs). Request bodies and the total
stored bytes are bounded. Tokens are never logged.

Run standalone for manual checks:  python tests/hub_server.py --token hf_xxx:alice
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".msgpack", ".pkl", ".model", ".zip")
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub sends bigger files to LFS whatever their type


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Entry:
    """One file in a commit's tree. Content is stored once, by sha256."""

    sha256: str
    size: int
    lfs: bool
    git_oid: str  # blob oid of the content (regular) or of the LFS pointer (LFS), as the Hub reports it

    def tree_json(self, path: str) -> dict:
        info = {"type": "file", "oid": self.git_oid, "size": self.size, "path": path}
        if self.lfs:
            info["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(lfs_pointer(self.sha256, self.size))}
        return info

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class Commit:
    oid: str
    parent: str | None
    message: str
    files: dict[str, Entry]
    date: str = field(default_factory=_now)


@dataclass
class Repo:
    repo_id: str
    private: bool
    created: str = field(default_factory=_now)
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        revision = revision.removeprefix("refs/heads/")
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if COMMIT_RE.match(revision) and revision in self.commits:
            return self.commits[revision]
        return None


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class HubServer:
    """Start with `start()` (returns the base URL), stop with `stop()`. Thread-safe."""

    def __init__(self, root: str | None = None, tokens: dict[str, dict] | None = None,
                 max_body_bytes: int = 64 * 1024 * 1024, max_total_bytes: int = 512 * 1024 * 1024):
        self._own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="hub-server-")
        self.objects = os.path.join(self.root, "objects")
        os.makedirs(self.objects, exist_ok=True)
        # token -> {"name": user, "orgs": [...]}
        self.tokens = {tok: {"name": info["name"], "orgs": list(info.get("orgs", []))} for tok, info in (tokens or {}).items()}
        self.max_body_bytes = max_body_bytes
        self.max_total_bytes = max_total_bytes
        self.stored_bytes = 0
        self.repos: dict[str, Repo] = {}
        self.lock = threading.RLock()
        self.requests: deque[tuple[str, str, int]] = deque(maxlen=2000)  # (method, path, status); never headers
        self.failures: dict[str, int] = {}  # path fragment -> status to answer once (tests of failed pushes)
        self.faults: dict[str, str] = {}  # path fragment -> "stall" | "die", until cleared (tests of hangs)
        self.released = threading.Event()  # set on stop(): stalled requests give up
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.url = ""

    # ----- lifecycle -----
    def start(self) -> str:
        server = self

        class Handler(_Handler):
            hub = server

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="hub-server", daemon=True)
        self.thread.start()
        return self.url

    def stop(self) -> None:
        self.released.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        if self.thread is not None:
            self.thread.join(timeout=5)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # ----- inspection helpers for tests -----
    def fail_next(self, path_fragment: str, status: int = 500) -> None:
        """Answer the next request whose path contains `path_fragment` with `status` (once)."""
        with self.lock:
            self.failures[path_fragment] = status

    def misbehave(self, path_fragment: str, mode: str) -> None:
        """From now on, every request whose path contains `path_fragment` ("" for all) is met with `mode`:
        "stall" accepts the request (body included) and never answers; "die" reads part of the body, then closes the
        connection without a word, as a server that crashes mid-upload. `behave()` ends it."""
        if mode not in ("stall", "die"):
            raise ValueError(f"unknown mode {mode!r}")
        with self.lock:
            self.faults[path_fragment] = mode

    def behave(self) -> None:
        with self.lock:
            self.faults.clear()

    def commit_count(self, repo_id: str, branch: str = "main") -> int:
        with self.lock:
            repo = self.repos[repo_id]
            n, oid = 0, repo.branches[branch]
            while oid is not None:
                n, oid = n + 1, repo.commits[oid].parent
            return n

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        with self.lock:
            commit = self.repos[repo_id].resolve(revision)
            return {path: self._read_object(e.sha256) for path, e in commit.files.items()}

    # ----- storage -----
    def _object_path(self, sha256: str) -> str:
        return os.path.join(self.objects, sha256)

    def _has_object(self, sha256: str) -> bool:
        return os.path.isfile(self._object_path(sha256))

    def _read_object(self, sha256: str) -> bytes:
        with open(self._object_path(sha256), "rb") as f:
            return f.read()

    def _store_bytes(self, content: bytes) -> str:
        sha = hashlib.sha256(content).hexdigest()
        with self.lock:
            if not self._has_object(sha):
                self._reserve(len(content))
                with open(self._object_path(sha), "wb") as f:
                    f.write(content)
        return sha

    def _reserve(self, nbytes: int) -> None:
        if self.stored_bytes + nbytes > self.max_total_bytes:
            raise HubError(507, f"Test Hub storage is full ({self.max_total_bytes} bytes).")
        self.stored_bytes += nbytes

    # ----- auth -----
    def user_for(self, authorization: str | None) -> dict | None:
        """The user a request acts as; raises 401 for a token the server does not know."""
        if not authorization:
            return None
        token = authorization.removeprefix("Bearer ").strip()
        user = self.tokens.get(token)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    @staticmethod
    def can_write(user: dict | None, namespace: str) -> bool:
        return user is not None and (namespace == user["name"] or namespace in user["orgs"])

    def repo_for_read(self, repo_id: str, user: dict | None) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        if repo.private and not self.can_write(user, repo_id.split("/")[0]):
            # The Hub answers as if the repo did not exist: 401 when anonymous, 404 for someone else's token.
            raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
        return repo

    def repo_for_write(self, repo_id: str, user: dict | None) -> Repo:
        if user is None:
            raise HubError(401, "You must be authenticated to write to a repository", "RepoNotFound")
        repo = self.repo_for_read(repo_id, user)
        if not self.can_write(user, repo_id.split("/")[0]):
            raise HubError(403, f"You don't have the rights to write to {repo_id}")
        return repo

    @staticmethod
    def commit_for(repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # ----- operations -----
    def create_repo(self, payload: dict, user: dict | None) -> tuple[int, dict]:
        if user is None:
            raise HubError(401, "You must be authenticated to create a repository")
        if payload.get("type", "model") not in ("model", None):
            raise HubError(400, "This test Hub only hosts model repositories")
        name, namespace = payload.get("name") or "", payload.get("organization") or user["name"]
        if not NAME_RE.match(name) or not NAME_RE.match(namespace):
            raise HubError(400, f"Invalid repo name {namespace}/{name}")
        if not self.can_write(user, namespace):
            raise HubError(403, f"You don't have the rights to create a model under the namespace {namespace!r}")
        repo_id = f"{namespace}/{name}"
        url = f"{self.url}/{repo_id}"
        with self.lock:
            if repo_id in self.repos:
                return 409, {"error": "You already created this model repo", "url": url}
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            repo = Repo(repo_id=repo_id, private=private)
            # Like the Hub: a new repo starts with one commit holding .gitattributes.
            attributes = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
            sha = self._store_bytes(attributes)
            self._add_commit(repo, "main", "initial commit",
                             {".gitattributes": Entry(sha, len(attributes), False, git_blob_oid(attributes))})
            self.repos[repo_id] = repo
        return 200, {"url": url, "name": repo_id}

    def _add_commit(self, repo: Repo, branch: str, message: str, files: dict[str, Entry]) -> Commit:
        parent = repo.branches.get(branch)
        body = json.dumps({"parent": parent, "message": message,
                           "files": {p: e.etag for p, e in sorted(files.items())}, "n": len(repo.commits)})
        commit = Commit(oid=hashlib.sha1(body.encode()).hexdigest(), parent=parent, message=message, files=files)
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit

    def commit(self, repo_id: str, revision: str, lines: list[dict], user: dict | None, create_pr: bool) -> dict:
        if create_pr:
            raise HubError(400, "Pull requests are not supported by this test Hub")
        with self.lock:
            repo = self.repo_for_write(repo_id, user)
            branch = revision.removeprefix("refs/heads/")
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            head = repo.commits[repo.branches[branch]]
            if not lines or lines[0].get("key") != "header":
                raise HubError(400, "The first line of a commit payload must be its header")
            header = lines[0]["value"]
            if header.get("parentCommit") and header["parentCommit"] != head.oid:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value") or {}
                path = value.get("path", "")
                if key == "file":
                    content = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else value["content"].encode()
                    sha = self._store_bytes(content)
                    files[path] = Entry(sha, len(content), False, git_blob_oid(content))
                elif key == "lfsFile":
                    sha = value["oid"]
                    if not self._has_object(sha):
                        raise HubError(422, f"LFS object {sha} for {path} was not uploaded")
                    size = os.path.getsize(self._object_path(sha))
                    files[path] = Entry(sha, size, True, git_blob_oid(lfs_pointer(sha, size)))
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    files = {p: e for p, e in files.items() if not p.startswith(prefix)}
                else:
                    raise HubError(400, f"Unknown commit operation {key!r}")
            commit = self._add_commit(repo, branch, header.get("summary") or "commit", files)
        return {"success": True, "commitOid": commit.oid, "commitUrl": f"{self.url}/{repo_id}/commit/{commit.oid}",
                "hookOutput": ""}

    def preupload(self, repo_id: str, revision: str, payload: dict, user: dict | None) -> dict:
        with self.lock:
            repo = self.repo_for_write(repo_id, user)
            commit = self.commit_for(repo, revision)
            out = []
            for f in payload.get("files", []):
                path, size = f["path"], int(f.get("size", 0))
                sample = base64.b64decode(f.get("sample", ""))
                lfs = path.endswith(LFS_SUFFIXES) or size > LFS_SIZE_THRESHOLD or b"\0" in sample
                existing = commit.files.get(path)
                oid = None if existing is None else (existing.sha256 if existing.lfs else existing.git_oid)
                out.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return {"files": out, "commitOid": commit.oid}

    def lfs_batch(self, repo_id: str, payload: dict, user: dict | None) -> dict:
        with self.lock:
            self.repo_for_write(repo_id, user)
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry = {"oid": oid, "size": size}
            if not self._has_object(oid):
                entry["authenticated"] = True
                entry["actions"] = {"upload": {"href": f"{self.url}/__lfs__/{oid}"},
                                    "verify": {"href": f"{self.url}/__lfs__/verify"}}
            objects.append(entry)
        return {"transfer": "basic", "objects": objects}

    def lfs_put(self, oid: str, content: bytes) -> None:
        if hashlib.sha256(content).hexdigest() != oid:
            raise HubError(400, "Uploaded content does not match its sha256")
        self._store_bytes(content)

    def tree(self, commit: Commit, path: str, recursive: bool) -> list[dict]:
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in commit.files):
            raise HubError(404, f"{path} does not exist", "EntryNotFound")
        out, folders = [], set()
        for p, entry in sorted(commit.files.items()):
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            parts = rest.split("/")
            for i in range(1, len(parts)):
                folder = prefix + "/".join(parts[:i])
                if (recursive or i == 1) and folder not in folders:
                    folders.add(folder)
                    out.append({"type": "directory", "oid": hashlib.sha1(folder.encode()).hexdigest(), "size": 0, "path": folder})
            if recursive or len(parts) == 1:
                out.append(entry.tree_json(p))
        return out

    def repo_info(self, repo: Repo, commit: Commit) -> dict:
        card = None
        if "README.md" in commit.files:
            card = _front_matter(self._read_object(commit.files["README.md"].sha256).decode("utf-8", "replace"))
        info = {"_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id, "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0], "sha": commit.oid, "lastModified": commit.date,
                "createdAt": repo.created, "private": repo.private, "gated": False, "disabled": False,
                "downloads": 0, "likes": 0, "tags": [], "library_name": None,
                "siblings": [{"rfilename": p} for p in sorted(commit.files)]}
        if card is not None:
            info["cardData"] = card
        return info


def _front_matter(text: str) -> dict | None:
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, flags=re.S)
    if not match:
        return None
    import yaml

    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    server_version = "TestHub/1.0"

    def log_message(self, *args):  # quiet; requests are kept in hub.requests without headers
        pass

    # ----- plumbing -----
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > self.hub.max_body_bytes:
                    raise HubError(413, "Request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.hub.max_body_bytes:
            # Drain what we can so the client sees the 413 rather than a reset connection.
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            raise HubError(413, "Request body too large")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.hub.requests.append((self.command, urlsplit(self.path).path, status))

    def _json(self, status: int, payload, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _error(self, err: HubError) -> None:
        headers = {"X-Error-Message": err.message}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._json(err.status, {"error": err.message}, headers)

    def _misbehave(self) -> bool:
        """Stall or die as `HubServer.misbehave` asked; True when the request must get no answer."""
        with self.hub.lock:
            mode = next((m for f, m in self.hub.faults.items() if f in self.path), None)
        if mode is None:
            return False
        self.hub.requests.append((self.command, urlsplit(self.path).path, 0))
        self.close_connection = True
        if mode == "stall":
            if self.command in ("POST", "PUT"):
                self._read_body()
            self.hub.released.wait(timeout=120)
        else:  # die: take part of the upload, then drop the connection (RST when the client is still sending)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(min(length // 2, 1 << 16))
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return True

    def _dispatch(self) -> None:
        body = b""
        if self._misbehave():
            return
        try:
            # Read the whole body first: replying before reading it breaks keep-alive clients.
            if self.command in ("POST", "PUT"):
                body = self._read_body()
            with self.hub.lock:
                injected = next((f for f in self.hub.failures if f in self.path), None)
                status = self.hub.failures.pop(injected) if injected is not None else None
            if status is not None:
                raise HubError(status, "Injected failure")
            user = self.hub.user_for(self.headers.get("Authorization"))
            self._route(user, body)
        except HubError as err:
            self._error(err)
        except (KeyError, ValueError, json.JSONDecodeError) as err:
            self._error(HubError(400, f"Bad request: {type(err).__name__}"))

    do_GET = do_HEAD = do_POST = do_PUT = _dispatch

    # ----- routing -----
    def _route(self, user: dict | None, body: bytes) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        raw = url.path.split("/")[1:]
        seg = [unquote(s) for s in raw]
        hub, method = self.hub, self.command

        if seg[:2] == ["api", "whoami-v2"] and method == "GET":
            if user is None:
                raise HubError(401, "Invalid credentials in Authorization header")
            return self._json(200, {"type": "user", "name": user["name"], "fullname": user["name"],
                                    "orgs": [{"name": o, "type": "org"} for o in user["orgs"]],
                                    "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}})
        if seg[:3] == ["api", "repos", "create"] and method == "POST":
            status, payload = hub.create_repo(json.loads(body or b"{}"), user)
            return self._json(status, payload)
        if seg[:2] == ["api", "validate-yaml"] and method == "POST":
            content = json.loads(body or b"{}").get("content", "")
            if content.startswith("---") and _front_matter(content) is None:
                return self._json(400, {"errors": [{"message": "README.md front matter is not valid YAML"}]})
            return self._json(200, {"errors": [], "warnings": []})
        if seg[:2] == ["api", "models"] and len(seg) >= 4:
            return self._route_api(user, f"{seg[2]}/{seg[3]}", seg[4:], query, body)
        if seg[:1] == ["__lfs__"] and len(seg) == 2:
            if method == "PUT":
                hub.lfs_put(seg[1], body)
                return self._send(200)
            if method == "POST" and seg[1] == "verify":
                oid = json.loads(body)["oid"]
                if not hub._has_object(oid):
                    raise HubError(404, f"LFS object {oid} not found")
                return self._json(200, {"success": True})
        if len(seg) >= 6 and seg[1].endswith(".git") and seg[2:5] == ["info", "lfs", "objects"] and seg[5] == "batch":
            return self._json(200, hub.lfs_batch(f"{seg[0]}/{seg[1][:-4]}", json.loads(body), user))
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(user, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]))
        raise HubError(404, f"No route for {method} {url.path}")

    def _route_api(self, user, repo_id: str, rest: list[str], query: dict, body: bytes) -> None:
        hub, method = self.hub, self.command
        with hub.lock:
            if not rest or rest[0] == "revision":
                repo = hub.repo_for_read(repo_id, user)
                commit = hub.commit_for(repo, rest[1] if len(rest) > 1 else "main")
                return self._json(200, hub.repo_info(repo, commit))
            action = rest[0]
            if action == "tree" and method == "GET" and len(rest) >= 2:
                repo = hub.repo_for_read(repo_id, user)
                commit = hub.commit_for(repo, rest[1])
                recursive = query.get("recursive", ["False"])[0].lower() in ("1", "true")
                return self._json(200, hub.tree(commit, "/".join(rest[2:]), recursive))
            if action == "paths-info" and method == "POST" and len(rest) == 2:
                repo = hub.repo_for_read(repo_id, user)
                commit = hub.commit_for(repo, rest[1])
                form = parse_qs(body.decode()) if body else {}
                out = []
                for path in form.get("paths", []):
                    if path in commit.files:
                        out.append(commit.files[path].tree_json(path))
                    elif any(p.startswith(path.rstrip("/") + "/") for p in commit.files):
                        out.append({"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "path": path})
                return self._json(200, out)
            if action == "refs" and method == "GET":
                repo = hub.repo_for_read(repo_id, user)
                return self._json(200, {"branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid}
                                                     for b, oid in sorted(repo.branches.items())],
                                        "converts": [], "tags": []})
            if action == "branch" and method == "POST" and len(rest) == 2:
                repo = hub.repo_for_write(repo_id, user)
                if rest[1] in repo.branches:
                    raise HubError(409, f"Reference refs/heads/{rest[1]} already exists")
                start = json.loads(body or b"{}").get("startingPoint") or "main"
                repo.branches[rest[1]] = hub.commit_for(repo, start).oid
                return self._json(200, {})
            if action == "preupload" and method == "POST" and len(rest) == 2:
                return self._json(200, hub.preupload(repo_id, rest[1], json.loads(body), user))
            if action == "commit" and method == "POST" and len(rest) == 2:
                lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                create_pr = query.get("create_pr", ["0"])[0] == "1"
                return self._json(200, hub.commit(repo_id, rest[1], lines, user, create_pr))
        raise HubError(404, f"No route for {method} /api/models/{repo_id}/{'/'.join(rest)}")

    def _resolve(self, user, repo_id: str, revision: str, path: str) -> None:
        hub = self.hub
        with hub.lock:
            repo = hub.repo_for_read(repo_id, user)
            commit = hub.commit_for(repo, revision)
            entry = commit.files.get(path)
        base_headers = {"X-Repo-Commit": commit.oid}
        if entry is None:
            err = HubError(404, "Entry not found", "EntryNotFound")
            return self._json(404, {"error": err.message},
                              {**base_headers, "X-Error-Code": err.code, "X-Error-Message": err.message})
        headers = {**base_headers, "ETag": f'"{entry.etag}"', "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        content = b"" if self.command == "HEAD" else hub._read_object(entry.sha256)
        status = 200
        match = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
        if match and self.command == "GET":
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else entry.size - 1
            content, status = content[start:end + 1], 206
            headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        if self.command == "HEAD":
            # A HEAD reply announces the size without sending the body.
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(entry.size))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            hub.requests.append(("HEAD", urlsplit(self.path).path, 200))
            return
        return self._send(status, content, headers, content_type="application/octet-stream")


def main() -> None:
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Serve a throwaway Hub-compatible endpoint.")
    parser.add_argument("--token", action="append", default=[], help="TOKEN:USER[:ORG,...] (repeatable)")
    args = parser.parse_args()
    tokens = {}
    for spec in args.token:
        token, name, *orgs = spec.split(":")
        tokens[token] = {"name": name, "orgs": orgs[0].split(",") if orgs else []}
    with HubServer(tokens=tokens) as hub:
        print(f"HF_ENDPOINT={hub.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
