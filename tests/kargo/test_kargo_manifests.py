"""The generated Kargo objects, as dicts: rules, names, steps, and Kargo's own schemas."""

from __future__ import annotations

import json
import re
import sys

import pytest

from image_factory.discovery.discover import discover, load_model
from image_factory.enrolment.config import parse_config
from image_factory.enrolment.refs import parse_ref
from image_factory.errors import FactoryError
from image_factory.kargo import names as kargo_names
from image_factory.state.store import BaseImageState, Dependent

from ..conftest import REPO_ROOT
from ..kargo_schemas import validate_object

sys.path.insert(0, str(REPO_ROOT / "cdk8s"))
import kargo_manifests

DIGEST = "sha256:" + "c" * 64
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

IMAGES_YAML = """
kargo:
  project: platform-images
  factoryRepo: acme/factory
  tokenSecret: {name: gh-dispatch, key: pat}
  warehouseInterval: 2h
  webhookReceivers:
    - {name: ghcr, type: github, secretName: ghcr-hook}
    - {name: hub, type: dockerhub, secretName: hub-hook}
images:
  - name: base
    registry: ghcr.io
    repository: acme/base
    tag: "1"
    rebuildDelay: 36h
    source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: build-base.yml}
  - name: app
    registry: ghcr.io
    repository: acme/app
    autoRebuild: false
    rebuildDelay: 90m
    source: {provider: github, repo: acme/app, branch: release, dockerfile: Dockerfile, workflow: build.yml}
  - name: redis
    registry: docker.io
    repository: library/redis
    tag: 7-alpine
    warehouse: {interval: 30m, platform: linux/amd64}
  - name: exporter
    registry: quay.io
    repository: prometheus/node-exporter
    warehouse:
      allowTags: '^v1\\.'
      allowTagsRegexes: ['^v1\\.[0-9]+\\.[0-9]+$']
      ignoreTagsRegexes: ['-rc']
      imageSelectionStrategy: SemVer
"""


@pytest.fixture
def model(factory, tmp_path):
    factory.write("images.yaml", IMAGES_YAML)
    factory.write("base/Dockerfile", f"FROM python:3.12-slim AS build\nFROM gcr.io/distroless/base@{DIGEST}\n")
    checkout = tmp_path / "checkouts"
    (checkout / "acme/app").mkdir(parents=True)
    (checkout / "acme/app/Dockerfile").write_text("FROM ghcr.io/acme/base:1\nCOPY --from=python:3.12-slim /a /a\n")
    discover(factory.root, checkout)
    return load_model(factory.root)


def manifests(model) -> list[dict]:
    return kargo_manifests.factory_manifests(*model)


def by_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def watched(ref: str) -> str:
    return kargo_names.watched_name(parse_ref(ref))


def test_every_object_is_valid_against_kargo_schemas(model):
    objects = manifests(model)
    assert [o["kind"] for o in objects[:3]] == ["Namespace", "Project", "ProjectConfig"]
    for body in objects:
        assert validate_object(body) == [], body["metadata"]["name"]


def test_the_schemas_are_strict(model):
    warehouse = next(o for o in manifests(model) if o["kind"] == "Warehouse")
    warehouse["spec"]["subscriptions"][0]["image"]["allowTag"] = "typo"
    warehouse["spec"]["intervall"] = "1h"
    problems = validate_object(warehouse)
    assert any("intervall" in p for p in problems)
    assert any("allowTag" in p for p in problems)


def test_warehouses_for_bases_and_external_images_never_for_managed(model):
    warehouses = by_kind(manifests(model), "Warehouse")
    refs = {w["metadata"]["annotations"]["image-factory.dev/ref"] for w in warehouses.values()}
    assert refs == {
        "docker.io/library/python:3.12-slim",  # base of base (FROM) and of app (COPY --from)
        "docker.io/library/redis:7-alpine",  # external
        "quay.io/prometheus/node-exporter",  # external, by tag pattern
    }
    # not ghcr.io/acme/base (managed) nor the digest-only distroless reference (nothing to watch)
    for warehouse in warehouses.values():
        assert ":" not in warehouse["spec"]["subscriptions"][0]["image"]["repoURL"].split("/", 1)[1]


