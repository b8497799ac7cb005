"""`discover`, `prune` and `validate` on real factory folders: state contents, lifecycle, safety."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from image_factory.cli import main
from image_factory.discovery.discover import discover
from image_factory.enrolment.refs import parse_ref
from image_factory.errors import FactoryError
from image_factory.state import files

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
PYTHON = "docker.io/library/python:3.12-slim"


def base_path(ref: str) -> str:
    return f"state/base-images/{parse_ref(ref).slug()}.yaml"


def load(factory, relative: str) -> dict:
    return yaml.safe_load(factory.read(relative))


def set_runtime(factory, relative: str, **runtime) -> None:
    """Edit a state file's runtime section the way a later workflow step would."""
    data = load(factory, relative)
    data["runtime"].update(runtime)
    factory.write(relative, yaml.safe_dump(data, sort_keys=False))


HISTORY = [{"digest": DIGEST_A, "firstSeen": "2026-11-01T10:00:00Z", "seenBy": "kargo"}]
BUILD = {
    "result": "success",
    "startedAt": "2026-11-02T10:00:00Z",
    "digest": DIGEST_B,
    "baseDigests": {PYTHON: DIGEST_A},
}


@pytest.fixture
def chain(factory):
    """base (FROM python) → app (FROM base, COPY --from=tools) with an external redis."""
    factory.write(
        "images.yaml",
        """
        images:
          - name: base
            registry: ghcr.io
            repository: acme/base
            tag: "1"
            source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: build.yml}
          - name: app
            registry: ghcr.io
            repository: acme/app
            rebuildDelay: 3d
            source: {provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}
          - name: redis
            registry: docker.io
            repository: library/redis
            tag: "7"
        """,
    )
    factory.write("base/Dockerfile", "FROM python:3.12-slim\n")
    factory.write(
        "app/Dockerfile",
        f"""
        FROM golang:1.23@{DIGEST_A} AS build
        FROM ghcr.io/acme/base:1
        COPY --from=build /a /a
        COPY --from=ghcr.io/acme/tools:2 /t /t
        """,
    )
    return factory


def test_discover_writes_one_file_per_image_and_base(chain):
    outcome = discover(chain.root)
    assert outcome.removed == []
    assert chain.state_files() == sorted(
        [
            "state/images/app.yaml",
            "state/images/base.yaml",
            base_path(PYTHON),
            base_path("golang:1.23"),
            base_path("ghcr.io/acme/tools:2"),
            base_path("redis:7"),
        ]
    )
    app = load(chain, "state/images/app.yaml")
    assert app["ref"] == "ghcr.io/acme/app:latest"
    assert app["enrolment"] == {
        "source": {
            "provider": "local",
            "repo": "app",
            "branch": "main",
            "dockerfile": "Dockerfile",
            "context": ".",
            "workflow": "build.yml",
        },
        "rebuildDelay": "3d",
        "autoRebuild": True,
    }
    assert app["baseImages"] == [
        {"ref": f"docker.io/library/golang:1.23@{DIGEST_A}", "kind": "from", "stage": "build"},
        {"ref": "ghcr.io/acme/base:1", "kind": "from", "stage": "1", "image": "base"},
        {"ref": "ghcr.io/acme/tools:2", "kind": "copy-from", "stage": "1"},
    ]
    golang = load(chain, base_path("golang:1.23"))
    assert golang["ref"] == "docker.io/library/golang:1.23"
    assert golang["dependents"] == [{"image": "app", "pinnedDigest": DIGEST_A}]
    assert golang["warehouse"] == {
        "repoURL": "docker.io/library/golang",
        "imageSelectionStrategy": "Digest",
        "constraint": "1.23",
    }
    python = load(chain, base_path(PYTHON))
    assert python["dependents"] == [{"image": "base", "pinnedDigest": None}]
    assert python["enrolledAs"] is None
    redis = load(chain, base_path("redis:7"))
    assert (redis["enrolledAs"], redis["dependents"], redis["rebuildDelay"]) == ("redis", [], "7d")
    # a managed image is never watched: no base-image file for ghcr.io/acme/base
    assert not (chain.root / base_path("ghcr.io/acme/base:1")).exists()


