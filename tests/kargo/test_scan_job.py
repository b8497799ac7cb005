"""The scan Job's containers, run for real as far as they run here.

`targets` and the reporter are the generated ConfigMap's Python, run as the Job runs them, with
Kubernetes' list API and GitHub's dispatches endpoint served by pytest-httpserver in their
documented shapes. The scanner's shell line is run with `sh` and a stand-in `trivy` that writes
Trivy's own golden reports (no Trivy binary here).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from werkzeug import Response

from image_factory.cli import main
from image_factory.discovery.discover import load_model

from .test_scan_manifests import DIGEST, PYTHON, REPORTS, make, named, pod_of

OLDER = ["sha256:" + c * 64 for c in "abc9"]  # earlier Freight of the Warehouse, newest first
WAREHOUSE = "python-3-12-slim-ea59dc55"


def script_of(made_objects, tmp_path: Path) -> Path:
    script = tmp_path / "report.py"
    script.write_text(named(made_objects, "ConfigMap", "image-factory-scan-reporter")["data"]["report.py"])
    return script


def run(script: Path, work: Path, *argv: str, **env) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "IMAGE": PYTHON, "DIGEST": DIGEST, "WORK": str(work)}
    return subprocess.run(
        [sys.executable, str(script), *argv], env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def github(server) -> dict:
    return {
        "SCANNER": "trivy",
        "RUN": "python-3-12-slim-scan-7f9c2-abcde",  # the Pod's name (the downward API)
        "MIN_SEVERITY": "medium",
        "GITHUB_API": server.url_for("/").rstrip("/"),
        "FACTORY_REPO": "acme/factory",
        "GITHUB_TOKEN": "t0ken",
        "RETRY_SECONDS": "0.05",
        "TIMEOUT_SECONDS": "5",
    }


def freight(name: str, digest: str, at: str, warehouse: str = WAREHOUSE, repo: str = "docker.io/library/python"):
    """A Freight as Kargo's API lists it (api/v1alpha1/freight_types.go: origin, images, discoveredAt)."""
    return {
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Freight",
        "metadata": {"name": name, "namespace": "image-factory", "creationTimestamp": at},
        "origin": {"kind": "Warehouse", "name": warehouse},
        "images": [{"repoURL": repo, "tag": "3.12-slim", "digest": digest}],
        "discoveredAt": at,
    }


@pytest.fixture
def made(factory):
    return make(factory)


@pytest.fixture
def account(tmp_path) -> Path:
    folder = tmp_path / "account"
    folder.mkdir()
    (folder / "token").write_text("sa-t0ken\n")
    (folder / "namespace").write_text("image-factory")
    return folder


