"""Weeks of updates with trust rules: rejected digests, verification required, expedite.

The same injected-clock simulation as the rebuild tests, through the real commands' code.
"""

from __future__ import annotations

import pytest
import yaml

from image_factory.cli import main
from image_factory.discovery.discover import discover, load_model
from image_factory.rebuilds import dispatch, events
from image_factory.timestamps import format_time

from ..rebuilds.test_rebuild_simulation import PYTHON, Simulation, digest


@pytest.fixture
def sim(factory):
    factory.write(
        "images.yaml",
        """
        kargo: {factoryRepo: acme/factory}
        images:
          - name: a
            registry: ghcr.io
            repository: acme/a
            source: {provider: local, repo: a, dockerfile: Dockerfile, workflow: b.yml}
          - name: b
            registry: ghcr.io
            repository: acme/b
            source: {provider: local, repo: b, dockerfile: Dockerfile, workflow: b.yml}
          - name: python
            registry: docker.io
            repository: library/python
            tag: 3.12-slim
            verify:
              certificateIdentity: https://github.com/docker-library/official-images
              certificateOidcIssuer: https://token.actions.githubusercontent.com
        """,
    )
    factory.write("a/Dockerfile", "FROM python:3.12-slim\n")
    factory.write("b/Dockerfile", "FROM ghcr.io/acme/a\n")
    discover(factory.root)
    return Simulation(factory)


def verified(sim, label: str, ok: bool = True, reason: str | None = None) -> None:
    events.record_update(sim.root, PYTHON, digest(label), sim.now, None, verified=ok, reason=reason)


def held(sim) -> list[tuple[str, str, str]]:
    return [(item.image, item.digest, item.reason) for item in sim.plan().held]


def test_an_unverified_digest_is_never_built_on_until_it_is_verified(sim):
    sim.update(PYTHON, "py-1")
    sim.advance(days=8)
    assert sim.plan().due == []
    assert held(sim) == [
        ("a", digest("py-1"), "not verified yet: its signature is checked before anything is built on it")
    ]
    verified(sim, "py-1")
    assert [(d.image, d.digest) for d in sim.plan().due] == [("a", digest("py-1"))]
    assert sim.run_until_quiet() == [["a"], ["b"]]


def test_a_failed_verification_holds_the_digest_and_the_previous_good_one_is_used(sim):
    sim.update(PYTHON, "py-1")
    verified(sim, "py-1")
    sim.advance(days=3)
    sim.update(PYTHON, "py-2")
    verified(sim, "py-2", ok=False, reason="no signature")
    sim.advance(days=8)
    plan = sim.plan()
    assert [(d.image, d.digest) for d in plan.due] == [("a", digest("py-1"))]  # py-2 is newer but unverified
    assert held(sim) == [("a", digest("py-2"), "verification failed: no signature")]
    sim.run_until_quiet()
    built = [pins for _, image, pins in sim.builds if image == "a"]
    assert built == [{PYTHON: digest("py-1")}]


def test_expedite_skips_the_delay_never_the_verification(sim):
    sim.update(PYTHON, "py-1")
    events.expedite(sim.root, PYTHON, digest("py-1"), "CVE-2026-0001", sim.now)
    assert sim.plan().due == []
    verified(sim, "py-1")
    assert [(d.image, d.digest) for d in sim.plan().due] == [("a", digest("py-1"))]


def test_a_rejected_digest_is_skipped_for_the_next_good_one(sim, capsys):
    for label in ("py-1", "py-2", "py-3"):
        sim.update(PYTHON, label)
        verified(sim, label)
        sim.advance(days=3)
    sim.advance(days=8)
    assert main(["reject", "--root", str(sim.root), "--image", PYTHON, "--digest", digest("py-3"),
                 "--reason", "breaks libssl", "--at", "2026-11-20T00:00:00Z"]) == 0  # fmt: skip
    assert "rejected (breaks libssl): no rebuild will use it" in capsys.readouterr().out
    plan = sim.plan()
    assert [(d.image, d.digest) for d in plan.due] == [("a", digest("py-2"))]
    assert held(sim) == [("a", digest("py-3"), "rejected: breaks libssl")]
    state = yaml.safe_load((sim.root / "state/base-images").glob("*python*").__next__().read_text())
    entry = next(e for e in state["runtime"]["history"] if e["digest"] == digest("py-3"))
    assert entry["rejected"] == {"reason": "breaks libssl", "at": "2026-11-20T00:00:00Z"}
    assert main(["plan", "--root", str(sim.root), "--now", sim.now.isoformat()]) == 0
    assert f"a ← {PYTHON} @ {digest('py-3')[:19]}…: rejected: breaks libssl" in capsys.readouterr().out

    sim.advance(days=1)  # an acceptance lifts a rejection dated at or before it
    accept = ["unreject", "--root", str(sim.root), "--image", PYTHON, "--at", format_time(sim.now)]
    assert main([*accept, "--digest", digest("py-3")]) == 0
    assert [(d.image, d.digest) for d in sim.plan().due] == [("a", digest("py-3"))]
    assert main([*accept, "--digest", digest("py-4")]) == 1
    assert f"{digest('py-4')} was never seen for {PYTHON} (a typo?)" in capsys.readouterr().err


