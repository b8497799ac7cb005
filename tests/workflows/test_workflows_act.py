"""The factory's validate and synth workflows, run by `act` on this machine against a fixture
factory repository (a copy of the bundled example). Their steps install the tool from the lock's
wheels, downloaded once per test run (tests/run_shared.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ..conftest import commit, copy_project, git, with_origin
from ..cosign_signer import cosign_sign, new_key, public_pem
from ..standins import ACT, ACT_ON_THIS_MACHINE, ACTIONS, TOOL, act_environment, pinned_actions

pytestmark = pytest.mark.slow  # each test runs workflows under act

FACTORY_PATHS = [
    "images.yaml",
    "examples",
    "state",
    "dist",
    "schemas",
    "cdk8s",
    "action",
    "requirements",
    "pyproject.toml",
    "README.md",
    ".github",
]


@pytest.fixture
def factory_repo(tmp_path):
    """The factory as a git repository whose origin is a local bare repository."""
    work = tmp_path / "factory"
    work.mkdir()
    copy_project(work, FACTORY_PATHS)
    git(work, "init", "--quiet", "--initial-branch=main")
    commit(work, "factory")
    return work, with_origin(work, tmp_path)


def standin_args(workflow: Path) -> list[str]:
    """The actions `workflow` pins besides actions/checkout (act copies the working folder for it),
    run as their stand-ins (tests/standins.py): act fetches every action of a job before it starts."""
    pins = pinned_actions(workflow)
    return [
        f"--local-repository={name}@{sha}={ACTIONS / name}"
        for name, shas in sorted(pins.items())
        if name != "actions/checkout"
        for sha in sorted(shas)
    ]


# act 0.2.89 predates `queue` in `concurrency` (GitHub, 2026-05-07) and refuses a workflow that has it;
# it runs one workflow at a time anyway, so the workflow it runs here goes without that line. git is
# told not to look at that file: on GitHub the checkout is pristine, and `--push` refuses a checkout
# with a change to a tracked file.
NEWER_THAN_ACT = "  queue: max\n"


def act(
    cwd: Path, event: str, workflow: str, *extra: str, payload: dict | None = None, home: Path | None = None
) -> tuple[int, str]:
    """`workflow` run by act on `event` in `cwd`; `home` holds the event file and act's cache
    (default: beside `cwd`; runs at the same time need one each)."""
    home = home or cwd.parent
    if workflow == "events.yml" and not any("IMAGE_FACTORY_INBOX_KEY" in arg for arg in extra):
        extra = (*extra, "-s", f"IMAGE_FACTORY_INBOX_KEY={INBOX_KEY}")  # the factory's secret (README)
    path = cwd / ".github" / "workflows" / workflow
    text = path.read_text()
    if NEWER_THAN_ACT in text:
        path.write_text(text.replace(NEWER_THAN_ACT, ""))
        if (cwd / ".git").exists():
            git(cwd, "update-index", "--skip-worktree", f".github/workflows/{workflow}")
    args = [
        str(ACT),
        event,
        "-W",
        f".github/workflows/{workflow}",
        *ACT_ON_THIS_MACHINE,
        "--defaultbranch",  # github.event.repository.default_branch when there is no event file
        "main",
        *standin_args(cwd / ".github/workflows" / workflow),
        *extra,
    ]
    if payload is not None:
        event_file = home / f"{event}.json"
        # GitHub sends the repository with every event: the workflows act on its default branch only
        event_file.write_text(json.dumps({"repository": {"default_branch": "main"}, **payload}))
        args += ["-e", str(event_file)]
    result = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=act_environment(
            home,
            IMAGE_FACTORY_STANDIN_LOG=str(cwd.parent / "standins.jsonl"),
            IMAGE_FACTORY_STANDIN_TOOL=str(TOOL),
            IMAGE_FACTORY_STANDIN_PYTHON=sys.executable,
        ),
    )
    return result.returncode, result.stdout + result.stderr


KARGO = {"login": "image-factory-kargo[bot]"}  # the bundled images.yaml's trust.senders
# events.yml dispatches with it; a dispatch it makes here fails (no network), nothing is due in most tests
FACTORY_TOKEN = ("-s", "IMAGE_FACTORY_TOKEN=ghs_" + "t" * 36)
INBOX = "refs/image-factory/inbox/"
INBOX_KEY = "act-inbox-key-" + "k" * 32
PULL_REQUEST = {"pull_request": {"number": 7, "head": {"ref": "team"}, "base": {"ref": "main"}}}


def test_validate_passes_on_a_valid_factory_and_annotates_a_broken_one(factory_repo):
    work, _ = factory_repo
    code, output = act(work, "pull_request", "validate.yml", payload=PULL_REQUEST)
    assert code == 0, output[-4000:]
    assert "Job succeeded" in output

    text = (work / "images.yaml").read_text().replace("rebuildDelay: 3d", "rebuildDelay: 3 days")
    (work / "images.yaml").write_text(text)
    commit(work, "break it")
    line = text.splitlines().index("    rebuildDelay: 3 days") + 1
    code, output = act(work, "pull_request", "validate.yml", payload=PULL_REQUEST)
    assert code != 0
    assert f"::error file=images.yaml,line={line}::images[1].rebuildDelay: '3 days' is not a duration" in output


def test_an_image_enrolled_without_discover_fails_the_pull_request_check(factory_repo):
    """A pull request that enrols an image and does not run discover: its bases were never read,
    so published manifests would never watch them. The check fails naming the command and the
    file the pull request lacks."""
    work, _ = factory_repo
    text = (work / "images.yaml").read_text()
    enrol = "\n  - name: late\n    registry: ghcr.io\n    repository: acme-platform/late\n"
    enrol += "    source: {provider: local, repo: examples/web, dockerfile: Dockerfile, workflow: build.yml}\n"
    (work / "images.yaml").write_text(text + enrol)
    commit(work, "enrol late, without discover")
    code, output = act(work, "pull_request", "validate.yml", payload=PULL_REQUEST)
    assert code != 0, output[-4000:]
    assert "::error title=validate::state/ is not up to date with images.yaml and the Dockerfiles" in output, output
    assert "behind: state/images/late.yaml" in output


def test_the_default_branch_derives_what_merged_proposals_leave_out_before_it_publishes(factory_repo, tmp_path):
    """Team proposals carry only their images' files; on the default branch synth.yml derives the
    fleet-wide ones (`discover --full --push`), validates, then publishes. Here a team's image
    moves to a base nothing watched: its merged proposal changed its own file only, and the
    published manifests watch the new base."""
    from image_factory.federation.proposal import propose

    work, origin = factory_repo
    enrol = "\n  - name: team-app\n    registry: ghcr.io\n    repository: acme/team-app\n"
    enrol += "    source: {provider: github, repo: acme/team-app, dockerfile: Dockerfile, workflow: build.yml}\n"
    (work / "images.yaml").write_text((work / "images.yaml").read_text() + enrol)
    subprocess.run([sys.executable, "-m", "image_factory", "discover", "--root", str(work)], check=True)
    commit(work, "enrol team-app")
    team = tmp_path / "team-app"
    team.mkdir()
    (team / "Dockerfile").write_text("FROM docker.io/library/redis:7\n")
    proposal = propose(work, "acme/team-app", team)
    assert sorted(proposal.files) == ["state/images/team-app.yaml"]  # nothing fleet-wide
    for path, text in proposal.files.items():
        (work / path).write_text(text)
    commit(work, "merge the proposal of acme/team-app")
    git(work, "push", "--quiet", "origin", "main")
    code, output = act(
        work, "push", "synth.yml", "--var", "IMAGE_FACTORY_PUBLISH=main", payload={"ref": "refs/heads/main"}
    )
    assert code == 0, output[-4000:]
    subjects = git(origin, "log", "-2", "--format=%s", "main").splitlines()
    assert subjects == [
        "dist: synth of " + git(work, "rev-parse", "HEAD"),
        "state: discovered (the fleet-wide files derived from every image's bases)",
    ]
    listed = git(origin, "ls-tree", "--name-only", "main", "state/base-images/").splitlines()
    (redis,) = [name for name in listed if "docker.io-library-redis-7-" in name]
    assert "- image: team-app" in git(origin, "show", f"main:{redis}")
    assert "repoURL: docker.io/library/redis" in git(origin, "show", "main:dist/kargo.k8s.yaml")


@pytest.mark.parametrize("publish_to", ["main", "manifests"])
def test_synth_publishes_changed_manifests(factory_repo, publish_to):
    work, origin = factory_repo
    text = (work / "images.yaml").read_text().replace("  rebuildDelay: 7d\n", "  rebuildDelay: 6d\n", 1)
    (work / "images.yaml").write_text(text)
    assert (
        subprocess.run(
            [str(Path(sys.executable).parent / "image-factory"), "discover", "--root", str(work)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    commit(work, "wait 6 days by default")
    git(work, "push", "--quiet", "origin", "main")
    code, output = act(
        work, "push", "synth.yml", "--var", f"IMAGE_FACTORY_PUBLISH={publish_to}", payload={"ref": "refs/heads/main"}
    )
    assert code == 0, output[-4000:]
    branch = "main" if publish_to == "main" else "manifests"
    published = git(origin, "show", f"{branch}:dist/kargo.k8s.yaml")
    assert "requiredSoakTime: 144h" in published
    subject = git(origin, "log", "-1", "--format=%s", branch)
    assert subject.startswith("dist: synth of" if publish_to == "main" else "manifests: synth of")
    if publish_to == "manifests":
        assert git(origin, "ls-tree", "-r", "--name-only", "manifests").splitlines() == [
            "dist/argocd-application.k8s.yaml",
            "dist/kargo.k8s.yaml",
        ]


def test_synth_in_manifests_mode_removes_what_the_synth_no_longer_makes(factory_repo):
    """After a re-shard the manifests branch holds a file no synth makes any more: ArgoCD would go
    on applying its stale, duplicate Stages. Publishing makes dist/ exactly what the synth makes."""
    work, origin = factory_repo
    earlier = origin.parent / "earlier"
    (earlier / "dist").mkdir(parents=True)
    (earlier / "dist" / "kargo.k8s.yaml").write_text("# an earlier synth\n")
    (earlier / "dist" / "kargo-shard-2.k8s.yaml").write_text("# a shard the synth no longer makes\n")
    git(earlier, "init", "--quiet", "--initial-branch=manifests")
    commit(earlier, "manifests: an earlier synth")
    git(earlier, "push", "--quiet", str(origin), "manifests")
    code, output = act(
        work, "push", "synth.yml", "--var", "IMAGE_FACTORY_PUBLISH=manifests", payload={"ref": "refs/heads/main"}
    )
    assert code == 0, output[-4000:]
    assert git(origin, "ls-tree", "-r", "--name-only", "manifests").splitlines() == [
        "dist/argocd-application.k8s.yaml",
        "dist/kargo.k8s.yaml",
    ]
    assert "kind: Stage" in git(origin, "show", "manifests:dist/kargo.k8s.yaml")


@pytest.mark.parametrize("workflow", ["events.yml", "synth.yml"])
def test_a_dispatch_from_another_branch_changes_nothing(factory_repo, workflow):
    """workflow_dispatch may name any branch: its unreviewed code and state must not be pushed to
    main, published, or dispatched with. The run says why and does nothing."""
    work, origin = factory_repo
    git(work, "checkout", "--quiet", "-b", "feature")
    text = (work / "images.yaml").read_text().replace("  rebuildDelay: 7d\n", "  rebuildDelay: 6d\n", 1)
    (work / "images.yaml").write_text(text)
    commit(work, "unreviewed")
    git(work, "push", "--quiet", "origin", "feature")
    refs = git(origin, "for-each-ref")
    code, output = act(
        work,
        "workflow_dispatch",
        workflow,
        "--var",
        "IMAGE_FACTORY_PUBLISH=main",
        payload={"ref": "refs/heads/feature", "inputs": {"image": ""}},
    )
    assert code == 0, output[-4000:]
    assert "refs/heads/feature is not the default branch (main)" in output
    assert "Install Image Factory" not in output  # the job that does the work never started
    assert git(origin, "for-each-ref") == refs


def test_events_records_a_new_base_digest_and_pushes_it(factory_repo):
    """repository_dispatch base-image-updated → record-update → commit pushed; nothing is due yet,
    so dispatch calls nothing (no token is needed)."""
    work, origin = factory_repo
    digest = "sha256:" + "7" * 64
    payload = {
        "action": "base-image-updated",
        "client_payload": {"image": "docker.io/library/python:3.12-slim", "digest": digest, "freight": "f-1"},
        "sender": KARGO,
    }
    code, output = act(work, "repository_dispatch", "events.yml", *FACTORY_TOKEN, payload=payload)
    assert code == 0, output[-4000:]
    assert "nothing to dispatch: no build is due" in output
    assert "no verify policy in images.yaml, nothing recorded" in output  # the signature check
    # act has no GitHub here (no token, and github.repository is not OWNER/NAME: origin is a local
    # folder): the dashboard step runs after the event, fails alone, and the event still succeeds.
    # tests/output/test_dashboard.py covers the step's GitHub calls.
    assert "::error::--repo: " in output and "is not a GitHub repository (OWNER/NAME)" in output
    assert "Failure - Main Update the dashboard issue" in output and "Job succeeded" in output
    subject = git(origin, "log", "-1", "--format=%s", "main")
    assert subject == "state: base-image-updated docker.io/library/python:3.12-slim"
    assert git(origin, "for-each-ref", INBOX) == ""  # received, applied, and gone from the inbox
    state = git(origin, "show", "main:state/base-images/docker.io-library-python-3.12-slim-ea59dc550ffd.yaml")
    assert f"digest: {digest}" in state and "freight: f-1" in state and "reportedBy: image-factory-kargo[bot]" in state


def test_events_records_verification_cve_fixes_and_signed_builds(factory_repo):
    """base-image-verified, image-built (failed, with the reason) and base-image-cve. The expedited
    digest makes a rebuild due at once: without IMAGE_FACTORY_TOKEN the dispatch is refused up
    front, after the expedite was committed and pushed."""
    work, origin = factory_repo
    python = "docker.io/library/python:3.12-slim"
    digest = "sha256:" + "8" * 64
    runs = [
        {
            "action": "base-image-verified",
            "client_payload": {"image": python, "digest": digest, "freight": "f-2"},
            "sender": KARGO,
        },
        {
            "action": "image-built",
            "client_payload": {
                "image": "metrics-agent",
                "digest": "",
                "result": "failure",
                "signed": False,
                "error": "the test failed",
                "bases": {},
                "run_url": "https://github.com/acme/agent/actions/runs/9",
            },
            "sender": {"login": "acme-agent-builds"},
        },
    ]
    for payload in runs:
        code, output = act(work, "repository_dispatch", "events.yml", *FACTORY_TOKEN, payload=payload)
        assert code == 0, output[-4000:]
    cve = {
        "action": "base-image-cve",
        "client_payload": {"image": python, "digest": digest, "reason": "CVE-2026-1"},
        "sender": KARGO,
    }
    code, output = act(work, "repository_dispatch", "events.yml", payload=cve)  # no IMAGE_FACTORY_TOKEN
    assert code != 0 and "::error title=events::the secret IMAGE_FACTORY_TOKEN is not set" in output
    state = git(origin, "show", "main:state/base-images/docker.io-library-python-3.12-slim-ea59dc550ffd.yaml")
    assert "verified: true" in state and "reason: verified by Kargo (Freight f-2)" in state
    assert "reason: CVE-2026-1" in state
    agent = git(origin, "show", "main:state/images/metrics-agent.yaml")
    assert "error: the test failed" in agent and "result: failure" in agent
    subjects = git(origin, "log", "-3", "--format=%s", "main").splitlines()
    assert subjects == [
        f"state: base-image-cve {python}",
        "state: image-built metrics-agent",
        f"state: base-image-verified {python}",
    ]


def test_an_unreachable_registry_in_the_signature_check_never_skips_the_dispatch(factory_repo):
    """verify --record on a key-verified base fails (no network here); the rebuilds that are due
    are still dispatched (here: nothing is due, and the dispatch step says so)."""
    work, _ = factory_repo
    (work / "keys").mkdir()
    (work / "keys/python.pub").write_bytes(public_pem(new_key()))
    text = (work / "images.yaml").read_text()
    python = "\n  - name: python\n    registry: docker.io\n    repository: library/python\n    tag: 3.12-slim\n"
    (work / "images.yaml").write_text(text + python + "    verify: {key: keys/python.pub}\n")
    subprocess.run([sys.executable, "-m", "image_factory", "discover", "--root", str(work)], check=True)
    commit(work, "verify python with a key")
    git(work, "push", "--quiet", "origin", "main")
    payload = {
        "action": "base-image-updated",
        "client_payload": {"image": "docker.io/library/python:3.12-slim", "digest": "sha256:" + "8" * 64},
        "sender": KARGO,
    }
    code, output = act(work, "repository_dispatch", "events.yml", *FACTORY_TOKEN, payload=payload)
    assert code == 0, output[-4000:]
    assert "warning: verify after event" in output  # the event stands, the check says why it failed
    assert "drained 1 event(s): 1 applied, 0 refused" in output
    assert "nothing to dispatch: no build is due" in output


def test_events_refuse_vouching_from_a_sender_images_yaml_does_not_trust(factory_repo):
    """Any team token may send the factory a repository_dispatch. base-image-updated,
    base-image-verified and base-image-cve from a login not in trust.senders fail the run with the
    reason, naming the event and the sender; nothing reaches the repository."""
    work, origin = factory_repo
    python = "docker.io/library/python:3.12-slim"
    digest = "sha256:" + "9" * 64
    before = git(origin, "rev-parse", "main")
    forged = [
        {"action": "base-image-updated", "client_payload": {"image": python, "digest": digest, "freight": "f-9"}},
        {"action": "base-image-verified", "client_payload": {"image": python, "digest": digest, "freight": "f-9"}},
        {"action": "base-image-cve", "client_payload": {"image": python, "digest": digest, "reason": "trust me"}},
    ]
    for payload in forged:
        code, output = act(
            work, "repository_dispatch", "events.yml", payload={**payload, "sender": {"login": "mallory"}}
        )
        assert code != 0, output[-4000:]
        assert (
            f"::error::{payload['action']}: {python}@{digest} from sender 'mallory' refused: "
            "'mallory' is not in trust.senders of images.yaml (image-factory-kargo[bot])"
        ) in output
    assert git(origin, "rev-parse", "main") == before


def enrol_signed_app(work: Path, host: str, keyless_too: bool = False):
    """Enrol `app` (a local source, in the registry at `host`) signed with a new key; with
    `keyless_too`, also `keyless-app` on the default keyless policy. The key."""
    key = new_key()
    (work / "keys").mkdir()
    (work / "keys/app.pub").write_bytes(public_pem(key))
    (work / "examples/app").mkdir()
    (work / "examples/app/Dockerfile").write_text("FROM scratch\nCOPY app /app\n")
    text = (work / "images.yaml").read_text().replace("\nimages:\n", f'\ninsecureRegistries: ["{host}"]\nimages:\n')
    source = "source: {provider: local, repo: examples/app, dockerfile: Dockerfile, workflow: build.yml}"
    text += f"\n  - name: app\n    registry: {host}\n    repository: team/app\n    {source}\n"
    text += "    signing: {key: keys/app.pub}\n"
    if keyless_too:
        text += f"\n  - name: keyless-app\n    registry: {host}\n    repository: team/keyless\n    {source}\n"
    (work / "images.yaml").write_text(text)
    return key


def test_events_record_a_build_success_only_for_a_digest_its_own_build_signed(factory_repo, registry):
    """image-built success for a digest signed with another key (key policy, checked by the tool)
    or not signed at all (default keyless policy, checked by `cosign verify`: the stand-in fails as
    cosign does on a digest without signatures) is refused and nothing is pushed; the digest signed
    with the image's key is recorded, with the sender."""
    work, origin = factory_repo
    key = enrol_signed_app(work, registry.host, keyless_too=True)
    subprocess.run([sys.executable, "-m", "image_factory", "discover", "--root", str(work)], check=True)
    commit(work, "two images in a local registry")
    git(work, "push", "--quiet", "origin", "main")
    before = git(origin, "rev-parse", "main")

    def built(image: str, digest: str, sender: str) -> dict:
        payload = {"image": image, "digest": digest, "result": "success", "signed": True, "error": "", "bases": {}}
        payload["run_url"] = "https://github.com/acme/team/actions/runs/1"
        return {"action": "image-built", "client_payload": payload, "sender": {"login": sender}}

    digest, _ = registry.push_image("team/app", "candidate", "built")
    cosign_sign(registry, "team/app", digest, new_key())  # another team's key
    code, output = act(
        work, "repository_dispatch", "events.yml", *FACTORY_TOKEN, payload=built("app", digest, "team-b")
    )
    assert code != 0, output[-4000:]
    assert f"::error::image-built: app@{digest} from sender 'team-b' refused: not signed with keys/app.pub" in output
    assert "signature 1: the signature does not verify with the key" in output

    unsigned, _ = registry.push_image("team/keyless", "candidate", "forged")
    code, output = act(
        work, "repository_dispatch", "events.yml", *FACTORY_TOKEN, payload=built("keyless-app", unsigned, "team-b")
    )
    assert code != 0, output[-4000:]
    assert (
        f"::error::image-built: keyless-app@{unsigned} from sender 'team-b' refused: "
        "cosign verify failed: Error: no signatures found"
    ) in output
    records = [json.loads(line) for line in (work.parent / "standins.jsonl").read_text().splitlines()]
    (verify,) = [entry["argv"] for entry in records if entry["action"] == "cosign"]
    assert verify == [
        "verify",
        r"--certificate-identity-regexp=^https://github\.com/acme-platform/image-factory/\.github/workflows/build\.yml@",
        "--certificate-oidc-issuer=https://token.actions.githubusercontent.com",
        "--certificate-github-workflow-repository=acme-platform/image-factory",
        "--certificate-github-workflow-ref=refs/heads/main",
        f"{registry.host}/team/keyless@{unsigned}",
    ]
    assert git(origin, "rev-parse", "main") == before

    cosign_sign(registry, "team/app", digest, key)  # now signed by its own build's key
    code, output = act(
        work, "repository_dispatch", "events.yml", *FACTORY_TOKEN, payload=built("app", digest, "team-a")
    )
    assert code == 0, output[-4000:]
    assert f"app: {digest} signed with keys/app.pub: signature 1 of 1 verifies with the key" in output
    state = git(origin, "show", "main:state/images/app.yaml")
    assert f"currentDigest: '{digest}'" in state or f"currentDigest: {digest}" in state
    assert "reportedBy: team-a" in state