def test_discover_is_deterministic_and_idempotent_in_git(chain):
    git = lambda *args: subprocess.run(["git", *args], cwd=chain.root, check=True, capture_output=True, text=True)  # noqa: E731
    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "init")
    discover(chain.root)
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "state")
    before = chain.snapshot()
    outcome = discover(chain.root)
    assert outcome.written == [] and outcome.removed == []
    assert outcome.merge is None  # nothing changed since: no state file or Dockerfile parsed again
    assert chain.snapshot() == before
    (chain.root / "state/discovered.json").unlink()  # without its memory, discover reads everything again
    outcome = discover(chain.root)
    assert outcome.written == ["state/discovered.json"] and len(outcome.unchanged) == 6
    assert chain.snapshot() == before
    assert git("status", "--porcelain").stdout == ""


def test_config_change_keeps_runtime_data(chain):
    discover(chain.root)
    set_runtime(chain, base_path(PYTHON), currentDigest=DIGEST_A, history=HISTORY)
    set_runtime(chain, "state/images/base.yaml", currentDigest=DIGEST_B, lastBuild=BUILD, attempts=[BUILD])
    chain.write("images.yaml", chain.read("images.yaml").replace('tag: "1"', 'tag: "1"\n    rebuildDelay: 12h'))
    chain.write("base/Dockerfile", "FROM python:3.12-slim AS py\nFROM py\nCOPY --from=busybox:1.36 /bin/sh /sh\n")
    discover(chain.root)
    base = load(chain, "state/images/base.yaml")
    assert base["enrolment"]["rebuildDelay"] == "12h"
    assert [b["ref"] for b in base["baseImages"]] == [PYTHON, "docker.io/library/busybox:1.36"]
    assert base["runtime"] == {"currentDigest": DIGEST_B, "history": [], "lastBuild": BUILD, "attempts": [BUILD]}
    assert load(chain, base_path(PYTHON))["runtime"]["history"] == HISTORY


def test_base_enrolled_with_a_source_becomes_managed_and_keeps_its_history(chain):
    discover(chain.root)
    tools = base_path("ghcr.io/acme/tools:2")
    set_runtime(chain, tools, currentDigest=DIGEST_A, history=HISTORY)
    chain.write("tools/Dockerfile", "FROM alpine:3.20\n")
    chain.write(
        "images.yaml",
        chain.read("images.yaml")
        + """  - name: tools
    registry: ghcr.io
    repository: acme/tools
    tag: "2"
    source: {provider: local, repo: tools, dockerfile: Dockerfile, workflow: build.yml}
""",
    )
    outcome = discover(chain.root)
    assert outcome.removed == [tools]
    assert not (chain.root / tools).exists()
    managed = load(chain, "state/images/tools.yaml")
    assert managed["runtime"]["history"] == HISTORY
    assert managed["runtime"]["currentDigest"] == DIGEST_A
    app = load(chain, "state/images/app.yaml")
    assert {"ref": "ghcr.io/acme/tools:2", "kind": "copy-from", "stage": "1", "image": "tools"} in app["baseImages"]


def test_managed_image_whose_source_is_removed_becomes_watched(chain):
    discover(chain.root)
    set_runtime(chain, "state/images/base.yaml", currentDigest=DIGEST_B, history=HISTORY, lastBuild=BUILD)
    chain.write(
        "images.yaml",
        chain.read("images.yaml").replace(
            "    source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: build.yml}\n", "", 1
        ),
    )
    outcome = discover(chain.root)
    watched = base_path("ghcr.io/acme/base:1")
    assert outcome.removed == ["state/images/base.yaml"]
    assert not (chain.root / "state/images/base.yaml").exists()
    data = load(chain, watched)
    assert data["enrolledAs"] == "base"
    assert data["dependents"] == [{"image": "app", "pinnedDigest": None}]
    assert data["warehouse"]["constraint"] == "1"
    assert data["runtime"]["history"] == HISTORY
    assert data["runtime"]["lastBuild"] == BUILD
    # python:3.12-slim was only used by base's Dockerfile: now unreferenced, kept until prune
    assert outcome.merge.orphans == [base_path(PYTHON)]


