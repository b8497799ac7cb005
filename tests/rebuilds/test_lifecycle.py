"""Lifecycle through pull requests, end to end: the team's checkout → the action's entry point
(`open-pr`) → mocked GitHub → the proposed commit applied to a real git clone of the factory →
synth → the manifests ArgoCD would apply."""

from __future__ import annotations

import json

import pytest
import responses
import yaml

from image_factory.cli import main
from image_factory.discovery.discover import discover
from image_factory.enrolment.refs import parse_ref

from ..conftest import commit, git
from ..github_mocks import mock_happy_path

PY312, PY313 = "docker.io/library/python:3.12-slim", "docker.io/library/python:3.13-slim"
ENROLMENT = (
    "  - {{name: {name}, registry: ghcr.io, repository: acme/{name},"
    " source: {{provider: github, repo: acme/payments, dockerfile: {name}/Dockerfile, workflow: build.yml}}}}\n"
)


class Lifecycle:
    """A factory repository (a real git repo), a team checkout, and the PR round trip between them."""

    def __init__(self, tmp_path):
        self.factory = tmp_path / "factory"
        self.team = tmp_path / "payments"
        self.factory.mkdir()
        self.team.mkdir()
        self.images = ["payments-api"]
        self.extra_enrolment = ""
        self.write_images_yaml()
        discover(self.factory)
        git(self.factory, "init", "--quiet", "--initial-branch=main")
        commit(self.factory, "factory")

    def write_images_yaml(self) -> None:
        text = "kargo: {factoryRepo: acme/factory}\nimages:\n"
        text += "".join(ENROLMENT.format(name=name) for name in self.images) + self.extra_enrolment
        (self.factory / "images.yaml").write_text(text)

    def dockerfile(self, image: str, text: str | None) -> None:
        path = self.team / image / "Dockerfile"
        if text is None:
            path.unlink()
            return
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)

    @responses.activate
    def propose_and_merge(self) -> dict:
        """Run the action's entry point; apply the commit GitHub received to the factory clone."""
        mock_happy_path()
        assert (
            main(
                [
                    "open-pr",
                    "--factory-repo",
                    "acme/factory",
                    "--factory-root",
                    str(self.factory),
                    "--source-root",
                    str(self.team),
                    "--team-repo",
                    "acme/payments",
                ]
            )
            == 0
        )
        posted = {
            c.request.url.split("?")[0].rsplit("/", 1)[-1]: c.request.body
            for c in responses.calls
            if c.request.method == "POST"
        }
        tree = json.loads(posted["trees"])["tree"]
        for entry in tree:
            path = self.factory / entry["path"]
            if entry.get("sha", "") is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(entry["content"])
        commit(self.factory, "merge the team's proposal")
        # as validate.yml checks the proposal, and synth.yml settles the default branch after it:
        # the fleet-wide files derived; the team's images' files were already as discover makes them
        assert main(["discover", "--root", str(self.factory), "--full"]) == 0
        assert git(self.factory, "status", "--porcelain", "--", "state/images") == ""
        assert main(["validate", "--root", str(self.factory)]) == 0
        return {"tree": tree, "body": json.loads(posted["pulls"])["body"]}

    def synth(self) -> list[dict]:
        """synth.yml after the merge: the fleet-wide files derived (`discover --full`), then synth."""
        assert main(["discover", "--root", str(self.factory), "--full"]) == 0
        assert main(["synth", "--root", str(self.factory)]) == 0
        return [d for d in yaml.safe_load_all((self.factory / "dist" / "kargo.k8s.yaml").read_text()) if d]

    def state(self, relative: str) -> dict:
        return yaml.safe_load((self.factory / relative).read_text())


def watched(manifests: list[dict]) -> set[str]:
    return {m["metadata"]["annotations"]["image-factory.dev/ref"] for m in manifests if m["kind"] == "Warehouse"}


def rebuilt_on(manifests: list[dict]) -> set[str]:
    """The watched images whose new digests rebuild managed images: those with a soak Stage (the
    team's images here have no Stage of their own: autoRebuild on, no analysisTemplates)."""
    stages = [m for m in manifests if m["kind"] == "Stage"]
    assert not [m for m in stages if m["metadata"]["labels"]["image-factory.dev/role"] == "rebuild"]
    return {
        m["metadata"]["annotations"]["image-factory.dev/ref"]
        for m in stages
        if m["metadata"]["labels"]["image-factory.dev/role"] == "soak"
    }


