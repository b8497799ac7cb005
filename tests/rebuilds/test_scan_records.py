"""Recording a scan: what `record-scan` and the drain accept, and what a scan changes in state.

A scan is evidence about a digest, never a sighting of it; bad input is one error with nothing
written; an acceptance covers the scans before it, not those after.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from image_factory.cli import main
from image_factory.errors import FactoryError
from image_factory.rebuilds import events
from image_factory.state.runtime_events import past_scans
from image_factory.timestamps import format_time

from .test_rebuild_simulation import PYTHON, digest
from .test_scan_evidence import MUSL, REPORTS, built_on, due, factory_with, scanned


@pytest.fixture
def sim(factory):
    return factory_with(factory, "{enabled: true}")


def state_files(sim) -> dict[str, str]:
    return {str(path): path.read_text() for path in sorted((sim.root / "state").rglob("*.yaml"))}


def record_scan(sim, label: str, *extra: str) -> int:
    argv = ["record-scan", "--root", str(sim.root), "--image", PYTHON, "--digest", digest(label)]
    return main([*argv, *extra])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--findings", '[{"id": "", "severity": "high"}]'], "--findings: a finding without an id"),
        (["--findings", '[{"id": "   ", "severity": "high"}]'], "--findings: a finding without an id"),
        (["--findings", "[]", "--scanner", " "], "--scanner: the scanner has no name"),
        (["--error", ""], "--error: say why the scan could not run"),
        (["--report", str(REPORTS / "trivy-alpine-39.json"), "--omitted", "3"], "--omitted: goes with --findings"),
        (["--error", "no db", "--min-severity", "high"], "--min-severity: goes with --report or --findings"),
        (["--findings", "[]", "--at", "+3d"], "is in the future"),
    ],
)
def test_bad_scan_input_is_one_error_and_writes_nothing(sim, capsys, extra, message):
    sim.update(PYTHON, "py-1")
    before = state_files(sim)
    assert record_scan(sim, "py-1", *extra) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert state_files(sim) == before


def test_a_long_scanner_name_or_error_is_kept_to_one_bounded_line(sim):
    sim.update(PYTHON, "py-1")
    assert record_scan(sim, "py-1", "--error", "x" * 500 + "\nsecond line", "--scanner", "s" * 300) == 0
    assert main(["validate", "--root", str(sim.root)]) == 0
    grype = json.loads((REPORTS / "grype-image-simple.json").read_text())
    grype["descriptor"]["name"] = "g" * 300
    (sim.root / "grype.json").write_text(json.dumps(grype))
    assert record_scan(sim, "py-1", "--report", str(sim.root / "grype.json")) == 0
    assert main(["validate", "--root", str(sim.root)]) == 0


def test_an_event_that_would_make_state_invalid_is_refused_with_nothing_written(sim):
    sim.update(PYTHON, "py-1")
    before = state_files(sim)
    with pytest.raises(FactoryError, match=r"the event would make it invalid: .*scan\.scanner"):
        events.record_scan(sim.root, PYTHON, digest("py-1"), {"scanner": ""}, sim.now)
    assert state_files(sim) == before


def test_a_scan_never_counts_as_a_sighting(sim, capsys):
    built_on(sim, "py-1", "trivy-alpine-39.json")
    # a typo, or the scan Stage ahead of the recording Stage: refused by hand unless --force
    assert record_scan(sim, "py-2", "--report", str(REPORTS / "trivy-alpine-310.json")) == 1
    assert "was never seen for docker.io/library/python:3.12-slim (a typo?)" in capsys.readouterr().err
    at = format_time(sim.now)
    job = ["--at", at, "--run", "job-1"]  # the new digest and the built-on one, in one run
    assert record_scan(sim, "py-2", "--report", str(REPORTS / "trivy-alpine-310.json"), *job, "--force") == 0
    assert record_scan(sim, "py-1", "--report", str(REPORTS / "trivy-alpine-39.json"), *job) == 0
    runtime = _runtime(sim)
    assert runtime["currentDigest"] == digest("py-1")
    (entry,) = [e for e in runtime["history"] if e["digest"] == digest("py-2")]
    assert entry["seenBy"] == "scan"
    assert due(sim) == []  # it fixes the critical, but nothing upstream has reported it yet
    sim.advance(days=8)
    assert due(sim) == []
    # the recording Stage reports it: the scan counts from then, and the fix is due at once
    sim.update(PYTHON, "py-2")
    assert _runtime(sim)["currentDigest"] == digest("py-2")
    ((found, reason, expedited),) = due(sim)
    assert found == digest("py-2") and expedited and f"fixes {MUSL}" in reason


def test_a_scan_keeps_a_forced_digest_forced(sim):
    sim.update(PYTHON, "py-1")
    argv = ["--root", str(sim.root), "--image", PYTHON, "--digest", digest("py-9")]
    assert main(["reject", *argv, "--reason", "known bad", "--force", "--at", format_time(sim.now)]) == 0
    assert record_scan(sim, "py-9", "--findings", "[]", "--force", "--at", format_time(sim.now)) == 0
    (entry,) = [e for e in _runtime(sim)["history"] if e["digest"] == digest("py-9")]
    assert entry["seenBy"] == "forced" and _runtime(sim)["currentDigest"] == digest("py-1")


def test_an_acceptance_covers_what_its_scan_had_found_however_often_it_is_scanned_again(sim):
    built_on(sim, "py-1", "trivy-alpine-310.json")
    sim.update(PYTHON, "py-2")
    argv = ["--root", str(sim.root), "--image", PYTHON, "--digest", digest("py-2")]
    assert main(["reject", *argv, "--reason", "broke a build", "--at", format_time(sim.now)]) == 0
    sim.advance(hours=1)
    assert main(["unreject", *argv, "--at", format_time(sim.now)]) == 0  # nothing scanned yet: nothing accepted
    sim.advance(hours=1)
    scanned(sim, "py-2", "trivy-alpine-39.json")  # found since: it holds
    sim.advance(days=8)
    assert [item.digest for item in sim.plan().held] == [digest("py-2")]
    assert main(["unreject", *argv, "--at", format_time(sim.now)]) == 0
    assert sim.plan().held == [] and [found for found, _, _ in due(sim)] == [digest("py-2")]
    # the next digest's scan Job scans py-2 again, finding the same: still accepted
    sim.advance(hours=1)
    scanned(sim, "py-2", "trivy-alpine-39.json")
    assert sim.plan().held == []
    # a scan that finds something new in it holds it again
    sim.advance(hours=1)
    scanned(sim, "py-2", "trivy-debian-buster.json")
    (held,) = sim.plan().held
    assert held.digest == digest("py-2") and MUSL not in held.reason


def test_an_older_scan_than_the_one_recorded_is_kept_as_a_past_one_and_says_so(sim, capsys):
    sim.update(PYTHON, "py-1")
    assert record_scan(sim, "py-1", "--findings", "[]", "--other-ids", "", "--at", format_time(sim.now)) == 0
    latest = _runtime(sim)["history"][0]["scan"]
    capsys.readouterr()
    older = format_time(sim.now.replace(year=sim.now.year - 1))
    assert record_scan(sim, "py-1", "--report", str(REPORTS / "trivy-alpine-39.json"), "--at", older) == 0
    assert f"keeps its scan of {format_time(sim.now)}, newer than this one" in capsys.readouterr().out
    (entry,) = _runtime(sim)["history"]
    assert entry["scan"] == latest
    # kept as what it found besides the latest scan (which found nothing)
    assert entry["pastScans"] == [{"run": entry["pastScans"][0]["run"], "at": older, "plus": MUSL_AND_OPENSSL}]
    assert [(past["at"], past["ids"]) for past in past_scans(entry)] == [(older, MUSL_AND_OPENSSL)]


MUSL_AND_OPENSSL = "CVE-2019-14697 CVE-2019-1549 CVE-2019-1551"


def _runtime(sim) -> dict:
    import yaml

    path = next((sim.root / "state/base-images").glob("*python*"))
    return yaml.safe_load(path.read_text())["runtime"]


def test_an_operators_reject_or_expedite_of_a_digest_only_a_scan_named_is_no_sighting(sim):
    built_on(sim, "py-1", "trivy-alpine-39.json")
    at = format_time(sim.now)
    assert record_scan(sim, "py-2", "--findings", "[]", "--force", "--at", at) == 0
    argv = ["--root", str(sim.root), "--image", PYTHON, "--digest", digest("py-2")]
    assert main(["reject", *argv, "--reason", "bad", "--at", at]) == 0
    assert main(["unreject", *argv, "--at", at]) == 0
    assert main(["expedite", *argv, "--reason", "CVE-2026-1", "--at", at]) == 0
    (entry,) = [e for e in _runtime(sim)["history"] if e["digest"] == digest("py-2")]
    assert entry["seenBy"] in ("scan", "forced") and _runtime(sim)["currentDigest"] == digest("py-1")
    sim.advance(days=8)
    assert due(sim) == [(digest("py-2"), "docker.io/library/python:3.12-slim: " + digest("py-2")
                         + " expedited: CVE-2026-1", True)]  # fmt: skip
    # only named: an operator's expedite alone may use it (commands.md), and never as current


def test_an_acceptance_from_the_future_is_refused(sim, capsys):
    sim.update(PYTHON, "py-1")
    assert record_scan(sim, "py-1", "--findings", "[]") == 0
    argv = ["unreject", "--root", str(sim.root), "--image", PYTHON, "--digest", digest("py-1")]
    assert main([*argv, "--at", "+400d"]) == 1
    assert "--at: +400d is in the future" in capsys.readouterr().err


def test_a_rejection_and_an_acceptance_decide_by_their_times_not_their_order():
    from image_factory.state import runtime_events
    from image_factory.state.store import Runtime

    d = digest("py-1")
    seen = runtime_events.record_sighting(Runtime(), d, datetime(2026, 11, 1, tzinfo=UTC), "kargo")
    reject = lambda r: runtime_events.record_rejection(r, d, "broke a build", datetime(2026, 11, 5, tzinfo=UTC))  # noqa: E731
    accept = lambda r: runtime_events.clear_rejection(r, d, datetime(2026, 11, 4, tzinfo=UTC))  # noqa: E731
    first, second = accept(reject(seen)), reject(accept(seen))
    assert first == second == reject(second)  # the same rejection again changes nothing
    assert runtime_events.rejection(first.history[0])["reason"] == "broke a build"  # rejected after it was accepted
    later = runtime_events.clear_rejection(first, d, datetime(2026, 11, 6, tzinfo=UTC))
    assert runtime_events.rejection(later.history[0]) is None


def test_a_verdict_from_the_future_or_an_acceptance_before_the_rejection_is_refused(sim, capsys):
    sim.update(PYTHON, "py-1")
    argv = ["--root", str(sim.root), "--image", PYTHON, "--digest", digest("py-1")]
    for command in (["reject", "--reason", "bad"], ["expedite", "--reason", "CVE-1"], ["unreject"]):
        assert main([command[0], *argv, *command[1:], "--at", "+30d"]) == 1
        assert "--at: +30d is in the future" in capsys.readouterr().err
    assert main(["reject", *argv, "--reason", "bad", "--at", "2026-11-05T00:00:00Z"]) == 0
    before = state_files(sim)
    assert main(["unreject", *argv, "--at", "2026-11-04T00:00:00Z"]) == 1
    assert "it was rejected at 2026-11-05T00:00:00Z, after 2026-11-04T00:00:00Z: accept it then or later" in (
        capsys.readouterr().err
    )
    assert state_files(sim) == before


def test_past_scans_are_kept_as_differences_whatever_order_the_scans_come_in():
    from image_factory.state import runtime_events
    from image_factory.state.store import Runtime

    d = digest("py-1")
    ids = [f"CVE-2026-{n:04d}" for n in range(150)]

    def scan(run: str, found: list[str]) -> dict:
        return {"scanner": "trivy", "run": run, "minSeverity": "high", "findings": [], "otherIds": " ".join(found)}

    scans = [  # four runs of one digest: the database learns of one vulnerability and drops another
        (scan(f"r{n}", ids[n : 140 + n]), datetime(2026, 11, 1 + n, tzinfo=UTC)) for n in range(5)
    ]
    seen = runtime_events.record_sighting(Runtime(), d, datetime(2026, 10, 30, tzinfo=UTC), "kargo")
    results = []
    for order in (scans, scans[::-1], [scans[2], scans[0], scans[4], scans[1], scans[3], scans[2]]):
        runtime = seen
        for each, at in order:
            runtime = runtime_events.record_scan(runtime, d, each, at)
        results.append(runtime)
    assert results[0] == results[1] == results[2]
    (entry,) = results[0].history
    assert entry["scan"]["run"] == "r4" and [past["run"] for past in entry["pastScans"]] == ["r1", "r2", "r3"]
    assert entry["pastScans"][0] == {
        "run": "r1",
        "at": "2026-11-02T00:00:00Z",
        "plus": "CVE-2026-0001 CVE-2026-0002 CVE-2026-0003",
        "minus": "CVE-2026-0141 CVE-2026-0142 CVE-2026-0143",
    }
    assert [set(p["ids"].split()) for p in runtime_events.past_scans(entry)] == [
        set(ids[n : 140 + n]) for n in (1, 2, 3)
    ]


def test_a_failed_scan_takes_nothing_away(sim):
    built_on(sim, "py-1", "trivy-alpine-310.json")
    sim.update(PYTHON, "py-2")
    scanned(sim, "py-2", "trivy-alpine-39.json")  # one run: py-2 brings the critical
    sim.advance(days=8)
    assert [item.digest for item in sim.plan().held] == [digest("py-2")]
    # the next run's rescans fail (Docker Hub's rate limit): both digests keep what they had
    at = format_time(sim.now)
    for label in ("py-1", "py-2"):
        assert record_scan(sim, label, "--error", "toomanyrequests: pull rate limit", "--at", at) == 0
    assert [item.digest for item in sim.plan().held] == [digest("py-2")]
    (entry,) = [e for e in _runtime(sim)["history"] if e["digest"] == digest("py-2")]
    assert "error" not in entry["scan"] and entry["scanFailed"]["error"] == "toomanyrequests: pull rate limit"
    # a later scan that ran puts the failure behind it
    sim.advance(hours=1)
    scanned(sim, "py-2", "trivy-alpine-39.json")
    (entry,) = [e for e in _runtime(sim)["history"] if e["digest"] == digest("py-2")]
    assert "scanFailed" not in entry
    # an acceptance takes its ids from every run, whichever scan is latest
    argv = ["--root", str(sim.root), "--image", PYTHON, "--digest", digest("py-2")]
    assert record_scan(sim, "py-2", "--error", "toomanyrequests", "--at", format_time(sim.now)) == 0
    assert main(["unreject", *argv, "--at", format_time(sim.now)]) == 0
    (entry,) = [e for e in _runtime(sim)["history"] if e["digest"] == digest("py-2")]
    assert MUSL in entry["accepted"]["ids"].split()
    assert sim.plan().held == []
