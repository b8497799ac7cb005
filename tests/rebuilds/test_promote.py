"""`image-factory promote`: the tag moves to a pushed digest on a real registry, byte for byte."""

from __future__ import annotations

import hashlib

import requests

from image_factory.cli import main

from ..registry_server import OCI_INDEX

ACCEPT = f"{OCI_INDEX}, application/vnd.oci.image.manifest.v1+json"


def enrol(factory, host: str) -> None:
    factory.write(
        "images.yaml",
        f"""
        insecureRegistries: ["{host}"]
        images:
          - name: app
            registry: "{host}"
            repository: team/app
            tag: "1"
            source: {{provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}
        """,
    )


def tagged(host: str) -> tuple[str, bytes]:
    answer = requests.get(f"http://{host}/v2/team/app/manifests/1", headers={"Accept": ACCEPT}, timeout=10)
    answer.raise_for_status()
    return answer.headers["Docker-Content-Digest"], answer.content


def test_the_tag_moves_to_the_candidate_index_unchanged(factory, registry, capsys):
    """A multi-platform candidate pushed by digest only: the tag gets that very index."""
    enrol(factory, registry.host)
    old, _ = registry.push_image("team/app", "1", "old")
    candidate, platforms = registry.push_index("team/app", "candidate-scratch", "new")
    raw = requests.get(
        f"http://{registry.host}/v2/team/app/manifests/{candidate}", headers={"Accept": ACCEPT}, timeout=10
    ).content
    assert main(["promote", "--root", str(factory.root), "--image", "app", "--digest", candidate]) == 0
    assert capsys.readouterr().out == (
        f"{registry.host}/team/app:1-r1 → {candidate} (this rebuild's own tag, never moved)\n"
        f"{registry.host}/team/app:1 → {candidate} (was {old})\n"
    )
    digest, body = tagged(registry.host)
    assert digest == candidate and body == raw  # the same bytes: index, platforms, attestations
    assert hashlib.sha256(body).hexdigest() == candidate.split(":")[1]
    assert len(platforms) == 2


def test_a_digest_that_was_never_pushed_leaves_the_tag_alone(factory, registry, capsys):
    enrol(factory, registry.host)
    old, _ = registry.push_image("team/app", "1", "old")
    missing = "sha256:" + "0" * 64
    assert main(["promote", "--root", str(factory.root), "--image", "app", "--digest", missing]) == 1
    assert (
        capsys.readouterr().err
        == f"error: --digest: {registry.host}/team/app@{missing} is not in the registry: nothing to tag\n"
    )
    assert tagged(registry.host)[0] == old


def test_bad_requests_are_refused(factory, registry, capsys):
    enrol(factory, registry.host)
    assert main(["promote", "--root", str(factory.root), "--image", "ghost", "--digest", "sha256:" + "1" * 64]) == 1
    assert "'ghost' is not a managed image in images.yaml" in capsys.readouterr().err
    assert main(["promote", "--root", str(factory.root), "--image", "app", "--digest", "SHA256:abc"]) == 1
    assert "invalid digest" in capsys.readouterr().err


def test_each_rebuild_gets_a_tag_of_its_own_that_never_moves(factory, registry, capsys, monkeypatch, tmp_path):
    """`{tag}-r{n}` by default: n one more than the highest in the repository (read from the
    registry page by page), so a rebuild can be pinned by tag and no revision tag is reused."""
    enrol(factory, registry.host)
    for n in (1, 2, 7):
        registry.push_image("team/app", f"1-r{n}", f"old-{n}")
    registry.push_image("team/app", "1-r07x", "not a revision")  # another shape: ignored
    seventh = tagged_as(registry.host, "1-r7")
    output = tmp_path / "output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    candidate, _ = registry.push_image("team/app", "candidate", "new")
    assert main(["promote", "--root", str(factory.root), "--image", "app", "--digest", candidate]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{registry.host}/team/app:1-r8 → {candidate} (this rebuild's own tag, never moved)"
    )
    assert tagged_as(registry.host, "1-r8") == candidate and tagged_as(registry.host, "1") == candidate
    assert tagged_as(registry.host, "1-r7") == seventh  # never moved
    assert output.read_text() == "revision-tag=1-r8\n"


def test_the_revision_pattern_is_set_in_images_yaml(factory, registry, capsys):
    from datetime import date

    from image_factory.rebuilds.promote import next_revision

    assert next_revision("{tag}-{date}.{n}", "3.12", ["3.12-20261207.1", "3.12-20261206.4"], date(2026, 12, 7)) == (
        "3.12-20261207.2"
    )
    factory.write(
        "images.yaml",
        f"""
        insecureRegistries: ["{registry.host}"]
        defaults: {{revisionTag: false}}
        images:
          - name: app
            registry: "{registry.host}"
            repository: team/app
            tag: "1"
            source: {{provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}
        """,
    )
    candidate, _ = registry.push_image("team/app", "candidate", "new")
    assert main(["promote", "--root", str(factory.root), "--image", "app", "--digest", candidate]) == 0
    assert capsys.readouterr().out == f"{registry.host}/team/app:1 → {candidate} (a new tag)\n"


def test_tags_are_listed_page_by_page():
    """The distribution API may page tags/list (a Link header to the next page): every page counts."""
    import responses

    from image_factory.edges.registry import RegistryClient
    from image_factory.enrolment.refs import parse_ref

    with responses.RequestsMock() as mock:
        base = "https://registry.example.com/v2/team/app/tags/list"
        mock.add(
            responses.GET,
            f"{base}?n=1000",
            json={"name": "team/app", "tags": ["1", "1-r1"]},
            headers={"Link": '</v2/team/app/tags/list?last=1-r1&n=1000>; rel="next"'},
        )
        mock.add(responses.GET, f"{base}?last=1-r1&n=1000", json={"name": "team/app", "tags": ["1-r2"]})
        tags = RegistryClient().tags(parse_ref("registry.example.com/team/app:1"))
    assert tags == ["1", "1-r1", "1-r2"]


def tagged_as(host: str, tag: str) -> str:
    answer = requests.get(f"http://{host}/v2/team/app/manifests/{tag}", headers={"Accept": ACCEPT}, timeout=10)
    answer.raise_for_status()
    return answer.headers["Docker-Content-Digest"]
