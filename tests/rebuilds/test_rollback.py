"""`image-factory rollback`: back to an earlier good build, by re-tagging it in a real registry or
by a pinned rebuild dispatched to a mocked GitHub; recorded with its reason; descendants cascade."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
import responses

from image_factory.cli import main
from image_factory.discovery.discover import discover, load_model
from image_factory.edges.registry import RegistryClient
from image_factory.enrolment.refs import parse_ref
from image_factory.rebuilds import events, planner

PYTHON = "docker.io/library/python:3.12-slim"
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
DISPATCH = "https://api.github.com:443/repos/acme/factory/actions/workflows/build.yml/dispatches"


def digest(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def enrol(factory, host: str, child: bool = False) -> None:
    """`app` (on python) in the registry at `host`; with `child`, `child` built on `app`. Discovered."""
    text = f"""
        kargo: {{factoryRepo: acme/factory}}
        insecureRegistries: ["{host}"]
        images:
          - name: app
            registry: "{host}"
            repository: team/app
            source: {{provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}
        """
    if child:
        text += f"""
          - name: child
            registry: "{host}"
            repository: team/child
            source: {{provider: local, repo: child, dockerfile: Dockerfile, workflow: build.yml}}
        """
        factory.write("child/Dockerfile", f"FROM {host}/team/app\n")
    factory.write("images.yaml", text)
    factory.write("app/Dockerfile", "FROM python:3.12-slim\n")
    discover(factory.root)


@pytest.fixture
def built_twice(factory, registry, monkeypatch):
    """`app` built on py-1 (good, digest `good`) then on py-2 (bad, now tagged); `child` on `app`."""
    host = registry.host
    enrol(factory, host, child=True)
    good, _ = registry.push_image("team/app", "latest", "good")
    bad, _ = registry.push_image("team/app", "latest", "bad")
    events.record_update(factory.root, PYTHON, digest("py-1"), T0, None)
    events.record_update(factory.root, PYTHON, digest("py-2"), T0 + timedelta(days=3), None)
    for at, made, base in ((T0 + timedelta(days=8), good, "py-1"), (T0 + timedelta(days=11), bad, "py-2")):
        events.record_build(factory.root, "app", made, "success", {PYTHON: digest(base)}, None, at)
        events.record_build(
            factory.root, "child", digest(f"child-{base}"), "success", {f"{host}/team/app": made}, None, at
        )
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_exampletoken")
    return factory, registry, good, bad


def run(factory, *extra) -> int:
    return main(["rollback", "--root", str(factory.root), "--image", "app", "--at", "2026-11-13T09:00:00Z", *extra])


def test_rollback_re_tags_the_earlier_digest_and_descendants_cascade(built_twice, capsys):
    factory, registry, good, bad = built_twice
    client = RegistryClient(insecure={registry.host}, credentials={})
    assert client.resolve(parse_ref(f"{registry.host}/team/app:latest")).digest == bad
    assert run(factory, "--reason", "py-2 breaks TLS") == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"app: re-tagged: {registry.host}/team/app:latest → {good}")
    assert (
        f"warning: {PYTHON}@{digest('py-2')[:19]}… is not rejected: plan will rebuild app on it again" in captured.err
    )
    fresh = RegistryClient(insecure={registry.host}, credentials={})
    assert fresh.resolve(parse_ref(f"{registry.host}/team/app:latest")).digest == good

    _, state = load_model(factory.root)
    app = state.images["app"]
    assert app.runtime.current_digest == good
    assert app.runtime.last_build == {
        "result": "success",
        "startedAt": "2026-11-13T09:00:00Z",
        "finishedAt": "2026-11-13T09:00:00Z",
        "digest": good,
        "baseDigests": {PYTHON: digest("py-1")},
        "reason": f"rollback to {good[:19]}…: py-2 breaks TLS",
    }
    now = datetime(2026, 11, 13, 9, 0, tzinfo=UTC)
    plan = planner.plan(state, now)
    due = {(item.image, item.digest) for item in plan.due}
    assert ("child", good) in due  # the cascade: child is rebuilt on the rolled-back app
    assert ("app", digest("py-2")) in due  # ...and app would go straight back onto py-2: hence the warning

    assert main(["reject", "--root", str(factory.root), "--image", PYTHON, "--digest", digest("py-2"),
                 "--reason", "breaks TLS"]) == 0  # fmt: skip
    plan = planner.plan(load_model(factory.root)[1], now)
    assert [(item.image, item.digest) for item in plan.due] == [("child", good)]
    assert [(item.image, item.reason) for item in plan.held] == [("app", "rejected: breaks TLS")]


@responses.activate
def test_rollback_rebuilds_pinned_when_the_old_digest_is_gone(built_twice, capsys):
    factory, _, good, _ = built_twice
    responses.add(responses.POST, DISPATCH, status=204)
    assert run(factory, "--reason", "bad libc", "--rebuild") == 0
    assert "app: rebuild dispatched: build.yml in acme/factory on main" in capsys.readouterr().out
    (call,) = responses.calls
    body = json.loads(call.request.body)
    assert body["ref"] == "main"
    assert json.loads(body["inputs"]["bases"]) == {PYTHON: digest("py-1")}
    attempt = load_model(factory.root)[1].images["app"].runtime.attempts[-1]
    assert attempt == {
        "result": "pending",
        "startedAt": "2026-11-13T09:00:00Z",
        "baseDigests": {PYTHON: digest("py-1")},
        "reason": f"rollback to {good[:19]}…: bad libc",
    }


@responses.activate
def test_a_refused_rebuild_is_recorded_and_fails(built_twice, capsys):
    factory, _, _, _ = built_twice
    responses.add(
        responses.POST,
        DISPATCH,
        status=422,
        json={"message": 'Unexpected inputs provided: ["bases"]', "documentation_url": "https://docs.github.com"},
    )
    assert run(factory, "--reason", "bad libc", "--rebuild") == 1
    out, err = capsys.readouterr()
    assert "app: dispatch failed: GitHub refused the dispatch of build.yml in acme/factory (422)" in out
    assert "app: the rollback was not dispatched; `image-factory dispatch --image app --retry` sends it again" in err
    attempt = load_model(factory.root)[1].images["app"].runtime.attempts[-1]
    assert attempt["result"] == "dispatch-failed" and attempt["reason"].endswith("bad libc")
    # nothing was built: the image still runs its last build, and what is built on it is not blocked
    _, state = load_model(factory.root)
    assert planner.plan(state, T0 + timedelta(days=12)).blocked == []
    # --retry sends the rollback's build again, on the digests it named
    responses.replace(responses.POST, DISPATCH, status=204)
    now = ["--now", "2026-11-13T10:00:00Z"]
    assert main(["dispatch", "--root", str(factory.root), "--image", "app", "--retry", *now]) == 0
    assert json.loads(json.loads(responses.calls[-1].request.body)["inputs"]["bases"]) == {PYTHON: digest("py-1")}


def test_an_unreachable_registry_names_the_rebuild_that_needs_none(built_twice, capsys):
    factory, registry, _, _ = built_twice
    registry.stop()
    assert run(factory, "--reason", "bad libc") == 1
    assert "try again, or pass --rebuild to build it again on its base digests" in capsys.readouterr().err


def test_dry_run_and_bad_requests_change_nothing(built_twice, capsys):
    factory, registry, good, _ = built_twice
    before = factory.snapshot()
    registry.stop()  # a dry run is offline: it says what it would do either way, with the exact pins
    assert run(factory, "--reason", "x", "--dry-run") == 0
    assert (
        f"app: dry-run: would re-tag {registry.host}/team/app:latest to {good} if its registry still has it, "
        f"else rebuild app pinned to {PYTHON}@{digest('py-1')}"
    ) in capsys.readouterr().out
    assert run(factory, "--reason", "x", "--dry-run", "--rebuild") == 0
    assert f"app: dry-run: would rebuild app pinned to {PYTHON}@{digest('py-1')}" in capsys.readouterr().out
    assert run(factory, "--reason", "x", "--to", digest("never-built")) == 1
    assert f"--to: no successful build of 'app' in state produced {digest('never-built')}" in capsys.readouterr().err
    assert run(factory, "--reason", " ") == 1
    assert "say why the image is rolled back" in capsys.readouterr().err
    assert factory.snapshot() == before


def test_no_earlier_build_to_go_back_to(factory, capsys):
    factory.write(
        "images.yaml",
        """
        images:
          - name: app
            registry: ghcr.io
            repository: team/app
            source: {provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}
        """,
    )
    factory.write("app/Dockerfile", "FROM python:3.12-slim\n")
    discover(factory.root)
    assert main(["rollback", "--root", str(factory.root), "--image", "app", "--reason", "x"]) == 1
    assert "'app' has no earlier successful build in state to go back to" in capsys.readouterr().err


def test_a_rollback_can_name_the_revision_tag_of_the_build_to_go_back_to(factory, registry, capsys, tmp_path):
    """Each rebuild's immutable tag (promote) is kept with its build: a deployment pins it, the site
    shows it, and `rollback --to` takes it."""
    host = registry.host
    enrol(factory, host)
    good, _ = registry.push_image("team/app", "latest-r1", "good")
    bad, _ = registry.push_image("team/app", "latest", "bad")
    for n, made in ((1, good), (2, bad)):
        args = ["record-build", "--root", str(factory.root), "--image", "app", "--result", "success"]
        args += ["--digest", made, "--base", f"{PYTHON}=sha256:{'1' * 64}", "--revision-tag", f"latest-r{n}"]
        args += ["--finished-at", f"2026-11-1{n}T09:00:00Z"]
        assert main(args) == 0
    capsys.readouterr()
    assert run(factory, "--to", "latest-r9", "--reason", "x") == 1
    assert "no successful build of 'app' got the tag 'latest-r9' (state knows latest-r1, latest-r2)" in (
        capsys.readouterr().err
    )
    assert run(factory, "--to", "latest-r1", "--reason", "r2 breaks TLS") == 0
    assert capsys.readouterr().out.startswith(f"app: re-tagged: {host}/team/app:latest → {good}")
    assert main(["site", "--root", str(factory.root), "--out", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "images" / "app.html").read_text()
    assert "tag <code>latest-r1</code>" in page and "tag <code>latest-r2</code>" in page
    bad_tag = ["record-build", "--root", str(factory.root), "--image", "app", "--result", "success"]
    bad_tag += ["--digest", good, "--base", f"{PYTHON}=sha256:{'1' * 64}", "--revision-tag", "r1 <script>"]
    assert main(bad_tag) == 1
    assert "--revision-tag: 'r1 <script>' is not a tag" in capsys.readouterr().err
