"""`image-factory open-pr` against a mocked GitHub (responses), using GitHub's documented shapes.

One tree (contents inline), one commit, one ref, one pull request: the calls do not grow with
the number of changed files. A branch or pull request from an earlier run is updated.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import pytest
import responses

from image_factory.cli import main
from image_factory.discovery.discover import discover
from image_factory.edges import github_client
from image_factory.errors import FactoryError
from image_factory.federation.proposal import propose
from image_factory.federation.pull_request import open_or_update
from image_factory.rebuilds import events

from ..github_mocks import API, BASE, BRANCH, NEW_COMMIT, NEW_TREE, TREE, mock_happy_path


@pytest.fixture
def repos(tmp_path, monkeypatch):
    """A factory checkout enrolling two images of acme/payments, and the team's checkout."""
    factory = tmp_path / "factory"
    team = tmp_path / "payments"
    (factory).mkdir()
    (factory / "images.yaml").write_text(
        "kargo: {factoryRepo: acme/factory}\nimages:\n"
        + "".join(
            f"  - {{name: {name}, registry: ghcr.io, repository: acme/{name},"
            f" source: {{provider: github, repo: acme/payments, dockerfile: {name}/Dockerfile,"
            " workflow: build.yml}}\n"
            for name in ("payments-api", "payments-worker")
        )
    )
    for name, base in (("payments-api", "python:3.12-slim"), ("payments-worker", "python:3.12-slim")):
        (team / name).mkdir(parents=True)
        (team / name / "Dockerfile").write_text(f"FROM {base}\n")
    discover(factory, tmp_path / "none")  # enrolled, not yet discovered: bases unknown
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_example")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    return factory, team, tmp_path


def open_pr(factory, team, *extra):
    return main(
        [
            "open-pr",
            "--factory-repo",
            "acme/factory",
            "--factory-root",
            str(factory),
            "--source-root",
            str(team),
            "--team-repo",
            "acme/payments",
            *extra,
        ]
    )


@responses.activate
def test_opens_one_commit_and_one_pull_request(repos, capsys):
    factory, team, tmp = repos
    mock_happy_path()
    assert open_pr(factory, team) == 0
    calls = [(c.request.method, c.request.url.split("?")[0].replace(API, "")) for c in responses.calls]
    assert calls == [
        ("GET", ""),
        ("GET", "/git/ref/heads/main"),
        ("GET", f"/git/commits/{BASE}"),
        ("POST", "/git/trees"),
        ("POST", "/git/commits"),
        ("POST", "/git/refs"),
        ("GET", "/pulls"),
        ("POST", "/pulls"),
    ]
    tree = json.loads(responses.calls[3].request.body)
    assert tree["base_tree"] == TREE
    paths = sorted(entry["path"] for entry in tree["tree"])
    # the team's own images' files only: the fleet-wide ones are derived on the default branch
    assert paths == ["state/images/payments-api.yaml", "state/images/payments-worker.yaml"]
    api_entry = next(e for e in tree["tree"] if e["path"] == "state/images/payments-api.yaml")
    assert (api_entry["mode"], api_entry["type"]) == ("100644", "blob")
    assert "ref: docker.io/library/python:3.12-slim" in api_entry["content"]
    commit = json.loads(responses.calls[4].request.body)
    assert commit["tree"] == NEW_TREE and commit["parents"] == [BASE]
    assert json.loads(responses.calls[5].request.body) == {"ref": f"refs/heads/{BRANCH}", "sha": NEW_COMMIT}
    assert "head=acme%3Aimage-factory%2Facme-payments" in responses.calls[6].request.url
    pull = json.loads(responses.calls[7].request.body)
    assert (pull["head"], pull["base"], pull["title"]) == (BRANCH, "main", "Image Factory: bases of acme/payments")
    assert "| payments-api | (new) | `docker.io/library/python:3.12-slim` |" in pull["body"]
    assert "```mermaid\ngraph LR" in pull["body"]
    assert capsys.readouterr().out.strip() == "pull request: https://github.com/acme/factory/pull/8"
    assert (tmp / "output").read_text() == "pr-url=https://github.com/acme/factory/pull/8\nchanged=true\n"
    assert "| image | bases before | bases now |" in (tmp / "summary").read_text()


