"""`image-factory dispatch` against a mocked GitHub (responses), with GitHub's documented shapes.

workflow_dispatch is `POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches`
with `{"ref": ..., "inputs": {...}}`, answered 204 No Content; errors carry `message` and
`documentation_url`, and rate limits the `x-ratelimit-*` headers.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
import responses

from image_factory.cli import main
from image_factory.discovery.discover import discover, load_model
from image_factory.rebuilds import events

API = "https://api.github.com:443"
LOCAL_DISPATCH = f"{API}/repos/acme/factory/actions/workflows/build-base.yml/dispatches"
APP_DISPATCH = f"{API}/repos/acme/app/actions/workflows/build.yml/dispatches"
PYTHON = "docker.io/library/python:3.12-slim"
SEEN = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NOW = SEEN + timedelta(days=8)
DOCS = "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event"


def digest(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


@pytest.fixture
def factory_due(factory, monkeypatch):
    factory.write(
        "images.yaml",
        """
        kargo: {factoryRepo: acme/factory}
        images:
          - name: base
            registry: ghcr.io
            repository: acme/base
            source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: build-base.yml}
          - name: app
            registry: ghcr.io
            repository: acme/app
            source: {provider: github, repo: acme/app, branch: release, dockerfile: Dockerfile, workflow: build.yml}
        """,
    )
    factory.write("base/Dockerfile", "FROM python:3.12-slim\n")
    factory.write(
        "checkouts/acme/app/Dockerfile", "FROM golang:1.23 AS build\nFROM python:3.12-slim\nCOPY --from=build /a /a\n"
    )
    discover(factory.root, factory.root / "checkouts")
    events.record_update(factory.root, PYTHON, digest("py-1"), SEEN, "f-1")
    events.record_update(factory.root, "golang:1.23", digest("go-1"), SEEN - timedelta(days=30), None)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_exampletoken")
    return factory


def run_dispatch(factory, *extra):
    return main(["dispatch", "--root", str(factory.root), "--now", NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), *extra])


def attempts(factory, image):
    return load_model(factory.root)[1].images[image].runtime.attempts


@responses.activate
def test_dispatches_each_due_build_once_with_every_base_pinned(factory_due, capsys):
    responses.add(responses.POST, LOCAL_DISPATCH, status=204)
    responses.add(responses.POST, APP_DISPATCH, status=204)
    assert run_dispatch(factory_due) == 0
    assert [call.request.url for call in responses.calls] == [APP_DISPATCH, LOCAL_DISPATCH]
    app_call, base_call = (json.loads(call.request.body) for call in responses.calls)
    pins = {"docker.io/library/golang:1.23": digest("go-1"), PYTHON: digest("py-1")}
    assert app_call == {
        "ref": "release",
        # never built by the factory: both bases are due; `base` and `digest` name the first of them
        "inputs": {
            "image": "app",
            "base": "docker.io/library/golang:1.23",
            "digest": digest("go-1"),
            "bases": json.dumps(pins),
        },
    }
    assert base_call["ref"] == "main" and json.loads(base_call["inputs"]["bases"]) == {PYTHON: digest("py-1")}
    for call in responses.calls:
        assert call.request.headers["Authorization"].endswith("ghs_exampletoken")
    assert attempts(factory_due, "app") == [
        {"result": "pending", "startedAt": "2026-11-09T12:00:00Z", "baseDigests": pins}
    ]
    out = capsys.readouterr().out
    assert "dispatched app: build.yml in acme/app on release" in out

    # the same inputs are never dispatched twice
    assert run_dispatch(factory_due) == 0
    assert len(responses.calls) == 2
    assert "skipped    app: already dispatched at 2026-11-09T12:00:00Z (pending)" in capsys.readouterr().out

    # the build reports back: the pending attempt gets its result
    events.record_build(
        factory_due.root, "app", digest("app-1"), "success", pins, "https://ci/run/1", NOW + timedelta(hours=1)
    )
    (attempt,) = attempts(factory_due, "app")
    assert attempt["result"] == "success" and attempt["startedAt"] == "2026-11-09T12:00:00Z"
    assert attempt["runUrl"] == "https://ci/run/1"


@responses.activate
def test_dry_run_calls_nothing_and_writes_nothing(factory_due, capsys):
    before = factory_due.snapshot()
    assert run_dispatch(factory_due, "--dry-run") == 0
    assert len(responses.calls) == 0
    assert factory_due.snapshot() == before
    assert capsys.readouterr().out.count("dry-run") == 2


@pytest.mark.parametrize(
    ("status", "headers", "body", "message"),
    [
        (
            403,
            {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1795000000"},
            {"message": "API rate limit exceeded for installation ID 1.", "documentation_url": DOCS},
            "GitHub rate limit exhausted (403): it resets at 2026-11-18T11:06:40Z; dispatch again then",
        ),
        (
            404,
            {},
            {"message": "Not Found", "documentation_url": DOCS, "status": "404"},
            "acme/app or its workflow build.yml was not found (404): check the repository, the workflow file name,"
            " and that the token can see acme/app",
        ),
        (
            422,
            {},
            {"message": 'Unexpected inputs provided: ["bases"]', "documentation_url": DOCS, "status": "422"},
            'GitHub refused the dispatch of build.yml in acme/app (422): Unexpected inputs provided: ["bases"]',
        ),
        (
            403,
            {"x-ratelimit-remaining": "4999"},
            {"message": "Resource not accessible by integration", "documentation_url": DOCS, "status": "403"},
            "forbidden (403) on acme/app: the token needs Actions: write there"
            " (Resource not accessible by integration)",
        ),
    ],
)
@responses.activate
def test_github_errors_are_clear_and_the_attempt_is_kept(factory_due, capsys, status, headers, body, message):
    responses.add(responses.POST, APP_DISPATCH, status=status, json=body, headers=headers)
    responses.add(responses.POST, LOCAL_DISPATCH, status=204)
    assert run_dispatch(factory_due) == 1
    out = capsys.readouterr().out
    assert f"failed     app: {message}" in out
    assert "dispatched base:" in out  # one refusal does not stop the others
    (attempt,) = attempts(factory_due, "app")
    assert attempt["result"] == "dispatch-failed" and attempt["error"] == message

    # a failed dispatch may be retried (the build never ran)
    responses.replace(responses.POST, APP_DISPATCH, status=204)
    assert run_dispatch(factory_due) == 0
    assert attempts(factory_due, "app")[-1]["result"] == "pending"


def test_no_token_is_a_clear_error_and_nothing_is_recorded(factory_due, monkeypatch, capsys):
    monkeypatch.delenv("GITHUB_TOKEN")
    before = factory_due.snapshot()
    assert run_dispatch(factory_due) == 1
    assert capsys.readouterr().err.strip() == "error: GITHUB_TOKEN: no GitHub token: set GITHUB_TOKEN (or pass --token)"
    assert factory_due.snapshot() == before


@responses.activate
def test_auto_rebuild_off_waits_for_a_human(factory_due, capsys):
    factory_due.write(
        "images.yaml",
        factory_due.read("images.yaml").replace(
            "    repository: acme/app\n", "    repository: acme/app\n    autoRebuild: false\n"
        ),
    )
    assert main(["discover", "--root", str(factory_due.root)]) == 0
    responses.add(responses.POST, LOCAL_DISPATCH, status=204)
    responses.add(responses.POST, APP_DISPATCH, status=204)
    assert run_dispatch(factory_due) == 0
    assert [call.request.url for call in responses.calls] == [LOCAL_DISPATCH]
    assert "skipped    app: autoRebuild is off" in capsys.readouterr().out
    assert run_dispatch(factory_due, "--image", "app") == 0  # the human's go (the Kargo stage, or by hand)
    assert [call.request.url for call in responses.calls] == [LOCAL_DISPATCH, APP_DISPATCH]


@responses.activate
def test_a_dispatch_whose_report_never_came_is_sent_again_after_the_timeout(factory_due, capsys):
    """A lost run (runner gone, run cancelled) must not leave the image pending for ever."""
    responses.add(responses.POST, LOCAL_DISPATCH, status=204)
    responses.add(responses.POST, APP_DISPATCH, status=204)
    assert run_dispatch(factory_due, "--image", "app") == 0
    later = (NOW + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(["dispatch", "--root", str(factory_due.root), "--now", later, "--image", "app"]) == 0
    out = capsys.readouterr().out
    assert "skipped    app: already dispatched at 2026-11-09T12:00:00Z (pending); dispatched again after 6h" in out
    assert "`dispatch --image app --retry`" in out
    assert len(responses.calls) == 1
    after = (NOW + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(["dispatch", "--root", str(factory_due.root), "--now", after, "--image", "app"]) == 0
    assert "dispatched app" in capsys.readouterr().out
    assert len(responses.calls) == 2
    first, second = attempts(factory_due, "app")
    assert first["result"] == "lost"
    assert first["error"] == "no image-built came; dispatched again at 2026-11-09T18:00:00Z"
    assert second["result"] == "pending" and second["startedAt"] == "2026-11-09T18:00:00Z"
    # a late report of either run settles the pending one
    pins = second["baseDigests"]
    events.record_build(factory_due.root, "app", digest("app-1"), "success", pins, None, NOW + timedelta(hours=7))
    assert [a["result"] for a in attempts(factory_due, "app")] == ["lost", "success"]


@responses.activate
def test_retry_dispatches_one_image_again_at_once(factory_due, capsys):
    responses.add(responses.POST, APP_DISPATCH, status=204)
    assert run_dispatch(factory_due, "--image", "app") == 0
    later = (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(["dispatch", "--root", str(factory_due.root), "--now", later, "--image", "app", "--retry"]) == 0
    assert len(responses.calls) == 2
    assert [a["result"] for a in attempts(factory_due, "app")] == ["lost", "pending"]
    assert run_dispatch(factory_due, "--retry") == 1
    assert capsys.readouterr().err.endswith("error: --retry: needs --image: which image's build to dispatch again\n")


@responses.activate
def test_an_image_with_a_base_that_has_no_digest_yet_is_not_dispatched(factory_due, capsys):
    """build-info would refuse it: a build never floats on a tag."""
    factory_due.write("base/Dockerfile", "FROM python:3.12-slim\nCOPY --from=node:22 /x /x\n")
    discover(factory_due.root, factory_due.root / "checkouts")
    responses.add(responses.POST, APP_DISPATCH, status=204)
    assert run_dispatch(factory_due, "--image", "base") == 0
    assert "skipped    base: no digest to pin docker.io/library/node:22 to yet" in capsys.readouterr().out
    assert len(responses.calls) == 0


@responses.activate
def test_a_refused_dispatch_is_tried_again_by_the_next_event_whatever_it_is_about(factory_due, capsys):
    """A scoped dispatch (`--base`, after one event) reads only what the event touches; a build
    GitHub refused is listed in state/dispatch-queue.json, so the next event's dispatch, about
    any image, sends it again; once sent, it leaves the list."""
    failed = factory_due.root / "state/dispatch-queue.json"
    responses.add(responses.POST, LOCAL_DISPATCH, status=204)
    unavailable = {"message": "Server Error", "documentation_url": DOCS}
    responses.add(responses.POST, APP_DISPATCH, status=503, json=unavailable)
    assert run_dispatch(factory_due, "--base", PYTHON) == 1
    assert json.loads(failed.read_text()) == ["app"]
    assert [a["result"] for a in attempts(factory_due, "app")] == ["dispatch-failed"]
    capsys.readouterr()

    responses.replace(responses.POST, APP_DISPATCH, status=204)
    unrelated = "base"  # an event about managed image base (its build): app is not built on it
    assert run_dispatch(factory_due, "--base", unrelated) == 0
    out = capsys.readouterr().out
    assert "dispatched app:" in " ".join(out.split()) and "base:" not in out.replace("ghcr.io/acme/base", "")
    assert not failed.exists()
    assert [a["result"] for a in attempts(factory_due, "app")][-1] == "pending"


@responses.activate
def test_an_image_with_its_own_kargo_stage_is_left_to_it_unless_its_digest_is_expedited(factory_due, capsys):
    """test.analysisTemplates keeps a Kargo rebuild Stage per base (kargo.layout): that Stage
    dispatches the rebuild once the delay is over, so dispatch leaves it alone; an expedited
    digest skips the delay, which the Stage would still wait, so that one the factory sends."""
    source_line = (
        "source: {provider: github, repo: acme/app, branch: release, dockerfile: Dockerfile, workflow: build.yml}"
    )
    config = factory_due.read("images.yaml")
    assert source_line in config
    factory_due.write(
        "images.yaml", config.replace(source_line, source_line + "\n    test: {analysisTemplates: [smoke]}")
    )
    discover(factory_due.root, factory_due.root / "checkouts")
    responses.add(responses.POST, LOCAL_DISPATCH, status=204)
    responses.add(responses.POST, APP_DISPATCH, status=204)
    assert run_dispatch(factory_due) == 0
    out = capsys.readouterr().out
    assert "its own Kargo rebuild Stage dispatches it" in out
    assert [call.request.url for call in responses.calls] == [LOCAL_DISPATCH]

    fresh = digest("py-2")
    events.record_update(factory_due.root, PYTHON, fresh, NOW - timedelta(hours=1), "f-2")
    events.expedite(factory_due.root, PYTHON, fresh, "CVE-2026-1234", NOW - timedelta(minutes=5))
    assert run_dispatch(factory_due) == 0
    (app_call,) = [call for call in responses.calls if call.request.url == APP_DISPATCH]
    assert json.loads(json.loads(app_call.request.body)["inputs"]["bases"])[PYTHON] == fresh