def test_a_private_images_build_is_checked_with_the_registrys_credentials(factory_repo, tmp_path):
    """GitHub's container registry makes new packages private: the signature check must log in.
    Here a real registry with htpasswd auth and the IMAGE_FACTORY_REGISTRY_CREDENTIALS secret; on
    ghcr.io the job's own token (packages: read) serves."""
    from ..registry_server import Registry

    work, origin = factory_repo
    (tmp_path / "private").mkdir()
    registry = Registry(tmp_path / "private", users={"ci": "s3cret"})
    try:
        key = enrol_signed_app(work, registry.host)
        subprocess.run([sys.executable, "-m", "image_factory", "discover", "--root", str(work)], check=True)
        commit(work, "a private image")
        git(work, "push", "--quiet", "origin", "main")
        digest, _ = registry.push_image("team/app", "candidate", "built")
        cosign_sign(registry, "team/app", digest, key)
        payload = {"image": "app", "digest": digest, "result": "success", "signed": True, "error": "", "bases": {}}
        payload["run_url"] = "https://github.com/acme/team/actions/runs/1"
        event = {"action": "image-built", "client_payload": payload, "sender": {"login": "team-a"}}
        # a secret, as GitHub gives it: only where the workflow maps it (act in host mode would hand a
        # variable of this process to every step)
        secret = f"IMAGE_FACTORY_REGISTRY_CREDENTIALS={json.dumps({registry.host: 'ci:s3cret'})}"
        code, output = act(work, "repository_dispatch", "events.yml", "-s", secret, *FACTORY_TOKEN, payload=event)
        assert code == 0, output[-4000:]
        assert f"app: {digest} signed with keys/app.pub: signature 1 of 1 verifies with the key" in output
        assert "s3cret" not in output
        state = git(origin, "show", "main:state/images/app.yaml")
        assert "reportedBy: team-a" in state
    finally:
        registry.stop()