def test_mutable_tag_is_watched_by_digest(model):
    python = by_kind(manifests(model), "Warehouse")[watched("python:3.12-slim")]
    assert python["spec"] == {
        "interval": "2h",
        "freightCreationPolicy": "Automatic",
        "subscriptions": [
            {
                "image": {
                    "repoURL": "docker.io/library/python",
                    "imageSelectionStrategy": "Digest",
                    "constraint": "3.12-slim",
                }
            }
        ],
    }
    redis = by_kind(manifests(model), "Warehouse")[watched("redis:7-alpine")]
    assert redis["spec"]["interval"] == "30m"
    assert redis["spec"]["subscriptions"][0]["image"]["platform"] == "linux/amd64"


def test_tag_patterns_use_allow_tags_regexes_never_allow_tags(model):
    exporter = by_kind(manifests(model), "Warehouse")[
        kargo_names.watched_name(parse_ref("quay.io/prometheus/node-exporter", default_tag=None))
    ]
    assert exporter["spec"]["subscriptions"][0]["image"] == {
        "repoURL": "quay.io/prometheus/node-exporter",
        "imageSelectionStrategy": "SemVer",
        "allowTagsRegexes": [r"^v1\.[0-9]+\.[0-9]+$", r"^v1\."],
        "ignoreTagsRegexes": ["-rc"],
    }
    assert "allowTags" not in json.dumps(manifests(model)).replace("allowTagsRegexes", "")


def test_recording_stage_takes_freight_directly_and_dispatches_to_the_factory(model):
    name = watched("python:3.12-slim")
    stage = by_kind(manifests(model), "Stage")[name]
    assert stage["metadata"]["labels"]["image-factory.dev/role"] == "record"
    assert stage["metadata"]["labels"]["image-factory.dev/auto-promote"] == "true"
    assert stage["spec"]["requestedFreight"] == [
        {"origin": {"kind": "Warehouse", "name": name}, "sources": {"direct": True}}
    ]
    (http,) = stage["spec"]["promotionTemplate"]["spec"]["steps"]
    assert http["uses"] == "http" and http["as"] == "record"
    assert http["config"]["url"] == "https://api.github.com/repos/acme/factory/dispatches"
    # What Kargo sends (the body once evaluated) is checked in test_kargo_runtime.py.


def roles(stages: dict) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, stage in stages.items():
        found.setdefault(stage["metadata"]["labels"]["image-factory.dev/role"], []).append(name)
    return found


def test_a_soak_stage_soaks_in_the_recording_stage_and_tells_the_factory(model):
    stages = by_kind(manifests(model), "Stage")
    python = watched("python:3.12-slim")
    soak = stages[kargo_names.soak_name(python, "1d12h")]  # base's 36h
    assert soak["metadata"]["name"] == f"{python}-soak-1d12h"
    assert soak["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "image-factory",
        "image-factory.dev/role": "soak",
        "image-factory.dev/watched": python,
        "image-factory.dev/auto-promote": "true",
    }
    assert soak["metadata"]["annotations"] == {"image-factory.dev/ref": "docker.io/library/python:3.12-slim"}
    assert soak["spec"]["requestedFreight"] == [
        {"origin": {"kind": "Warehouse", "name": python}, "sources": {"stages": [python], "requiredSoakTime": "36h"}}
    ]
    (http,) = soak["spec"]["promotionTemplate"]["spec"]["steps"]
    assert http["uses"] == "http" and http["as"] == "soaked"
    assert http["config"]["url"] == "https://api.github.com/repos/acme/factory/dispatches"
    # What Kargo sends (the body once evaluated) is checked in test_kargo_runtime.py.


def test_only_an_image_with_a_stage_of_its_own_gets_a_rebuild_stage(model):
    stages = by_kind(manifests(model), "Stage")
    python = watched("python:3.12-slim")
    app_stage = stages[kargo_names.rebuild_name("app", python)]  # autoRebuild: false
    app_http = app_stage["spec"]["promotionTemplate"]["spec"]["steps"][0]["config"]
    assert app_http["url"] == "https://api.github.com/repos/acme/app/actions/workflows/build.yml/dispatches"
    assert app_stage["spec"]["requestedFreight"] == [
        {"origin": {"kind": "Warehouse", "name": python}, "sources": {"stages": [python], "requiredSoakTime": "1h30m"}}
    ]
    # base (autoRebuild, no analysisTemplates) is rebuilt through the soak Stage and the factory;
    # a managed base (ghcr.io/acme/base) cascades through the factory, not through Kargo
    assert {s["metadata"]["labels"].get("image-factory.dev/image") for s in stages.values()} == {None, "app"}
    assert roles(stages)["rebuild"] == [kargo_names.rebuild_name("app", python)]
    assert roles(stages)["soak"] == [kargo_names.soak_name(python, "1d12h")]


