"""`image-factory drain`: every received event applied in one process, and the same state whatever
the order, the split into drains, or the duplicated deliveries (GitHub orders no runs, and a
sender may resend)."""

from __future__ import annotations

import json
import os
import random

import pytest

from image_factory.cli import main

from ..conftest import REPO_ROOT
from ..event_burst import burst, cosign_that_accepts, digest, drain, snapshot


@pytest.fixture
def factory_root(example_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{cosign_that_accepts(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}")
    return example_factory.root


def fresh(example_factory_root, tmp_path, name):
    """Another copy of the example factory, as it was before any event."""
    import shutil

    copy = tmp_path / name
    shutil.copytree(example_factory_root, copy)
    return copy


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_order_any_split_and_duplicates_give_the_same_state(factory_root, tmp_path, seed):
    """One burst applied event by event in the order GitHub received them, and the same burst
    shuffled, duplicated and cut into drains of random sizes: the same state files."""
    events = burst(seed, size=120, duplicates=15)
    pristine = fresh(factory_root, tmp_path, "pristine")
    one_by_one = fresh(pristine, tmp_path, "one-by-one")
    for number, event in enumerate(sorted(events, key=lambda e: (e["receivedAt"], e["id"]))):
        drain(one_by_one, [event], tmp_path / f"single-{number}")
    expected = snapshot(one_by_one)
    assert expected != snapshot(pristine)

    rng = random.Random(seed)
    for attempt in range(2):
        shuffled = events[:]
        rng.shuffle(shuffled)
        root = fresh(pristine, tmp_path, f"shuffled-{attempt}")
        while shuffled:
            take = rng.randint(1, 40)
            drain(root, shuffled[:take], tmp_path / f"drain-{attempt}-{len(shuffled)}")
            shuffled = shuffled[take:]
        got = snapshot(root)
        assert got == expected


def test_a_build_reported_before_the_sighting_of_its_base_lands_the_same(factory_root, tmp_path):
    python = "docker.io/library/python:3.12-slim"
    new = digest("python-new")
    built = {
        "image": "base-python",
        "result": "success",
        "digest": digest("built"),
        "bases": {python: new},
        "run_url": "https://github.com/acme-platform/image-factory/actions/runs/7",
        "signed": True,
    }
    sighting = {"id": "1", "type": "base-image-updated", "sender": "image-factory-kargo[bot]"}
    sighting |= {"receivedAt": "2026-11-02T09:00:00Z", "payload": {"image": python, "digest": new}}
    report = {"id": "2", "type": "image-built", "sender": "acme-builds", "receivedAt": "2026-11-02T09:05:00Z"}
    report |= {"payload": built}
    first = fresh(factory_root, tmp_path, "sighting-first")
    assert drain(first, [sighting], tmp_path / "a") == 0 and drain(first, [report], tmp_path / "b") == 0
    second = fresh(factory_root, tmp_path, "report-first")
    assert drain(second, [report], tmp_path / "c") == 0 and drain(second, [sighting], tmp_path / "d") == 0
    assert snapshot(first) == snapshot(second)
    # the digest base-python is now built on, where the scan Job reads it (state/built_on.py)
    built_on = json.loads((first / "state/built-on/docker.io-library-python-3.12-slim-ea59dc550ffd.json").read_text())
    assert built_on["base-python"] == new


def test_refused_and_malformed_events_are_named_and_the_rest_applied(factory_root, tmp_path, capsys):
    python = "docker.io/library/python:3.12-slim"
    good = {"id": "1", "type": "base-image-updated", "sender": "image-factory-kargo[bot]"}
    good |= {"receivedAt": "2026-11-02T09:00:00Z", "payload": {"image": python, "digest": digest("good")}}
    forged = {**good, "id": "2", "type": "base-image-verified", "sender": "mallory"}
    option = {**good, "id": "3", "payload": {"image": "--push", "digest": digest("x")}}
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "garbage.json").write_text("{not json")
    assert drain(factory_root, [good, forged, option], folder / "events") == 1
    out, err = capsys.readouterr()
    assert "drained 3 event(s): 1 applied, 2 refused" in out
    assert "refused event 2 (base-image-verified of docker.io/library/python:3.12-slim)" in err
    assert "'mallory' is not in trust.senders" in err
    # a value that looks like an option stays a value (`--image=--push`), refused as a reference
    assert "refused event 3 (base-image-updated of --push)" in err and "invalid image reference '--push'" in err
    assert (
        digest("good")
        in (factory_root / "state/base-images/docker.io-library-python-3.12-slim-ea59dc550ffd.yaml").read_text()
    )
    # a folder of files that are not events: each named, nothing applied
    assert main(["drain", "--root", str(factory_root), "--from", str(folder)]) == 1
    assert "garbage.json: not an event the receive job wrote: not JSON" in capsys.readouterr().err


def test_the_subjects_file_names_what_the_applied_events_were_about(factory_root, tmp_path):
    events = burst(5, size=30, duplicates=0)
    folder, subjects = tmp_path / "inbox", tmp_path / "subjects.txt"
    folder.mkdir()
    for event in events:
        (folder / f"{event['id']}.json").write_text(json.dumps(event))
    main(["drain", "--root", str(factory_root), "--from", str(folder), "--subjects", str(subjects)])
    trusted = {e["payload"]["image"] for e in events if e["sender"] != "mallory"}
    assert subjects.read_text().splitlines() == sorted(trusted)
    # dispatch takes them all at once
    args = [arg for subject in sorted(trusted) for arg in ("--base", subject)]
    assert main(["dispatch", "--root", str(factory_root), "--dry-run", *args]) == 0


def event(number: int, kind: str, sender: str, payload: dict) -> dict:
    at = f"2026-11-02T09:{number // 60:02d}:{number % 60:02d}Z"
    return {"id": str(number), "type": kind, "sender": sender, "receivedAt": at, "payload": payload}


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (
            {"image": "base-python", "result": "failure", "run_url": "https://github.com/a/b/actions/runs/1\u0000"},
            "U+0000",
        ),
        ({"image": "base-python", "result": "failure", "error": "x\ud800"}, "U+D800"),
        ({"image": "base-python\n::error::forged", "result": "failure"}, "U+000A"),
        ({"image": "base-python", "result": "failure", "freight": "f\u007f"}, "U+007F"),
    ],
    ids=["nul", "surrogate", "newline", "delete"],
)
def test_text_no_state_file_or_log_line_may_hold_is_refused_and_the_rest_applied(
    factory_root, tmp_path, capsys, payload, why
):
    """A NUL in a run URL would be written into the image's state file and break every later read of
    it; a lone surrogate crashed the YAML writer; a line break would start a workflow command."""
    python = "docker.io/library/python:3.12-slim"
    good = event(1, "base-image-updated", "image-factory-kargo[bot]", {"image": python, "digest": digest("ok")})
    bad = event(2, "image-built", "anyone", payload)
    assert drain(factory_root, [good, bad], tmp_path / "inbox") == 1
    out, err = capsys.readouterr()
    assert "1 applied, 1 refused" in out and f"holds {why}, which no event field may hold" in err
    assert not any(line.startswith("::") for line in err.splitlines())
    assert main(["validate", "--root", str(factory_root)]) == 0