def test_a_soaked_base_dispatches_the_due_builds_on_it_and_records_nothing(factory_repo):
    """base-image-soaked (a Kargo soak Stage's promotion) → `dispatch --base` that image: only the
    builds due among the images built on it. With python's digest past every delay, the event for
    node (nothing due on it) dispatches nothing; the event for python dispatches base-python (which
    needs the GitHub token act does not have). Neither records anything in state."""
    work, origin = factory_repo
    python = "docker.io/library/python:3.12-slim"
    record = ["record-update", "--root", str(work), "--image", python, "--digest", "sha256:" + "5" * 64]
    subprocess.run([sys.executable, "-m", "image_factory", *record, "--seen-at", "2026-01-01T00:00:00Z"], check=True)
    commit(work, "state: python has a digest older than every delay")
    git(work, "push", "--quiet", "origin", "main")
    before = git(origin, "rev-parse", "main")

    def soaked(image: str) -> dict:
        payload = {"image": image, "digest": "sha256:" + "6" * 64, "delay": "7d"}
        return {"action": "base-image-soaked", "client_payload": payload, "sender": KARGO}

    node = soaked("docker.io/library/node:22-bookworm-slim")
    code, output = act(work, "repository_dispatch", "events.yml", *FACTORY_TOKEN, payload=node)
    assert code == 0, output[-4000:]
    assert "nothing to dispatch: no build is due" in output
    assert "nothing to push: state already had it" in output  # nothing recorded for this event
    # with the token, base-python's dispatch would go to api.github.com, which is out of reach here
    code, output = act(work, "repository_dispatch", "events.yml", payload=soaked(python))
    assert code != 0 and "::error title=events::the secret IMAGE_FACTORY_TOKEN is not set" in output
    assert "Failure - Main Dispatch the rebuilds that are due" in output
    assert git(origin, "rev-parse", "main") == before and git(origin, "for-each-ref", INBOX) == ""


