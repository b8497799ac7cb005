"""`dispatch` and `rollback --rebuild` when GitHub cannot be reached: real sockets, no mock.

A refused connection, a name that does not resolve, a connection reset and a server that never
answers each become a `dispatch-failed` attempt with the reason, and the next `dispatch` sends
the build again: nothing is left `pending` for ever, and there is no traceback.
"""

from __future__ import annotations

import socket
import struct
import threading
from datetime import timedelta

import pytest
import yaml

from image_factory.cli import main
from image_factory.discovery.discover import discover, load_model
from image_factory.rebuilds import events

from .test_dispatch import NOW, PYTHON, SEEN, digest


class Server:
    """A TCP server on 127.0.0.1 that accepts and then resets or says nothing."""

    def __init__(self, behaviour: str):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.behaviour = behaviour
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            connection.recv(65536)
            if self.behaviour == "reset":  # RST instead of an answer
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                connection.close()
            else:
                self.held.append(connection)  # silent: the client times out

    def close(self) -> None:
        self.socket.close()
        for connection in self.held:
            connection.close()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


@pytest.fixture
def due(factory, monkeypatch):
    def make(api_url: str):
        factory.write(
            "images.yaml",
            f"""
            kargo: {{factoryRepo: acme/factory, githubApiUrl: "{api_url}"}}
            sigstore: {{fulcioUrl: "https://f.example", rekorUrl: "https://r.example", tufMirror: "https://t.example",
                        tufRoot: root.json}}
            images:
              - name: base
                registry: ghcr.io
                repository: acme/base
                source: {{provider: local, repo: base, dockerfile: Dockerfile, workflow: build-base.yml}}
            """,
        )
        factory.write("base/Dockerfile", "FROM python:3.12-slim\n")
        discover(factory.root)
        events.record_update(factory.root, PYTHON, digest("py-1"), SEEN, None)
        return factory

    monkeypatch.setenv("GITHUB_TOKEN", "ghs_exampletoken")
    monkeypatch.setenv("IMAGE_FACTORY_GITHUB_TIMEOUT", "1")
    return make


def attempts(factory) -> list[dict]:
    return load_model(factory.root)[1].images["base"].runtime.attempts


def dispatch(factory) -> int:
    return main(["dispatch", "--root", str(factory.root), "--now", NOW.strftime("%Y-%m-%dT%H:%M:%SZ")])


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("refused", "could not reach GitHub for build-base.yml in acme/factory: ConnectionRefusedError"),
        ("dns", "could not reach GitHub for build-base.yml in acme/factory: gaierror"),
        ("reset", "could not reach GitHub for build-base.yml in acme/factory: "),  # reset or closed: racy
        ("silent", "no answer from GitHub for build-base.yml in acme/factory (ReadTimeout)"),
    ],
)
def test_github_out_of_reach_is_a_failed_dispatch_that_the_next_one_retries(due, kind, says, capsys):
    server = Server(kind) if kind in ("reset", "silent") else None
    if kind == "dns":
        url = "http://api.github.invalid"
    else:
        url = f"http://127.0.0.1:{server.port if server else closed_port()}"
    factory = due(url)
    try:
        assert dispatch(factory) == 1
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        (attempt,) = attempts(factory)
        assert attempt["result"] == "dispatch-failed"
        assert attempt["error"].startswith(says), attempt["error"]
        assert f"failed     base: {says}" in out
        # the next dispatch sends it again (and fails again, recorded again): never stuck as pending
        assert dispatch(factory) == 1
        assert [a["result"] for a in attempts(factory)] == ["dispatch-failed", "dispatch-failed"]
    finally:
        if server:
            server.close()


def test_rollback_rebuild_with_github_out_of_reach_records_a_failed_dispatch(due, capsys):
    factory = due(f"http://127.0.0.1:{closed_port()}")
    pins = {PYTHON: digest("py-1")}
    for label, hours in (("one", 1), ("two", 2)):
        events.record_build(factory.root, "base", digest(label), "success", pins, None, NOW + timedelta(hours=hours))
    code = main(["rollback", "--root", str(factory.root), "--image", "base", "--rebuild", "--reason", "broke"])
    assert code == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "dispatch failed: could not reach GitHub" in out
    assert attempts(factory)[-1]["result"] == "dispatch-failed"


def test_rollback_rebuild_without_a_token_writes_nothing(due, monkeypatch, capsys):
    """Every precondition is checked before the first write: no `pending` attempt is left."""
    factory = due(f"http://127.0.0.1:{closed_port()}")
    pins = {PYTHON: digest("py-1")}
    for label, hours in (("one", 1), ("two", 2)):
        events.record_build(factory.root, "base", digest(label), "success", pins, None, NOW + timedelta(hours=hours))
    monkeypatch.delenv("GITHUB_TOKEN")
    before = factory.snapshot()
    code = main(["rollback", "--root", str(factory.root), "--image", "base", "--rebuild", "--reason", "broke"])
    assert code == 1
    assert capsys.readouterr().err.strip() == "error: GITHUB_TOKEN: no GitHub token: set GITHUB_TOKEN (or pass --token)"
    assert factory.snapshot() == before
    state = yaml.safe_load((factory.root / "state/images/base.yaml").read_text())
    assert all(a["result"] != "pending" for a in state["runtime"]["attempts"])
