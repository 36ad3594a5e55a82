"""A small GitHub on 127.0.0.1: the pulls endpoints of GitHub's REST API as its OpenAPI
description defines them, plus the two GraphQL mutations that move a pull request between
draft and ready. It keeps pull requests in memory and records every request it receives.

    GET   {prefix}/repos/{owner}/{repo}/pulls?state=&head=owner:ref   pulls/list
    POST  {prefix}/repos/{owner}/{repo}/pulls                         pulls/create (201)
    GET   {prefix}/repos/{owner}/{repo}/pulls/{number}                pulls/get
    PATCH {prefix}/repos/{owner}/{repo}/pulls/{number}                pulls/update
    POST  {prefix}/repos/{owner}/{repo}/issues/{number}/labels        issues/add-labels
    POST  /graphql ({prefix} /api/v3 -> /api/graphql, as on GitHub Enterprise)

A pull request is an issue too: its labels are the issue's, shown in the pull object's
`labels` as label objects. Adding a label the repository lacks creates it; names match
without regard to case, as on GitHub, and a label already on the issue is not added twice.

Requests without `Authorization: token <token>` (or `Bearer <token>`) get 401 as GitHub
answers them. `fail_next` makes the next request answer that status.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

DOCS = "https://docs.github.com/rest/pulls/pulls"
LABELS_DOCS = "https://docs.github.com/rest/issues/labels#add-labels-to-an-issue"
_PULLS = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/pulls(?:/(?P<number>\d+))?$")
_ISSUE_LABELS = re.compile(
    r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues/(?P<number>\d+)/labels$"
)


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGitHub:
    """The server's state: its URL, pull requests per repository, requests received."""

    token: str
    prefix: str = ""
    base_url: str = ""
    pulls: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    # The repositories' labels by case-folded name, as `label` objects.
    labels: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    fail_next: int | None = None
    # Answer this many list requests with [] (another client opening the same pull request
    # between a lookup and a create).
    hide_next_lists: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api_url(self) -> str:
        """The REST base a client is given (githubUrl)."""
        return self.base_url + self.prefix

    def calls(self) -> list[tuple[str, str]]:
        """(method, path) of every request received, in order."""
        return [(r.method, r.path) for r in self.received]

    def label_object(self, owner: str, repo: str, name: str) -> dict[str, Any]:
        """The repository's label called `name` (any case), created when it has none."""
        known = self.labels.setdefault((owner, repo), {})
        if name.casefold() not in known:
            number = sum(len(ls) for ls in self.labels.values())
            known[name.casefold()] = {
                "id": number,
                "node_id": f"LA_{number}",
                "url": f"{self.api_url}/repos/{owner}/{repo}/labels/{quote(name)}",
                "name": name,
                "description": None,
                "color": "ededed",
                "default": False,
            }
        return known[name.casefold()]

    def label_names(self, owner: str, repo: str, number: int) -> list[str]:
        """The names of pull request `number`'s labels, in order."""
        pull = next(p for p in self.pulls[(owner, repo)] if p["number"] == number)
        return [label["name"] for label in pull["labels"]]

    def pull_object(self, owner: str, repo: str, number: int, **fields: Any) -> dict[str, Any]:
        """A pull request as GitHub's `pull-request` schema describes it."""
        api = f"{self.api_url}/repos/{owner}/{repo}"
        html = f"{self.base_url}/{owner}/{repo}/pull/{number}"
        user = {"login": owner, "id": 1, "node_id": "U_1", "type": "Organization"}

        def branch(ref: str) -> dict[str, Any]:
            return {"label": f"{owner}:{ref}", "ref": ref, "sha": "0" * 40, "user": user}

        return {
            "url": f"{api}/pulls/{number}",
            "id": number,
            "node_id": f"PR_{owner}_{repo}_{number}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": f"{api}/issues/{number}",
            "number": number,
            "state": "open",
            "locked": False,
            "title": fields["title"],
            "user": user,
            "body": fields.get("body"),
            "labels": [],
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "closed_at": None,
            "merged_at": None,
            "head": branch(fields["head"]),
            "base": branch(fields["base"]),
            "draft": bool(fields.get("draft", False)),
            "merged": False,
            "author_association": "OWNER",
        }


