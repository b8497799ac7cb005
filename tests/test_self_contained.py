"""The repository needs nothing beside it: a user's fresh clone has only itself, so the data the
tests read (Kargo's schemas above all) is kept inside it. `.ci/run` runs the whole suite that way."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO_ROOT
from .kargo_schemas import CRDS, SCHEMA_DIR

# Where the project's reading material lives in our sessions, never in a user's clone.
BESIDE = re.compile(r"\.\./" + "shared|/work/" + "shared|parent\\s*/\\s*[\"']" + "shared[\"']")


def tracked_files() -> list[str]:
    return subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")[:-1]


def test_no_file_refers_to_anything_beside_the_repository():
    mentions = []
    for name in tracked_files():
        path = REPO_ROOT / name
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="replace")
            mentions += [f"{name}: {match.group(0)}" for match in BESIDE.finditer(text)]
    assert mentions == []


def test_the_kargo_schemas_are_test_data_of_the_repository():
    assert SCHEMA_DIR.resolve().is_relative_to(REPO_ROOT)
    assert (SCHEMA_DIR / "SOURCE.md").is_file()
    missing = [
        relative for relative in [*CRDS.values(), "subscriptions/image.json"] if not (SCHEMA_DIR / relative).is_file()
    ]
    assert missing == []
    assert len(list((SCHEMA_DIR / "promotion-steps").glob("*-config.json"))) >= 30  # every builtin step's


@pytest.mark.slow
def test_the_kargo_tests_pass_in_a_clone_with_nothing_beside_it(tmp_path):
    """The tests that read Kargo's schemas, run from a copy of the tracked files in a folder of its
    own (the package imported from the copy too)."""
    alone = tmp_path / "alone" / "image-factory"
    for name in tracked_files():
        if (REPO_ROOT / name).is_file():
            (alone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, alone / name)
    assert sorted(p.name for p in alone.parent.iterdir()) == ["image-factory"]
    files = ["test_kargo_manifests.py", "test_verification_manifests.py", "test_kargo_runtime.py"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
        + [f"tests/kargo/{name}" for name in files],
        cwd=alone,
        env={**os.environ, "PYTHONPATH": str(alone / "action")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    where = subprocess.run(
        [sys.executable, "-c", "import image_factory; print(image_factory.__file__)"],
        cwd=alone,
        env={**os.environ, "PYTHONPATH": str(alone / "action")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(alone))
    assert re.search(r"\b\d+ passed\b", result.stdout) and " skipped" not in result.stdout
