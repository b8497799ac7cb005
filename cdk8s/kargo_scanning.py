"""The scan of each new digest of a watched image: a Stage whose verification runs a Job that
scans the digest with Trivy, and the newest earlier digests of the Warehouse again, and reports
the findings to the factory (`base-image-scanned`, one event per digest).

The Stage takes Freight straight from the Warehouse and holds nothing back: Kargo decides
nothing about vulnerabilities, the factory does (rebuilds.scan_evidence), comparing only what
one run (one Pod, one vulnerability database) saw. The Job's containers: `targets` (trust/scan_report.py, from a
ConfigMap) lists the digests from Kargo's Freight with a token that may only read Freight;
`scan` runs the scanner on each, whose failure is written down, not fatal; `report` sends each
outcome with the token the Stages use. The Job fails when a report could not be delivered, or
when the Pod itself failed (an image that cannot be pulled, the scanner killed past its memory
limit: on cgroup v2 the kubelet, since Kubernetes 1.28, kills every process of the container,
the `|| touch` included), and then only this Stage's verification fails: the digest shows as
not scanned, and a scan never blocks the soak.
"""

from __future__ import annotations

from importlib import resources

from image_factory.enrolment.model import Config
from image_factory.kargo import names
from image_factory.state import built_on
from image_factory.trust.scan_report import MAX_BUILT_ON
from kargo_objects import KARGO_API, Watched, image_field, meta, ref_annotation

WORK, REPORTER, ACCOUNT = "/work", "/reporter", "/var/run/secrets/image-factory"


# Each digest of WORK/targets (checked sha256 digests, written by the targets container) is
# scanned; `$1` is the repository: an argument, never part of the script. The databases are
# downloaded once, so that one run scans with one database (Trivy would otherwise update them
# between scans once they are due). A scan that cannot run leaves a mark and its log for the
# reporter, which says so to the factory.
def scan_script(java_db: bool) -> str:
    download = "trivy image --download-db-only > /work/db.log 2>&1"
    skip = "--skip-db-update"
    if java_db:  # without a mirror of its own, the Java database is fetched only when needed
        download += " && trivy image --download-java-db-only >> /work/db.log 2>&1"
        skip += " --skip-java-db-update"
    return (
        f"{download} || touch /work/db.failed; "
        "for digest in $(cat /work/targets); do "
        'if [ -e /work/db.failed ]; then cp /work/db.log "/work/$digest.log"; touch "/work/$digest.failed"; '
        f'else trivy image {skip} --format json --output "/work/$digest.json" --scanners vuln "$1@$digest" '
        '> "/work/$digest.log" 2>&1 || touch "/work/$digest.failed"; fi; done'
    )


# Each report is tried again for up to half an hour (trust/scan_report.send); the Job's deadline
# leaves each digest that and a quarter of an hour to scan.
REPORT_SECONDS = 1800
SCAN_SECONDS = 900
SERVICE_ACCOUNT = "image-factory-scan"
NAMESPACE = "metadata.namespace"


def reporter_source() -> str:
    return (resources.files("image_factory.trust") / "scan_report.py").read_text(encoding="utf-8")