@responses.activate
def test_updates_the_branch_and_pull_request_of_an_earlier_run(repos):
    factory, team, _ = repos
    mock_happy_path(branch_exists=True, pull_exists=True)
    assert open_pr(factory, team) == 0
    methods = [(c.request.method, c.request.url.split("?")[0].replace(API, "")) for c in responses.calls]
    assert methods[5:] == [
        ("POST", "/git/refs"),
        ("GET", f"/git/ref/heads/{BRANCH}"),
        ("PATCH", f"/git/refs/heads/{BRANCH}"),
        ("GET", "/pulls"),
        ("PATCH", "/pulls/7"),
    ]
    assert json.loads(responses.calls[7].request.body) == {"sha": NEW_COMMIT, "force": True}
    assert "payments-worker" in json.loads(responses.calls[9].request.body)["body"]


@responses.activate
def test_the_number_of_calls_does_not_grow_with_the_files(repos):
    factory, team, _ = repos
    mock_happy_path()
    assert open_pr(factory, team, "--image", "payments-api") == 0
    one_image = len(responses.calls)
    files_one = len(json.loads(responses.calls[3].request.body)["tree"])
    responses.calls.reset()
    assert open_pr(factory, team) == 0
    assert len(json.loads(responses.calls[3].request.body)["tree"]) > files_one
    assert len(responses.calls) == one_image == 8


@responses.activate
def test_nothing_changed_calls_nothing(repos, capsys):
    factory, team, tmp = repos
    # the factory already has what the team's checkout says (as if the PR had been merged)
    (tmp / "checkouts" / "acme").mkdir(parents=True)
    (tmp / "checkouts" / "acme" / "payments").symlink_to(team)
    discover(factory, tmp / "checkouts")
    assert open_pr(factory, team) == 0
    assert len(responses.calls) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert (tmp / "output").read_text() == "pr-url=\nchanged=false\n"


@responses.activate
def test_dry_run_prints_the_proposal_and_calls_nothing(repos, capsys):
    factory, team, _ = repos
    assert open_pr(factory, team, "--dry-run") == 0
    assert len(responses.calls) == 0
    assert "| payments-worker | (new) | `docker.io/library/python:3.12-slim` |" in capsys.readouterr().out


@responses.activate
def test_missing_factory_repo_says_which_repo_and_permission(repos, capsys):
    factory, team, _ = repos
    not_found = {
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository",
        "status": "404",
    }
    responses.add(responses.GET, API, status=404, json=not_found)
    assert open_pr(factory, team) == 1
    assert capsys.readouterr().err.strip() == (
        "error: github: acme/factory not found while reading acme/factory (404): the token needs Contents and"
        " Pull requests write on acme/factory, and must be able to see it"
    )


@responses.activate
def test_rate_limit_waits_briefly_or_fails_with_the_reset_time(repos):
    factory, team, _ = repos
    found = propose(factory, "acme/payments", team)
    limited = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1795000030"}
    body = {"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest"}
    responses.add(responses.GET, API, status=403, json=body, headers=limited)
    mock_happy_path()
    slept = []
    client = github_client.connect("ghs_example", "https://api.github.com")
    url = open_or_update(client, "acme/factory", "main", found, sleep=slept.append, clock=lambda: 1795000000)
    assert url == "https://github.com/acme/factory/pull/8" and slept == [31]

    responses.reset()
    responses.add(responses.GET, API, status=403, json=body, headers=limited)
    with pytest.raises(FactoryError) as raised:
        open_or_update(client, "acme/factory", "main", found, sleep=slept.append, clock=lambda: 1794990000)
    assert (
        str(raised.value)
        == "github: rate limit exhausted while reading acme/factory: it resets at 2026-11-18T11:07:10Z"
    )


