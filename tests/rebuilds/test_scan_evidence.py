"""Scan findings decide what skips the delay and what is held, on real scanner output.

The reports are Trivy's and Grype's own test data (tests/fixtures/scanner-reports/SOURCE.md):
alpine 3.9.4 has CVE-2019-14697, critical, in musl; alpine 3.10 has it fixed; debian buster has
a critical that stretch lacks. Each pair plays the digest an image is built on and a newer one,
through the real commands (`record-scan --report`, `unreject`) and the real planner.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import yaml

from image_factory.cli import main
from image_factory.discovery.discover import discover, load_model
from image_factory.rebuilds.scan_evidence import ScanPolicy, judge, runs_of
from image_factory.state.runtime_events import past_scan
from image_factory.timestamps import format_time
from image_factory.trust import scan_report

from ..conftest import REPO_ROOT
from .test_rebuild_simulation import PYTHON, Simulation, digest

REPORTS = REPO_ROOT / "tests" / "fixtures" / "scanner-reports"
MUSL = "CVE-2019-14697"


def factory_with(factory, scan: str) -> Simulation:
    factory.write(
        "images.yaml",
        f"""
        kargo:
          factoryRepo: acme/factory
          scanner:
            image: docker.io/aquasec/trivy:0.58.1@sha256:{"1" * 64}
            reporterImage: docker.io/library/python:3.12-slim@sha256:{"2" * 64}
            dbRepository: registry.internal.example/aquasec/trivy-db:2
        defaults:
          scan: {scan}
        images:
          - name: a
            registry: ghcr.io
            repository: acme/a
            source: {{provider: local, repo: a, dockerfile: Dockerfile, workflow: b.yml}}
        """,
    )
    factory.write("a/Dockerfile", "FROM python:3.12-slim\n")
    discover(factory.root)
    return Simulation(factory)


@pytest.fixture
def sim(factory):
    return factory_with(factory, "{enabled: true}")


def scanned(sim: Simulation, label: str, report: str) -> None:
    """The scan Job of a new digest `label`: it scans it, and the earlier digests again (the ones
    `built_on` named, with their reports), so that the factory compares scans of one day."""
    sim.reports = {**getattr(sim, "reports", {}), label: report}
    run = f"scan-{label}-{format_time(sim.now)}"  # one Job: one run, one database
    for each, its_report in sim.reports.items():
        argv = ["record-scan", "--root", str(sim.root), "--image", PYTHON, "--digest", digest(each), "--run", run]
        assert main([*argv, "--report", str(REPORTS / its_report), "--at", format_time(sim.now)]) == 0


def built_on(sim: Simulation, label: str, report: str) -> None:
    """`a` built on `label`, a digest whose scan is `report`."""
    sim.update(PYTHON, label)
    scanned(sim, label, report)
    sim.advance(days=8)
    assert sim.run_until_quiet() == [["a"]]
    assert sim.builds[-1][2] == {PYTHON: digest(label)}


def due(sim: Simulation) -> list[tuple[str, str, bool]]:
    return [(item.digest, item.reason, item.expedited) for item in sim.plan().due]


def test_the_reports_are_read_as_the_scanners_wrote_them():
    scanner, findings = scan_report.parse_report(json.loads((REPORTS / "trivy-alpine-39.json").read_text()))
    assert scanner == "trivy"
    assert findings[:2] == [
        {"id": MUSL, "severity": "critical", "package": "musl", "fixed": "1.1.20-r5", "published": "2019-08-06"},
        {"id": MUSL, "severity": "critical", "package": "musl-utils", "fixed": "1.1.20-r5", "published": "2019-08-06"},
    ]
    assert {f["id"] for f in findings} == {MUSL, "CVE-2019-1549", "CVE-2019-1551"} and len(findings) == 6
    scanner, findings = scan_report.parse_report(json.loads((REPORTS / "grype-image-simple.json").read_text()))
    assert scanner == "grype"
    assert findings == [
        {"id": "CVE-1999-0002", "severity": "critical", "package": "package-2"},
        {"id": "CVE-1999-0001", "severity": "low", "package": "package-1", "fixed": "1.2.1, 2.1.3, 3.4.0"},
    ]
    with pytest.raises(ValueError, match="neither Trivy's JSON"):
        scan_report.parse_report({"SchemaVersion": 2})
    # Results is omitempty (pkg/types/report.go), and lists every OS or package file Trivy read,
    # vulnerable or not: none at all means nothing was scanned, not a clean image
    nothing = {k: v for k, v in json.loads((REPORTS / "trivy-alpine-310.json").read_text()).items() if k != "Results"}
    with pytest.raises(ValueError, match="found no operating system or packages it knows to scan"):
        scan_report.parse_report(nothing)
    with pytest.raises(ValueError, match="without a VulnerabilityID"):
        scan_report.parse_report({"Results": [{"Vulnerabilities": [{"VulnerabilityID": "  ", "Severity": "HIGH"}]}]})


def test_a_digest_that_fixes_a_critical_is_due_at_once(sim):
    built_on(sim, "py-1", "trivy-alpine-39.json")
    sim.update(PYTHON, "py-2")  # seen now: its 7 days have not passed
    scanned(sim, "py-2", "trivy-alpine-310.json")
    ((found, reason, expedited),) = due(sim)
    assert found == digest("py-2") and expedited
    assert reason.endswith(f"fixes {MUSL} (critical, musl), which the digest it is built on has")
    sim.advance(minutes=20)  # the build takes time: the simulated builder names its digest by it
    assert sim.run_until_quiet() == [["a"]]
    assert sim.builds[-1][2] == {PYTHON: digest("py-2")}


def test_a_digest_that_brings_a_critical_is_held_past_its_delay(sim, capsys):
    built_on(sim, "py-1", "trivy-alpine-310.json")
    sim.update(PYTHON, "py-2")
    scanned(sim, "py-2", "trivy-alpine-39.json")
    sim.advance(days=8)
    assert due(sim) == []
    ((item),) = sim.plan().held
    assert item.digest == digest("py-2")
    assert item.reason == (
        f"its scan found {MUSL} (critical, musl), which the digest it is built on lacks "
        "(`image-factory unreject` accepts it)"
    )
    assert main(["plan", "--root", str(sim.root), "--now", sim.now.isoformat()]) == 0
    assert f"its scan found {MUSL} (critical, musl)" in capsys.readouterr().out
    # an operator accepts it, as a rejected one
    accept = ["unreject", "--root", str(sim.root), "--image", PYTHON, "--digest", digest("py-2")]
    assert main([*accept, "--at", format_time(sim.now + timedelta(hours=1))]) == 0
    assert due(sim) == []  # a plan for a time before the acceptance does not see it
    sim.advance(hours=1)
    assert [found for found, _, _ in due(sim)] == [digest("py-2")]
    assert main(["validate", "--root", str(sim.root)]) == 0  # findings and acceptance as the schema says


def test_another_distribution_bringing_a_critical_is_held_too(sim):
    built_on(sim, "py-1", "trivy-debian-stretch.json")
    sim.update(PYTHON, "py-2")
    scanned(sim, "py-2", "trivy-debian-buster.json")
    sim.advance(days=8)
    (held,) = sim.plan().held
    assert held.reason.startswith("its scan found CVE-") and "(critical, " in held.reason


def test_an_ignored_id_counts_for_nothing_until_its_day_is_over(factory):
    sim = factory_with(
        factory,
        "{enabled: true, ignore: [{id: " + MUSL + ", reason: 'musl not reachable', until: '2026-11-20'}]}",
    )
    built_on(sim, "py-1", "trivy-alpine-310.json")  # built 2026-11-10
    sim.update(PYTHON, "py-2")
    scanned(sim, "py-2", "trivy-alpine-39.json")
    sim.advance(days=8)  # 2026-11-18: ignored, so the usual soak, then due
    assert sim.now < datetime.fromisoformat("2026-11-21T00:00:00+00:00")
    assert [(found, expedited) for found, _, expedited in due(sim)] == [(digest("py-2"), False)]
    assert sim.plan().held == []
    sim.now = datetime.fromisoformat("2026-11-21T00:00:00+00:00")  # the ignore has expired
    assert due(sim) == []
    assert [item.digest for item in sim.plan().held] == [digest("py-2")]


def test_a_scan_that_could_not_run_never_blocks_the_soak(sim, capsys):
    built_on(sim, "py-1", "trivy-alpine-39.json")
    sim.update(PYTHON, "py-2")
    argv = ["record-scan", "--root", str(sim.root), "--image", PYTHON, "--digest", digest("py-2")]
    failed = ["--error", "no vulnerability database: mirror.example unreachable", "--at", format_time(sim.now)]
    assert main([*argv, *failed]) == 0
    assert due(sim) == []  # no evidence: it waits its delay
    sim.advance(days=8)
    ((found, reason, expedited),) = due(sim)
    assert found == digest("py-2") and not expedited
    assert "(its scan failed (no vulnerability database: mirror.example unreachable): the delay applies)" in reason
    state = yaml.safe_load(next((sim.root / "state/base-images").glob("*python*")).read_text())
    entry = next(e for e in state["runtime"]["history"] if e["digest"] == digest("py-2"))
    assert entry["scan"]["error"] == "no vulnerability database: mirror.example unreachable"


def test_without_a_scan_of_the_built_on_digest_nothing_is_decided(sim):
    sim.update(PYTHON, "py-1")
    sim.advance(days=8)
    assert sim.run_until_quiet() == [["a"]]
    sim.update(PYTHON, "py-2")
    scanned(sim, "py-2", "trivy-alpine-310.json")
    assert due(sim) == []  # no fix can be proven: the usual soak


def test_scanning_off_decides_nothing(factory):
    sim = factory_with(factory, "{enabled: false}")
    built_on(sim, "py-1", "trivy-alpine-39.json")
    sim.update(PYTHON, "py-2")
    scanned(sim, "py-2", "trivy-alpine-310.json")
    assert due(sim) == []
    _, state = load_model(sim.root)
    assert "scan" not in state.images["a"].enrolment


def entry_with(label: str, *findings: dict, others: str = "", minimum: str = "low", run: str = "r1", **extra) -> dict:
    """The history entry of digest `label`, whose latest scan (in `run`) lists `findings` in full
    and `others` as ids only."""
    at = format_time(NOW - timedelta(hours=1))
    scan = {"scanner": "trivy", "run": run, "minSeverity": minimum, "findings": list(findings), "otherIds": others}
    return {"digest": digest(label), "firstSeen": at, "seenBy": "kargo", "scan": {**scan, "at": at, **extra}}


def decide(new: dict, old: dict, policy, *past: dict):
    """judge, with the runs of `new`, `old` and the `past` entries (earlier runs, as pastScans)."""
    return judge(new, old, policy, NOW, runs_of([old, new, *past], NOW))


NOW = datetime.fromisoformat("2026-11-25T10:00:00+00:00")
CRITICAL = {"id": "CVE-0", "severity": "critical", "package": "zlib", "published": "2026-01-01"}
HIGH = {"id": "CVE-1", "severity": "high", "package": "libssl3", "published": "2026-01-01"}


def test_judge_compares_ids_whatever_the_package_or_the_severity_each_scan_gave():
    policy = ScanPolicy("high", "high")
    moved = {**HIGH, "package": "libssl3t64"}  # renamed package, same flaw
    assert decide(entry_with("n", moved), entry_with("o", HIGH), policy).fixes == ()
    assert decide(entry_with("n"), entry_with("o", HIGH), policy).fixes == (HIGH,)
    assert judge(entry_with("n"), entry_with("o", HIGH), None, NOW, {}).fixes == ()
    # graded up: medium (below the cut, an id only) in the built-on scan, critical in the new one
    upgraded = {**CRITICAL, "id": "CVE-R"}
    found = decide(entry_with("n", upgraded, minimum="high"), entry_with("o", others="CVE-R", minimum="high"), policy)
    assert found.introduces == ()
    # graded down: high in the built-on scan, below the new scan's cut: not fixed
    found = decide(entry_with("n", others="CVE-1", minimum="high"), entry_with("o", HIGH, minimum="high"), policy)
    assert found.fixes == ()
    # a list cut after its 100 most severe still knows every id, and is whole above its least severe
    cut = entry_with("n", CRITICAL, {**HIGH, "id": "CVE-2"}, omitted=3)
    assert decide(cut, entry_with("o", CRITICAL, HIGH), ScanPolicy("high", "critical")).fixes == (HIGH,)
    # Scanners name and grade vulnerabilities their own way.
    assert decide(entry_with("n", HIGH), entry_with("o", scanner="grype"), policy).note == (
        "scanned by trivy, the digest it is built on by grype: not compared"
    )


def test_a_fix_skips_the_delay_only_when_nothing_it_may_bring_is_unknown():
    policy = ScanPolicy("critical", "high")
    built_on = entry_with("o", CRITICAL)
    # kept criticals only: a new high may be among its ids without a severity
    found = decide(entry_with("n", others="CVE-9", minimum="critical"), built_on, policy)
    assert found.fixes == () and found.note == (
        "its scan lists no high findings in full: one it brings would not be seen; so what it fixes does not "
        "skip the delay"
    )
    assert decide(entry_with("n", others="CVE-9", minimum="high"), built_on, policy).expedites
    # cut at 100 among the criticals: nothing below them is whole
    cut = entry_with("n", {**CRITICAL, "id": "CVE-5"}, others="CVE-9", omitted=200)
    assert not decide(cut, built_on, policy).expedites
    # a scan without every id decides nothing
    partial = {**built_on, "scan": {**built_on["scan"], "otherIdsOmitted": 4}}
    assert judge(entry_with("n"), partial, policy, NOW, {}).note == (
        "the digest it is built on: its scan does not list every vulnerability id it found: the delay applies"
    )


def test_only_a_run_that_scanned_both_digests_compares_them_and_it_is_remembered():
    policy = ScanPolicy("critical", "critical")
    known = {"id": "CVE-2026-1", "severity": "critical", "package": "openssl"}
    never = f"never scanned in one run with the digest it is built on ({digest('o')[:19]}…): the delay applies"
    # The built-on digest was scanned in run r1 only; the new one in r2, whose database had
    # learnt of CVE-2026-1 since, or widened its affected versions: nothing is decided.
    assert decide(entry_with("n", known, run="r2"), entry_with("o", run="r1"), policy).note.startswith(never)
    assert decide(entry_with("n", run="r2"), entry_with("o", known, run="r1"), policy).fixes == ()
    # Scanned in one run, the built-on digest lacks it: held. Later runs no longer scan the
    # built-on digest, and yet their run r1 (kept in pastScans) still holds the new one.
    old = entry_with("o", run="r1")
    new = entry_with("n", known, run="r1")
    assert decide(new, old, policy).introduces == (known,)
    old_later = {**old, "scan": {**old["scan"], "run": "r3"}, "pastScans": [past_scan(old["scan"])]}
    new_later = {**new, "scan": {**new["scan"], "run": "r4"}, "pastScans": [past_scan(new["scan"])]}
    assert decide(new_later, old_later, policy).introduces == (known,)
    # A newer digest never scanned with the built-on one is not judged on another's evidence:
    # its database may see the built-on digest differently.
    newest = entry_with("n2", known, run="r4")
    assert decide(newest, old_later, policy, new_later).note.startswith(never)
    # Runs that disagree (the built-on digest found with it in one) decide nothing about it.
    both = {**old_later, "pastScans": [past_scan(old["scan"]), past_scan({**new["scan"], "run": "r4"})]}
    assert decide(new_later, both, policy).introduces == ()


def test_findings_from_an_event_are_checked(sim, capsys):
    sim.update(PYTHON, "py-1")
    argv = ["record-scan", "--root", str(sim.root), "--image", PYTHON, "--digest", digest("py-1")]
    assert main([*argv, "--findings", '[{"id": "CVE-1", "severity": "urgent"}]']) == 1
    assert "finding 1: severity 'urgent' is not one of" in capsys.readouterr().err
    assert main([*argv, "--findings", "{}"]) == 1
    assert "findings are not a list" in capsys.readouterr().err
    good = '[{"id": "CVE-1", "severity": "critical", "package": "openssl", "fixed": "3.0.16"}]'
    assert main([*argv, "--findings", good, "--scanner", "trivy"]) == 0
    assert "scanned by trivy: 1 critical" in capsys.readouterr().out


def test_the_site_the_dashboard_and_status_show_the_findings_and_the_decision(sim, tmp_path, capsys):
    from html.parser import HTMLParser

    from image_factory.output import site

    class Text(HTMLParser):
        def __init__(self, html: str):
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.feed(html)

        def handle_data(self, data):
            self.parts.append(data)

    built_on(sim, "py-1", "trivy-alpine-310.json")
    sim.update(PYTHON, "py-2")
    scanned(sim, "py-2", "trivy-alpine-39.json")
    sim.advance(days=8)
    why = f"its scan found {MUSL} (critical, musl), which the digest it is built on lacks"
    site.build(sim.root, tmp_path / "site", sim.now)
    page = " ".join(Text((tmp_path / "site/images/a.html").read_text()).parts)
    assert f"by trivy: 2 critical, 4 medium ({MUSL})" in page and why in page
    assert why in " ".join(Text((tmp_path / "site/index.html").read_text()).parts)
    root, now = str(sim.root), format_time(sim.now)
    assert main(["dashboard", "--root", root, "--now", now, "--dry-run", "--repo", "acme/factory"]) == 0
    assert MUSL in capsys.readouterr().out
    assert main(["status", "--root", root, "--now", now]) == 0
    assert MUSL in capsys.readouterr().out


def test_an_ignore_that_names_no_day_is_one_error_naming_its_line(factory, capsys):
    factory_with(factory, "{enabled: true}")
    text = (
        (factory.root / "images.yaml")
        .read_text()
        .replace(
            "scan: {enabled: true}", "scan: {enabled: true, ignore: [{id: CVE-1, reason: x, until: '2027-02-30'}]}"
        )
    )
    (factory.root / "images.yaml").write_text(text)
    assert main(["validate", "--root", str(factory.root)]) == 1
    err = capsys.readouterr().err
    assert "images.yaml:8: defaults.scan.ignore[0].until: '2027-02-30' is not a day of the calendar" in err


def test_status_names_what_a_digest_fixes_and_plan_why_a_pending_one_is_not_judged(sim, capsys):
    built_on(sim, "py-1", "trivy-alpine-39.json")
    sim.update(PYTHON, "py-2")
    scanned(sim, "py-2", "trivy-alpine-310.json")
    root, now = str(sim.root), format_time(sim.now)
    assert main(["status", "--root", root, "--now", now]) == 0
    assert f"rebuild due now (fixes {MUSL} (critical, musl), which the digest it is built on has)" in (
        capsys.readouterr().out
    )
    sim.update(PYTHON, "py-3")  # not scanned: it waits its delay, and plan says why
    sim.advance(minutes=20)
    assert sim.run_until_quiet() == [["a"]]
    assert main(["plan", "--root", root, "--now", format_time(sim.now)]) == 0
    out = capsys.readouterr().out
    assert "Pending:" in out and "not scanned yet: the delay applies" in out


def test_validate_warns_of_an_ended_ignore_and_names_an_unquoted_date(factory, capsys):
    ended = "{enabled: true, ignore: [{id: " + MUSL + ", reason: 'not reachable', until: '2020-01-31'}]}"
    factory_with(factory, ended)
    assert main(["validate", "--root", str(factory.root)]) == 0
    assert f"warning: scan.ignore {MUSL} ended on 2020-01-31 (a): its findings count again" in capsys.readouterr().err
    images = factory.root / "images.yaml"
    images.write_text(images.read_text().replace("'2020-01-31'", "2020-01-31"))
    assert main(["validate", "--root", str(factory.root)]) == 1
    assert "defaults.scan.ignore[0].until: 2020-01-31 is not a string (YAML read it as a date: quote it)" in (
        capsys.readouterr().err
    )