def scan_objects(config: Config) -> list[dict]:
    """Once per project: the reporter's source, mounted into every scan Job, and the account
    whose token may only read the project's Freight (to find the earlier digests to rescan)."""
    project, labels = config.kargo.project, {names.ROLE: "scan-reporter"}
    account = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": project}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(names.SCAN_REPORTER, project, labels),
            "data": {"report.py": reporter_source()},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta(SERVICE_ACCOUNT, project, labels),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(SERVICE_ACCOUNT, project, labels),
            "rules": [{"apiGroups": ["kargo.akuity.io"], "resources": ["freights"], "verbs": ["get", "list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(SERVICE_ACCOUNT, project, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SERVICE_ACCOUNT},
            "subjects": [account],
        },
    ]


def scan_template(config: Config, watched: Watched) -> dict:
    """The AnalysisTemplate whose Job scans `<repo>@<digest>`, and the newest earlier digests of
    the Warehouse again, and reports each."""
    settings, scanner = config.kargo, config.kargo.scanner
    repo_url = watched.warehouse.repo_url
    scan_env = [
        {"name": "TRIVY_CACHE_DIR", "value": f"{WORK}/cache"},
        {"name": "TRIVY_NO_PROGRESS", "value": "true"},
        {"name": "TMPDIR", "value": WORK},  # the image's layers go to the bounded scratch space
        {"name": "TRIVY_DB_REPOSITORY", "value": scanner.db_repository},
    ]
    if scanner.java_db_repository:
        scan_env.append({"name": "TRIVY_JAVA_DB_REPOSITORY", "value": scanner.java_db_repository})
    work = {"name": "work", "mountPath": WORK}
    source = {"name": "reporter", "mountPath": REPORTER, "readOnly": True}
    token = {"secretKeyRef": {"name": settings.token_secret_name, "key": settings.token_secret_key}}
    small = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}
    common = [
        {"name": "IMAGE", "value": watched.base.ref.canonical},
        {"name": "DIGEST", "value": "{{args.digest}}"},
        {"name": "WORK", "value": WORK},
    ]
    find = {
        "name": "targets",
        "image": scanner.reporter_image,
        "command": ["python3", f"{REPORTER}/report.py", "targets"],
        "env": [
            *common,
            {"name": "WAREHOUSE", "value": watched.name},
            {"name": "REPO_URL", "value": repo_url},
            {"name": "RESCAN", "value": str(scanner.rescan)},
            {"name": "SERVICE_ACCOUNT", "value": ACCOUNT},
            {"name": "BUILT_ON", "value": built_on.path_of(watched.base.ref.canonical)},
            {"name": "GITHUB_API", "value": settings.github_api_url},
            {"name": "FACTORY_REPO", "value": settings.factory_repo},
            {"name": "GITHUB_TOKEN", "valueFrom": token},
        ],
        "volumeMounts": [work, source, {"name": "account", "mountPath": ACCOUNT, "readOnly": True}],
        "resources": small,
    }
    scan = {
        "name": "scan",
        "image": scanner.image,
        "command": ["sh", "-c", scan_script(bool(scanner.java_db_repository)), "scan", repo_url],
        "env": scan_env,
        "volumeMounts": [work],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": scanner.memory}},
    }
    volumes = [
        {"name": "work", "emptyDir": {"sizeLimit": scanner.disk}},
        {"name": "reporter", "configMap": {"name": names.SCAN_REPORTER}},
        {
            # the account's token in the targets container only (Kubernetes' projected volume)
            "name": "account",
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {
                        "downwardAPI": {
                            "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                        }
                    },
                ]
            },
        },
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
    report = {
        "name": "report",
        "image": scanner.reporter_image,
        "command": ["python3", f"{REPORTER}/report.py"],
        "env": [
            *common,
            {"name": "SCANNER", "value": "trivy"},
            {"name": "RUN", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},  # the Pod: one run
            {"name": "MIN_SEVERITY", "value": watched.scan_severity},
            {"name": "GITHUB_API", "value": settings.github_api_url},
            {"name": "FACTORY_REPO", "value": settings.factory_repo},
            {"name": "GITHUB_TOKEN", "valueFrom": token},
            {"name": "TIMEOUT_SECONDS", "value": str(REPORT_SECONDS)},
        ],
        "volumeMounts": [work, source],
        "resources": small,
    }
    pod = {
        "restartPolicy": "Never",
        "serviceAccountName": SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,  # only the targets container gets a token
        "initContainers": [find, scan],
        "containers": [report],
        "volumes": volumes,
    }
    labels = {names.ROLE: "scan", names.WATCHED: watched.name}
    deadline = (scanner.rescan + 1 + MAX_BUILT_ON) * (SCAN_SECONDS + REPORT_SECONDS)
    job = {"backoffLimit": 0, "activeDeadlineSeconds": deadline, "template": {"spec": pod}}
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
