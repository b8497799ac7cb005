"""`image-factory synth` and `cdk8s synth` for real (cdk8s on Node.js), on fixture factories.

The alignment test runs the whole chain, tool → state files → cdk8s app, and checks that what
the generator emits is exactly what the tool wrote, in both directions.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from image_factory.cli import main
from image_factory.discovery.discover import discover
from image_factory.enrolment.durations import format_hours, parse_duration

from ..conftest import REPO_ROOT
from ..kargo_model import Freight, HttpResponse, Image, run_promotion
from ..kargo_schemas import validate_object

CDK8S_CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk8s"
DIGEST = "sha256:" + "e" * 64
SECRETS = {"image-factory-github": {"token": "t"}}


def synth(root: Path, *extra: str) -> int:
    return main(["synth", "--root", str(root), *extra])


def objects(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture
def fleet(factory):
    """Managed images on public bases, a managed chain, externals by tag and by pattern."""
    factory.write(
        "images.yaml",
        """
        kargo: {factoryRepo: acme/factory, warehouseInterval: 3h}
        images:
          - name: base
            registry: ghcr.io
            repository: acme/base
            tag: "1"
            rebuildDelay: 2d
            source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: base.yml}
          - name: api
            registry: ghcr.io
            repository: acme/api
            autoRebuild: false
            source: {provider: local, repo: api, dockerfile: Dockerfile, workflow: api.yml, branch: prod}
          - name: worker
            registry: ghcr.io
            repository: acme/worker
            rebuildDelay: 12h
            source: {provider: local, repo: worker, dockerfile: Dockerfile, workflow: worker.yml}
          - name: postgres
            registry: docker.io
            repository: library/postgres
            tag: "16"
            warehouse: {interval: 15m}
            verify: {certificateIdentity: release@postgres.example, certificateOidcIssuer: https://issuer.example}
          - name: exporter
            registry: quay.io
            repository: prometheus/node-exporter
            warehouse: {imageSelectionStrategy: SemVer, allowTagsRegexes: ['^v1\\.']}
        """,
    )
    factory.write("base/Dockerfile", "FROM debian:bookworm-slim\n")
    factory.write("api/Dockerfile", "FROM golang:1.23 AS build\nFROM ghcr.io/acme/base:1\nCOPY --from=build /a /a\n")
    factory.write(
        "worker/Dockerfile",
        "FROM ghcr.io/acme/base:1\nRUN --mount=from=golang:1.23,target=/g true\n"
        "COPY --from=postgres:16 /usr/lib/postgresql /pg\n",
    )
    discover(factory.root)
    return factory


def test_synth_writes_valid_manifests_deterministically(fleet, capsys):
    assert synth(fleet.root) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{fleet.root / 'dist' / 'argocd-application.k8s.yaml'} (written)",
        f"{fleet.root / 'dist' / 'kargo.k8s.yaml'} (written)",
    ]
    kargo = objects(fleet.root / "dist/kargo.k8s.yaml")
    for body in kargo:
        assert validate_object(body) == [], body["metadata"]["name"]
    assert [o["kind"] for o in kargo].count("Warehouse") == 4  # debian, golang, postgres, exporter; nothing managed
    before = (fleet.root / "dist/kargo.k8s.yaml").read_bytes()
    assert synth(fleet.root) == 0
    assert "(unchanged)" in capsys.readouterr().out
    assert (fleet.root / "dist/kargo.k8s.yaml").read_bytes() == before
    assert synth(fleet.root, "--check") == 0
    assert capsys.readouterr().out.startswith(f"ok: {fleet.root / 'dist'} is up to date: its ")


def test_check_fails_when_published_manifests_are_stale(fleet, capsys):
    assert synth(fleet.root) == 0
    fleet.write("images.yaml", fleet.read("images.yaml").replace("rebuildDelay: 12h", "rebuildDelay: 13h"))
    capsys.readouterr()
    before = fleet.snapshot()
    # state first: it was made from the images.yaml before the change
    assert synth(fleet.root, "--check") == 1
    assert "state/index.json: was written for another images.yaml" in capsys.readouterr().err
    assert main(["discover", "--root", str(fleet.root)]) == 0
    capsys.readouterr()
    before = fleet.snapshot()
    assert synth(fleet.root, "--check") == 1
    assert "not up to date with a fresh synth: kargo.k8s.yaml" in capsys.readouterr().err
    assert fleet.snapshot() == before


@pytest.mark.slow
def test_a_large_fleet_spreads_over_files_and_stale_files_go(fleet, capsys):
    assert synth(fleet.root) == 0
    whole = objects(fleet.root / "dist/kargo.k8s.yaml")
    fleet.write(
        "images.yaml",
        fleet.read("images.yaml").replace("warehouseInterval: 3h", "warehouseInterval: 3h, objectsPerFile: 10"),
    )
    assert main(["discover", "--root", str(fleet.root)]) == 0
    capsys.readouterr()
    assert synth(fleet.root, "--check") == 1
    assert synth(fleet.root) == 0
    files = sorted(p.name for p in (fleet.root / "dist").iterdir())
    pipelines = [name for name in files if name.startswith("kargo-pipelines-")]
    count = len(whole) - 3  # all but the Namespace, Project and ProjectConfig
    expected = 1
    while count > expected * 10:
        expected *= 2
    assert pipelines == [f"kargo-pipelines-{n}-of-{expected}.k8s.yaml" for n in range(1, expected + 1)]
    assert [o["kind"] for o in objects(fleet.root / "dist/kargo.k8s.yaml")] == ["Namespace", "Project", "ProjectConfig"]
    spread = [o for name in pipelines for o in objects(fleet.root / "dist" / name)]
    # a watched image's soak Stages are in its Warehouse's file
    files = {
        (o["kind"], o["metadata"]["name"]): name for name in pipelines for o in objects(fleet.root / "dist" / name)
    }
    soaks = [o for o in spread if o["kind"] == "Stage" and o["metadata"]["labels"]["image-factory.dev/role"] == "soak"]
    assert len(soaks) == 3
    for soak in soaks:
        warehouse = soak["spec"]["requestedFreight"][0]["origin"]["name"]
        assert files[("Stage", soak["metadata"]["name"])] == files[("Warehouse", warehouse)]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(spread, key=key) == sorted(whole[3:], key=key)  # the same objects, each once
    for body in spread:
        assert validate_object(body) == [], body["metadata"]["name"]
    include = objects(fleet.root / "dist/argocd-application.k8s.yaml")[0]["spec"]["source"]["directory"]["include"]
    assert all(fnmatch.fnmatch(name, include) for name in ["kargo.k8s.yaml", *pipelines])
    assert synth(fleet.root, "--check") == 0

    # Back to one file: the pipeline files are stale; --check says so, synth removes them.
    fleet.write("images.yaml", fleet.read("images.yaml").replace(", objectsPerFile: 10", ""))
    assert main(["discover", "--root", str(fleet.root)]) == 0
    capsys.readouterr()
    assert synth(fleet.root, "--check") == 1
    assert f"{pipelines[0]} (stale)" in capsys.readouterr().err
    assert synth(fleet.root) == 0
    assert f"{fleet.root / 'dist' / pipelines[0]} (removed: no longer made)" in capsys.readouterr().out
    assert sorted(p.name for p in (fleet.root / "dist").iterdir()) == ["argocd-application.k8s.yaml", "kargo.k8s.yaml"]
    assert objects(fleet.root / "dist/kargo.k8s.yaml") == whole


def test_tool_and_generator_agree_on_every_field(fleet):
    """Data alignment, both directions: state/ as written by the tool ↔ the synthesised objects."""
    assert synth(fleet.root) == 0
    kargo = objects(fleet.root / "dist/kargo.k8s.yaml")
    warehouses = {o["metadata"]["annotations"]["image-factory.dev/ref"]: o for o in kargo if o["kind"] == "Warehouse"}
    stages = [o for o in kargo if o["kind"] == "Stage"]
    records = {
        o["metadata"]["annotations"]["image-factory.dev/ref"]: o
        for o in stages
        if o["metadata"]["labels"]["image-factory.dev/role"] == "record"
    }
    rebuilds = {
        (o["metadata"]["labels"]["image-factory.dev/image"], o["metadata"]["annotations"]["image-factory.dev/ref"]): o
        for o in stages
        if o["metadata"]["labels"]["image-factory.dev/role"] == "rebuild"
    }
    soaks = {
        (
            o["metadata"]["annotations"]["image-factory.dev/ref"],
            o["spec"]["requestedFreight"][0]["sources"].get("requiredSoakTime", "0s"),
        ): o
        for o in stages
        if o["metadata"]["labels"]["image-factory.dev/role"] == "soak"
    }
    assert len(soaks) == len([o for o in stages if o["metadata"]["labels"]["image-factory.dev/role"] == "soak"])
    images = {p.stem: yaml.safe_load(p.read_text()) for p in (fleet.root / "state/images").glob("*.yaml")}
    bases = [yaml.safe_load(p.read_text()) for p in (fleet.root / "state/base-images").glob("*.yaml")]

    expected_rebuilds, expected_soaks = set(), set()
    for base in bases:
        written = dict(base["warehouse"])
        interval = written.pop("interval", "3h")
        generated = warehouses[base["ref"]]
        assert generated["spec"]["subscriptions"] == [{"image": written}]
        assert generated["spec"]["interval"] == format_hours(parse_duration(interval))
        assert records[base["ref"]]["spec"]["requestedFreight"][0]["origin"]["name"] == generated["metadata"]["name"]
        for dependent in base["dependents"]:
            enrolment = images[dependent["image"]]["enrolment"]
            soak_time = format_hours(parse_duration(enrolment["rebuildDelay"]))
            freight = Freight("f" * 40, (Image(base["warehouse"]["repoURL"], base["tag"], DIGEST),))
            warehouse = {generated["metadata"]["name"]: [base["warehouse"]["repoURL"]]}
            if enrolment["autoRebuild"] and not enrolment.get("test", {}).get("analysisTemplates"):
                # no Stage of its own: the soak Stage of its delay tells the factory, which dispatches it
                stage = soaks[(base["ref"], soak_time)]
                expected_soaks.add((base["ref"], soak_time))
                assert stage["spec"]["requestedFreight"][0]["sources"] == {
                    "stages": [generated["metadata"]["name"]],
                    "requiredSoakTime": soak_time,
                }
                assert stage["metadata"]["labels"]["image-factory.dev/auto-promote"] == "true"
                sent = run_promotion(
                    stage, freight=freight, warehouses=warehouse, secrets=SECRETS, http=lambda _: HttpResponse(204)
                ).requests
                assert sent[0].url == "https://api.github.com/repos/acme/factory/dispatches"
                body = json.loads(sent[0].body)
                assert body["event_type"] == "base-image-soaked"
                assert {key: body["client_payload"][key] for key in ("image", "digest")} == {
                    "image": base["ref"],
                    "digest": DIGEST,
                }
                assert parse_duration(body["client_payload"]["delay"]) == parse_duration(enrolment["rebuildDelay"])
                continue
            stage = rebuilds[(dependent["image"], base["ref"])]
            expected_rebuilds.add((dependent["image"], base["ref"]))
            sources = stage["spec"]["requestedFreight"][0]["sources"]
            assert sources == {"stages": [generated["metadata"]["name"]], "requiredSoakTime": soak_time}
            assert ("image-factory.dev/auto-promote" in stage["metadata"]["labels"]) is enrolment["autoRebuild"]
            http = stage["spec"]["promotionTemplate"]["spec"]["steps"][0]["config"]
            assert http["url"].endswith(
                f"/repos/acme/factory/actions/workflows/{enrolment['source']['workflow']}/dispatches"
            )
            sent = run_promotion(
                stage, freight=freight, warehouses=warehouse, secrets=SECRETS, http=lambda _: HttpResponse(204)
            ).requests
            assert json.loads(sent[0].body) == {
                "ref": enrolment["source"]["branch"],
                "inputs": {"image": dependent["image"], "base": base["ref"], "digest": DIGEST},
            }
    # verification: what state says is verified, and how, is what the recording Stage and its template do
    templates = {o["metadata"]["name"]: o for o in kargo if o["kind"] == "AnalysisTemplate"}
    for base in bases:
        record = records[base["ref"]]
        if "verify" not in base:
            assert "verification" not in record["spec"]
            continue
        (reference,) = record["spec"]["verification"]["analysisTemplates"]
        args = templates[reference["name"]]["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"]
        command = args["containers"][0]["args"]
        assert command[command.index("--certificate-identity") + 1] == base["verify"]["certificateIdentity"]
        assert command[command.index("--certificate-oidc-issuer") + 1] == base["verify"]["certificateOidcIssuer"]
        assert command[-1] == f"{base['warehouse']['repoURL']}@{{{{args.digest}}}}"
    assert set(templates) == {f"verify-{records[b['ref']]['metadata']['name']}" for b in bases if "verify" in b}
    assert len(templates) == 1
    # and nothing the state does not call for
    assert set(warehouses) == set(records) == {base["ref"] for base in bases}
    assert set(rebuilds) == expected_rebuilds
    assert expected_rebuilds == {("api", "docker.io/library/golang:1.23")}  # autoRebuild: false
    assert set(soaks) == expected_soaks
    assert expected_soaks == {
        ("docker.io/library/debian:bookworm-slim", "48h"),  # base
        ("docker.io/library/golang:1.23", "12h"),  # worker
        ("docker.io/library/postgres:16", "12h"),  # worker, verified first
    }
    # managed bases (ghcr.io/acme/base) appear in state as dependencies, never as watched images
    assert {b["image"] for b in images["api"]["baseImages"] if "image" in b} == {"base"}


def test_cdk8s_cli_synth_gives_the_same_files(fleet, tmp_path):
    if not CDK8S_CLI.exists():
        pytest.fail(
            f"the cdk8s CLI is missing at {CDK8S_CLI}: run `npm ci` in {REPO_ROOT} (the README's test command does)"
        )
    assert synth(fleet.root) == 0
    env = {
        **os.environ,
        "IMAGE_FACTORY_ROOT": str(fleet.root),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", None)
    result = subprocess.run(
        [str(CDK8S_CLI), "synth", "--check-upgrade=false", "--output", str(tmp_path / "out")],
        cwd=REPO_ROOT / "cdk8s",
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "end-of-life" not in result.stdout + result.stderr
    produced = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert produced == ["argocd-application.k8s.yaml", "kargo.k8s.yaml"]
    for name in produced:
        assert (tmp_path / "out" / name).read_bytes() == (fleet.root / "dist" / name).read_bytes()


def test_synth_refuses_bad_input_and_writes_nothing(fleet, capsys):
    fleet.write(
        "images.yaml",
        fleet.read("images.yaml").replace("kargo: {factoryRepo: acme/factory, warehouseInterval: 3h}\n", ""),
    )
    assert main(["discover", "--root", str(fleet.root)]) == 0
    capsys.readouterr()
    assert synth(fleet.root) == 1
    assert (
        capsys.readouterr().err
        == "error: images.yaml: kargo: kargo.factoryRepo is not set: the generated stages dispatch to it\n"
    )
    assert not (fleet.root / "dist").exists()
    fleet.write("images.yaml", "images: [\n")
    assert synth(fleet.root) == 1
    assert "error: images.yaml:2: invalid YAML" in capsys.readouterr().err
    assert not (fleet.root / "dist").exists()


def test_synth_without_node_says_so(fleet, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert synth(fleet.root) == 1
    assert capsys.readouterr().err.strip() == "error: synth: cdk8s needs Node.js, and `node` is not on PATH"


def test_bundled_example_manifests_are_published_and_current(example_factory):
    shutil.copytree(REPO_ROOT / "dist", example_factory.root / "dist")
    assert synth(example_factory.root, "--check") == 0
    for body in objects(example_factory.root / "dist/kargo.k8s.yaml"):
        assert validate_object(body) == [], body["metadata"]["name"]


def test_runtime_events_never_change_the_manifests(fleet, capsys):
    """events.yml pushes state with the workflow's own token, which starts no other workflow
    (so not synth.yml): that is safe only because what events record (digests, builds,
    rejections) is runtime data the manifests do not depend on."""
    assert synth(fleet.root) == 0
    digest = "sha256:" + "1" * 64
    at = "2026-11-02T09:00:00Z"
    root = ["--root", str(fleet.root)]
    debian = ["--image", "debian:bookworm-slim", "--digest", digest]
    assert main(["record-update", *root, *debian, "--seen-at", at]) == 0
    assert main(["expedite", *root, *debian, "--reason", "CVE", "--at", at]) == 0
    assert main(["reject", *root, "--image", "golang:1.23", "--digest", digest, "--reason", "r", "--force"]) == 0
    assert main(["record-update", *root, *debian, "--verified", "true", "--reason", "ok"]) == 0
    built = ["--image", "base", "--result", "success", "--digest", "sha256:" + "2" * 64, "--finished-at", at]
    assert main(["record-build", *root, *built, "--base", f"debian:bookworm-slim={digest}"]) == 0
    assert main(["record-build", *root, "--image", "api", "--result", "failure", "--error", "x"]) == 0
    capsys.readouterr()
    assert synth(fleet.root, "--check") == 0, capsys.readouterr().err