# events.yml's receive job run by act twenty times at once against one repository, then one drain:
# every event written down (a ref each, no push rejected for another's) and all applied.
RECEIPTS = 20
PYTHON = "docker.io/library/python:3.12-slim"
NODE = "docker.io/library/node:22-bookworm-slim"


def test_twenty_concurrent_receipts_then_one_drain_record_all_twenty(factory_repo, tmp_path):
    work, origin = factory_repo
    digests = {number: f"sha256:{number:064x}" for number in range(1, RECEIPTS + 1)}

    def receive(number: int) -> tuple[int, str]:
        home = tmp_path / f"receipt-{number}"
        home.mkdir()
        payload = {
            "action": "base-image-updated",
            "client_payload": {"image": PYTHON if number % 2 else NODE, "digest": digests[number]},
            "sender": KARGO,
        }
        # each receipt its own run of events.yml: act gives every run the id 1 unless told
        run = ("-j", "receive", "--env", f"GITHUB_RUN_ID={9000 + number}")
        return act(work, "repository_dispatch", "events.yml", *run, payload=payload, home=home)

    with ThreadPoolExecutor(max_workers=RECEIPTS) as pool:
        results = list(pool.map(receive, digests))
    for code, output in results:
        assert code == 0, output[-3000:]
    refs = git(origin, "for-each-ref", "--format=%(refname)", INBOX).split()
    assert sorted(refs) == sorted(f"{INBOX}{9000 + number}" for number in digests)
    before = git(origin, "rev-parse", "main")

    # one drain: a workflow_dispatch runs it without a receipt of its own
    code, output = act(work, "workflow_dispatch", "events.yml", *FACTORY_TOKEN, payload={"inputs": {"image": ""}})
    assert code == 0, output[-4000:]
    assert f"drained {RECEIPTS} event(s): {RECEIPTS} applied, 0 refused" in output
    assert git(origin, "for-each-ref", INBOX) == ""
    assert git(origin, "rev-list", "--count", f"{before}..main") == "1"  # one commit for all twenty
    python = git(origin, "show", "main:state/base-images/docker.io-library-python-3.12-slim-ea59dc550ffd.yaml")
    node = git(origin, "show", "main:state/base-images/docker.io-library-node-22-bookworm-slim-edc47295e205.yaml")
    for number, digest in digests.items():
        assert f"digest: {digest}" in (python if number % 2 else node)