def test_dockerfile_errors_become_annotations_in_actions(repos, monkeypatch, capsys):
    factory, team, _ = repos
    (team / "payments-api" / "Dockerfile").write_text("FROM python:3.12-slim\nFROM Bad:1\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(team))
    assert open_pr(factory, team, "--dry-run") == 1
    out = capsys.readouterr().err  # workflow commands on stderr: stdout may be a job summary
    message = "invalid image reference 'Bad:1': repository name must be lowercase"
    assert f"::error file=payments-api/Dockerfile,line=2::{message}" in out  # the path in the team's repository

    # a file outside the checkout GitHub maps annotations to: its place stays in the message
    monkeypatch.setenv("GITHUB_WORKSPACE", str(factory))
    assert open_pr(factory, team, "--dry-run") == 1
    dockerfile = team / "payments-api" / "Dockerfile"
    assert f"::error::{dockerfile}:2: {message}" in capsys.readouterr().err


@responses.activate
def test_the_proposal_shows_base_digests_held_back_and_why(repos, capsys):
    factory, team, tmp_path = repos
    shutil.copytree(team, tmp_path / "sources" / "acme" / "payments")
    discover(factory, tmp_path / "sources")  # the factory knows these images' bases...
    (team / "payments-worker" / "Dockerfile").write_text("FROM python:3.12-slim\nCOPY --from=golang:1.23 /a /a\n")
    # ...and python's digests; one was rejected (it broke a build).
    bad = "sha256:" + "e" * 64
    events.record_update(factory, "python:3.12-slim", bad, datetime(2026, 11, 1, tzinfo=UTC), None)
    events.reject(factory, "python:3.12-slim", bad, "segfaults in ssl", datetime(2026, 11, 2, tzinfo=UTC))
    assert open_pr(factory, team, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "Base digests these images are held back from (rejected, or not verified):" in out
    row = f"| payments-api | `docker.io/library/python:3.12-slim` | `{bad[:19]}…` | `rejected: segfaults in ssl` |"
    assert row in out
    assert len(responses.calls) == 0


def test_an_unresolved_base_is_shown_in_the_proposal_and_as_a_warning(repos, monkeypatch, capsys):
    """`FROM $NOPE` once gave an empty table and exit 0: the image silently lost a watched base."""
    factory, team, tmp_path = repos
    (team / "payments-api" / "Dockerfile").write_text("ARG NOPE\nFROM python:3.12-slim AS build\nFROM $NOPE\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert open_pr(factory, team, "--dry-run") == 0
    out, err = capsys.readouterr()
    warning = (
        "payments-api: cannot resolve '$NOPE' (an ARG without a default or build arg): "
        "this base is not watched, so the image is not rebuilt when it changes"
    )
    assert f"::warning file=payments-api/Dockerfile,line=3::{warning}" in err.splitlines()
    assert f"warning: payments-api/Dockerfile:3: {warning}" in err.splitlines()
    assert "**Base references that name no image**" in out
    assert "| payments-api | `payments-api/Dockerfile:3` | `$NOPE` |" in out.splitlines()
    assert "| `payments-api/Dockerfile:3` |" in (tmp_path / "summary").read_text()


def test_a_teams_unresolved_reference_is_shown_as_code_never_as_a_mention_or_link(repos, capsys):
    """The proposal body is Markdown GitHub renders: a team's FROM text must make no @mention,
    link or #reference (in a code span GitHub renders none)."""
    factory, team, _ = repos
    (team / "payments-api" / "Dockerfile").write_text(
        "ARG NOPE\nFROM python:3.12-slim AS build\nFROM $NOPE/@acme/admins/https://evil.example/x#1|`y\n"
    )
    assert open_pr(factory, team, "--dry-run") == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("| payments-api | `payments-api/Dockerfile:3`")]
    assert row.endswith("| ``$NOPE/@acme/admins/https://evil.example/x#1\\|`y`` |")


@responses.activate
def test_an_arg_default_the_factory_overrides_is_told_in_the_proposal_and_as_a_warning(repos, monkeypatch, capsys):
    """A team moves its ARG default to Python 3.13; images.yaml's buildArgs keep building 3.12:
    the team is told where, and what is built."""
    factory, team, _ = repos
    text = (
        (factory / "images.yaml")
        .read_text()
        .replace(
            "dockerfile: payments-api/Dockerfile,", "dockerfile: payments-api/Dockerfile, buildArgs: {PY: '3.12'},"
        )
    )
    (factory / "images.yaml").write_text(text)
    assert main(["discover", "--root", str(factory)]) == 0
    (team / "payments-api" / "Dockerfile").write_text("# base\nARG PY=3.13\nFROM python:${PY}-slim\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    capsys.readouterr()
    assert open_pr(factory, team, "--dry-run") == 0
    out, err = capsys.readouterr()
    warning = (
        "payments-api: ARG PY='3.13' is overridden by images.yaml's source.buildArgs: the factory builds "
        "with PY='3.12' (ask the platform team to change it there)"
    )
    assert f"::warning file=payments-api/Dockerfile,line=2::{warning}" in err.splitlines()
    assert "| payments-api | `payments-api/Dockerfile:2` | `PY` | `3.13` | `3.12` |" in out.splitlines()
    assert "| payments-api | (new) | `docker.io/library/python:3.12-slim` |" in out  # what is built


def test_the_proposal_graph_shows_the_teams_neighbourhood_within_githubs_body_limit(tmp_path):
    """Forty other teams, and six hundred images built on this team's image: the proposal's graph
    holds the team's image, its base and what is built directly on it, bounded, and the whole
    body stays within the 65,536 characters GitHub takes for a pull request."""
    factory, team = tmp_path / "factory", tmp_path / "payments"
    lines = ["kargo: {factoryRepo: acme/factory}", "images:"]
    lines.append(
        "  - {name: payments-api, registry: ghcr.io, repository: acme/payments-api, source: {provider: github,"
        " repo: acme/payments, dockerfile: Dockerfile, workflow: build.yml}}"
    )
    for number in range(40):
        lines.append(
            f"  - {{name: other-{number}, registry: ghcr.io, repository: acme/other-{number}, source: "
            f"{{provider: local, repo: other/{number}, dockerfile: Dockerfile, workflow: build.yml}}}}"
        )
        (factory / f"other/{number}").mkdir(parents=True)
        (factory / f"other/{number}/Dockerfile").write_text(f"FROM docker.io/library/debian:{number}\n")
    for number in range(600):
        lines.append(
            f"  - {{name: on-payments-{number:03d}, registry: ghcr.io, repository: acme/on-{number}, source: "
            f"{{provider: local, repo: on/{number}, dockerfile: Dockerfile, workflow: build.yml}}}}"
        )
        (factory / f"on/{number}").mkdir(parents=True)
        (factory / f"on/{number}/Dockerfile").write_text("FROM ghcr.io/acme/payments-api:latest\n")
    (factory / "images.yaml").write_text("\n".join(lines) + "\n")
    discover(factory)
    team.mkdir()
    (team / "Dockerfile").write_text("FROM python:3.12-slim\n")
    found = propose(factory, "acme/payments", team)
    body = found.body()
    assert len(body) <= 65536
    graph = body.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    assert "payments-api" in graph and "python:3.12-slim" in graph and "on-payments-000" in graph
    assert "other-" not in graph and "debian" not in graph  # other teams' images are not this team's concern
    assert "more edges: image-factory graph shows them all" in graph


def test_dockerfiles_no_enrolled_image_builds_are_listed_in_the_proposal(repos):
    """A team's new service: its Dockerfile is in the repository, not in images.yaml. The proposal
    says so, so the team can ask for it to be enrolled; nothing under .git or node_modules."""
    factory, team, _ = repos
    for path in ("billing/Dockerfile", "tools/ci.Dockerfile", "node_modules/x/Dockerfile", ".git/Dockerfile"):
        (team / path).parent.mkdir(parents=True, exist_ok=True)
        (team / path).write_text("FROM alpine:3.20\n")
    found = propose(factory, "acme/payments", team)
    assert found.unenrolled == ["billing/Dockerfile", "tools/ci.Dockerfile"]
    assert "- `billing/Dockerfile`" in found.body() and "**Dockerfiles no enrolled image builds**" in found.body()


def test_with_enrol_the_proposal_adds_the_teams_new_dockerfiles_to_images_yaml(repos, tmp_path):
    """A team's new service, proposed for enrolment (the action's input enrol: true): its
    images.yaml entry, under a comment naming the team, and the new image's state file with its
    bases; what the factory's check then finds (discover, validate) is as the proposal says."""
    factory, team, _ = repos
    (team / "billing").mkdir()
    (team / "billing" / "Dockerfile").write_text("FROM node:22-bookworm-slim\n")
    before = (factory / "images.yaml").read_text()
    found = propose(factory, "acme/payments", team, enrol=True)
    assert found.enrolled == ["payments-billing"] and found.unenrolled == []
    text = found.files["images.yaml"]
    assert text.startswith(before) and '  # proposed by "acme/payments": review the name' in text
    assert '  - name: "payments-billing"\n    registry: "ghcr.io"\n    repository: "acme/payments-billing"\n' in text
    assert 'dockerfile: "billing/Dockerfile"' in text
    assert "docker.io/library/node:22-bookworm-slim" in found.files["state/images/payments-billing.yaml"]
    assert "**Images this proposal enrols**" in found.body() and "- **payments-billing**" in found.body()
    for path, content in found.files.items():
        (factory / path).write_text(content)
    assert main(["discover", "--root", str(factory), "--full"]) == 0  # the check of the pull request
    assert main(["validate", "--root", str(factory)]) == 0
    assert "basesUnknown" not in (factory / "state/images/payments-billing.yaml").read_text()
    # without the input, the Dockerfile is only listed
    assert propose(factory, "acme/payments", team).enrolled == []


def test_enrolment_names_are_dns_labels_and_unique():
    from image_factory.federation.enrolment import image_name

    assert image_name("acme/payments", "Dockerfile", set()) == "payments"
    assert image_name("acme/payments", "api/Dockerfile", {"payments"}) == "payments-api"
    assert image_name("acme/payments", "ci.Dockerfile", set()) == "payments-ci"
    assert image_name("acme/payments", "Dockerfile.Prod", set()) == "payments-prod"
    assert image_name("acme/payments", "api/Dockerfile", {"payments-api"}) == "payments-api-2"
    assert image_name("Acme/Pay_Ments", "x y/Dockerfile", set()) == "pay-ments-x-y"


@pytest.mark.parametrize(
    "path",
    [
        'a"\n      workflow: build.yml\n  - name: evil\n    registry: docker.io\n    repository: library/python\n'
        '    source: {provider: github, repo: acme/web, dockerfile: "b/Dockerfile',
        'q"uote\\back#x: y/Dockerfile',
        'q"uote #x: [y]/Dockerfile',
    ],
    ids=["injection", "backslash", "quote-hash-colon"],
)
def test_an_enrolled_path_is_that_path_and_never_more_yaml(repos, path):
    """A team controls its folder names: a path with a quote, a backslash or a line break is the
    path of one entry (a line break: not listed at all), never an entry of its own."""
    from image_factory.enrolment.config import parse_config

    factory, team, _ = repos
    folder = team / path.rsplit("/", 1)[0]
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_text("FROM alpine:3.20\n")
    found = propose(factory, "acme/payments", team, enrol=True)
    if "\n" in path:
        assert found.enrolled == [] and "images.yaml" not in found.files
        return
    if "\\" in path:  # images.yaml refuses it as a path: listed, not enrolled
        assert found.enrolled == [] and found.unenrolled == [path] and "images.yaml" not in found.files
        return
    config = parse_config(found.files["images.yaml"])
    (added,) = [image for image in config.images if image.name not in ("payments-api", "payments-worker")]
    assert added.source.dockerfile == path and len(config.images) == 3


def test_enrolment_into_an_empty_list_and_crlf_lines(tmp_path):
    from image_factory.enrolment.config import parse_config
    from image_factory.federation.enrolment import add_to_images_yaml, entries

    new = entries("acme/web", ["Dockerfile"], set())
    text = add_to_images_yaml("kargo: {factoryRepo: acme/f}\r\nimages: []  # none yet\r\n", "acme/web", new)
    assert text.startswith("kargo: {factoryRepo: acme/f}\r\nimages:\r\n") and "\n" not in text.replace("\r\n", "")
    assert [image.name for image in parse_config(text).images] == ["web"]
    column_zero = "images:\n- name: a\n  registry: ghcr.io\n  repository: acme/a\nkargo: {factoryRepo: acme/f}\n"
    text = add_to_images_yaml(column_zero, "acme/web", new)
    assert text.endswith("kargo: {factoryRepo: acme/f}\n") and '\n- name: "web"\n' in text
    assert [image.name for image in parse_config(text).images] == ["a", "web"]