def test_managed_image_dropped_from_config_but_still_used_is_watched(chain):
    discover(chain.root)
    set_runtime(chain, "state/images/base.yaml", currentDigest=DIGEST_B, history=HISTORY)
    text = chain.read("images.yaml")
    start = text.index("  - name: base")
    chain.write("images.yaml", text[:start] + text[text.index("  - name: app") :])
    discover(chain.root)
    data = load(chain, base_path("ghcr.io/acme/base:1"))
    assert data["enrolledAs"] is None
    assert data["runtime"]["history"] == HISTORY


def test_renamed_managed_image_keeps_its_runtime(chain):
    discover(chain.root)
    set_runtime(chain, "state/images/app.yaml", lastBuild=BUILD, attempts=[BUILD])
    chain.write("images.yaml", chain.read("images.yaml").replace("name: app", "name: app-server"))
    outcome = discover(chain.root)
    assert outcome.removed == ["state/images/app.yaml"]
    assert load(chain, "state/images/app-server.yaml")["runtime"]["lastBuild"] == BUILD


def test_prune_removes_only_unreferenced_state(chain, capsys):
    discover(chain.root)
    text = chain.read("images.yaml")
    chain.write("images.yaml", text[: text.index("  - name: redis")])
    outcome = discover(chain.root)
    redis = base_path("redis:7")
    assert outcome.merge.orphans == [redis]
    assert (chain.root / redis).exists()

    assert main(["prune", "--root", str(chain.root), "--dry-run"]) == 0
    assert capsys.readouterr().out == f"would remove {redis}\n"
    assert (chain.root / redis).exists()

    assert main(["prune", "--root", str(chain.root)]) == 0
    assert capsys.readouterr().out == f"removed {redis}\n"
    assert not (chain.root / redis).exists()
    assert main(["prune", "--root", str(chain.root)]) == 0
    assert "nothing to prune" in capsys.readouterr().out
    assert len(chain.state_files()) == 5


def test_a_missing_dockerfile_is_an_error_and_its_image_keeps_its_bases(chain, capsys):
    """One team's missing Dockerfile does not hold up the fleet: the rest is written, exit 1."""
    discover(chain.root)
    chain.write("images.yaml", chain.read("images.yaml").replace("rebuildDelay: 3d", "rebuildDelay: 1d"))
    (chain.root / "app/Dockerfile").unlink()
    chain.write("base/Dockerfile", "FROM python:3.13-slim\n")
    app = chain.read("state/images/app.yaml")
    assert main(["discover", "--root", str(chain.root)]) == 1
    assert capsys.readouterr().err == "error: images.yaml:7: images: Dockerfile of 'app' not found: app/Dockerfile\n"
    assert yaml.safe_load(chain.read("state/images/app.yaml"))["baseImages"] == yaml.safe_load(app)["baseImages"]
    assert "rebuildDelay: 1d" in chain.read("state/images/app.yaml")  # images.yaml still wins
    assert "ref: docker.io/library/python:3.13-slim" in chain.read("state/images/base.yaml")  # the rest was written
    assert main(["discover", "--root", str(chain.root)]) == 1  # said again until it is mended, never "up to date"


def test_a_dockerfile_without_from_is_an_error_and_its_image_keeps_its_bases(chain, capsys):
    discover(chain.root)
    base = chain.read("state/images/base.yaml")
    chain.write("base/Dockerfile", "RUN echo no base\n")
    assert main(["discover", "--root", str(chain.root)]) == 1
    assert capsys.readouterr().err == "error: base/Dockerfile: no FROM instruction: not a Dockerfile\n"
    assert yaml.safe_load(chain.read("state/images/base.yaml"))["baseImages"] == yaml.safe_load(base)["baseImages"]


