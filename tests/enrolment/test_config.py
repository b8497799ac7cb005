"""images.yaml: the model it becomes, and every way it can be refused.

Invalid cases live in tests/fixtures/config/invalid/<case>.yaml with the exact expected
errors in <case>.errors; valid ones in tests/fixtures/config/valid/.
"""

from __future__ import annotations

import shutil

import pytest

from image_factory.cli import main
from image_factory.enrolment.config import load_config, parse_config
from image_factory.enrolment.model import WarehouseConfig
from image_factory.enrolment.refs import parse_ref
from image_factory.errors import FactoryError

from ..conftest import FIXTURES

INVALID = sorted((FIXTURES / "config" / "invalid").glob("*.yaml"))
VALID = sorted((FIXTURES / "config" / "valid").glob("*.yaml"))


@pytest.mark.parametrize("case", INVALID, ids=[case.stem for case in INVALID])
def test_invalid_config_is_refused_with_exact_errors(case, tmp_path, capsys):
    shutil.copy(case, tmp_path / "images.yaml")
    expected = case.with_suffix(".errors").read_text(encoding="utf-8").splitlines()
    with pytest.raises(FactoryError) as raised:
        load_config(tmp_path)
    assert [str(problem) for problem in raised.value.problems] == expected

    assert main(["validate", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert [line.removeprefix("error: ") for line in err.splitlines() if line.startswith("error: ")] == expected


@pytest.mark.parametrize("case", VALID, ids=[case.stem for case in VALID])
def test_valid_config_loads(case, tmp_path):
    shutil.copy(case, tmp_path / "images.yaml")
    config = load_config(tmp_path)
    assert len(config.images) == case.read_text().count("- name:")


def test_model_applies_defaults_and_normalises():
    config = load_config_fixture("github-and-local.yaml")
    payments = config.by_name("payments")
    assert payments.managed
    assert payments.ref.canonical == "ghcr.io/acme/payments:2"
    assert (payments.policy.rebuild_delay, payments.policy.auto_rebuild) == ("90m", True)
    assert payments.source.branch == "release"
    assert payments.source.build_args == {"GO_VERSION": "1.23"}
    assert payments.source.build_context == "."

    tools = config.by_name("tools")
    assert tools.ref.canonical == "localhost:5000/platform/tools:latest"
    assert (tools.policy.rebuild_delay, tools.policy.auto_rebuild) == ("36h", False)
    assert tools.source.branch == "main"
    assert tools.source.build_context == "."
    assert tools.warehouse is None


def test_external_warehouse_by_pattern_has_no_tag_and_carries_allow_tags_over():
    exporter = load_config_fixture("github-and-local.yaml").by_name("exporter")
    assert not exporter.managed
    assert exporter.ref.canonical == "quay.io/prometheus/node-exporter"
    assert exporter.warehouse == WarehouseConfig(
        repo_url="quay.io/prometheus/node-exporter",
        strategy="SemVer",
        constraint="^1.8.0",
        allow_tags_regexes=(r"^v1\.[0-9]+\.[0-9]+$", r"^v1\."),
        ignore_tags_regexes=("-rc",),
        platform="linux/arm64/v8",
        interval="1h",
    )


def test_external_image_with_a_tag_is_watched_for_new_digests():
    redis = load_config_fixture("github-and-local.yaml").by_name("redis")
    assert redis.warehouse == WarehouseConfig(
        repo_url="mirror.example.com/library/redis", strategy="Digest", constraint="7-alpine"
    )
    alpine = load_config_fixture("minimal-external.yaml").by_name("alpine")
    assert alpine.ref.canonical == "docker.io/library/alpine:latest"
    assert alpine.warehouse.to_dict() == {
        "repoURL": "docker.io/library/alpine",
        "imageSelectionStrategy": "Digest",
        "constraint": "latest",
    }


def test_managed_lookup_matches_any_tag_of_the_repository():
    config = parse_config(
        """
images:
  - name: base
    registry: ghcr.io
    repository: acme/base
    tag: "1"
    source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: build.yml}
"""
    )
    assert config.managed_for(parse_ref("ghcr.io/acme/base:2")).name == "base"
    assert config.managed_for(parse_ref("ghcr.io/acme/base@sha256:" + "1" * 64)).name == "base"
    assert config.managed_for(parse_ref("ghcr.io/acme/other:1")) is None


def test_missing_images_yaml(tmp_path, capsys, monkeypatch):
    """Run outside a factory: one line that says what to do, with --root or without (the folder
    holding images.yaml is looked for upwards, within the git repository)."""
    assert main(["validate", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path}: no images.yaml in {tmp_path}: run inside the factory repository or pass --root"
    )
    (tmp_path / ".git").mkdir()
    (tmp_path / "deep/er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deep/er")
    assert main(["plan"]) == 1
    assert "no images.yaml in" in capsys.readouterr().err
    (tmp_path / "images.yaml").write_text("kargo: {factoryRepo: acme/f}\nimages: []\n")
    assert main(["discover"]) == 0  # found two folders up
    assert (tmp_path / "state").is_dir() and not (tmp_path / "deep/er/state").exists()


def load_config_fixture(name: str):
    return parse_config((FIXTURES / "config" / "valid" / name).read_text(encoding="utf-8"))
