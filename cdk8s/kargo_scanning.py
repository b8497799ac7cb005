"""The scan of each new digest of a watched image: a Stage whose verification runs a Job that
scans the digest with Trivy and reports the findings to the factory (`base-image-scanned`).

The Stage takes Freight straight from the Warehouse and holds nothing back: Kargo decides
nothing about vulnerabilities, the factory does (rebuilds.scan_evidence). The Job's first
container runs the scanner, whose failure is written down, not fatal; the second runs the
reporter (trust/scan_report.py, from a ConfigMap) with the token the Stages use. The Job
fails when the report could not be delivered, or when the Pod itself failed (an image that
cannot be pulled, the scanner killed past its memory limit: on cgroup v2 the kubelet, since
Kubernetes 1.28, kills every process of the container, the `|| touch` included), and then only
this Stage's verification fails: the digest shows as not scanned, and a scan never blocks the
soak.
"""

from __future__ import annotations

from importlib import resources

from image_factory.enrolment.model import Config
from image_factory.kargo import names
from kargo_objects import KARGO_API, Watched, image_field, meta, ref_annotation

WORK, REPORTER = "/work", "/reporter"
# `$1` is the digest's reference: an argument, never part of the script. A scan that cannot run
# leaves a mark and its log for the reporter, which says so to the factory.
SCAN = (
    'trivy image --format json --output /work/report.json --scanners vuln "$1" > /work/scan.log 2>&1'
    " || touch /work/failed"
)
# The scan itself, then up to an hour of the reporter's retries (trust/scan_report.send).
DEADLINE_SECONDS = 5400


def reporter_source() -> str:
    return (resources.files("image_factory.trust") / "scan_report.py").read_text(encoding="utf-8")


def reporter_config_map(config: Config) -> dict:
    """The reporter's source, mounted into every scan Job of the project."""
    labels = {names.ROLE: "scan-reporter"}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(names.SCAN_REPORTER, config.kargo.project, labels),
        "data": {"report.py": reporter_source()},
    }


def scan_template(config: Config, watched: Watched) -> dict:
    """The AnalysisTemplate whose Job scans `<repo>@<digest>` and reports it."""
    settings, scanner = config.kargo, config.kargo.scanner
    reference = f"{watched.warehouse.repo_url}@{{{{args.digest}}}}"
    scan_env = [
        {"name": "TRIVY_CACHE_DIR", "value": f"{WORK}/cache"},
        {"name": "TRIVY_NO_PROGRESS", "value": "true"},
        {"name": "TMPDIR", "value": WORK},  # the image's layers go to the bounded scratch space
        {"name": "TRIVY_DB_REPOSITORY", "value": scanner.db_repository},
    ]
    if scanner.java_db_repository:
        scan_env.append({"name": "TRIVY_JAVA_DB_REPOSITORY", "value": scanner.java_db_repository})
    work = {"name": "work", "mountPath": WORK}
    scan = {
        "name": "scan",
        "image": scanner.image,
        "command": ["sh", "-c", SCAN, "scan", reference],
        "env": scan_env,
        "volumeMounts": [work],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": scanner.memory}},
    }
    volumes = [
        {"name": "work", "emptyDir": {"sizeLimit": scanner.disk}},
        {"name": "reporter", "configMap": {"name": names.SCAN_REPORTER}},
    ]
    if settings.verify_registry_secret:  # Trivy reads registry logins as Docker does
        scan["env"].append({"name": "DOCKER_CONFIG", "value": "/docker"})
        scan["volumeMounts"].append({"name": "registry-auth", "mountPath": "/docker", "readOnly": True})
        volumes.append(
            {
                "name": "registry-auth",
                "secret": {
                    "secretName": settings.verify_registry_secret,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        )
    token = {"secretKeyRef": {"name": settings.token_secret_name, "key": settings.token_secret_key}}
    report = {
        "name": "report",
        "image": scanner.reporter_image,
        "command": ["python3", f"{REPORTER}/report.py"],
        "env": [
            {"name": "IMAGE", "value": watched.base.ref.canonical},
            {"name": "DIGEST", "value": "{{args.digest}}"},
            {"name": "SCANNER", "value": "trivy"},
            {"name": "SCAN_REPORT", "value": f"{WORK}/report.json"},
            {"name": "SCAN_FAILED", "value": f"{WORK}/failed"},
            {"name": "SCAN_LOG", "value": f"{WORK}/scan.log"},
            {"name": "MIN_SEVERITY", "value": watched.scan_severity},
            {"name": "GITHUB_API", "value": settings.github_api_url},
            {"name": "FACTORY_REPO", "value": settings.factory_repo},
            {"name": "GITHUB_TOKEN", "valueFrom": token},
        ],
        "volumeMounts": [work, {"name": "reporter", "mountPath": REPORTER, "readOnly": True}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    }
    pod = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,  # the Job needs nothing from the Kubernetes API
        "initContainers": [scan],
        "containers": [report],
        "volumes": volumes,
    }
    labels = {names.ROLE: "scan", names.WATCHED: watched.name}
    job = {"backoffLimit": 0, "activeDeadlineSeconds": DEADLINE_SECONDS, "template": {"spec": pod}}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": meta(names.scan_name(watched.name), settings.project, labels, ref_annotation(watched)),
        "spec": {"args": [{"name": "digest"}], "metrics": [{"name": "scan", "provider": {"job": {"spec": job}}}]},
    }


def scan_stage(config: Config, watched: Watched) -> dict:
    """Takes every new Freight from the Warehouse, notes its digest, and verifies it with the scan."""
    name = names.scan_name(watched.name)
    labels = {names.ROLE: "scan", names.WATCHED: watched.name, names.AUTO_PROMOTE: "true"}
    digest = image_field(watched, "Digest").template()
    note = {"uses": "compose-output", "as": "scanned", "config": {"digest": digest}}
    return {
        "apiVersion": KARGO_API,
        "kind": "Stage",
        "metadata": meta(name, config.kargo.project, labels, ref_annotation(watched)),
        "spec": {
            "requestedFreight": [{"origin": {"kind": "Warehouse", "name": watched.name}, "sources": {"direct": True}}],
            "promotionTemplate": {"spec": {"steps": [note]}},
            "verification": {"analysisTemplates": [{"name": name}], "args": [{"name": "digest", "value": digest}]},
        },
    }
