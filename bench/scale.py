"""Benchmark: a generated factory of N managed images, each command run as CI runs it. Prints
every figure with its target (issue 16) and whether it is met.

    python bench/scale.py [N ...]        (default: 10000 100000)
    python bench/scale.py --no-synth N   (skip synth: the Node.js part)

The fleet is realistic in shape: about one public base per five images, every image with a
toolchain build stage, and chains of managed images up to four deep. One base is popular: 500
images are built on it (125 directly, each the head of a chain of four). Each command runs as
its own process; memory is the peak resident size of the whole process tree (for synth: Python
and the Node.js processes behind cdk8s). An event command is timed three times (on new digests)
and its fastest run shown, as the machine's other work only ever adds time.

The reference factory's figures (13.4 s first discover, 40.5 s no-op rerun, at 10,000 images on
this machine) are those measured for issue 16; the ratios below are against them.
"""

from __future__ import annotations

import json
import os
import re
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
HOT = "docker.io/acme-mirror/popular:1"
HOT_DEPENDENTS = 500
REFERENCE_10K = {"discover (first)": 13.4, "discover (no-op)": 40.5}
EVENT_SECONDS = 0.3


def build_factory(root: Path, count: int) -> None:
    bases = [f"docker.io/acme-mirror/base{j}:{j % 7}.{j % 3}" for j in range(max(1, count // 5))]
    lines = ["kargo: {factoryRepo: acme/factory}", "images:"]
    for i in range(count):
        name = f"svc-{i:05d}"
        depth = i % 4  # 0: on a public base; 1-3: on the previous image, a chain four deep
        if depth:
            parent = f"ghcr.io/acme/svc-{i - 1:05d}:latest"
        elif i < HOT_DEPENDENTS and count >= 2 * HOT_DEPENDENTS:
            parent = HOT
        else:
            parent = bases[(i * 7919) % len(bases)]
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


def run(command: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, int]:
    """Wall time and peak tree RSS of one command, which must exit with one of `ok`."""
    seconds, peak, _ = run_output(command, cwd, ok)
    return seconds, peak


def run_output(command: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, int, str]:
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(process.pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stdout, stderr = process.communicate()
    done.set()
    sampler.join()
    if process.returncode not in ok:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    return time.perf_counter() - start, peak, stdout


def _create_files(folder: Path, count: int) -> float:
    """Seconds to create `count` small files here: what the disk alone costs a first discover."""
    folder.mkdir()
    start = time.perf_counter()
    for n in range(count):
        (folder / f"{n}.yaml").write_bytes(b"x" * 1000)
    os.sync()
    seconds = time.perf_counter() - start
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    os.sync()
    return seconds


def _digest(n: int) -> str:
    return f"sha256:{n:064x}"


def measure(count: int, synth: bool = True) -> list[tuple[str, float, int, str, bool]]:
    """Every figure for a fleet of `count`: (what, seconds, peak bytes, target, met)."""
    tool = str(Path(sys.executable).parent / "image-factory")
    rows: list[tuple[str, float, int, str, bool]] = []

    def row(what: str, figure: tuple[float, int], limit: float, target: str | None = None) -> None:
        seconds, peak = figure
        rows.append((what, seconds, peak, target or f"<= {limit:g} s", seconds <= limit))

    def fastest(commands: list[list[str]]) -> tuple[float, int]:
        figures = [run([tool, *command], root) for command in commands]
        return min(f[0] for f in figures), max(f[1] for f in figures)

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        root = Path(folder)
        build_factory(root, count)
        os.sync()  # the generator's writes are not discover's to flush
        floor = _create_files(root / "floor", count + count // 5)
        first = run([tool, "discover"], root)
        noop = run([tool, "discover"], root)
        if count == 10000:
            for what, figure in (("discover (first)", first), ("discover (no-op)", noop)):
                reference = REFERENCE_10K[what]
                wanted = 3 if "first" in what else 10
                ratio = reference / figure[0]
                rows.append(
                    (what, *figure, f">= {wanted}x the reference's {reference} s ({ratio:.1f}x)", ratio >= wanted)
                )
        else:
            row("discover (first)", first, 30 if count >= 100000 else 10)
            rows.append(("discover (no-op)", *noop, "(no target at this size)", True))
        if synth:
            figure = run([tool, "synth"], root)
            budget = 60 if count >= 100000 else 15
            rows.append(("synth", *figure, f"<= {budget} s, <= 1024 MB", figure[0] <= budget and figure[1] <= 2**30))
            seconds, peak, out = run_output([tool, "synth"], root)
            rewritten = [line for line in out.splitlines() if line.endswith("(written)")]
            rows.append(("synth (no-op)", seconds, peak, f"rewrites nothing ({len(rewritten)} files)", not rewritten))
        row("plan (full)", run([tool, "plan", "--json"], root), 5 if count >= 100000 else 2)

        seen = "2026-11-01T00:00:00Z"
        for toolchain in TOOLCHAINS:  # every image's build stage: pinned by every dispatch
            run([tool, "record-update", "--image", toolchain, "--digest", _digest(99), "--seen-at", seen], root)
        row(
            "record-update",
            fastest([["record-update", "--image", HOT, "--digest", _digest(n), "--seen-at", seen] for n in (1, 2, 3)]),
            EVENT_SECONDS,
        )
        row(
            "reject",
            fastest([["reject", "--image", HOT, "--digest", _digest(n), "--reason", "bench"] for n in (1, 2)]),
            EVENT_SECONDS,
        )
        row(
            "expedite",
            fastest([["expedite", "--image", HOT, "--digest", _digest(3), "--reason", "bench"]] * 3),
            EVENT_SECONDS,
        )
        build = ["--result", "success", "--finished-at", "2026-11-02T00:00:00Z"]
        row(
            "record-build",
            fastest(
                [
                    [
                        "record-build",
                        "--image",
                        "svc-00000",
                        "--digest",
                        _digest(10 + n),
                        "--base",
                        f"{HOT}={_digest(3)}",
                        *build,
                    ]
                    for n in (1, 2, 3)
                ]
            ),
            EVENT_SECONDS,
        )
        seconds, peak, out = run_output([tool, "plan", "--json", "--base", HOT, "--now", "2026-11-20T00:00:00Z"], root)
        due = len({item["image"] for item in json.loads(out)["due"]})
        row(f"plan --base (popular base, {due} due)", (seconds, peak), 1)
        seconds, peak, out = run_output([tool, "dispatch", "--dry-run", "--base", HOT], root)
        row(f"dispatch --dry-run --base ({out.count('would dispatch')} builds)", (seconds, peak), 1)
        state_files = sum(1 for _ in (root / "state").rglob("*.yaml"))
        manifests = sorted((root / "dist").glob("kargo*.k8s.yaml"))
        objects = sum(len(re.findall(r"^kind: ", path.read_text(), re.MULTILINE)) for path in manifests)
    print(f"\n{count} images: {state_files} state files, {objects} Kargo objects in {len(manifests)} files", flush=True)
    print(f"  (this disk creates {count + count // 5} files of 1 KB in {floor:.2f} s: part of a first discover)")
    for what, seconds, peak, target, met in rows:
        print(f"  {what:44} {seconds:7.2f} s {peak / 2**20:6.0f} MB   target {target:42} {'met' if met else 'NOT MET'}")
    return rows


if __name__ == "__main__":
    arguments = sys.argv[1:]
    with_synth = "--no-synth" not in arguments
    sizes = [int(arg) for arg in arguments if arg != "--no-synth"] or [10000, 100000]
    missed = [(count, row[0]) for count in sizes for row in measure(count, with_synth) if not row[4]]
    print("\nevery target met" if not missed else f"\nnot met: {missed}")