def test_auto_rebuild_false_gives_a_stage_without_auto_promotion(model):
    objects = manifests(model)
    stages = by_kind(objects, "Stage")
    python = watched("python:3.12-slim")
    assert "image-factory.dev/auto-promote" not in stages[kargo_names.rebuild_name("app", python)]["metadata"]["labels"]
    assert (
        stages[kargo_names.soak_name(python, "1d12h")]["metadata"]["labels"]["image-factory.dev/auto-promote"] == "true"
    )
    project_config = objects[2]
    assert project_config["spec"]["promotionPolicies"] == [
        {"stageSelector": {"matchLabels": {"image-factory.dev/auto-promote": "true"}}, "autoPromotionEnabled": True}
    ]


def test_the_token_comes_from_a_secret_and_no_credential_is_written(model):
    text = json.dumps(manifests(model))
    assert "Bearer ${{ secret('gh-dispatch').pat }}" in text
    assert not re.search(r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_", text)


def test_webhook_receivers(model):
    assert manifests(model)[2]["spec"]["webhookReceivers"] == [
        {"name": "ghcr", "github": {"secretRef": {"name": "ghcr-hook"}}},
        {"name": "hub", "dockerhub": {"secretRef": {"name": "hub-hook"}}},
    ]


def test_akuity_dispatch_step_option(model):
    config, state = model
    config = parse_config(
        IMAGES_YAML.replace("  warehouseInterval: 2h", "  warehouseInterval: 2h\n  dispatchStep: gha-dispatch-workflow")
    )
    objects = kargo_manifests.factory_manifests(config, state)
    stage = next(o for o in objects if o["metadata"]["labels"].get("image-factory.dev/image") == "app")
    # The factory's own events (record, soaked) stay `http` repository_dispatches: the setting
    # chooses how the Stages of images with a Stage of their own dispatch a build workflow.
    for other in objects:
        if other["kind"] == "Stage" and other is not stage:
            assert [s["uses"] for s in other["spec"]["promotionTemplate"]["spec"]["steps"]] == ["http"]
    assert stage["spec"]["promotionTemplate"]["spec"]["steps"] == [
        {
            "uses": "gha-dispatch-workflow",
            "as": "rebuild",
            "config": {
                "repoURL": "https://github.com/acme/app",
                "workflowFile": "build.yml",
                "ref": "release",
                "inputs": {
                    "image": "app",
                    "base": "docker.io/library/python:3.12-slim",
                    "digest": "${{ imageFrom('docker.io/library/python').Digest }}",
                },
            },
        }
    ]


def test_managed_image_whose_source_is_removed_gets_a_warehouse(factory):
    factory.write(
        "images.yaml",
        """
        kargo: {factoryRepo: acme/factory}
        images:
          - name: base
            registry: ghcr.io
            repository: acme/base
            source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: b.yml}
        """,
    )
    factory.write("base/Dockerfile", "FROM alpine:3.20\n")
    discover(factory.root)
    assert "ghcr.io/acme/base:latest" not in json.dumps(kargo_manifests.factory_manifests(*load_model(factory.root)))
    factory.write(
        "images.yaml",
        factory.read("images.yaml").replace(
            "    source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: b.yml}\n", ""
        ),
    )
    discover(factory.root)
    warehouses = by_kind(kargo_manifests.factory_manifests(*load_model(factory.root)), "Warehouse")
    assert list(warehouses) == [watched("ghcr.io/acme/base:latest")]


@pytest.mark.parametrize(
    ("delay", "soak", "text"),
    [
        ("7d", "168h", "7d"),
        ("36h", "36h", "1d12h"),
        ("90m", "1h30m", "1h30m"),
        ("1d12h", "36h", "1d12h"),
        ("45s", "45s", "45s"),
        ("2d3h4m5s", "51h4m5s", "2d3h4m5s"),
    ],
)
@pytest.mark.parametrize(("auto", "role"), [("true", "soak"), ("false", "rebuild")])
def test_soak_time_is_in_hours(factory, delay, soak, text, auto, role):
    factory.write(
        "images.yaml",
        f"""
        kargo: {{factoryRepo: acme/factory}}
        images:
          - name: app
            registry: ghcr.io
            repository: acme/app
            rebuildDelay: {delay}
            autoRebuild: {auto}
            source: {{provider: local, repo: app, dockerfile: Dockerfile, workflow: b.yml}}
        """,
    )
    factory.write("app/Dockerfile", "FROM alpine:3.20\n")
    discover(factory.root)
    (stage,) = [
        o
        for o in kargo_manifests.factory_manifests(*load_model(factory.root))
        if o["metadata"]["labels"].get("image-factory.dev/role") in ("soak", "rebuild")
    ]
    assert stage["metadata"]["labels"]["image-factory.dev/role"] == role
    if role == "soak":  # named after the delay as images.yaml writes it, one text per duration
        assert stage["metadata"]["name"] == kargo_names.soak_name(watched("alpine:3.20"), text)
    assert stage["spec"]["requestedFreight"][0]["sources"]["requiredSoakTime"] == soak
    assert validate_object(stage) == []


SHARED_BASE = """
kargo: {factoryRepo: acme/factory}
images:
"""


def _on_alpine(factory, images: dict[str, str]) -> dict[str, dict]:
    """Stages of a factory whose managed images (name → extra enrolment lines) all build on alpine."""
    text = SHARED_BASE
    for name, extra in images.items():
        text += (
            f"  - name: {name}\n    registry: ghcr.io\n    repository: acme/{name}\n"
            f"    source: {{provider: local, repo: {name}, dockerfile: Dockerfile, workflow: b.yml}}\n"
        )
        text += "".join(f"    {line}\n" for line in extra.split("; ") if line)
        factory.write(f"{name}/Dockerfile", "FROM alpine:3.20\n")
    factory.write("images.yaml", text)
    discover(factory.root)
    objects = kargo_manifests.factory_manifests(*load_model(factory.root))
    for body in objects:
        assert validate_object(body) == [], body["metadata"]["name"]
    return by_kind(objects, "Stage")


def test_one_soak_stage_per_distinct_delay_of_the_images_without_a_stage_of_their_own(factory):
    stages = _on_alpine(
        factory,
        {
            "a": "rebuildDelay: 7d",
            "b": "rebuildDelay: 168h",  # the same duration as a's: the same Stage
            "c": "rebuildDelay: 36h",
            "d": "rebuildDelay: 0s",
            "e": "",  # the default, 7d
            "f": "rebuildDelay: 2d; autoRebuild: false",  # a Stage of its own
            "g": "rebuildDelay: 3d; test: {analysisTemplates: [smoke]}",  # a Stage of its own
        },
    )
    alpine = watched("alpine:3.20")
    soaks = {name: stage for name, stage in stages.items() if stage["metadata"]["labels"][kargo_names.ROLE] == "soak"}
    assert list(soaks) == [kargo_names.soak_name(alpine, delay) for delay in ("0s", "1d12h", "7d")]
    assert [s["spec"]["requestedFreight"][0]["sources"] for s in soaks.values()] == [
        {"stages": [alpine]},  # no soak time at all
        {"stages": [alpine], "requiredSoakTime": "36h"},
        {"stages": [alpine], "requiredSoakTime": "168h"},
    ]
    assert all(s["metadata"]["labels"][kargo_names.AUTO_PROMOTE] == "true" for s in soaks.values())
    rebuilds = [s for s in stages.values() if s["metadata"]["labels"][kargo_names.ROLE] == "rebuild"]
    assert sorted(s["metadata"]["labels"][kargo_names.IMAGE] for s in rebuilds) == ["f", "g"]
    assert [s["metadata"]["name"] for s in rebuilds] == [kargo_names.rebuild_name(i, alpine) for i in ("f", "g")]
    assert len(stages) == 1 + 3 + 2  # the recording Stage, three soak Stages, two of their own


def test_no_soak_stage_when_every_image_on_the_base_has_a_stage_of_its_own(factory):
    stages = _on_alpine(factory, {"f": "autoRebuild: false", "g": "test: {analysisTemplates: [smoke]}"})
    alpine = watched("alpine:3.20")
    assert sorted(stages) == sorted(
        [alpine, kargo_names.rebuild_name("f", alpine), kargo_names.rebuild_name("g", alpine)]
    )
    assert "image-factory.dev/auto-promote" not in stages[kargo_names.rebuild_name("f", alpine)]["metadata"]["labels"]
    assert stages[kargo_names.rebuild_name("g", alpine)]["metadata"]["labels"][kargo_names.AUTO_PROMOTE] == "true"
    assert stages[kargo_names.rebuild_name("g", alpine)]["spec"]["verification"]["analysisTemplates"] == [
        {"name": "smoke"}
    ]


def test_zero_delay_needs_no_soak(factory):
    factory.write(
        "images.yaml",
        """
        kargo: {factoryRepo: acme/factory}
        images:
          - name: app
            registry: ghcr.io
            repository: acme/app
            rebuildDelay: 0s
            source: {provider: local, repo: app, dockerfile: Dockerfile, workflow: b.yml}
        """,
    )
    factory.write("app/Dockerfile", "FROM alpine:3.20\n")
    discover(factory.root)
    stage = kargo_manifests.factory_manifests(*load_model(factory.root))[-1]
    assert stage["metadata"]["name"] == kargo_names.soak_name(watched("alpine:3.20"), "0s")
    assert stage["spec"]["requestedFreight"][0]["sources"] == {"stages": [watched("alpine:3.20")]}


def test_names_are_dns_labels_stable_and_distinct():
    refs = [
        "python:3.12-slim",
        "ghcr.io/acme/python:3.12-slim",
        "python:3-12-slim",
        "python:3.12_slim",
        "registry.example.com:5000/a/very/deep/path/with-a-really-long-repository-name-that-goes-on:and-a-long-tag-too",
        "quay.io/prometheus/node-exporter",
    ]
    names = [kargo_names.watched_name(parse_ref(ref, default_tag=None)) for ref in refs]
    assert len(set(names)) == len(names)
    assert names[0].startswith("python-3-12-slim-") and names[0] == kargo_names.watched_name(parse_ref(refs[0]))
    long_image = "a" * 63
    stages = [kargo_names.rebuild_name(image, name) for image in (long_image, "app", "app-on") for name in names]
    stages += [kargo_names.soak_name(name, delay) for delay in ("0s", "7d", "1d12h", "2d3h4m5s") for name in names]
    others = [make(name) for make in (kargo_names.verify_name, kargo_names.key_name) for name in names]
    others += [make(name) for make in (kargo_names.advisory_name, kargo_names.verified_name) for name in names]
    assert len(set(names + stages + others)) == len(names + stages + others)
    for name in names + stages + others:
        assert DNS_LABEL.match(name), name
    assert kargo_names.rebuild_name("app", names[0]) == f"app-on-{names[0]}"
    assert kargo_names.soak_name(names[0], "1d12h") == f"{names[0]}-soak-1d12h"
    assert kargo_names.soak_name(names[4], "2d3h4m5s") == kargo_names.soak_name(names[4], "2d3h4m5s")
    assert len(kargo_names.rebuild_name(long_image, names[0])) == 63


def test_missing_factory_repo_is_a_clear_error(factory):
    factory.write("images.yaml", "images:\n  - {name: a, registry: docker.io, repository: library/alpine}\n")
    with pytest.raises(FactoryError) as raised:
        kargo_manifests.factory_manifests(*load_model(factory.root))
    assert str(raised.value) == "images.yaml: kargo: kargo.factoryRepo is not set: the generated stages dispatch to it"


def test_argocd_application(model):
    config, _ = model
    app = kargo_manifests.argocd_application(config, "kargo.k8s.yaml")
    assert app["metadata"]["name"] == "platform-images" and app["metadata"]["namespace"] == "argocd"
    # Kargo's webhooks default fields and rewrite durations: diff through the API server's dry run
    assert app["metadata"]["annotations"] == {
        "argocd.argoproj.io/compare-options": "ServerSideDiff=true,IncludeMutationWebhook=true"
    }
    assert app["spec"]["syncPolicy"]["retry"]["limit"] >= 5
    assert app["spec"]["source"] == {
        "repoURL": "https://github.com/acme/factory.git",
        "targetRevision": "main",
        "path": "dist",
        "directory": {"include": "kargo.k8s.yaml"},
    }
    assert app["spec"]["destination"]["namespace"] == "platform-images"
    assert {
        "group": "kargo.akuity.io",
        "kind": "Warehouse",
        "jsonPointers": ["/metadata/annotations/kargo.akuity.io~1refresh"],
    } in app["spec"]["ignoreDifferences"]
    custom = parse_config(
        IMAGES_YAML
        + "argocd: {repoURL: 'https://git.example.com/f.git', path: published, namespace: gitops,"
        + " targetRevision: manifests}\n"
    )
    app = kargo_manifests.argocd_application(custom, "kargo.k8s.yaml")
    assert (
        app["spec"]["source"]["repoURL"],
        app["spec"]["source"]["path"],
        app["spec"]["source"]["targetRevision"],
    ) == ("https://git.example.com/f.git", "published", "manifests")
    assert app["metadata"]["namespace"] == "gitops"


def _fleet_of_watched(count: int, dependents: int, prefix: str = "base") -> list:
    """`count` watched images with a soak Stage and `dependents` rebuild Stages of their own
    each (no model needed to place them)."""
    watched = []
    for i in range(count):
        ref = parse_ref(f"docker.io/library/{prefix}{i}:1")
        images = tuple(f"{prefix}{i}-svc{j}" for j in range(dependents))
        base = BaseImageState(ref, "base", [Dependent(image) for image in images], None)
        watched.append(kargo_manifests.Watched(kargo_names.watched_name(ref), base, None, ("7d",), images))
    return watched


def _placement(files: list[list]) -> dict[str, int]:
    return {part.name: number for number, parts in enumerate(files) for part in parts}


def test_objects_spread_over_a_power_of_two_of_files_by_name():
    watched = _fleet_of_watched(40, 9)  # 40 * (3 + 9) = 480 objects; one popular base below
    watched += _fleet_of_watched(1, 300, "popular")
    assert len(kargo_manifests.shards(watched, 1000)) == 1
    files = kargo_manifests.shards(watched, 100)
    total = sum(1 if p.image else 3 for parts in files for p in parts)  # Warehouse, recording and soak Stages
    assert total == sum(p.size for parts in files for p in parts)
    assert total == 40 * 12 + 303 and len(files) == 8  # 783 objects: 8 * 100 is the first power of two to hold them
    placement = _placement(files)
    assert len(placement) == sum(len(parts) for parts in files)  # every part exactly once
    # The popular base's 300 Stages spread like the rest rather than filling one file.
    assert max(sum(1 for p in parts if p.watched is watched[-1]) for parts in files) < 100
    # Placement follows names only: adding an image moves nothing else; doubling splits each file in two.
    grown = _placement(kargo_manifests.shards([*watched, *_fleet_of_watched(1, 3, "new")], 100))
    assert all(grown[name] == number for name, number in placement.items())
    doubled = _placement(kargo_manifests.shards(watched, 50))
    assert all(doubled[name] in (number, number + 8) for name, number in placement.items())


def test_a_constraint_without_a_tag_names_everything_after_the_watched_tag(factory):
    factory.write(
        "images.yaml",
        """
        kargo: {factoryRepo: acme/factory}
        images:
          - name: nginx
            registry: docker.io
            repository: library/nginx
            warehouse: {imageSelectionStrategy: Digest, constraint: 1.27-alpine}
        """,
    )
    discover(factory.root)
    config, state = load_model(factory.root)
    assert config.by_name("nginx").ref.canonical == "docker.io/library/nginx:1.27-alpine"
    objects = kargo_manifests.factory_manifests(config, state)
    (warehouse,) = [o for o in objects if o["kind"] == "Warehouse"]
    assert warehouse["metadata"]["name"] == watched("nginx:1.27-alpine")
    assert warehouse["metadata"]["annotations"]["image-factory.dev/ref"] == "docker.io/library/nginx:1.27-alpine"
    assert warehouse["spec"]["subscriptions"][0]["image"]["constraint"] == "1.27-alpine"
    assert list(state.base_images) == ["docker.io/library/nginx:1.27-alpine"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("workflow", "build.yml${{ secret('gh-dispatch').pat }}"),
        ("workflow", "build.yml${% secret('gh-dispatch').pat %}"),
        ("branch", "main}}"),
    ],
)
def test_the_generator_refuses_an_expression_it_did_not_write(model, field, value):
    """Defence in depth: state edited by hand (or a validation gap) never reaches Kargo."""
    config, state = model
    state.images["app"].enrolment["source"][field] = value
    with pytest.raises(FactoryError) as raised:
        manifests((config, state))
    (problem,) = raised.value.problems
    assert problem.file == "images.yaml"
    assert problem.message.startswith(
        f"refusing to generate Stage {kargo_names.rebuild_name('app', watched('python:3.12-slim'))}"
    )


def test_the_namespace_comes_first_labelled_for_kargo_and_kept(model):
    namespace, project = manifests(model)[:2]
    assert namespace == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "platform-images",
            "labels": {"app.kubernetes.io/managed-by": "image-factory", "kargo.akuity.io/project": "true"},
            "annotations": {"argocd.argoproj.io/sync-wave": "-2", "kargo.akuity.io/keep-namespace": "true"},
        },
    }
    assert project["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "-1"}
    assert validate_object(namespace) == []