def test_reject_needs_a_reason_and_a_watched_image(sim, capsys):
    args = ["reject", "--root", str(sim.root), "--digest", digest("x")]
    before = sorted((p, p.read_bytes()) for p in (sim.root / "state").rglob("*.yaml"))
    assert main([*args, "--image", PYTHON, "--reason", " "]) == 1
    assert "say why the digest is rejected" in capsys.readouterr().err
    assert main([*args, "--image", "ghcr.io/acme/a", "--reason", "x"]) == 1
    assert "is not a watched image" in capsys.readouterr().err
    assert sorted((p, p.read_bytes()) for p in (sim.root / "state").rglob("*.yaml")) == before


def test_record_update_verified_from_the_command_line(sim, capsys):
    sim.update(PYTHON, "py-1")
    args = ["record-update", "--root", str(sim.root), "--image", PYTHON, "--digest", digest("py-1")]
    assert main([*args, "--verified", "false", "--reason", "signed by an unknown key"]) == 0
    assert "NOT verified (signed by an unknown key)" in capsys.readouterr().out
    assert main([*args, "--reason", "x"]) == 1
    assert "--reason: goes with --verified" in capsys.readouterr().err
    assert main([*args, "--verified", "true"]) == 0  # the latest outcome counts
    sim.advance(days=8)
    assert [(d.image, d.digest) for d in sim.plan().due] == [("a", digest("py-1"))]


def test_a_build_records_whether_it_was_signed_and_why_it_failed(sim, capsys):
    args = ["record-build", "--root", str(sim.root), "--image", "a", "--base", f"{PYTHON}={digest('py-1')}"]
    assert main([*args, "--result", "failure", "--error", "the test failed", "--signed", "false"]) == 0
    assert capsys.readouterr().out == "a: build failed: the test failed\n"
    assert main([*args, "--result", "success", "--digest", digest("a-1"), "--signed", "true"]) == 0
    assert capsys.readouterr().out == f"a: built {digest('a-1')} (signed)\n"
    state = yaml.safe_load((sim.root / "state/images/a.yaml").read_text())
    attempts = state["runtime"]["attempts"]
    assert [(a["result"], a.get("signed"), a.get("error")) for a in attempts] == [
        ("failure", False, "the test failed"),
        ("success", True, None),
    ]
    assert state["runtime"]["lastBuild"]["signed"] is True


def test_a_failed_test_keeps_the_previous_digest_and_blocks_descendants(sim):
    sim.update(PYTHON, "py-1")
    verified(sim, "py-1")
    sim.advance(days=8)
    assert sim.run_until_quiet() == [["a"], ["b"]]
    good = load_model(sim.root)[1].images["a"].runtime.current_digest
    sim.update(PYTHON, "py-2")
    verified(sim, "py-2")
    sim.advance(days=8)
    # The build workflow reports what its test step did: failure, nothing tagged, no digest.
    pins = {PYTHON: digest("py-2")}
    events.record_build(sim.root, "a", None, "failure", pins, None, sim.now, error="the test failed")
    config, state = load_model(sim.root)
    assert state.images["a"].runtime.current_digest == good  # the tag stayed on the previous good build
    plan = sim.plan()
    assert [(item.image, item.blocked_by) for item in plan.blocked] == [("a", "a"), ("b", "a")]
    assert plan.blocked[1].reason == "a's last build failed"
    # a is still behind, but the same pins are not dispatched again by themselves
    (again,) = dispatch.plan_dispatches(config, state, sim.now)
    assert (again.image, again.status) == ("a", "skipped") and again.detail.endswith("--retry` builds them again")
