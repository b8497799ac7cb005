"""Benchmark: the status site of a generated factory of N managed images. Prints figures.

    python bench/site.py [N ...]        (default: 1000 10000)

The fleet is bench/scale.py's (`build_factory`), discovered once; then `image-factory site` runs
twice, each as its own process as CI would: a first build into an empty folder and a rebuild
that finds every file unchanged. Prints wall time, peak memory of the process tree, the site's
total size and file count, and what the graph shows.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import build_factory, run

BUDGET_SECONDS, BUDGET_MB = 30.0, 100.0
TARGET = f"target for 10000 images: site <= {BUDGET_SECONDS:.0f} s, total size <= {BUDGET_MB:.0f} MB"


def measure(count: int) -> bool:
    tool = str(Path(sys.executable).parent / "image-factory")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        build_factory(root, count)
        subprocess.run([tool, "discover"], cwd=root, check=True, stdout=subprocess.DEVNULL)
        first = run([tool, "site"], root)
        again = run([tool, "site"], root)
        files = [path for path in (root / "site").rglob("*") if path.is_file()]
        size = sum(path.stat().st_size for path in files) / 2**20
        index = (root / "site" / "index.html").stat().st_size / 2**20
        page = (root / "site" / "index.html").read_text(encoding="utf-8")
    note = "graph: " + html.unescape(re.search(r'<h2 id="graph">.*?<p class="muted">(.*?)</p>', page, re.S)[1])
    met = count < 10000 or (first[0] <= BUDGET_SECONDS and size <= BUDGET_MB)
    print(
        f"{count:6d} images: site (first) {first[0]:5.2f} s / {first[1] / 2**20:4.0f} MB, "
        f"site (unchanged) {again[0]:5.2f} s / {again[1] / 2**20:4.0f} MB; "
        f"{len(files)} files, {size:5.1f} MB (index.html {index:4.1f} MB); {note}"
        + ("" if count < 10000 else f" — budget {'met' if met else 'NOT met'}"),
        flush=True,
    )
    return met


if __name__ == "__main__":
    print(TARGET)
    results = [measure(count) for count in [int(arg) for arg in sys.argv[1:]] or [1000, 10000]]
    sys.exit(0 if all(results) else 1)
