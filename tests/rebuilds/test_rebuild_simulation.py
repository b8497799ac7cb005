"""Weeks of base-image updates and builds, simulated with an injected clock (no sleeping).

Everything goes through the real commands' code on real state files: record-update, expedite,
record-build and plan.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from image_factory.cli import main
from image_factory.discovery.discover import discover, load_model
from image_factory.enrolment.durations import parse_duration
from image_factory.rebuilds import events, planner
from image_factory.timestamps import parse_time

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PYTHON = "docker.io/library/python:3.12-slim"
NODE = "docker.io/library/node:22"
ALPINE = "docker.io/library/alpine:3.20"


def digest(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


class Simulation:
    """A factory, a clock, and a builder that builds what the plan says is due in wave 1."""

    def __init__(self, factory):
        self.root = factory.root
        self.now = START
        self.builds: list[tuple[datetime, str, dict[str, str]]] = []
        self.failing: set[str] = set()

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)

    def update(self, ref: str, label: str) -> None:
        events.record_update(self.root, ref, digest(label), self.now, None)

    def plan(self) -> planner.Plan:
        config, state = load_model(self.root)
        return planner.plan(state, self.now, parse_duration(config.cascade_delay))

    def build_due(self) -> list[str]:
        """Build every automatic wave-1 item; failures for images in `failing`."""
        plan = self.plan()
        auto = {item.image for item in plan.due if item.auto}
        built = []
        for image, bases in plan.builds().items():
            if image not in auto:
                continue
            _, state = load_model(self.root)
            pinned = (
                dict(state.images[image].runtime.last_build.get("baseDigests", {}))
                if state.images[image].runtime.last_build
                else {}
            )
            pinned.update(bases)  # every base pinned: what changed, and what it was built with before
            failed = image in self.failing
            result = "failure" if failed else "success"
            produced = None if failed else digest(f"{image}@{self.now.isoformat()}")
            events.record_build(self.root, image, produced, result, pinned, None, self.now)
            self.builds.append((self.now, image, pinned))
            built.append(image)
        return sorted(built)

    def run_until_quiet(self) -> list[list[str]]:
        """Build wave after wave (each build instant) until nothing automatic is due."""
        rounds = []
        while built := self.build_due():
            rounds.append(built)
        return rounds


@pytest.fixture
def sim(factory):
    entries = [
        f"  - {{name: {name}, registry: ghcr.io, repository: acme/{name},{extra}"
        f" source: {{provider: local, repo: {name}, dockerfile: Dockerfile, workflow: b.yml}}}}"
        for name, extra in [
            ("a", ""),
            ("b", ""),
            ("c", ""),
            ("x", ""),
            ("d", ""),
            ("busy", ""),
            ("manual", " autoRebuild: false,"),
        ]
    ]
    factory.write("images.yaml", "images:\n" + "\n".join(entries) + "\n")
    factory.write("a/Dockerfile", "FROM python:3.12-slim\n")
    factory.write("b/Dockerfile", "FROM ghcr.io/acme/a\n")
    factory.write("c/Dockerfile", "FROM ghcr.io/acme/b\n")
    factory.write("x/Dockerfile", "FROM ghcr.io/acme/a\n")
    factory.write("d/Dockerfile", "FROM ghcr.io/acme/b\nCOPY --from=ghcr.io/acme/x /x /x\n")
    factory.write("busy/Dockerfile", "FROM node:22\n")
    factory.write("manual/Dockerfile", "FROM alpine:3.20\n")
    discover(factory.root)
    return Simulation(factory)


def test_quiet_base_rebuilds_once_after_the_delay_and_cascades_in_order(sim):
    sim.update(PYTHON, "py-1")
    sim.advance(days=6, hours=23)
    plan = sim.plan()
    assert plan.due == []
    assert [(p.image, p.digest, p.eligible_at) for p in plan.pending if p.base == PYTHON] == [
        ("a", digest("py-1"), "2026-11-09T09:00:00Z")
    ]
    sim.advance(hours=1)
    plan = sim.plan()
    assert [(d.image, d.base, d.digest, d.wave) for d in plan.due] == [("a", PYTHON, digest("py-1"), 1)]
    assert {(p.image, p.after) for p in plan.pending if p.after} == {
        ("b", "a"),
        ("x", "a"),
        ("c", "b"),
        ("d", "b"),
        ("d", "x"),
    }

    rounds = sim.run_until_quiet()
    assert rounds == [["a"], ["b", "x"], ["c", "d"]]  # the diamond d is rebuilt once, after b and x
    by_image = {image: bases for _, image, bases in sim.builds}
    a_digest = digest(f"a@{sim.now.isoformat()}")
    assert by_image["a"] == {PYTHON: digest("py-1")}
    assert by_image["b"] == {"ghcr.io/acme/a:latest": a_digest}  # C's chain: each pinned to its parent's new digest
    assert by_image["c"] == {"ghcr.io/acme/b:latest": digest(f"b@{sim.now.isoformat()}")}
    assert by_image["d"] == {
        "ghcr.io/acme/b:latest": digest(f"b@{sim.now.isoformat()}"),
        "ghcr.io/acme/x:latest": digest(f"x@{sim.now.isoformat()}"),
    }
    assert sim.plan().due == []


def test_busy_base_never_starves_and_each_build_uses_a_digest_at_least_7_days_old(sim):
    seen = {}
    for day in range(0, 43, 3):  # a new node:22 digest every 3 days for six weeks
        sim.now = START + timedelta(days=day)
        sim.update(NODE, f"node-{day}")
        seen[digest(f"node-{day}")] = sim.now
        sim.build_due()
    busy = [(when, bases[NODE]) for when, image, bases in sim.builds if image == "busy"]
    assert len(busy) >= 4
    for when, used in busy:
        assert when - seen[used] >= timedelta(days=7)
        newer_and_aged = [d for d, at in seen.items() if at > seen[used] and when - at >= timedelta(days=7)]
        assert newer_and_aged == []  # it took the newest digest old enough
    assert len({used for _, used in busy}) == len(busy)  # never the same digest twice


def test_expedite_skips_the_delay_for_one_digest(sim, capsys):
    sim.update(PYTHON, "py-1")
    sim.advance(days=1)
    assert sim.plan().due == []
    assert (
        main(
            [
                "expedite",
                "--root",
                str(sim.root),
                "--image",
                "python:3.12-slim",
                "--digest",
                digest("py-1"),
                "--reason",
                "CVE-2026-1234 in openssl",
                "--at",
                "2026-11-03T09:00:00Z",
            ]
        )
        == 0
    )
    assert "may be built on now (CVE-2026-1234 in openssl)" in capsys.readouterr().out
    (item,) = sim.plan().due
    assert (item.image, item.digest) == ("a", digest("py-1"))
    assert "expedited: CVE-2026-1234 in openssl" in item.reason
    _, state = load_model(sim.root)
    entry = state.base_images[PYTHON].runtime.history[0]
    assert entry["expedited"] == {"reason": "CVE-2026-1234 in openssl", "at": "2026-11-03T09:00:00Z"}
    sim.update(PYTHON, "py-2")  # a later digest still waits its delay
    assert [(d.image, d.digest) for d in sim.plan().due] == [("a", digest("py-1"))]
    # asked about a time before the expedite (08:59, it came at 09:00), the plan does not see it
    sim.now = datetime(2026, 11, 3, 8, 59, tzinfo=UTC)
    assert sim.plan().due == []
    assert [(p.image, p.digest) for p in sim.plan().pending if p.base == PYTHON] == [("a", digest("py-1"))]


def test_failed_build_blocks_descendants_until_it_succeeds(sim):
    sim.update(PYTHON, "py-1")
    sim.advance(days=7)
    sim.failing.add("a")
    assert sim.build_due() == ["a"]
    plan = sim.plan()
    blocked = {(b.image, b.blocked_by) for b in plan.blocked}
    assert blocked == {("a", "a"), ("b", "a"), ("c", "a"), ("x", "a"), ("d", "a")}
    # not due: its build on these very digests failed, and dispatch would not send it again by
    # itself; the plan says how to (as dispatch does)
    (own,) = [b for b in plan.blocked if b.image == "a"]
    assert own.reason.endswith("`image-factory dispatch --image a --retry` builds them again")
    assert sim.build_due() == []
    sim.failing.clear()
    sim.update(PYTHON, "py-2")
    sim.advance(days=7)
    assert sim.run_until_quiet() == [["a"], ["b", "x"], ["c", "d"]]
    assert sim.plan().blocked == []


def test_auto_rebuild_off_is_planned_but_left_to_a_human(sim):
    sim.update(ALPINE, "alpine-1")
    sim.advance(days=8)
    (item,) = sim.plan().due
    assert (item.image, item.auto) == ("manual", False)
    assert sim.build_due() == []


def test_record_update_is_idempotent_and_orders_out_of_order_events(sim):
    sim.update(PYTHON, "py-2")
    events.record_update(sim.root, PYTHON, digest("py-1"), START - timedelta(days=2), "freight-1")
    sim.update(PYTHON, "py-2")
    _, state = load_model(sim.root)
    runtime = state.base_images[PYTHON].runtime
    assert [e["digest"] for e in runtime.history] == [digest("py-1"), digest("py-2")]
    assert runtime.history[0]["freight"] == "freight-1"
    assert runtime.current_digest == digest("py-2")


def test_plan_json_contract(sim, capsys):
    sim.update(PYTHON, "py-1")
    assert main(["plan", "--root", str(sim.root), "--now", "2026-11-10T00:00:00Z", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"due", "pending", "blocked", "held"}
    assert result["held"] == []
    assert result["due"] == [
        {
            "image": "a",
            "base": PYTHON,
            "digest": digest("py-1"),
            "reason": f"{PYTHON}: {digest('py-1')} first seen 2026-11-02T09:00:00Z, past the 7d delay",
            "wave": 1,
            "auto": True,
            "expedited": False,
        }
    ]
    assert parse_time("2026-11-10T00:00:00Z") > START


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["record-update", "--image", "redis:7", "--digest", "sha256:" + "a" * 64],
            "error: --image: docker.io/library/redis:7 is not a watched image"
            " (no state/base-images file: enrol it or build on it, then run discover)",
        ),
        (
            ["record-update", "--image", "ghcr.io/acme/a", "--digest", "sha256:" + "a" * 64],
            "error: --image: ghcr.io/acme/a:latest is not a watched image"
            " (it is managed image 'a': its builds are recorded with record-build)",
        ),
        (
            ["record-update", "--image", "python:3.12-slim", "--digest", "sha256:abc"],
            "error: --digest: invalid digest 'sha256:abc'",
        ),
        (
            [
                "record-update",
                "--image",
                "python:3.12-slim",
                "--digest",
                "sha256:" + "a" * 64,
                "--seen-at",
                "yesterday",
            ],
            "error: --seen-at: 'yesterday' is not an ISO 8601 time (e.g. 2026-11-25T10:00:00Z)",
        ),
        (
            ["record-build", "--image", "nope", "--result", "failure"],
            "error: --image: 'nope' is not a managed image in images.yaml",
        ),
        (
            ["record-build", "--image", "a", "--result", "success"],
            "error: --digest: a successful build needs the digest it pushed",
        ),
        (
            ["record-build", "--image", "a", "--result", "success", "--digest", "sha256:" + "b" * 64],
            "error: --bases: a successful build of a needs the digests it was built on (--base REF=DIGEST, or "
            "--bases JSON): without them the plan cannot know which base digests it is built on",
        ),
        (
            ["record-build", "--image", "mannual", "--result", "failure"],
            "error: --image: 'mannual' is not a managed image in images.yaml (did you mean manual?)",
        ),
        (
            ["expedite", "--image", "python:3.12-slim", "--digest", "sha256:" + "a" * 64, "--reason", " "],
            "error: --reason: say why the delay is skipped",
        ),
    ],
)
def test_bad_event_input_is_refused_and_changes_nothing(sim, args, message, capsys):
    factory_files = {p: p.read_bytes() for p in (sim.root / "state").rglob("*.yaml")}
    assert main([args[0], "--root", str(sim.root), *args[1:]]) == 1
    assert capsys.readouterr().err.strip() == message
    assert {p: p.read_bytes() for p in (sim.root / "state").rglob("*.yaml")} == factory_files


def test_cascade_delay_from_images_yaml(sim):
    sim_yaml = (sim.root / "images.yaml").read_text()
    (sim.root / "images.yaml").write_text("defaults: {cascadeDelay: 2h}\n" + sim_yaml)
    sim.update(PYTHON, "py-1")
    sim.advance(days=7)
    assert sim.build_due() == ["a"]
    plan = sim.plan()
    assert [(p.image, p.eligible_at) for p in plan.pending if p.base == "ghcr.io/acme/a:latest"] == [
        ("b", "2026-11-09T11:00:00Z"),
        ("x", "2026-11-09T11:00:00Z"),
    ]
    assert plan.due == []
    sim.advance(hours=2)
    assert sim.build_due() == ["b", "x"]


def status_of(sim, capsys) -> dict:
    capsys.readouterr()
    assert main(["status", "--root", str(sim.root), "--now", sim.now.strftime("%Y-%m-%dT%H:%M:%SZ"), "--json"]) == 0
    return {row["image"]: row for row in json.loads(capsys.readouterr().out)["neverBuilt"]}


def test_status_lists_images_never_built_with_what_their_first_build_would_use(sim, capsys):
    """Once `status` said "every managed image is built on the current digest" of a factory
    that had built nothing."""
    rows = status_of(sim, capsys)
    assert sorted(rows) == ["a", "b", "busy", "c", "d", "manual", "x"]
    assert rows["a"] == {
        "image": "a",
        "wouldBuildOn": {PYTHON: None},
        "build": f"waiting for a first digest of {PYTHON}",
    }
    assert rows["b"]["build"] == "waiting for a's first build"
    sim.update(PYTHON, "py-1")
    rows = status_of(sim, capsys)
    assert rows["a"]["wouldBuildOn"] == {PYTHON: None}  # seen, but not past the delay yet
    assert rows["a"]["build"] == "first build pending until 2026-11-09T09:00:00Z"
    sim.advance(days=7)
    rows = status_of(sim, capsys)
    assert rows["a"] == {"image": "a", "wouldBuildOn": {PYTHON: digest("py-1")}, "build": "first build due now"}
    sim.build_due()
    rows = status_of(sim, capsys)
    assert "a" not in rows and rows["b"]["build"] == "first build due now"
    capsys.readouterr()
    assert main(["status", "--root", str(sim.root), "--now", sim.now.strftime("%Y-%m-%dT%H:%M:%SZ")]) == 0
    text = capsys.readouterr().out
    assert (
        f"b: never built; its first build would use ghcr.io/acme/a:latest@{digest('a@' + sim.now.isoformat())}" in text
    )
    assert "every managed image is built" not in text


def test_pending_shows_the_next_digest_per_base_and_counts_the_newer_ones(sim, capsys):
    """A base that changed four times in a week: one pending row (the next to become eligible),
    not four; JSON reasons keep whole digests, the text cuts them."""
    for day in range(4):
        sim.update(NODE, f"node-{day}")
        sim.advance(days=1)
    plan = sim.plan()
    rows = [(p.image, p.digest, p.eligible_at, p.later) for p in plan.pending if p.base == NODE]
    assert rows == [("busy", digest("node-0"), "2026-11-09T09:00:00Z", 3)]
    now = sim.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    capsys.readouterr()
    assert main(["plan", "--root", str(sim.root), "--now", now]) == 0
    text = capsys.readouterr().out
    assert (
        f"  busy ← {NODE} @ {digest('node-0')[:19]}… eligible at 2026-11-09T09:00:00Z (then 3 newer digests)"
    ) in text.splitlines()
    sim.advance(days=4)
    assert main(["plan", "--root", str(sim.root), "--now", sim.now.strftime("%Y-%m-%dT%H:%M:%SZ"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (due,) = [item for item in result["due"] if item["image"] == "busy"]
    assert digest("node-1") in due["reason"]  # whole, in JSON: the newest digest 7 days old
    (pending,) = [item for item in result["pending"] if item["image"] == "busy"]
    assert (pending["digest"], pending["later"]) == (digest("node-2"), 1)


@pytest.mark.parametrize("command", ["reject", "expedite"])
def test_a_digest_never_seen_is_refused_unless_forced(sim, capsys, command):
    """A typo'd digest once joined the history, became current, and after `unreject` the plan
    rebuilt on a digest upstream never published."""
    sim.update(PYTHON, "py-1")
    before = {p: p.read_bytes() for p in (sim.root / "state").rglob("*.yaml")}
    typo = digest("typo")
    args = [command, "--root", str(sim.root), "--image", "python:3.12-slim", "--digest", typo, "--reason", "r"]
    assert main(args) == 1
    assert capsys.readouterr().err.startswith(
        f"error: --digest: {typo} was never seen for {PYTHON} (a typo? `image-factory status` and state list"
    )
    assert {p: p.read_bytes() for p in (sim.root / "state").rglob("*.yaml")} == before

    assert main([*args, "--force", "--at", "2026-11-02T10:00:00Z"]) == 0
    _, state = load_model(sim.root)
    runtime = state.base_images[PYTHON].runtime
    assert runtime.current_digest == digest("py-1")  # never moved onto the unseen digest
    assert next(e for e in runtime.history if e["digest"] == typo)["seenBy"] == "forced"


def test_a_forced_digest_is_built_only_when_expedited_or_really_seen(sim, capsys):
    sim.update(PYTHON, "py-1")
    upcoming, typo = digest("py-2"), digest("typo")
    reject = ["reject", "--root", str(sim.root), "--image", "python:3.12-slim", "--reason", "r", "--force"]
    assert main([*reject, "--digest", typo, "--at", "2026-11-02T10:00:00Z"]) == 0
    unreject = ["unreject", "--root", str(sim.root), "--image", "python:3.12-slim", "--digest", typo]
    assert main(unreject) == 0
    sim.advance(days=30)
    (due,) = [d for d in sim.plan().due if d.base == PYTHON]
    assert due.digest == digest("py-1")  # not the forced typo, a month later
    assert all(p.digest != typo for p in sim.plan().pending)

    # a scanner names the fixed digest before Kargo reports it: built on now, still not current
    expedite = ["expedite", "--root", str(sim.root), "--image", "python:3.12-slim", "--reason", "CVE", "--force"]
    assert main([*expedite, "--digest", upcoming, "--at", sim.now.strftime("%Y-%m-%dT%H:%M:%SZ")]) == 0
    (due,) = [d for d in sim.plan().due if d.base == PYTHON]
    assert due.digest == upcoming
    _, state = load_model(sim.root)
    assert state.base_images[PYTHON].runtime.current_digest == digest("py-1")
    sim.update(PYTHON, "py-2")  # Kargo sees it: now it is current, first seen now
    _, state = load_model(sim.root)
    entry = next(e for e in state.base_images[PYTHON].runtime.history if e["digest"] == upcoming)
    assert state.base_images[PYTHON].runtime.current_digest == upcoming
    assert (entry["seenBy"], entry["firstSeen"]) == ("kargo", sim.now.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_a_hand_run_record_update_says_an_operator_saw_it(sim):
    base = [
        "record-update",
        "--root",
        str(sim.root),
        "--image",
        "python:3.12-slim",
        "--seen-at",
        "2026-11-02T09:00:00Z",
    ]
    assert main([*base, "--digest", digest("by-hand")]) == 0
    assert main([*base, "--digest", digest("by-kargo"), "--seen-by", "kargo"]) == 0
    _, state = load_model(sim.root)
    seen = {e["digest"]: e["seenBy"] for e in state.base_images[PYTHON].runtime.history}
    assert seen == {digest("by-hand"): "operator", digest("by-kargo"): "kargo"}
    # what the events workflow's drain runs for Kargo's report
    from image_factory.rebuilds.inbox import commands, parse_event

    sent = '{"id": "1", "type": "base-image-updated", "sender": "k", "receivedAt": "2026-11-02T09:00:00Z",'
    (command,) = commands(parse_event("e", sent + ' "payload": {"image": "python:3.12-slim", "digest": "d"}}'))
    assert "--seen-by=kargo" in command
