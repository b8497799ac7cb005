"""Benchmark: discover on a generated factory of N managed images. Prints figures, asserts nothing.

    python bench/discover_bench.py [N ...]

Each image's Dockerfile is multi-stage with ARGs, a heredoc and COPY --from; a tenth of the
images build on another managed image (a cascade), the rest on one of 50 public bases.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from image_factory.discover import discover

BASES = [f"docker.io/library/base{i}:1.{i}" for i in range(50)]


def build_factory(root: Path, count: int) -> None:
    entries = ["images:"]
    for i in range(count):
        name = f"svc-{i:05d}"
        parent = f"ghcr.io/acme/svc-{i - 1:05d}:latest" if i % 10 == 1 else BASES[i % len(BASES)]
        entries += [
            f"  - name: {name}",
            "    registry: ghcr.io",
            f"    repository: acme/{name}",
            f"    source: {{provider: local, repo: src/{name}, dockerfile: Dockerfile, workflow: build.yml}}",
        ]
        folder = root / "src" / name
        folder.mkdir(parents=True)
        (folder / "Dockerfile").write_text(
            f"ARG BASE={parent}\nFROM golang:1.23 AS build\nRUN <<EOF\nFROM nothing:1\nEOF\n"
            f"FROM ${{BASE}}\nCOPY --from=build /app /app\nCOPY --from=busybox:1.36 /bin/sh /sh\n"
        )
    (root / "images.yaml").write_text("\n".join(entries) + "\n")


def measure(count: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        build_factory(root, count)
        start = time.perf_counter()
        first = discover(root)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        second = discover(root)
        warm = time.perf_counter() - start
        assert not second.written
        shutil.rmtree(root / "state")
        tracemalloc.start()  # a separate run: tracing slows Python down
        discover(root)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"{count:6d} images: first run {cold:6.2f}s ({len(first.written)} files written), "
            f"unchanged re-run {warm:6.2f}s, peak Python memory {peak / 2**20:6.1f} MiB"
        )


if __name__ == "__main__":
    for count in [int(arg) for arg in sys.argv[1:]] or [100, 500, 2000]:
        measure(count)