@pytest.fixture
def life(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_example")
    return Lifecycle(tmp_path)


def test_enrolling_a_new_image(life):
    life.dockerfile("payments-api", "FROM python:3.12-slim\n")
    pr = life.propose_and_merge()
    assert rebuilt_on(life.synth()) == {PY312}

    life.images.append("payments-worker")  # the factory enrols a second image of the team
    life.write_images_yaml()
    commit(life.factory, "enrol payments-worker")
    life.dockerfile("payments-worker", "FROM node:22-bookworm-slim AS build\nFROM gcr.io/distroless/nodejs22\n")
    pr = life.propose_and_merge()
    assert (
        "| payments-worker | (new) | `docker.io/library/node:22-bookworm-slim`<br>`gcr.io/distroless/nodejs22:latest` |"
        in pr["body"]
    )
    manifests = life.synth()
    assert rebuilt_on(manifests) == {
        PY312,  # payments-api
        "docker.io/library/node:22-bookworm-slim",  # payments-worker
        "gcr.io/distroless/nodejs22:latest",  # payments-worker
    }


def test_changing_a_from_line(life):
    life.dockerfile("payments-api", "FROM python:3.12-slim\n")
    life.propose_and_merge()
    assert watched(life.synth()) == {PY312}
    life.dockerfile("payments-api", "FROM python:3.13-slim\n")
    pr = life.propose_and_merge()
    assert f"| payments-api | `{PY312}` | `{PY313}` |" in pr["body"]
    old_file = f"state/base-images/{parse_ref(PY312).slug()}.yaml"
    assert f"- `{old_file}`" in pr["body"].split("No longer referenced")[1]  # prune is proposed, not done
    manifests = life.synth()
    assert watched(manifests) == {PY313}
    assert rebuilt_on(manifests) == {PY313}
    assert (life.factory / old_file).exists()


def test_removing_a_dockerfile_is_marked_and_never_silent(life):
    life.dockerfile("payments-api", "FROM python:3.12-slim\n")
    life.propose_and_merge()
    life.dockerfile("payments-api", None)
    pr = life.propose_and_merge()
    assert "Dockerfiles no longer in the repository" in pr["body"] and "- **payments-api**" in pr["body"]
    state = life.state("state/images/payments-api.yaml")
    assert state["dockerfileMissing"] is True
    assert [b["ref"] for b in state["baseImages"]] == [PY312]  # bases as last seen: still watched
    assert rebuilt_on(life.synth()) == {PY312}


def test_a_base_moves_from_external_to_managed(life, capsys):
    life.dockerfile("payments-api", "FROM ghcr.io/acme/base:1\n")
    life.propose_and_merge()
    assert watched(life.synth()) == {"ghcr.io/acme/base:1"}
    base_file = f"state/base-images/{parse_ref('ghcr.io/acme/base:1').slug()}.yaml"
    history = [{"digest": "sha256:" + "1" * 64, "firstSeen": "2026-11-01T00:00:00Z", "seenBy": "kargo"}]
    data = life.state(base_file)
    data["runtime"]["history"] = history
    (life.factory / base_file).write_text(yaml.safe_dump(data, sort_keys=False))

    # the factory enrols the base with a source: it is built here from now on
    life.extra_enrolment = (
        "  - {name: base, registry: ghcr.io, repository: acme/base, tag: '1',"
        " source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: build.yml}}\n"
    )
    life.write_images_yaml()
    (life.factory / "base").mkdir()
    (life.factory / "base" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    assert main(["discover", "--root", str(life.factory)]) == 0  # the factory's own workflow
    commit(life.factory, "enrol base as managed")
    assert not (life.factory / base_file).exists()
    assert life.state("state/images/base.yaml")["runtime"]["history"] == history
    manifests = life.synth()
    assert watched(manifests) == {"docker.io/library/debian:bookworm-slim"}  # never a Warehouse for base
    assert rebuilt_on(manifests) == {"docker.io/library/debian:bookworm-slim"}  # base; payments-api cascades
    api = life.state("state/images/payments-api.yaml")
    assert api["baseImages"] == [{"ref": "ghcr.io/acme/base:1", "kind": "from", "stage": "0", "image": "base"}]
    capsys.readouterr()
    assert (
        main(
            [
                "open-pr",
                "--factory-repo",
                "acme/factory",
                "--factory-root",
                str(life.factory),
                "--source-root",
                str(life.team),
                "--team-repo",
                "acme/payments",
                "--dry-run",
            ]
        )
        == 0
    )
    assert "nothing changed" in capsys.readouterr().out
