"""The scan of each new digest in the Kargo manifests, and its reporter run for real.

The Stage and AnalysisTemplate are checked against Kargo's and Argo Rollouts' schemas and run
through the Kargo model (its verification argument is the Freight's digest, a string). The
reporter is the ConfigMap's own text, run with python3 against a local server that answers as
GitHub does; what it sends is drained into a factory as the events workflow would.
"""

from __future__ import annotations

import json
import sys

import pytest

from image_factory.discovery.discover import discover, load_model
from image_factory.enrolment.refs import parse_ref
from image_factory.errors import FactoryError
from image_factory.kargo import cluster_notes
from image_factory.kargo import names as kargo_names
from image_factory.trust import scan_report

from ..conftest import REPO_ROOT
from ..kargo_model import Freight, Image, evaluate_verification_args
from ..kargo_schemas import validate_object

sys.path.insert(0, str(REPO_ROOT / "cdk8s"))
import kargo_manifests

REPORTS = REPO_ROOT / "tests" / "fixtures" / "scanner-reports"
TRIVY = "docker.io/aquasec/trivy:0.58.1@sha256:" + "1" * 64
PYTHON_IMAGE = "docker.io/library/python:3.12-slim@sha256:" + "2" * 64
DIGEST = "sha256:" + "d" * 64
IMAGES_YAML = f"""
kargo:
  factoryRepo: acme/factory
  verifyRegistrySecret: pull-secret
  scanner:
    image: {TRIVY}
    reporterImage: {PYTHON_IMAGE}
    dbRepository: registry.internal.example/aquasec/trivy-db:2
    javaDbRepository: registry.internal.example/aquasec/trivy-java-db:1
trust:
  senders: ["image-factory-kargo[bot]"]
images:
  - name: app
    registry: ghcr.io
    repository: acme/app
    source: {{provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}
    scan: {{enabled: true, expedite: high, hold: critical}}
  - name: worker
    registry: ghcr.io
    repository: acme/worker
    source: {{provider: local, repo: worker, dockerfile: Dockerfile, workflow: build.yml}}
"""
PYTHON = "docker.io/library/python:3.12-slim"


@pytest.fixture
def made(factory):
    return make(factory)


def make(factory):
    """The scanning factory of IMAGES_YAML, discovered, and its generated objects."""
    factory.write("images.yaml", IMAGES_YAML)
    factory.write("app/Dockerfile", "FROM python:3.12-slim\n")
    factory.write("worker/Dockerfile", "FROM redis:7\n")
    discover(factory.root)
    config, state = load_model(factory.root)
    return factory, kargo_manifests.factory_manifests(config, state)


