"""Benchmark: a burst of events applied by one drain process, against one process per event (the
events workflow before the inbox ran the tool once per event). The bundled example factory; the
burst of tests/event_burst.py (new digests, verifications, CVE fixes, soaks, builds, duplicates).

    python bench/drain.py [EVENTS]     (default: 300)

A `cosign` that accepts is put on PATH (the keyless check of a reported build is cosign's, a
subprocess either way). Prints wall time and peak memory of each, and whether both ended with
the same state files.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.scale import run
from tests.event_burst import burst, cosign_that_accepts, snapshot

REPO = Path(__file__).resolve().parents[1]
TOOL = [sys.executable, "-m", "image_factory"]


def factory(folder: Path) -> Path:
    root = folder / "factory"
    root.mkdir(parents=True)
    shutil.copy(REPO / "images.yaml", root / "images.yaml")
    shutil.copytree(REPO / "examples", root / "examples")
    shutil.copytree(REPO / "state", root / "state")
    return root


def main(size: int) -> None:
    events = burst(7, size=size, duplicates=size // 15)
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        os.environ["PATH"] = f"{cosign_that_accepts(work / 'bin')}{os.pathsep}{os.environ['PATH']}"
        inbox = work / "inbox"
        inbox.mkdir()
        for event in events:
            (inbox / f"{event['id']}.json").write_text(json.dumps(event))

        one = factory(work / "one")
        # exit 1: the burst holds a vouching from an untrusted sender, refused
        seconds, peak = run([*TOOL, "drain", "--root", str(one), "--from", str(inbox)], work, ok=(0, 1))
        print(f"one drain of {len(events)} events: {seconds:.1f} s, {peak / 2**20:.0f} MiB peak")

        each = factory(work / "each")
        ordered = sorted(events, key=lambda e: (e["receivedAt"], e["id"]))
        total, worst = 0.0, 0
        start = time.perf_counter()
        for number, event in enumerate(ordered):
            folder = work / f"single-{number}"
            folder.mkdir()
            (folder / "event.json").write_text(json.dumps(event))
            seconds, peak = run([*TOOL, "drain", "--root", str(each), "--from", str(folder)], work, ok=(0, 1))
            total, worst = total + seconds, max(worst, peak)
        wall = time.perf_counter() - start
        each_seconds, mib = total / len(events), worst / 2**20
        print(f"{len(events)} processes, one event each: {wall:.1f} s ({each_seconds:.2f} s each), {mib:.0f} MiB peak")
        print("same state files:", snapshot(one) == snapshot(each))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