def test_the_drain_installs_the_tool_once_and_restores_it_from_the_cache_after(factory_repo, tmp_path):
    """The first drain installs the tool and saves it (actions/cache/save, keyed on the lock, the
    tool's code and the runner's Python); the next restores it and runs no pip at all."""
    work, _ = factory_repo
    runs = []
    for _ in range(2):
        code, output = act(work, "workflow_dispatch", "events.yml", *FACTORY_TOKEN, payload={"inputs": {"image": ""}})
        assert code == 0, output[-4000:]
        runs.append(output)
    records = [json.loads(line) for line in (work.parent / "standins.jsonl").read_text().splitlines()]
    restores = [r for r in records if r["action"] == "actions/cache/restore"]
    saves = [r for r in records if r["action"] == "actions/cache/save"]
    assert len(restores) == 2 and len(saves) == 1  # saved after the first install only
    key = restores[0]["inputs"]["key"]
    assert key == restores[1]["inputs"]["key"] == saves[0]["inputs"]["key"]
    python = ".".join(map(str, sys.version_info[:3]))  # the stand-ins' runner Python is this one
    assert key.startswith(f"image-factory-Linux-python-{python}-") and len(key.rsplit("-", 1)[1]) == 64
    assert "Cache saved with key" in runs[0]
    assert "Success - Main Install Image Factory" in runs[1] and "Run Main Keep the installed tool" not in runs[1]
    assert "drained 0 event(s)" in runs[1] and "nothing to dispatch" in runs[1]