def named(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_only_the_bases_of_scanning_images_are_scanned(made):
    _, objects = made
    python, redis = (kargo_names.watched_name(parse_ref(ref)) for ref in (PYTHON, "redis:7"))
    scans = sorted(o["metadata"]["name"] for o in objects if o["metadata"]["labels"].get(kargo_names.ROLE) == "scan")
    assert scans == [f"{python}-scan", f"{python}-scan"]  # its Stage and its AnalysisTemplate; redis: none
    assert not any(o["metadata"]["name"].startswith(redis) and o["kind"] == "AnalysisTemplate" for o in objects)
    for body in objects:
        assert validate_object(body) == [], body["metadata"]["name"]


def test_the_stage_takes_every_new_digest_and_holds_nothing_back(made):
    _, objects = made
    python = kargo_names.watched_name(parse_ref(PYTHON))
    stage = named(objects, "Stage", f"{python}-scan")
    assert stage["spec"]["requestedFreight"] == [
        {"origin": {"kind": "Warehouse", "name": python}, "sources": {"direct": True}}
    ]
    assert stage["metadata"]["labels"][kargo_names.AUTO_PROMOTE] == "true"
    # nothing requests Freight from it: no soak or rebuild waits on the scan
    for other in (o for o in objects if o["kind"] == "Stage"):
        for request in other["spec"]["requestedFreight"]:
            assert stage["metadata"]["name"] not in request["sources"].get("stages", [])
    freight = Freight("f" * 40, (Image("docker.io/library/python", "3.12-slim", DIGEST),), python)
    assert evaluate_verification_args(stage, freight, {python: ["docker.io/library/python"]}) == {"digest": DIGEST}


def pod_of(objects) -> tuple[dict, dict]:
    python = kargo_names.watched_name(parse_ref(PYTHON))
    template = named(objects, "AnalysisTemplate", f"{python}-scan")
    job = template["spec"]["metrics"][0]["provider"]["job"]["spec"]
    return job, job["template"]["spec"]


def test_the_job_scans_the_digest_and_reports_with_the_stages_token(made):
    _, objects = made
    job, pod = pod_of(objects)
    find, scan = pod["initContainers"]
    (report,) = pod["containers"]
    assert scan["image"] == TRIVY and report["image"] == find["image"] == PYTHON_IMAGE
    assert scan["command"][:2] == ["sh", "-c"] and scan["command"][3:] == ["scan", "docker.io/library/python"]
    assert '"$1@$digest"' in scan["command"][2] and "{{" not in scan["command"][2]  # the reference is an argument
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in scan["env"]}
    assert env["TRIVY_DB_REPOSITORY"] == "registry.internal.example/aquasec/trivy-db:2"
    assert env["TRIVY_JAVA_DB_REPOSITORY"] == "registry.internal.example/aquasec/trivy-java-db:1"
    assert env["DOCKER_CONFIG"] == "/docker"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in find["env"]}
    assert env["DIGEST"] == "{{args.digest}}" and env["RESCAN"] == "3" and env["REPO_URL"] == "docker.io/library/python"
    assert env["BUILT_ON"] == "state/built-on/docker.io-library-python-3.12-slim-ea59dc550ffd.json"
    assert env["GITHUB_TOKEN"] == {"secretKeyRef": {"name": "image-factory-github", "key": "token"}}
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in report["env"]}
    assert env["GITHUB_TOKEN"] == {"secretKeyRef": {"name": "image-factory-github", "key": "token"}}
    assert env["DIGEST"] == "{{args.digest}}" and env["IMAGE"] == PYTHON and env["MIN_SEVERITY"] == "high"
    assert env["RUN"] == {"fieldRef": {"fieldPath": "metadata.name"}}  # each verification's Pod: one run
    # every digest's scan and its half hour of retries fit: the new one and 3 earlier ones
    # the new digest, 10 built-on ones and 3 earlier ones at most
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] == (1 + 10 + 3) * (900 + 1800)
    assert env["TIMEOUT_SECONDS"] == "1800"
    # bounded; a token only in the targets container, from an account that may only read Freight
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "image-factory-scan"
    assert [m["name"] for m in find["volumeMounts"]] == ["work", "reporter", "account"]
    assert all("account" not in [m["name"] for m in c["volumeMounts"]] for c in (scan, report))
    (role,) = [o for o in objects if o["kind"] == "Role"]
    assert role["rules"] == [{"apiGroups": ["kargo.akuity.io"], "resources": ["freights"], "verbs": ["get", "list"]}]
    assert scan["resources"]["limits"] == {"memory": "2Gi"} and report["resources"]["limits"] == {"memory": "128Mi"}
    assert {v["name"]: v for v in pod["volumes"]}["work"]["emptyDir"] == {"sizeLimit": "10Gi"}
    config_map = named(objects, "ConfigMap", kargo_names.SCAN_REPORTER)
    assert config_map["data"]["report.py"] == (REPO_ROOT / "action/image_factory/trust/scan_report.py").read_text()
    assert not any("ghp_" in json.dumps(o) or 'token": "' in json.dumps(o) for o in objects)


def test_scanning_without_a_scanner_is_refused(factory):
    lines = IMAGES_YAML.splitlines()
    start = lines.index("  scanner:")
    # scanning is off in the defaults and on for app: the error points at app's own setting
    text = "\n".join(lines[:start] + lines[start + 5 :]) + "\n"
    factory.write("images.yaml", text.replace("images:\n", "defaults:\n  scan: {enabled: false}\nimages:\n", 1))
    factory.write("app/Dockerfile", "FROM python:3.12-slim\n")
    factory.write("worker/Dockerfile", "FROM redis:7\n")
    with pytest.raises(FactoryError, match=r"images\[0\]\.scan: scan.enabled \(app\) needs kargo.scanner"):
        discover(factory.root)


def test_synth_notes_which_scans_need_argo_rollouts(made):
    factory, _ = made
    _, state = load_model(factory.root)
    note = cluster_notes.verification_note(state)
    assert "the scans of docker.io/library/python:3.12-slim" in note and "redis" not in note


def test_a_long_report_is_cut_to_what_a_dispatch_can_carry():
    findings = [
        {"id": f"CVE-2026-{n:05d}", "severity": "high" if n < 5000 else "low", "package": "p" * 100,
         "published": "2026-01-01"}
        for n in range(8000)
    ]  # fmt: skip
    scan = scan_report.cut(scan_report._unique(findings), "high")
    body = scan_report.payload(PYTHON, DIGEST, "trivy", scan)
    assert body["omitted"] == "4900" and len(body["other_ids"].split()) == 1500
    assert body["other_ids_omitted"] == str(8000 - 100 - 1500)
    assert len(body) <= 10  # GitHub's limit on client_payload's top-level keys
    assert len(json.dumps({"event_type": "base-image-scanned", "client_payload": body})) < 64_000
    # the longest ids and packages a report could give still fit
    longest = [
        scan_report._finding(f"{n:04d}" + "x" * 200, "critical" if n < 200 else "low", "p" * 200, "f" * 200, "2026")
        for n in range(3000)
    ]
    body = scan_report.payload(PYTHON, DIGEST, "t" * 300, scan_report.cut(scan_report._unique(longest), "low"))
    assert len(json.dumps({"event_type": "base-image-scanned", "client_payload": body})) < 64_000
    kept = len(json.loads(body["findings"]))
    assert int(body["omitted"]) == 3000 - kept
    assert int(body["other_ids_omitted"]) + len(body["other_ids"].split()) == 3000 - kept