def test_targets_are_the_new_digest_then_the_newest_earlier_ones_of_its_warehouse(made, tmp_path, httpserver, account):
    _, objects = made
    items = [
        freight("f-new", DIGEST, "2026-11-10T00:00:00Z"),
        *[freight(f"f-{n}", d, f"2026-11-0{8 - n}T00:00:00Z") for n, d in enumerate(OLDER)],
        freight("f-redis", "sha256:" + "e" * 64, "2026-11-09T00:00:00Z", warehouse="redis-7"),
        freight("f-later", "sha256:" + "f" * 64, "2026-11-11T00:00:00Z"),  # newer than the one scanned
    ]
    pages = [items[:3], items[3:]]
    seen = []

    def listing(request):
        seen.append((request.headers.get("Authorization"), dict(request.args)))
        page = pages[len(seen) - 1]
        more = {"continue": "next"} if len(seen) < len(pages) else {}
        return Response(json.dumps({"kind": "FreightList", "metadata": more, "items": page}))

    path = "/apis/kargo.akuity.io/v1alpha1/namespaces/image-factory/freights"
    httpserver.expect_request(path).respond_with_handler(listing)
    work = tmp_path / "work"
    work.mkdir()
    done = run(
        script_of(objects, tmp_path), work, "targets", WAREHOUSE=WAREHOUSE, REPO_URL="docker.io/library/python",
        RESCAN="3", SERVICE_ACCOUNT=str(account), KUBERNETES_API=httpserver.url_for("/").rstrip("/"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (work / "targets").read_text().split() == [DIGEST, *OLDER[:3]]
    assert seen[0] == ("Bearer sa-t0ken", {"limit": "500"}) and seen[1][1] == {"limit": "500", "continue": "next"}


def test_without_kargos_api_the_new_digest_alone_is_scanned(made, tmp_path, account):
    _, objects = made
    work = tmp_path / "work"
    work.mkdir()
    done = run(
        script_of(objects, tmp_path), work, "targets", WAREHOUSE=WAREHOUSE, REPO_URL="docker.io/library/python",
        SERVICE_ACCOUNT=str(account), KUBERNETES_API="http://127.0.0.1:9",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (work / "targets").read_text().split() == [DIGEST]
    assert "no earlier digests scanned again: Kargo's Freight could not be read" in done.stderr


def run_scan_line(objects, tmp_path: Path, trivy: str, targets: list[str]) -> tuple[Path, subprocess.CompletedProcess]:
    """The scan container's own shell line, run by `sh` with `trivy` (a script) first on PATH and
    the Pod's /work rewritten to a folder of the test's holding `targets`."""
    _, pod = pod_of(objects)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "trivy").write_text(trivy)
    (bin_dir / "trivy").chmod((bin_dir / "trivy").stat().st_mode | stat.S_IEXEC)
    work = tmp_path / "root" / "work"
    work.mkdir(parents=True)
    (work / "targets").write_text("".join(f"{digest}\n" for digest in targets))
    line = pod["initContainers"][1]["command"][2].replace("/work", str(work))
    done = subprocess.run(
        ["sh", "-c", line, "scan", "docker.io/library/python"],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return work, done


def test_the_scanner_line_scans_every_target_and_marks_each_failure(made, tmp_path):
    _, objects = made
    calls = tmp_path / "calls"
    # a stand-in: writes alpine 3.9's golden report, fails for the digest of …c
    trivy = (
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'case "$*" in *--download-*) exit 0;; esac\n'
        'out=""; while [ $# -gt 0 ]; do case "$1" in --output) out="$2"; shift;; esac; ref="$1"; shift; done\n'
        'case "$ref" in *ccccc*) echo "FATAL image not found: $ref" >&2; exit 1;; esac\n'
        f'cp {REPORTS / "trivy-alpine-39.json"} "$out"; echo "scanned $ref"\n'
    )
    work, done = run_scan_line(objects, tmp_path, trivy, [DIGEST, OLDER[2]])
    assert done.returncode == 0, done.stderr
    assert (work / f"{DIGEST}.json").read_text() == (REPORTS / "trivy-alpine-39.json").read_text()
    assert (work / f"{OLDER[2]}.failed").exists()
    log = (work / f"{OLDER[2]}.log").read_text()
    assert f"FATAL image not found: docker.io/library/python@{OLDER[2]}" in log
    # the databases once, then every scan with them as they are: one run, one database
    lines = calls.read_text().splitlines()
    assert lines[:2] == ["image --download-db-only", "image --download-java-db-only"]
    assert all("--skip-db-update --skip-java-db-update" in line for line in lines[2:]) and len(lines) == 4


def test_without_a_database_every_target_is_a_failed_scan_with_its_reason(made, tmp_path):
    _, objects = made
    trivy = "#!/bin/sh\necho 'FATAL init error: DB error: failed to download vulnerability DB' >&2; exit 1\n"
    work, done = run_scan_line(objects, tmp_path, trivy, [DIGEST, OLDER[0]])
    assert done.returncode == 0, done.stderr
    for digest in (DIGEST, OLDER[0]):
        assert (work / f"{digest}.failed").exists()
        assert "failed to download vulnerability DB" in (work / f"{digest}.log").read_text()


def test_the_reporter_sends_each_targets_findings_that_the_drain_then_records(made, tmp_path, httpserver):
    factory, objects = made
    work = tmp_path / "work"
    work.mkdir()
    (work / "targets").write_text(f"{DIGEST}\n{OLDER[0]}\n")
    (work / f"{DIGEST}.json").write_text((REPORTS / "trivy-alpine-39.json").read_text())
    (work / f"{OLDER[0]}.failed").touch()
    (work / f"{OLDER[0]}.log").write_text("…\nFATAL\tinit error: DB error: failed to download vulnerability DB\n")
    sent = []

    def dispatches(request):
        sent.append((request.headers.get("Authorization"), request.get_json()))
        return Response(status=204)

    httpserver.expect_request("/repos/acme/factory/dispatches", method="POST").respond_with_handler(dispatches)
    done = run(script_of(objects, tmp_path), work, **github(httpserver))
    assert done.returncode == 0, done.stderr
    (authorization, body), (_, rescan) = sent
    assert authorization == "Bearer t0ken" and body["event_type"] == "base-image-scanned"
    payload = body["client_payload"]
    assert len(payload) <= 10 and all(isinstance(v, str) for v in payload.values())  # GitHub's and the inbox's rules
    assert [f["id"] for f in json.loads(payload["findings"])] == [
        "CVE-2019-14697", "CVE-2019-14697", "CVE-2019-1549", "CVE-2019-1549", "CVE-2019-1551", "CVE-2019-1551"
    ]  # fmt: skip
    assert rescan["client_payload"]["digest"] == OLDER[0]
    assert rescan["client_payload"]["error"] == (
        "the scan did not run: FATAL init error: DB error: failed to download vulnerability DB"
    )
    # as the events workflow receives and drains it
    event = {"id": "9", "type": body["event_type"], "sender": "image-factory-kargo[bot]",
             "receivedAt": "2026-11-02T09:00:00Z", "payload": payload}  # fmt: skip
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "9.json").write_text(json.dumps(event))
    # the scan Stage takes Freight straight from the Warehouse: its report may come first
    assert main(["drain", "--root", str(factory.root), "--from", str(inbox)]) == 0
    _, state = load_model(factory.root)
    (entry,) = [e for e in state.base_images[PYTHON].runtime.history if e["digest"] == DIGEST]
    assert entry["seenBy"] == "scan" and state.base_images[PYTHON].runtime.current_digest != DIGEST
    assert main(["record-update", "--root", str(factory.root), "--image", PYTHON, "--digest", DIGEST]) == 0
    _, state = load_model(factory.root)
    (entry,) = [e for e in state.base_images[PYTHON].runtime.history if e["digest"] == DIGEST]
    assert entry["seenBy"] == "operator" and state.base_images[PYTHON].runtime.current_digest == DIGEST
    assert entry["scan"]["scanner"] == "trivy" and len(entry["scan"]["findings"]) == 6
    assert entry["scan"]["minSeverity"] == "medium"  # what the Job kept
    assert payload["other_ids"] == "" and entry["scan"]["otherIds"] == ""  # every id is among the findings
    assert payload["run"] == entry["scan"]["run"] == "python-3-12-slim-scan-7f9c2-abcde"  # one Pod, one run


@pytest.mark.parametrize(
    ("answers", "code", "tries"),
    [
        ([(503, {})], 0, 2),  # a 5xx: tried again
        ([(403, {"X-RateLimit-Remaining": "0"})], 0, 2),  # a rate limit: tried again
        ([(429, {"Retry-After": "1"})], 0, 2),
        ([(422, {})], 1, 1),  # a refusal: at once
        ([(401, {})], 1, 1),
    ],
)
def test_the_reporter_retries_as_the_http_steps_do(made, tmp_path, httpserver, answers, code, tries):
    _, objects = made
    work = tmp_path / "work"
    work.mkdir()
    (work / "targets").write_text(f"{DIGEST}\n")
    (work / f"{DIGEST}.json").write_text((REPORTS / "trivy-alpine-310.json").read_text())
    queue = [Response(json.dumps({"message": "Bad credentials"}), status=s, headers=h) for s, h in answers]
    queue.append(Response(status=204))
    httpserver.expect_request("/repos/acme/factory/dispatches").respond_with_handler(lambda _: queue.pop(0))
    done = run(script_of(objects, tmp_path), work, **github(httpserver))
    assert done.returncode == code, done.stderr
    assert len(httpserver.log) == tries
    if code:
        assert "GitHub refused the base-image-scanned dispatch" in done.stderr and "Bad credentials" in done.stderr


def test_the_reporter_gives_up_after_its_timeout(made, tmp_path, httpserver):
    _, objects = made
    work = tmp_path / "work"
    work.mkdir()
    (work / "targets").write_text(f"{DIGEST}\n")
    (work / f"{DIGEST}.json").write_text((REPORTS / "trivy-alpine-310.json").read_text())
    httpserver.expect_request("/repos/acme/factory/dispatches").respond_with_data("", status=502)
    done = run(script_of(objects, tmp_path), work, **{**github(httpserver), "TIMEOUT_SECONDS": "0.3"})
    assert done.returncode == 1 and "gave up sending base-image-scanned: GitHub answered 502" in done.stderr
    assert 2 <= len(httpserver.log) <= 8


def test_targets_put_the_digests_images_are_built_on_after_the_new_one(made, tmp_path, httpserver, account):
    _, objects = made
    built = {"api": OLDER[3], "worker": OLDER[3], "batch": OLDER[0], "odd": "not-a-digest"}
    path = "/repos/acme/factory/contents/state/built-on/docker.io-library-python-3.12-slim-ea59dc550ffd.json"
    httpserver.expect_request(path, headers={"Authorization": "Bearer t0ken"}).respond_with_json(built)
    freights = [freight("f-new", DIGEST, "2026-11-10T00:00:00Z"), freight("f-0", OLDER[0], "2026-11-08T00:00:00Z")]
    httpserver.expect_request("/apis/kargo.akuity.io/v1alpha1/namespaces/image-factory/freights").respond_with_json(
        {"kind": "FreightList", "metadata": {}, "items": freights}
    )
    work = tmp_path / "work"
    work.mkdir()
    api = httpserver.url_for("/").rstrip("/")
    done = run(
        script_of(objects, tmp_path), work, "targets", WAREHOUSE=WAREHOUSE, REPO_URL="docker.io/library/python",
        RESCAN="3", SERVICE_ACCOUNT=str(account), KUBERNETES_API=api, GITHUB_API=api, FACTORY_REPO="acme/factory",
        GITHUB_TOKEN="t0ken", BUILT_ON="state/built-on/docker.io-library-python-3.12-slim-ea59dc550ffd.json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # the new digest; those images are built on, the most used first; then the earlier ones
    assert (work / "targets").read_text().split() == [DIGEST, OLDER[3], OLDER[0]]


def test_past_five_built_on_digests_each_run_takes_another_five_of_the_rest(made, tmp_path, httpserver):
    _, objects = made
    many = {f"img{n}": "sha256:" + f"{n:02d}" * 32 for n in range(14)}
    many.update({"api": many["img0"], "worker": many["img0"]})  # img0's digest: the most used
    path = "/repos/acme/factory/contents/state/built-on/python.json"
    httpserver.expect_request(path).respond_with_json(many)
    api = httpserver.url_for("/").rstrip("/")
    picked = []
    for n in range(12):
        work = tmp_path / f"work-{n}"
        work.mkdir()
        new = "sha256:" + f"f{n:x}" * 32
        done = run(
            script_of(objects, tmp_path), work, "targets", DIGEST=new, RESCAN="0", GITHUB_API=api,
            FACTORY_REPO="acme/factory", GITHUB_TOKEN="t0ken", BUILT_ON="state/built-on/python.json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        chosen = (work / "targets").read_text().split()
        assert chosen[0] == new and chosen[1] == many["img0"] and len(chosen) == 11
        picked.append(set(chosen[1:]))
    assert set().union(*picked) == set(many.values())  # over runs, every one is taken
