"""Image references follow Docker's reference grammar."""

from __future__ import annotations

import pytest

from image_factory.enrolment.refs import ImageRef, InvalidReference, make_ref, parse_ref

DIGEST = "sha256:" + "0123456789abcdef" * 4

CANONICAL = [
    ("python", "docker.io/library/python:latest"),
    ("python:3.12-slim", "docker.io/library/python:3.12-slim"),
    ("library/python:3.12", "docker.io/library/python:3.12"),
    ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
    ("docker.io/python", "docker.io/library/python:latest"),
    ("index.docker.io/library/python:3", "docker.io/library/python:3"),
    ("index.docker.io/bitnami/redis", "docker.io/bitnami/redis:latest"),
    ("registry-1.docker.io/library/alpine:3.20", "docker.io/library/alpine:3.20"),
    ("ghcr.io/acme/app", "ghcr.io/acme/app:latest"),
    ("ghcr.io/acme/team/app:v1.2.3", "ghcr.io/acme/team/app:v1.2.3"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app:dev", "localhost:5000/app:dev"),
    ("registry.example.com:8443/a/b/c:1", "registry.example.com:8443/a/b/c:1"),
    ("Registry/app", "Registry/app:latest"),  # an upper-case first component is a host
    ("my-registry:5000/app", "my-registry:5000/app:latest"),
    ("[::1]:5000/app:1", "[::1]:5000/app:1"),
    (f"python@{DIGEST}", f"docker.io/library/python@{DIGEST}"),
    (f"python:3.12@{DIGEST}", f"docker.io/library/python:3.12@{DIGEST}"),
    (f"ghcr.io/acme/app:1@{DIGEST}", f"ghcr.io/acme/app:1@{DIGEST}"),
    ("a/b__c.d-e--f:Tag_1.0-rc", "docker.io/a/b__c.d-e--f:Tag_1.0-rc"),
]


@pytest.mark.parametrize(("text", "canonical"), CANONICAL)
def test_canonical_form(text, canonical):
    assert parse_ref(text).canonical == canonical


@pytest.mark.parametrize(("text", "canonical"), CANONICAL)
def test_canonical_form_is_a_fixed_point(text, canonical):
    assert parse_ref(canonical).canonical == canonical


def test_parts():
    ref = parse_ref(f"localhost:5000/team/app:1.0@{DIGEST}")
    assert ref == ImageRef("localhost:5000", "team/app", "1.0", DIGEST)
    assert ref.name == "localhost:5000/team/app"
    assert ref.without_digest() == ImageRef("localhost:5000", "team/app", "1.0")


def test_digest_only_reference_gets_no_tag_and_keeps_its_digest():
    ref = parse_ref(f"ghcr.io/acme/app@{DIGEST}")
    assert ref.tag is None
    assert ref.digest == DIGEST
    assert ref.without_digest() == ref


def test_no_default_tag_when_asked():
    assert parse_ref("quay.io/prometheus/node-exporter", default_tag=None).tag is None


INVALID = [
    ("", "empty reference"),
    ("Python", "repository name must be lowercase"),
    ("docker.io/Library/python", "repository name must be lowercase"),
    ("python:", "invalid tag ''"),
    ("python:-bad", "invalid tag '-bad'"),
    ("python:" + "a" * 129, "invalid tag"),
    ("python@sha256:abc", "invalid digest 'sha256:abc'"),
    (f"python@sha256:{'A' * 64}", "invalid sha256 digest: 64 lowercase hex digits"),
    ("python@md5", "invalid digest 'md5'"),
    # issue 13: only the canonical form, or the same image gets two names (or a wrong one)
    (f"python@SHA256:{'a' * 64}", "only sha256 digests (what registries serve)"),
    (f"python@md5:{'a' * 32}", "only sha256 digests (what registries serve)"),
    (f"python@sha512:{'a' * 128}", "only sha256 digests (what registries serve)"),
    (f"python@sha256:{'a' * 63}B", "invalid sha256 digest: 64 lowercase hex digits"),
    ("ghcr.io/", "missing repository name"),
    (":tag", "missing repository name"),
    ("a//b", "invalid repository path component ''"),
    ("a/b_", "invalid repository path component 'b_'"),
    ("a/-b", "invalid repository path component '-b'"),
    ("-host.io/a", "invalid registry '-host.io'"),
    ("python 3", "contains whitespace"),
    ("0123456789abcdef" * 4, "a 64-character hex string is an image ID, not a reference"),
    ("a/" + "b" * 260, "repository name longer than 255 characters"),
]


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid_references_are_errors(text, reason):
    with pytest.raises(InvalidReference) as raised:
        parse_ref(text)
    assert reason in raised.value.reason
    assert repr(text) in str(raised.value)


def test_make_ref_normalises_registry_and_repository():
    assert make_ref("index.docker.io", "python", "3.12").canonical == "docker.io/library/python:3.12"
    assert make_ref("myregistry", "team/app").canonical == "myregistry/team/app"
    with pytest.raises(InvalidReference):
        make_ref("ghcr.io", "Acme/app")


def test_slug_is_readable_and_stable():
    slug = parse_ref("python:3.12-slim").slug()
    assert slug.startswith("docker.io-library-python-3.12-slim-")
    assert slug == parse_ref("docker.io/library/python:3.12-slim").slug()


def test_slugs_of_references_that_fold_alike_differ():
    # Case, '/' vs ':' vs '_': each pair reads the same once folded into a file name.
    pairs = [
        ("ghcr.io/acme/app:V1", "ghcr.io/acme/app:v1"),
        ("ghcr.io/acme/app-1", "ghcr.io/acme/app:1"),
        ("ghcr.io/a/b_c", "ghcr.io/a/b:c"),
        ("localhost:5000/app", "localhost/5000/app"),
        (f"ghcr.io/acme/app@{DIGEST}", "ghcr.io/acme/app"),
    ]
    for left, right in pairs:
        assert parse_ref(left).canonical != parse_ref(right).canonical
        assert parse_ref(left).slug() != parse_ref(right).slug()


def test_slugs_are_unique_over_many_references():
    refs = {
        f"{host}/{path}:{tag}"
        for host in ("docker.io", "ghcr.io", "localhost:5000", "Localhost:5000")
        for path in ("a/b", "a-b", "a_b", "a/b/c", "a.b")
        for tag in ("1", "1.0", "1-0", "1_0", "latest", "Latest")
    }
    slugs = {parse_ref(ref).slug() for ref in refs}
    assert len(slugs) == len({parse_ref(ref).canonical for ref in refs})