class _Handler(BaseHTTPRequestHandler):
    github: FakeGitHub

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, **extra: Any) -> None:
        self._reply(status, {"message": message, "documentation_url": DOCS, **extra})

    def _serve(self) -> None:
        gh = self.github
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with gh.lock:
            gh.received.append(
                Received(self.command, parts.path, parse_qs(parts.query), dict(self.headers), body)
            )
            if self.headers.get("Authorization") not in (f"token {gh.token}", f"Bearer {gh.token}"):
                self._error(401, "Bad credentials")
                return
            if gh.fail_next is not None:
                status, gh.fail_next = gh.fail_next, None
                self._error(status, "Server Error")
                return
            graphql = "/api/graphql" if gh.prefix == "/api/v3" else "/graphql"
            if self.command == "POST" and parts.path == graphql:
                self._graphql(body)
                return
            if not parts.path.startswith(gh.prefix):
                self._error(404, "Not Found")
                return
            labels = _ISSUE_LABELS.match(parts.path[len(gh.prefix) :])
            if labels is not None and self.command == "POST":
                self._add_labels(labels["owner"], labels["repo"], int(labels["number"]), body)
                return
            match = _PULLS.match(parts.path[len(gh.prefix) :])
            if match is None:
                self._error(404, "Not Found")
                return
            key = (match["owner"], match["repo"])
            pulls = gh.pulls.setdefault(key, [])
            number = match["number"]
            if number is None and self.command == "GET":
                self._list(pulls, parse_qs(parts.query))
            elif number is None and self.command == "POST":
                self._create(key, pulls, body)
            elif number is not None and self.command in ("GET", "PATCH"):
                found = [p for p in pulls if p["number"] == int(number)]
                if not found:
                    self._error(404, "Not Found")
                elif self.command == "PATCH":
                    self._update(found[0], body)
                else:
                    self._reply(200, found[0])
            else:
                self._error(404, "Not Found")

    def _list(self, pulls: list[dict[str, Any]], query: dict[str, list[str]]) -> None:
        if self.github.hide_next_lists > 0:
            self.github.hide_next_lists -= 1
            self._reply(200, [])
            return
        state = query.get("state", ["open"])[0]
        head = query.get("head", [None])[0]
        shown = [
            p
            for p in pulls
            if (state == "all" or p["state"] == state)
            and (head is None or p["head"]["label"] == head)
        ]
        self._reply(200, sorted(shown, key=lambda p: -p["number"]))

    def _create(
        self, key: tuple[str, str], pulls: list[dict[str, Any]], body: dict[str, Any]
    ) -> None:
        missing = [f for f in ("head", "base") if not isinstance(body.get(f), str)]
        if missing or not isinstance(body.get("title"), str):
            errors = [
                {"resource": "PullRequest", "field": f, "code": "missing_field"} for f in missing
            ]
            self._error(422, "Validation Failed", errors=errors)
            return
        owner = key[0]
        if any(p["state"] == "open" and p["head"]["ref"] == body["head"] for p in pulls):
            message = f"A pull request already exists for {owner}:{body['head']}."
            self._error(422, "Validation Failed", errors=[{"code": "custom", "message": message}])
            return
        pull = self.github.pull_object(*key, len(pulls) + 1, **body)
        pulls.append(pull)
        self._reply(201, pull)

    def _update(self, pull: dict[str, Any], body: dict[str, Any]) -> None:
        # PATCH takes title, body, state, base; `draft` is not a field of it (GraphQL only).
        for name in ("title", "body", "state"):
            if name in body:
                pull[name] = body[name]
        if "base" in body:
            pull["base"]["ref"] = body["base"]
        self._reply(200, pull)

    def _add_labels(self, owner: str, repo: str, number: int, body: Any) -> None:
        # issues/add-labels: `{"labels": [names]}` (at least one); answers the issue's labels.
        found = [p for p in self.github.pulls.get((owner, repo), []) if p["number"] == number]
        if not found:
            self._reply(404, {"message": "Not Found", "documentation_url": LABELS_DOCS})
            return
        names = body.get("labels") if isinstance(body, dict) else None
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(n, str) and n for n in names)
        ):
            errors = [{"resource": "Label", "field": "labels", "code": "invalid"}]
            self._reply(
                422,
                {
                    "message": "Validation Failed",
                    "errors": errors,
                    "documentation_url": LABELS_DOCS,
                },
            )
            return
        pull = found[0]
        on = {label["name"].casefold() for label in pull["labels"]}
        for name in names:
            if name.casefold() not in on:
                pull["labels"].append(self.github.label_object(owner, repo, name))
                on.add(name.casefold())
        self._reply(200, pull["labels"])

    def _graphql(self, body: dict[str, Any]) -> None:
        query = str(body.get("query", ""))
        node_id = (body.get("variables") or {}).get("id")
        mutation = next(
            (
                m
                for m in ("markPullRequestReadyForReview", "convertPullRequestToDraft")
                if m in query
            ),
            None,
        )
        pulls = [p for ps in self.github.pulls.values() for p in ps if p["node_id"] == node_id]
        if mutation is None or not pulls:
            message = f"Could not resolve to a node with the global id of '{node_id}'"
            self._reply(200, {"data": None, "errors": [{"type": "NOT_FOUND", "message": message}]})
            return
        pulls[0]["draft"] = mutation == "convertPullRequestToDraft"
        self._reply(200, {"data": {mutation: {"pullRequest": {"isDraft": pulls[0]["draft"]}}}})


@contextmanager
def fake_github(token: str, *, prefix: str = "") -> Iterator[FakeGitHub]:
    """A FakeGitHub serving on 127.0.0.1 for the duration of the block."""
    state = FakeGitHub(token=token, prefix=prefix)
    handler = type("FakeGitHubHandler", (_Handler,), {"github": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