def test_a_soak_must_name_an_image_and_a_cve_a_reason(factory_root, tmp_path, capsys):
    """Anyone may send base-image-soaked, which records nothing: an image that is neither watched
    nor managed is refused, or its dispatch --base would fail the drain's rebuilds for everyone."""
    events = [
        event(1, "base-image-soaked", "anyone", {"image": "docker.io/library/nothing:1"}),
        event(2, "base-image-soaked", "anyone", {"image": "-x"}),
        event(3, "base-image-cve", "image-factory-kargo[bot]", {"image": "python:3.12-slim", "digest": digest("c")}),
        event(4, "base-image-soaked", "anyone", {"image": "docker.io/library/python:3.12-slim"}),
    ]
    folder, subjects = tmp_path / "inbox", tmp_path / "subjects.txt"
    folder.mkdir()
    for item in events:
        (folder / f"{item['id']}.json").write_text(json.dumps(item))
    assert main(["drain", "--root", str(factory_root), "--from", str(folder), "--subjects", str(subjects)]) == 1
    out, err = capsys.readouterr()
    assert "1 applied, 3 refused" in out
    assert "neither a watched image nor a managed image" in err and "payload.reason missing" in err
    assert subjects.read_text() == "docker.io/library/python:3.12-slim\n"


def test_a_base_checked_with_a_key_gets_the_events_time_on_its_verdict(factory_root, tmp_path):
    """verify --record after a new digest stamps the verdict with the event's time, not the
    drain's: the same event drained twice, or later, records the same verdict."""
    from image_factory.rebuilds.inbox import checks, parse_event

    sighting = event(5, "base-image-updated", "k", {"image": "python:3.12-slim", "digest": digest("v")})
    (check,) = checks(parse_event("e", json.dumps(sighting)))
    assert check[-1] == "--at=2026-11-02T09:00:05Z"


def test_scan_findings_are_taken_from_trusted_senders_only(factory_root, tmp_path, capsys):
    """base-image-scanned decides what skips the delay and what is held: only trust.senders may
    send it; refused, it changes nothing. Applied twice, it records the same scan."""
    import yaml

    from image_factory.rebuilds.inbox import TYPES
    from image_factory.trust.scan_report import EVENT

    python = "docker.io/library/python:3.12-slim"
    findings = json.dumps([{"id": "CVE-2019-14697", "severity": "critical", "package": "musl", "fixed": "1.1.20-r5"}])
    payload = {"image": python, "digest": digest("s"), "scanner": "trivy", "findings": findings}
    trusted = event(1, EVENT, "image-factory-kargo[bot]", payload)
    forged = event(2, EVENT, "team-a", {**payload, "digest": digest("t"), "findings": "[]"})
    assert drain(factory_root, [trusted, forged], tmp_path / "inbox") == 1
    out, err = capsys.readouterr()
    assert "1 applied, 1 refused" in out and "team-a" in err and "trust.senders" in err
    state = next((factory_root / "state" / "base-images").glob("docker.io-library-python-3.12-slim-*.yaml"))
    history = yaml.safe_load(state.read_text())["runtime"]["history"]
    (entry,) = [e for e in history if e["digest"] == digest("s")]
    assert entry["scan"]["findings"] == json.loads(findings) and entry["scan"]["at"] == trusted["receivedAt"]
    assert not any(e["digest"] == digest("t") for e in history)
    before = state.read_text()
    assert drain(factory_root, [trusted], tmp_path / "again") == 0
    assert state.read_text() == before
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "events.yml").read_text())
    assert set(workflow[True]["repository_dispatch"]["types"]) == set(TYPES)