def test_one_refused_dockerfile_never_stops_the_fleet(factory, capsys):
    """Over the size bound, too deep, not a Dockerfile: each such image keeps the bases recorded
    before, every other image's change is written, and discover exits 1 naming each file."""
    names = [f"svc-{i}" for i in range(6)]
    factory.write(
        "images.yaml",
        "kargo: {factoryRepo: acme/factory}\nimages:\n"
        + "".join(
            f"  - {{name: {n}, registry: ghcr.io, repository: acme/{n},"
            f" source: {{provider: local, repo: {n}, dockerfile: Dockerfile, workflow: build.yml}}}}\n"
            for n in names
        ),
    )
    for name in names:
        factory.write(f"{name}/Dockerfile", "FROM python:3.12-slim\n")
    discover(factory.root)
    factory.write("svc-0/Dockerfile", "FROM python:3.12-slim\n" * 60_000)  # over 1 MiB
    factory.write("svc-1/Dockerfile", "ARG A\nFROM python:" + "${A:-" * 5000 + "3" + "}" * 5000 + "\n")
    factory.write("svc-2/Dockerfile", "RUN true\n")
    for name in names[3:]:
        factory.write(f"{name}/Dockerfile", "FROM node:22-slim\n")
    assert main(["discover", "--root", str(factory.root)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: svc-0/Dockerfile: Dockerfile of 'svc-0' is 1,320,000 bytes, over 1 MiB: refused",
        "error: svc-1/Dockerfile: refused: variable references nested more than 64 deep",
        "error: svc-2/Dockerfile: no FROM instruction: not a Dockerfile",
        "3 problems found.",
    ]

    def bases(name):
        return [b["ref"] for b in yaml.safe_load(factory.read(f"state/images/{name}.yaml"))["baseImages"]]

    assert [bases(n) for n in names] == [["docker.io/library/python:3.12-slim"]] * 3 + [
        ["docker.io/library/node:22-slim"]
    ] * 3
    assert main(["validate", "--root", str(factory.root)]) == 0


def test_cycle_is_an_error_naming_the_cycle(chain, capsys):
    chain.write("base/Dockerfile", "FROM ghcr.io/acme/app:latest\n")
    before = chain.snapshot()
    assert main(["discover", "--root", str(chain.root)]) == 1
    assert capsys.readouterr().err == "error: images.yaml:7: images: dependency cycle: app → base → app\n"
    assert chain.snapshot() == before


def test_image_that_depends_on_itself_is_an_error(chain):
    chain.write("base/Dockerfile", "FROM ghcr.io/acme/base:0 AS previous\nFROM python:3.12-slim\n")
    with pytest.raises(FactoryError) as raised:
        discover(chain.root)
    assert str(raised.value) == "images.yaml:2: images: image 'base' depends on itself (ghcr.io/acme/base)"


def test_unresolved_argument_is_recorded_not_invented(chain):
    chain.write("base/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    discover(chain.root)
    base = load(chain, "state/images/base.yaml")
    assert base["baseImages"] == []
    assert base["unresolved"] == ["${BASE_IMAGE}"]


def test_github_sources_read_from_a_checkout_or_keep_what_was_recorded(factory, tmp_path):
    factory.write(
        "images.yaml",
        """
        images:
          - name: payments
            registry: ghcr.io
            repository: acme/payments
            source: {provider: github, repo: acme/payments, dockerfile: docker/Dockerfile, workflow: build.yml}
        """,
    )
    checkouts = tmp_path / "checkouts"
    (checkouts / "acme/payments/docker").mkdir(parents=True)
    (checkouts / "acme/payments/docker/Dockerfile").write_text("FROM node:22-bookworm-slim\n")
    discover(factory.root, checkouts)
    bases = lambda: [b["ref"] for b in load(factory, "state/images/payments.yaml")["baseImages"]]  # noqa: E731
    assert bases() == ["docker.io/library/node:22-bookworm-slim"]

    outcome = discover(factory.root)  # no checkout: the recorded bases stand, nothing to read again
    assert outcome.merge is None and outcome.written == []
    factory.write("images.yaml", factory.read("images.yaml") + "# changed\n")
    outcome = discover(factory.root)  # read again, still without a checkout
    assert outcome.merge.not_checked == ["payments"]
    # the digest of images.yaml they are for
    assert outcome.written == ["state/discovered.json", "state/graph.json", "state/index.json"]
    assert bases() == ["docker.io/library/node:22-bookworm-slim"]

    (checkouts / "acme/payments/docker/Dockerfile").unlink()
    (problem,) = discover(factory.root, checkouts).problems
    assert "Dockerfile of 'payments' not found" in str(problem)
    assert bases() == ["docker.io/library/node:22-bookworm-slim"]


def test_invalid_state_file_is_named_with_its_line_and_nothing_is_written(chain, capsys):
    discover(chain.root)
    chain.write("state/images/base.yaml", chain.read("state/images/base.yaml").replace("kind: from", "kind: FROM"))
    chain.write("images.yaml", chain.read("images.yaml").replace("rebuildDelay: 3d", "rebuildDelay: 1d"))
    before = chain.snapshot()
    assert main(["discover", "--root", str(chain.root)]) == 1
    line = chain.read("state/images/base.yaml").splitlines().index("  kind: FROM") + 1
    assert capsys.readouterr().err == (
        f"error: state/images/base.yaml:{line}: baseImages[0].kind: 'FROM' must be one of from, copy-from, mount-from\n"
    )
    assert chain.snapshot() == before


def test_state_file_under_the_wrong_name_is_refused(chain):
    discover(chain.root)
    (chain.root / "state/images/base.yaml").rename(chain.root / "state/images/other.yaml")
    with pytest.raises(FactoryError) as raised:
        discover(chain.root)
    assert str(raised.value) == "state/images/other.yaml:2: name: 'base' does not match the file name other.yaml"


def test_a_failed_write_half_way_restores_every_file(chain, monkeypatch):
    discover(chain.root)
    chain.write("images.yaml", chain.read("images.yaml").replace('tag: "7"', 'tag: "7"\n    rebuildDelay: 1d'))
    chain.write("base/Dockerfile", "FROM python:3.13-slim\n")
    before = chain.snapshot()
    real_replace = files.os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        discover(chain.root)
    assert len(calls) > 3  # two files were replaced, then put back
    assert chain.snapshot() == before
    assert not list(chain.root.rglob("*.tmp"))


def test_check_and_dry_run_write_nothing(chain, capsys):
    before = chain.snapshot()
    assert main(["discover", "--root", str(chain.root), "--dry-run"]) == 0
    # with index, graph, and the built-on digest its pinned golang base counts as (state/built_on.py)
    assert "State: 10 to write, 0 unchanged, 0 to remove." in capsys.readouterr().out
    assert main(["discover", "--root", str(chain.root), "--check"]) == 1
    assert "state/ is not up to date" in capsys.readouterr().err
    assert chain.snapshot() == before
    assert main(["discover", "--root", str(chain.root)]) == 0
    capsys.readouterr()
    assert main(["discover", "--root", str(chain.root), "--check"]) == 0


def test_validate_reports_config_and_state_problems_together(chain, capsys):
    discover(chain.root)
    chain.write("images.yaml", chain.read("images.yaml").replace("rebuildDelay: 3d", "rebuildDelay: soon"))
    chain.write("state/images/app.yaml", chain.read("state/images/app.yaml") + "extra: 1\n")
    assert main(["validate", "--root", str(chain.root)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: images.yaml:10: images[1].rebuildDelay: 'soon' is not a duration (e.g. 7d, 36h, 90m)"
    assert err[1].startswith("error: state/images/app.yaml:")
    allowed = "baseImages, basesUnknown, dockerfileMissing, enrolment, name, ref, runtime, unresolved"
    assert err[1].endswith(f": extra: unknown field (allowed: {allowed})")
    assert err[2] == "2 problems found."


def test_an_expression_in_a_state_file_is_refused_with_its_line(chain, capsys):
    """State edited by hand reaches the manifests like images.yaml: the same refusal, its line."""
    discover(chain.root)
    text = chain.read("state/images/app.yaml")
    hostile = text.replace(
        "workflow: build.yml", "workflow: \"build.yml\\x24{{ secret('image-factory-github').token }}\""
    )
    assert hostile != text
    chain.write("state/images/app.yaml", hostile)
    before = chain.snapshot()
    assert main(["validate", "--root", str(chain.root)]) == 1
    line = next(n for n, row in enumerate(hostile.splitlines(), 1) if "workflow:" in row)
    assert capsys.readouterr().err == (
        f"error: state/images/app.yaml:{line}: enrolment.source.workflow: '${{{{' is not allowed: it is a Kargo "
        "expression delimiter, and this text reaches the manifests\n"
    )
    assert chain.snapshot() == before


@pytest.mark.parametrize("escape", ["\\x7F", "\\x80", "\\uFFFE"])
def test_text_kargo_could_not_read_back_is_refused_in_images_yaml_and_state(chain, capsys, escape):
    """Kargo reads a step's evaluated configuration back as YAML (evaluator.go:316-319, v1.11.2),
    which refuses U+007F, U+0080-U+009F and U+FFFE; the step then runs with no configuration and
    sends nothing. Such text is refused where it was written, with its line."""
    discover(chain.root)
    text = chain.read("state/images/app.yaml")
    hostile = text.replace("workflow: build.yml", f'workflow: "build{escape}.yml"')
    assert hostile != text
    chain.write("state/images/app.yaml", hostile)
    before = chain.snapshot()
    assert main(["validate", "--root", str(chain.root)]) == 1
    line = next(n for n, row in enumerate(hostile.splitlines(), 1) if "workflow:" in row)
    code = escape.removeprefix("\\x").removeprefix("\\u").upper().zfill(4)
    err = capsys.readouterr().err
    assert err.startswith(f"error: state/images/app.yaml:{line}: enrolment.source.workflow: U+{code} is not allowed: ")
    assert "Kargo reads a step's configuration back as YAML, which refuses it" in err
    assert chain.snapshot() == before


def test_a_digest_in_another_case_is_refused_in_events_and_state(chain, capsys):
    """`SHA256:…` or upper-case hex would record the same digest twice under two names."""
    discover(chain.root)
    upper = "sha256:" + "AB" * 32
    before = chain.snapshot()
    assert main(["record-update", "--root", str(chain.root), "--image", "python:3.12-slim", "--digest", upper]) == 1
    assert "invalid sha256 digest: 64 lowercase hex digits" in capsys.readouterr().err
    assert chain.snapshot() == before
    good = "sha256:" + "ab" * 32
    assert main(["record-update", "--root", str(chain.root), "--image", "python:3.12-slim", "--digest", good]) == 0
    path = next((chain.root / "state/base-images").glob("docker.io-library-python-3.12-slim-*.yaml"))
    text = path.read_text()
    path.write_text(text.replace(good, good.upper().replace("SHA256", "sha256")))
    capsys.readouterr()
    assert main(["validate", "--root", str(chain.root)]) == 1
    err = capsys.readouterr().err
    assert "is not a canonical digest (sha256: and 64 lowercase hex digits)" in err and path.name in err


def test_times_in_the_future_are_refused_in_events_and_state(chain, capsys):
    """A firstSeen a year ahead would keep a digest "not yet eligible" for a year."""
    discover(chain.root)
    digest = "sha256:" + "cd" * 32
    record = ["record-update", "--root", str(chain.root), "--image", "python:3.12-slim", "--digest", digest]
    before = chain.snapshot()
    assert main([*record, "--seen-at", "2999-01-01T00:00:00Z"]) == 1
    assert capsys.readouterr().err == "error: --seen-at: 2999-01-01T00:00:00Z is in the future\n"
    assert chain.snapshot() == before
    assert main(record) == 0
    path = next((chain.root / "state/base-images").glob("docker.io-library-python-3.12-slim-*.yaml"))
    text = path.read_text()
    seen = next(line.split("firstSeen: ")[1].strip().strip("'\"") for line in text.splitlines() if "firstSeen" in line)
    path.write_text(text.replace(seen, "2999-01-01T00:00:00Z"))
    capsys.readouterr()
    assert main(["validate", "--root", str(chain.root)]) == 1
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1) if "firstSeen" in row)
    err = capsys.readouterr().err
    assert (
        f"{path.relative_to(chain.root)}:{line}: runtime.history[0].firstSeen: 2999-01-01T00:00:00Z is in the future"
        in err
    )


def test_a_delay_beyond_a_year_in_state_is_refused_before_it_overflows(chain, capsys):
    discover(chain.root)
    path = chain.root / "state/images/app.yaml"
    text = path.read_text()
    delay = next(line for line in text.splitlines() if "rebuildDelay:" in line)
    path.write_text(text.replace(delay, delay.split(":")[0] + ": 99999999999999d"))
    assert main(["plan", "--root", str(chain.root)]) == 1
    assert "enrolment.rebuildDelay: '99999999999999d' is longer than a year (366d)" in capsys.readouterr().err


def refused(root) -> list[str]:
    """The Dockerfiles a discover refused, as it words them (it writes the rest)."""
    return [str(problem) for problem in discover(root).problems]


@pytest.mark.parametrize("target", ["/etc/passwd", "/nonexistent/Dockerfile"])
def test_a_dockerfile_symlink_leading_outside_is_refused_unread(factory, target):
    """Same answer whether the target exists or not: it tells nothing about the machine."""
    factory.write("images.yaml", LOCAL_APP)
    (factory.root / "app").mkdir()
    (factory.root / "app/Dockerfile").symlink_to(target)
    assert refused(factory.root) == ["app/Dockerfile: Dockerfile of 'app' leads outside its repository (a symlink)"]


def test_a_repository_folder_symlink_leading_outside_is_refused(factory, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "Dockerfile").write_text("FROM python:3.12-slim\n")
    factory.write("images.yaml", LOCAL_APP)
    (factory.root / "app").symlink_to(elsewhere, target_is_directory=True)
    (problem,) = refused(factory.root)
    assert "leads outside its repository" in problem


def test_a_symlink_inside_the_repository_is_followed(factory):
    factory.write("images.yaml", LOCAL_APP)
    factory.write("app/docker/Dockerfile.real", "FROM python:3.12-slim\n")
    (factory.root / "app/Dockerfile").symlink_to("docker/Dockerfile.real")
    discover(factory.root)
    assert "docker.io/library/python:3.12-slim" in factory.read("state/images/app.yaml")


LOCAL_APP = """
images:
  - name: app
    registry: ghcr.io
    repository: acme/app
    source: {provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}
"""


def test_a_dockerfile_over_a_mebibyte_is_refused_unread(factory):
    factory.write("images.yaml", LOCAL_APP)
    factory.write("app/Dockerfile", "FROM python:3.12-slim\n" * 60_000)  # 1.3 MB of FROM lines
    assert refused(factory.root) == ["app/Dockerfile: Dockerfile of 'app' is 1,320,000 bytes, over 1 MiB: refused"]


@pytest.mark.parametrize(
    "dockerfile, reason",
    [
        # each ARG doubles the one before: 2**40 characters if expanded
        (
            "ARG A0=xxxxxxxx\n"
            + "".join(f"ARG A{i}=${{A{i - 1}}}${{A{i - 1}}}\n" for i in range(1, 41))
            + "FROM $A40\n",
            "refused: a value expands past 65,536 characters",
        ),
        (
            "ARG A\nFROM python:" + "${A:-" * 5000 + "3" + "}" * 5000 + "\n",
            "refused: variable references nested more than 64 deep",
        ),
    ],
    ids=["doubling-args", "deep-nesting"],
)
def test_argument_bombs_are_refused_naming_the_file(factory, dockerfile, reason):
    factory.write("images.yaml", LOCAL_APP)
    factory.write("app/Dockerfile", dockerfile)
    assert refused(factory.root) == [f"app/Dockerfile: {reason}"]
    assert "baseImages: []" in factory.read("state/images/app.yaml")  # never read: no bases recorded


def test_a_dockerfile_over_the_bound_of_distinct_bases_is_refused(factory, capsys):
    """10,000 FROM lines would make 10,000 Warehouses: over defaults.maxBases (50 unless set),
    the Dockerfile is refused and its image keeps what it had."""
    factory.write("images.yaml", LOCAL_APP)
    factory.write("app/Dockerfile", "".join(f"FROM registry.example.com/base{i}:1 AS s{i}\n" for i in range(10_000)))
    assert main(["discover", "--root", str(factory.root)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: app/Dockerfile: Dockerfile of 'app' builds on 10,000 distinct images, over defaults.maxBases (50) "
        "in images.yaml: refused"
    ]
    assert list((factory.root / "state" / "base-images").glob("*.yaml")) == []
    factory.write("images.yaml", "defaults: {maxBases: 3}\n" + LOCAL_APP)
    factory.write("app/Dockerfile", "".join(f"FROM registry.example.com/base{i}:1 AS s{i}\n" for i in range(3)))
    assert main(["discover", "--root", str(factory.root)]) == 0
    assert len(list((factory.root / "state" / "base-images").glob("*.yaml"))) == 3
