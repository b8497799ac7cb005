"""Plan, dispatch and the overview (status, site, dashboard) tell one story: random histories on
the bundled example, checked at every step. An image the plan calls due is one dispatch sends, with
the pins dispatch would use, unless a human or its own Kargo Stage sends it; dispatch never skips a
due image for want of a digest or for a build it sent already; the overview calls due what the plan
does."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from image_factory.discovery.discover import load_model
from image_factory.enrolment.durations import parse_duration
from image_factory.output import status
from image_factory.output.overview import overview
from image_factory.rebuilds import dispatch, events, planner
from image_factory.timestamps import parse_time

from ..event_burst import digest

BASES = [
    "docker.io/library/python:3.12-slim",
    "docker.io/library/node:22-bookworm-slim",
    "docker.io/library/golang:1.23-bookworm",
    "docker.io/nginxinc/nginx-unprivileged:1.27-alpine",
]
BY_HAND = ("autoRebuild is off", "Kargo stage")  # what dispatch leaves to a person or a Stage


def check(root, now) -> list[str]:
    """The images dispatch would send now; asserts the three views agree."""
    config, state = load_model(root)
    plan = planner.plan(state, now, parse_duration(config.cascade_delay))
    sent = dispatch.plan_dispatches(config, state, now, plan=plan)
    by_image = {item.image: item for item in sent}
    for item in plan.due:
        if item.wave != 1:
            continue
        found = by_image[item.image]
        assert found.status == "planned" or any(why in found.detail for why in BY_HAND), (item, found.detail)
        assert found.pins == dispatch.pins_for(state.images[item.image], {item.base: item.digest}, state, now) or (
            len([d for d in plan.due if d.image == item.image]) > 1
        )
    due = {item.image for item in plan.due}
    for item in sent:
        assert item.status != "planned" or item.image in due, item
        if item.status == "skipped" and item.image in due:
            assert any(why in item.detail for why in BY_HAND), item.detail  # never "no digest", "already"
    states = {item.name: item.state for item in overview(state, plan, now, config.kargo.factory_repo)}
    # status: a first build or a rebuild "due now" exactly where the plan says so
    unbuilt = {row["image"]: row["build"] for row in status.never_built(state, plan, now)}
    stale = {(row["image"], row["base"]): row["rebuild"] for row in status.stale_images(state, plan, now)}
    now_due = {item.image for item in plan.due if item.wave == 1}
    assert {name for name, text in unbuilt.items() if text == "first build due now"} == now_due & set(unbuilt)
    for (name, base), text in stale.items():
        called_due = text == "rebuild due now" or text.startswith("rebuild due now (")  # (why it skips the delay)
        assert called_due == any(d.image == name and d.base == base and d.wave == 1 for d in plan.due)
    called = {name for name, word in states.items() if word == "due"}
    assert called == due, {n: (states[n], state.images[n].runtime.attempts[-2:]) for n in called ^ due}
    return sorted(item.image for item in sent if item.status == "planned")


@pytest.mark.parametrize("seed", range(6))
def test_random_histories_keep_plan_dispatch_and_overview_in_step(example_factory, seed):
    root, rng = example_factory.root, random.Random(seed)
    now = parse_time("2026-11-01T00:00:00Z")
    for step in range(40):
        now += timedelta(hours=rng.randrange(6, 72))
        if rng.random() < 0.5:
            base = rng.choice(BASES)
            events.record_update(root, base, digest(f"{base}-{step}"), now - timedelta(hours=1), None)
            seen = (base, digest(f"{base}-{step}"))
            if rng.random() < 0.15:  # a digest that breaks builds, or one that fixes a CVE
                events.reject(root, *seen, "breaks the build", now)
            elif rng.random() < 0.15:
                events.expedite(root, *seen, "CVE-2026-1", now)
        ready = check(root, now)
        for name in ready:
            _, state = load_model(root)
            pins = dispatch.pins_for(state.images[name], {}, state, now)
            plan = planner.plan(state, now)
            changed = plan.builds().get(name, {})
            pins = dispatch.pins_for(state.images[name], changed, state, now)
            pending = {"result": "pending", "startedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "baseDigests": pins}
            events.apply_attempts(root, {name: pending})
            check(root, now)
            outcome = rng.choice(["success", "success", "failure", "silent"])
            if outcome == "silent":
                continue
            built = digest(f"{name}-{step}") if outcome == "success" else None
            events.record_build(root, name, built, outcome, pins, None, now + timedelta(minutes=30))
        check(root, now + timedelta(hours=1))


def test_status_says_what_failed_and_shows_cascades(example_factory, capsys):
    """The issue's case on the bundled example: python past its delay, nothing built yet. Only
    base-python's first build is due now (what dispatch sends); python-service waits for it, and
    orders-api (due on python too) comes after its parents. After a failure `status` says so and
    how to retry, and a parent's rebuild shows on the image built on it."""
    from image_factory.cli import main

    root = example_factory.root
    python, old = "docker.io/library/python:3.12-slim", parse_time("2026-11-01T00:00:00Z")
    events.record_update(root, python, digest("py-1"), old, None)
    now = ["--now", "2026-11-20T00:00:00Z"]
    capsys.readouterr()
    assert main(["status", "--root", str(root), *now]) == 0
    lines = {line.split(":", 1)[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["base-python"].endswith("first build due now")
    assert lines["python-service"].endswith("waiting for base-python's first build")
    assert lines["orders-api"].endswith("first build due after its parents' builds")
    bases = {python: digest("py-1")}
    events.record_build(root, "base-python", digest("bp-1"), "success", bases, None, old + timedelta(days=8))
    pins = {"ghcr.io/acme-platform/base-python:3.12": digest("bp-1")}
    events.record_build(root, "python-service", None, "failure", pins, None, old + timedelta(days=9))
    assert main(["status", "--root", str(root), *now]) == 0
    lines = {line.split(":", 1)[0]: line for line in capsys.readouterr().out.splitlines()}
    assert (
        "its build on these digests failed (2026-11-10T00:00:00Z): `image-factory dispatch --image"
        in (lines["python-service"])
    )
    # base-python rebuilt on a newer python: python-service (built on the old one) shows the cascade
    events.record_build(root, "python-service", digest("ps-1"), "success", pins, None, old + timedelta(days=10))
    events.record_update(root, python, digest("py-2"), old + timedelta(days=10), None)
    bases = {python: digest("py-2")}
    events.record_build(root, "base-python", digest("bp-2"), "success", bases, None, old + timedelta(days=18))
    assert main(["status", "--root", str(root), *now]) == 0
    assert "python-service ← ghcr.io/acme-platform/base-python:3.12: built on" in capsys.readouterr().out
