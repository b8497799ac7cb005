"""state/built-on/<base>.json: kept current as builds are recorded, and equal to what discover
derives from the images' last builds (the scan Job reads it to scan those digests again)."""

from __future__ import annotations

import json

from image_factory.cli import main
from image_factory.discovery.discover import discover, load_model
from image_factory.state import built_on

from ..rebuilds.test_rebuild_simulation import PYTHON, digest, sim  # noqa: F401 (a fixture)

FILE = "state/built-on/docker.io-library-python-3.12-slim-ea59dc550ffd.json"


def files(root) -> dict[str, dict]:
    return {f"state/built-on/{p.name}": json.loads(p.read_text()) for p in sorted((root / "state/built-on").glob("*"))}


def test_builds_keep_the_files_that_discover_derives(sim):  # noqa: F811
    sim.update(PYTHON, "py-1")
    sim.advance(days=8)
    sim.run_until_quiet()
    built = files(sim.root)
    on_python = {name for name, image in load_model(sim.root)[1].images.items()
                 if PYTHON in (image.runtime.last_build or {}).get("baseDigests", {})}  # fmt: skip
    assert built[FILE] == dict.fromkeys(sorted(on_python), digest("py-1")) and on_python
    assert "state/built-on/ghcr.io-acme-a" not in "".join(built)  # a managed parent has its own state
    # a new digest: each image's entry moves as its rebuild is recorded
    sim.update(PYTHON, "py-2")
    sim.advance(days=8)
    sim.run_until_quiet()
    assert set(files(sim.root)[FILE].values()) == {digest("py-2")}
    # discover derives exactly what the builds wrote, and validate knows the files
    before = files(sim.root)
    assert discover(sim.root, full=True).written == []
    assert files(sim.root) == before
    assert built_on.changes(sim.root, load_model(sim.root)[1]) == {}
    assert main(["validate", "--root", str(sim.root)]) == 0


def test_an_image_no_longer_built_on_a_base_leaves_its_file(sim):  # noqa: F811
    sim.update(PYTHON, "py-1")
    sim.advance(days=8)
    sim.run_until_quiet()
    (sim.root / FILE).write_text(json.dumps({"gone-image": digest("py-0")}))  # what an older state left
    discover(sim.root, full=True)
    assert "gone-image" not in files(sim.root)[FILE]


def test_an_image_never_built_counts_as_built_on_the_digest_its_dockerfile_pins(example_factory):
    """As the planner takes it (its baseline is the pin): the bundled example's metrics-agent pins
    distroless, and has no build yet."""
    root = example_factory.root
    _, state = load_model(root)
    assert state.images["metrics-agent"].runtime.last_build is None
    derived = built_on.derive(state)
    (path,) = [p for p in derived if "distroless" in p]
    assert json.loads(derived[path]) == {
        "metrics-agent": "sha256:6ec5aa99dc335666e79dc64e4a6c8b89c33a543a1967f20d360922a80dd21f02"
    }
    discover(root)  # the example's state is written by the discover of this version: nothing changes
    assert json.loads((root / path).read_text()) == json.loads(derived[path])
    assert built_on.changes(root, load_model(root)[1]) == {}


def test_a_temporary_file_left_among_them_is_flagged_and_discover_removes_it(example_factory, capsys):
    root = example_factory.root
    stray = root / "state/built-on/.python.json.k3j2h1.tmp"  # an interrupted write
    stray.parent.mkdir(exist_ok=True)
    stray.write_text("half")
    assert main(["validate", "--root", str(root)]) == 1
    assert "state/built-on/.python.json.k3j2h1.tmp: left by an interrupted write" in capsys.readouterr().err
    assert main(["discover", "--root", str(root)]) == 0
    assert not stray.exists()
