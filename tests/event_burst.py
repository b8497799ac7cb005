"""Bursts of events on the bundled example, in the shape the events workflow's receive job writes
them (rebuilds/inbox.py): what the drain tests, the model of GitHub's concurrency and the bench
feed the drain. Seeded: the same seed gives the same burst."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from image_factory.cli import main

KARGO = "image-factory-kargo[bot]"  # the bundled images.yaml's trust.senders
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WATCHED = [
    "docker.io/library/python:3.12-slim",
    "docker.io/library/node:22-bookworm-slim",
    "docker.io/library/golang:1.23-bookworm",
    "docker.io/nginxinc/nginx-unprivileged:1.27-alpine",
    "docker.io/library/postgres:16",
]
BUILT = {  # managed image → the bases its report names (payload.bases keys)
    "base-python": ["docker.io/library/python:3.12-slim"],
    "web": ["docker.io/library/node:22-bookworm-slim", "docker.io/nginxinc/nginx-unprivileged:1.27-alpine"],
    "python-service": ["ghcr.io/acme-platform/base-python:3.12"],
}
RUNS = "https://github.com/acme-platform/image-factory/actions/runs/"  # the example's own repository


def digest(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def burst(seed: int, size: int = 300, duplicates: int = 20) -> list[dict]:
    """`size` events (new digests, their verifications, CVE fixes, soaks, builds that succeed and
    fail, one vouching from an untrusted sender), each received at its own second (a build's
    report before or after the sighting of the digest it was built on), plus `duplicates` of them
    delivered again later (a sender's retry: a new run, the same payload)."""
    rng = random.Random(seed)
    events: list[dict] = []
    for number in range(size):
        at = START + timedelta(seconds=number)
        kind = rng.choices(
            ["updated", "verified", "cve", "soaked", "built", "untrusted"], weights=[40, 15, 8, 12, 24, 1]
        )[0]
        base = rng.choice(WATCHED)
        seen = digest(f"{base}-{rng.randrange(12)}")
        sender, payload = KARGO, {"image": base, "digest": seen}
        if kind == "updated":
            kind, payload["freight"] = "base-image-updated", f"f{rng.randrange(1000)}"
        elif kind == "verified":
            kind, payload["freight"] = "base-image-verified", f"f{rng.randrange(1000)}"
        elif kind == "cve":
            kind, payload["reason"] = "base-image-cve", f"CVE-2026-{rng.randrange(9999)}"
        elif kind == "soaked":
            kind, payload["delay"] = "base-image-soaked", "7d"
        elif kind == "untrusted":
            kind, sender, payload["freight"] = "base-image-verified", "mallory", "f0"
        else:
            kind, sender = "image-built", "acme-builds"
            image = rng.choice(sorted(BUILT))
            success = rng.random() < 0.7
            payload = {
                "image": image,
                "result": "success" if success else "failure",
                "digest": digest(f"{image}-{number}") if success else "",
                "bases": {ref: digest(f"{ref}-{rng.randrange(12)}") for ref in BUILT[image]},
                "run_url": f"{RUNS}{1000 + number}",
                "signed": success,
                "error": "" if success else "the test failed",
                "finished_at": (at - timedelta(seconds=rng.randrange(1, 5))).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        events.append(_event(str(10_000 + number), kind, sender, at, payload))
    for number, original in enumerate(rng.sample(events, duplicates)):
        later = START + timedelta(seconds=size + number)
        events.append(_event(str(20_000 + number), original["type"], original["sender"], later, original["payload"]))
    return events


def _event(run: str, kind: str, sender: str, at: datetime, payload: dict) -> dict:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"id": run, "type": kind, "sender": sender, "receivedAt": stamp, "payload": payload}


def drain(root: Path, events: list[dict], folder: Path) -> int:
    """`image-factory drain --from` a folder holding `events` (one file each); its exit status."""
    folder.mkdir(parents=True)
    for event in events:
        (folder / f"{event['id']}.json").write_text(json.dumps(event))
    return main(["drain", "--root", str(root), "--from", str(folder)])


def snapshot(root: Path) -> dict[str, str]:
    """Every state file's text."""
    return {
        str(path.relative_to(root)): path.read_text() for path in sorted((root / "state").rglob("*")) if path.is_file()
    }


def cosign_that_accepts(folder: Path) -> Path:
    """A `cosign` whose verify passes: the keyless check of a reported build, as on GitHub when the
    build's own workflow signed it (tests/trust covers the refusals). The folder to put on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "cosign"
    script.write_text("#!/bin/sh\necho 'Verification for the image --' >&2\nexit 0\n")
    script.chmod(0o755)
    return folder
