"""The state index (state/index.json, state/graph.json): commands about one image read only its
files while images.yaml is as discover merged it, and do exactly what the full load would."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from image_factory.cli import main
from image_factory.errors import FactoryError
from image_factory.state import index

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from scale import build_factory

PY = "docker.io/library/python:3.12-slim"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
T0 = "2026-11-01T00:00:00Z"


def state_texts(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted((root / "state").rglob("*.yaml"))}


def run(root: Path, *args: str, full_load: bool = False) -> tuple[int, str, str]:
    """A command's exit, output and errors. `full_load`: with the index gone, which every command
    refuses (index.require_current), the command is let through to compare its full load."""
    import contextlib
    import io
    from unittest import mock

    out, err = io.StringIO(), io.StringIO()
    let = mock.patch.object(index, "require_current", lambda *_: None) if full_load else contextlib.nullcontext()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), let:
        code = main([*args, "--root", str(root)])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def twins(example_factory, tmp_path):
    """The bundled example twice: `fast` with its index, `full` without (commands load everything)."""
    fast = example_factory.root
    assert run(fast, "discover")[0] == 0
    assert (fast / index.INDEX).is_file() and (fast / index.GRAPH).is_file()
    full = tmp_path / "full"
    shutil.copytree(fast, full)
    (full / index.INDEX).unlink()
    (full / index.GRAPH).unlink()
    (full / index.DISCOVERED).unlink()
    return fast, full


def both(twins, *args: str) -> tuple[int, str, str]:
    """Run a command on both twins: the same exit, output and state, or the test fails."""
    fast, full = twins
    got = run(fast, *args)
    assert run(full, *args, full_load=True) == got, args
    assert state_texts(fast) == state_texts(full), args
    return got


EVENTS = [
    ("record-update", "--image", "python:3.12-slim", "--digest", D1, "--seen-at", T0),
    ("record-update", "--image", PY, "--digest", D2, "--seen-at", "2026-11-02T00:00:00Z", "--freight", "f2"),
    (
        "record-update",
        "--image",
        PY,
        "--digest",
        D2,
        "--verified",
        "false",
        "--reason",
        "no signature",
        "--seen-at",
        T0,
    ),
    ("reject", "--image", PY, "--digest", D1, "--reason", "broke the build", "--at", T0),
    ("unreject", "--image", PY, "--digest", D1, "--at", T0),  # an acceptance is stamped: the same in both twins
    ("expedite", "--image", PY, "--digest", D2, "--reason", "CVE-2026-1", "--at", T0),  # the same time in both twins
    ("expedite", "--image", PY, "--digest", D3, "--reason", "CVE-2026-2", "--force", "--at", T0),
    ("reject", "--image", PY, "--digest", "sha256:" + "4" * 64, "--reason", "typo", "--at", T0),  # refused: never seen
    ("record-update", "--image", "python:3.13", "--digest", D1),  # refused: not watched
    ("record-update", "--image", "ghcr.io/acme-platform/base-python:3.12", "--digest", D1),  # managed: refused
    ("record-update", "--image", PY, "--digest", "sha256:nope"),  # refused: not a digest
    (
        "record-build",
        "--image",
        "base-python",
        "--result",
        "success",
        "--digest",
        D3,
        "--base",
        f"{PY}={D2}",
        "--finished-at",
        "2026-11-03T00:00:00Z",
    ),
    (
        "record-build",
        "--image",
        "python-service",
        "--result",
        "failure",
        "--base",
        f"ghcr.io/acme-platform/base-python:3.12={D3}",
        "--error",
        "tests failed",
        "--finished-at",
        "2026-11-03T01:00:00Z",
    ),
    ("record-build", "--image", "nope", "--result", "failure"),  # refused: not managed
    ("record-build", "--image", "base-python", "--result", "success"),  # refused: no digest
]


def test_every_event_does_with_the_index_exactly_what_the_full_load_does(twins):
    refused = []
    for event in EVENTS:
        code, _, err = both(twins, *event)
        if code:
            refused.append(event[:3])
            assert err.strip(), event  # one clear error
    assert len(refused) == 6, refused
    history = yaml.safe_load(
        (twins[0] / "state/base-images").glob("docker.io-library-python-3.12-slim-*").__next__().read_text()
    )
    assert {D1, D2, D3} <= {entry["digest"] for entry in history["runtime"]["history"]}


def test_an_event_reads_and_writes_only_the_files_it_touches(twins):
    fast, full = twins
    for root in twins:  # a file the event has no business with, broken
        (root / "state/images/web.yaml").write_text("name: [unclosed\n")
    event = ("record-update", "--image", PY, "--digest", D1, "--seen-at", T0)
    assert run(fast, *event)[0] == 0
    code, _, err = run(full, *event, full_load=True)
    assert code == 1 and "state/images/web.yaml" in err  # the full load reads (and checks) every file


@pytest.mark.parametrize(
    "command",
    [
        ("record-update", "--image", PY, "--digest", D1, "--seen-at", T0),
        ("record-build", "--image", "web", "--result", "failure"),
        ("expedite", "--image", PY, "--digest", D1, "--reason", "CVE", "--force"),
        ("plan",),
        ("status",),
        ("synth",),
        ("dispatch", "--dry-run"),
        ("drain", "--from", "."),
        ("site",),
        ("build-info", "--image", "web"),
    ],
    ids=lambda command: command[0],
)
def test_state_made_from_another_images_yaml_or_none_is_refused_naming_discover(twins, command):
    """images.yaml changed and discover not run (a new image's bases never read, a removed one
    still in state), or no state at all: every command that plans, publishes or records refuses,
    says why, names the command that fixes it, and changes nothing."""
    fast, _ = twins
    config = fast / "images.yaml"
    config.write_text(config.read_text().replace("rebuildDelay: 7d", "rebuildDelay: 6d", 1) + "\n# edited\n")
    before = state_texts(fast)
    code, _, err = run(fast, *command)
    assert code == 1 and err.startswith("error: state/index.json: was written for another images.yaml: "), err
    assert err.rstrip().endswith(
        "run `image-factory discover` (it reads images.yaml and the Dockerfiles and writes state/)"
    )
    assert state_texts(fast) == before and not (fast / "dist").exists() and not (fast / "site").exists()
    shutil.rmtree(fast / "state")
    code, _, err = run(fast, *command)
    assert code == 1 and err.startswith(f"error: state: there is no state/ here, so {command[0]} has nothing to act on")
    assert run(fast, "discover")[0] == 0 and run(fast, "validate")[0] == 0


def test_an_orphaned_state_file_is_no_watched_image_with_the_index_either(twins):
    fast, full = twins
    for root in twins:
        config = root / "images.yaml"
        text = config.read_text()
        config.write_text(text.replace("  - name: web\n", "  - name: web-old-name-gone\n", 1))
    for root in twins:
        assert run(root, "discover")[0] == 0
    (full / index.INDEX).unlink()
    orphans = index.read_index(fast).orphans
    assert "state/images/web.yaml" in orphans
    got = both(twins, "record-build", "--image", "web", "--result", "failure")
    assert got[0] == 1 and "'web' is not a managed image" in got[2]


def test_plan_and_dispatch_after_one_event_see_exactly_what_the_full_plan_says_of_those_images(tmp_path):
    root = tmp_path / "fleet"
    build_factory(root, 200)
    assert run(root, "discover")[0] == 0
    base = "docker.io/acme-mirror/base0:0.0"
    assert run(root, "record-update", "--image", base, "--digest", D1, "--seen-at", T0)[0] == 0
    first = "svc-00000"  # on base0; svc-00001..3 are built on it, a chain
    build = ("--result", "success", "--finished-at", "2026-11-02T00:00:00Z")
    assert run(root, "record-build", "--image", first, "--digest", D2, "--base", f"{base}={D1}", *build)[0] == 0
    now = ("--now", "2026-11-20T00:00:00Z")
    full = json.loads(run(root, "plan", "--json", *now)[1])
    for subject in (base, first, "svc-00002"):
        scoped = json.loads(run(root, "plan", "--json", "--base", subject, *now)[1])
        images = {item["image"] for kind in scoped.values() for item in kind}
        assert images, subject
        for kind, items in full.items():
            assert [i for i in items if i["image"] in images] == scoped[kind], (subject, kind)
    scoped = json.loads(run(root, "plan", "--json", "--base", base, *now)[1])
    # the cascade from svc-00000's build: due but for its node base, which has no digest yet (as
    # dispatch says: there is nothing to pin it to)
    (waiting,) = [item for item in scoped["pending"] if item["image"] == "svc-00001"]
    assert waiting["waiting_for"] == "a first digest of docker.io/library/node:22-slim"
    assert "svc-00004" not in json.dumps(scoped)  # not built on base0
    code, out, _ = run(root, "dispatch", "--dry-run", "--base", first, *now)
    assert code == 0 and [line.split()[1] for line in out.splitlines()] == ["svc-00001:"]


def test_plan_base_names_an_unknown_subject(twins):
    code, _, err = both(twins, "plan", "--base", "docker.io/library/nothing:1")
    assert code == 1 and "neither a watched image nor a managed image" in err


def test_validate_checks_the_index_against_the_full_load(twins):
    fast, full = twins
    assert run(fast, "validate")[0] == 0
    code, _, err = run(full, "validate")
    assert code == 0 and "state/index.json is missing" in err
    graph = json.loads((fast / index.GRAPH).read_text())
    graph["children"]["base-python"] = []
    (fast / index.GRAPH).write_text(json.dumps(graph))
    code, _, err = run(fast, "validate")
    assert code == 1 and "state/graph.json" in err and "base-python" in err


def test_a_noop_discover_reads_nothing_and_any_change_is_read(example_factory):
    root = example_factory.root
    assert run(root, "discover")[0] == 0
    before = example_factory.snapshot()
    code, out, _ = run(root, "discover")
    assert code == 0 and "nothing written" in out
    assert example_factory.snapshot() == before
    dockerfile = next((root / "examples").rglob("Dockerfile"))
    dockerfile.write_text(dockerfile.read_text() + "\nFROM busybox:1.36 AS extra\n")
    code, out, _ = run(root, "discover")
    assert code == 0 and "busybox" in out and "wrote state/discovered.json" in out
    victim = next((root / "state/images").glob("*.yaml"))
    victim.unlink()
    code, out, _ = run(root, "discover")
    assert code == 0 and f"wrote {victim.relative_to(root)}" in out
    assert run(root, "discover", "--check")[0] == 0


def test_a_plan_with_a_current_index_loads_the_state_the_merge_gives(twins, tmp_path):
    """load_model(settings_only=True) skips images.yaml and the merge while the index is current:
    the state it gives is the merged state, runtime data included, without orphans."""
    from image_factory.discovery.discover import load_model

    fast, _ = twins
    for event in EVENTS:
        run(fast, *event)
    config, state = load_model(fast)
    quick_config, quick_state = load_model(fast, settings_only=True)
    assert quick_state == state
    assert quick_state.images.keys() == state.images.keys()  # in the same (sorted) order
    assert list(quick_state.base_images) == list(state.base_images)
    for field in ("cascade_delay", "kargo", "trust", "argocd", "registry_mirrors", "insecure_registries", "defaults"):
        assert getattr(quick_config, field) == getattr(config, field), field
    (fast / "images.yaml").write_text((fast / "images.yaml").read_text() + "# edited\n")
    assert load_model(fast, settings_only=True)[0] == load_model(fast)[0]  # stale index: the full load


def test_the_state_cache_parses_only_what_changed_and_never_serves_an_old_file(example_factory, monkeypatch):
    from image_factory.state import store as state_module
    from image_factory.state.store import load_state

    root = example_factory.root
    first = load_state(root)
    parsed = []
    real = state_module.load_files
    monkeypatch.setattr(state_module, "load_files", lambda r, paths: parsed.extend(paths) or real(r, paths))
    assert load_state(root) == first and parsed == []  # every file remembered
    victim = root / "state/images/web.yaml"
    text = victim.read_text()
    victim.write_text(text.replace("currentDigest: null", "currentDigest: 'sha256:" + "a" * 64 + "'"))
    changed = load_state(root)  # at once: same second, another size; the stat is not trusted anyway
    assert parsed == [victim] and changed.images["web"].runtime.current_digest == "sha256:" + "a" * 64
    victim.write_text(text)
    assert load_state(root) == first  # the old content again: remembered by its digest
    victim.write_text("name: [unclosed\n")
    with pytest.raises(FactoryError, match=r"state/images/web\.yaml"):
        load_state(root)  # a broken file is parsed, and refused, every time


def test_what_discover_remembers_is_served_to_the_next_command(example_factory, tmp_path, monkeypatch):
    """Each command is its own process: the state cache's key must not depend on what the
    process checked before (fastjsonschema rewrites the schemas it compiles, in place), or the
    first plan after a discover parses every file again."""
    import marshal
    import os
    import subprocess

    from image_factory.state import cache as state_cache

    root = example_factory.root
    monkeypatch.setenv("IMAGE_FACTORY_CACHE", str(tmp_path / "cache"))
    env = dict(os.environ)
    tool = [sys.executable, "-m", "image_factory.cli"]
    subprocess.run([*tool, "discover", "--full", "--root", str(root)], check=True, env=env, capture_output=True)
    kept = marshal.loads(state_cache.cache_path(root).read_bytes())
    fresh = subprocess.run(
        [sys.executable, "-c", "from image_factory.state import cache; print(cache._key())"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert kept["key"] == fresh
    assert len(kept["parsed"]) == len(list((root / "state").rglob("*.yaml")))


def test_a_watched_image_read_without_its_dependents_is_the_full_read_less_them(twins):
    """Scoped plans read the watched images other than the event's own without their dependents
    (a toolchain's 20,000): everything else as the full read, and any problem worded by it."""
    from dataclasses import replace

    from image_factory.state.store import load_base_without_dependents, load_files

    fast, _ = twins
    paths = sorted((fast / "state/base-images").glob("*.yaml"))
    assert any("dependents:\n- image:" in path.read_text() for path in paths)
    for path in paths:
        (whole,) = load_files(fast, [path])
        assert load_base_without_dependents(fast, path) == replace(whole, dependents=[]), path.name
    path = next(path for path in paths if "dependents:\n- image:" in path.read_text())
    path.write_text(path.read_text().replace("history: []", "history: 7"))
    (whole,) = load_files(fast, [path])
    assert isinstance(whole, list) and load_base_without_dependents(fast, path) == whole  # same line named


def test_a_state_file_edited_against_images_yaml_is_refused_by_validate(twins):
    """With the index current, commands read an image's enrolment (its signing policy, its source
    repository) from its state file: one edited to say otherwise than images.yaml must not pass
    validate (the pull request check), and discover --full writes it again."""
    fast, _ = twins
    path = fast / "state/images/orders-api.yaml"
    original = path.read_text()
    path.write_text(
        original.replace("provider: local", "provider: github", 1).replace(
            "repo: examples/orders-api", "repo: attacker/evil", 1
        )
    )
    assert path.read_text() != original
    code, _, err = run(fast, "validate")
    assert code == 1 and "state/images/orders-api.yaml: differs from what images.yaml" in err
    assert run(fast, "discover", "--full")[0] == 0
    assert path.read_text() == original
    assert run(fast, "validate")[0] == 0