def test_with_the_apps_client_id_the_drain_makes_its_token_before_it_pushes(factory_repo):
    """IMAGE_FACTORY_APP_CLIENT_ID (variable) and IMAGE_FACTORY_APP_PRIVATE_KEY (secret): the
    drain job asks for the App's installation token (contents: write) and pushes with it."""
    work, origin = factory_repo
    digest = "sha256:" + "4" * 64
    payload = {"action": "base-image-updated", "client_payload": {"image": "python:3.12-slim", "digest": digest}}
    app = ("--var", "IMAGE_FACTORY_APP_CLIENT_ID=Iv23liFactory", "-s", "IMAGE_FACTORY_APP_PRIVATE_KEY=pem")
    code, output = act(
        work, "repository_dispatch", "events.yml", *FACTORY_TOKEN, *app, payload={**payload, "sender": KARGO}
    )
    assert code == 0, output[-4000:]
    records = [json.loads(line) for line in (work.parent / "standins.jsonl").read_text().splitlines()]
    (made,) = [r for r in records if r["action"] == "actions/create-github-app-token"]
    assert made["job"] == "drain" and made["inputs"]["client-id"] == "Iv23liFactory"
    assert made["inputs"]["permission-contents"] == "write" and made["inputs"]["private-key"].startswith("sha256:")
    assert f"digest: {digest}" in git(
        origin, "show", "main:state/base-images/docker.io-library-python-3.12-slim-ea59dc550ffd.yaml"
    )
