"""Benchmark: discover and synth on a generated factory of N managed images. Prints figures.

    python bench/scale.py [N ...]        (default: 1000 5000 10000)

The fleet is realistic in shape: about one public base per five images, every image with a
toolchain build stage, and chains of managed images up to four deep. Each command runs as its
own process, as CI runs it; memory is the peak resident size of the whole process tree (for
synth: Python and the Node.js process behind cdk8s).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TOOLCHAINS = [
    f"docker.io/library/{name}"
    for name in ("golang:1.23", "node:22-slim", "python:3.12", "rust:1.82", "maven:3-eclipse-temurin-21")
]
TARGET = "target for 10000 images: discover <= 5 s, synth <= 15 s, plan <= 2 s, peak memory <= 500 MB"


def build_factory(root: Path, count: int) -> None:
    bases = [f"docker.io/acme-mirror/base{j}:{j % 7}.{j % 3}" for j in range(max(1, count // 5))]
    lines = ["kargo: {factoryRepo: acme/factory}", "images:"]
    for i in range(count):
        name = f"svc-{i:05d}"
        depth = i % 4  # 0: on a public base; 1-3: on the previous image, a chain four deep
        parent = bases[(i * 7919) % len(bases)] if depth == 0 else f"ghcr.io/acme/svc-{i - 1:05d}:latest"
        lines += [
            f"  - name: {name}",
            "    registry: ghcr.io",
            f"    repository: acme/{name}",
            f"    source: {{provider: local, repo: src/{name}, dockerfile: Dockerfile, workflow: build.yml}}",
        ]
        folder = root / "src" / name
        folder.mkdir(parents=True)
        (folder / "Dockerfile").write_text(
            f"ARG BASE={parent}\nFROM {TOOLCHAINS[i % len(TOOLCHAINS)]} AS build\nRUN <<EOF\nmake\nEOF\n"
            "FROM ${BASE}\nCOPY --from=build /app /app\n"
        )
    (root / "images.yaml").write_text("\n".join(lines) + "\n")


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{current}/task/{current}/children") as handle:
                pending += [int(child) for child in handle.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run(command: list[str], cwd: Path) -> tuple[float, int]:
    """Wall time and peak tree RSS of one command, which must succeed."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(process.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, stderr = process.communicate()
    done.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    return time.perf_counter() - start, peak


def measure(count: int) -> None:
    tool = str(Path(sys.executable).parent / "image-factory")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        build_factory(root, count)
        figures = {
            "discover (first)": run([tool, "discover"], root),
            "discover (unchanged)": run([tool, "discover"], root),
            "synth": run([tool, "synth"], root),
            "plan": run([tool, "plan", "--json"], root),
        }
        manifests = sorted((root / "dist").glob("kargo*.k8s.yaml"))
        objects = sum(path.read_text().count("\nkind: ") + 1 for path in manifests)
        state_files = sum(1 for _ in (root / "state").rglob("*.yaml"))
    cells = ", ".join(f"{name} {seconds:5.2f} s / {rss / 2**20:4.0f} MB" for name, (seconds, rss) in figures.items())
    print(
        f"{count:6d} images ({state_files} state files, {objects} Kargo objects in {len(manifests)} files): {cells}",
        flush=True,
    )


if __name__ == "__main__":
    print(TARGET)
    for count in [int(arg) for arg in sys.argv[1:]] or [1000, 5000, 10000]:
        measure(count)
