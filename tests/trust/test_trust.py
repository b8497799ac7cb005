"""Forged events (issue 13, part 10): the commands the events workflow runs refuse a claim its
sender may not make, say why, name the event and the sender, and change nothing.

- base-image-verified (`record-update --verified`) and base-image-cve (`expedite`) only from a
  login in images.yaml `trust.senders`; without --sender (an operator) as before;
- image-built success (`record-build --require-signature`) only for a digest signed as the image's
  signing policy says: a key checked here against a real registry, keyless by cosign's outcome;
- `signing-policy` gives the flags the events workflow runs `cosign verify` with.
"""

from __future__ import annotations

import json

import pytest
import yaml

from image_factory.cli import main
from image_factory.discovery.discover import discover
from image_factory.enrolment.config import parse_config
from image_factory.errors import FactoryError

from ..cosign_signer import cosign_sign, new_key, public_pem

PYTHON = "docker.io/library/python:3.12-slim"
DIGEST = "sha256:" + "5" * 64
KARGO = "image-factory-kargo[bot]"  # the bundled images.yaml's trust.senders


def vouch(root, command: str, sender: str | None) -> int:
    args = [command, "--root", str(root), "--image", PYTHON, "--digest", DIGEST]
    args += ["--verified", "true", "--reason", "verified by Kargo"] if command == "record-update" else []
    args += ["--reason", "CVE-2026-1", "--force"] if command == "expedite" else []  # as events.yml sends it
    return main([*args, *(["--sender", sender] if sender is not None else [])])


@pytest.mark.parametrize(
    ("command", "event", "why"),
    [
        ("record-update", "base-image-verified", "it would let rebuilds use a digest whose signature nobody checked"),
        ("expedite", "base-image-cve", "it would let a digest skip the rebuild delay"),
    ],
)
def test_vouching_from_a_sender_not_in_trust_senders_is_refused_and_changes_nothing(
    example_factory, capsys, monkeypatch, command, event, why
):
    before = example_factory.snapshot()
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert vouch(example_factory.root, command, "mallory") == 1
    captured = capsys.readouterr()
    reason = (
        f"{PYTHON}@{DIGEST} from sender 'mallory' refused: 'mallory' is not in trust.senders of images.yaml "
        f"({KARGO}); {why}. Nothing recorded"
    )
    # the annotation on stderr, which the runner reads too: stdout may be a job summary
    assert captured.err == f"error: {event}: {reason}\n::error::{event}: {reason}\n"  # an event is no file
    assert captured.out == ""
    assert example_factory.snapshot() == before

    assert vouch(example_factory.root, command, "") == 1  # no login at all is no trusted one
    assert f"{event}: {PYTHON}@{DIGEST} from an empty sender refused" in capsys.readouterr().err
    assert example_factory.snapshot() == before


@pytest.mark.parametrize("command", ["record-update", "expedite"])
@pytest.mark.parametrize("sender", [KARGO, "Image-Factory-Kargo[bot]", None], ids=["listed", "other-case", "operator"])
def test_vouching_from_a_listed_sender_or_an_operator_is_recorded(example_factory, capsys, command, sender):
    assert vouch(example_factory.root, command, sender) == 0
    state = yaml.safe_load(
        example_factory.read("state/base-images/docker.io-library-python-3.12-slim-ea59dc550ffd.yaml")
    )
    (entry,) = [e for e in state["runtime"]["history"] if e["digest"] == DIGEST]
    assert ("verification" if command == "record-update" else "expedited") in entry


def test_without_trust_senders_nobody_may_vouch_through_an_event(example_factory, capsys):
    text = example_factory.read("images.yaml")
    example_factory.write("images.yaml", text.replace('  senders: ["image-factory-kargo[bot]"]\n', "  senders: []\n"))
    assert main(["discover", "--root", str(example_factory.root)]) == 0
    capsys.readouterr()
    before = example_factory.snapshot()
    assert vouch(example_factory.root, "expedite", KARGO) == 1
    assert "images.yaml lists no trust.senders, so nobody may send it" in capsys.readouterr().err
    assert example_factory.snapshot() == before


def history(path) -> list[dict]:
    return yaml.safe_load(path.read_text())["runtime"]["history"]


def test_a_sighting_is_only_taken_from_a_trusted_sender_and_says_who_sent_it(example_factory, capsys):
    """base-image-updated names the digest rebuilds pin once it has soaked: any token holder (every
    team's) reporting an old, vulnerable digest as new would choose it. Refused from anyone else."""
    root = example_factory.root
    args = ["record-update", "--root", str(root), "--image", PYTHON, "--digest", DIGEST]
    before = example_factory.snapshot()
    assert main([*args, "--sender", "team-b"]) == 1
    assert (
        f"error: base-image-updated: {PYTHON}@{DIGEST} from sender 'team-b' refused: 'team-b' is not in "
        "trust.senders of images.yaml (image-factory-kargo[bot]); a digest it reports becomes the one "
        "rebuilds pin once its delay has passed. Nothing recorded"
    ) in capsys.readouterr().err
    assert example_factory.snapshot() == before
    assert main([*args, "--sender", "Image-Factory-Kargo[bot]", "--seen-by", "kargo"]) == 0
    assert f"{PYTHON}: {DIGEST} first seen" in capsys.readouterr().out
    (entry,) = [
        e for path in (root / "state" / "base-images").glob("*.yaml") for e in history(path) if e["digest"] == DIGEST
    ]
    assert entry["reportedBy"] == "Image-Factory-Kargo[bot]" and entry["seenBy"] == "kargo"
    assert main(["validate", "--root", str(root)]) == 0


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("trust: {senders: [kargo-bot], owners: [x]}", "owners"),
        ("trust: {senders: ['not a login']}", "is not a GitHub login"),
        ("trust: {senders: [a, a]}", "non-unique"),
    ],
)
def test_trust_is_validated_like_the_rest(fragment, message):
    with pytest.raises(FactoryError) as raised:
        parse_config(f"{fragment}\nimages: []\n")
    assert message in str(raised.value)


# --- image-built success: the digest must carry its own build's signature --------------------


@pytest.fixture
def signed_factory(factory, registry):
    """A factory whose image `app` (in a real local registry) is signed with a key in the repository."""
    key = new_key()
    factory.write("keys/app.pub", public_pem(key).decode())
    factory.write(
        "images.yaml",
        f"""
        kargo: {{factoryRepo: acme/factory}}
        insecureRegistries: ["{registry.host}"]
        images:
          - name: app
            registry: {registry.host}
            repository: team/app
            source: {{provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}
            signing: {{key: keys/app.pub}}
          - name: keyless
            registry: {registry.host}
            repository: team/keyless
            source: {{provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}
        """,
    )
    factory.write("app/Dockerfile", "FROM scratch\n")
    discover(factory.root)
    return factory, registry, key


def built(root, image: str, digest: str, *extra: str) -> int:
    args = ["record-build", "--root", str(root), "--image", image, "--result", "success", "--digest", digest]
    return main([*args, "--bases", "{}", "--require-signature", "--sender", "team-b", *extra])


def test_a_success_signed_by_another_key_is_refused_and_changes_nothing(signed_factory, capsys):
    factory, registry, _ = signed_factory
    digest, _ = registry.push_image("team/app", "candidate", "forged")
    cosign_sign(registry, "team/app", digest, new_key())
    before = factory.snapshot()
    assert built(factory.root, "app", digest) == 1
    assert capsys.readouterr().err == (
        f"error: image-built: app@{digest} from sender 'team-b' refused: not signed with keys/app.pub "
        "(signing.key in images.yaml): signature 1: the signature does not verify with the key (another key "
        "signed it, or the payload was altered). Nothing recorded\n"
    )
    assert factory.snapshot() == before

    unsigned, _ = registry.push_image("team/app", "other", "unsigned")
    assert built(factory.root, "app", unsigned) == 1
    assert "refused: not signed with keys/app.pub (signing.key in images.yaml): no signature" in capsys.readouterr().err
    assert factory.snapshot() == before


def test_a_success_signed_by_the_images_key_is_recorded_with_its_sender(signed_factory, capsys):
    factory, registry, key = signed_factory
    digest, _ = registry.push_image("team/app", "candidate", "genuine")
    cosign_sign(registry, "team/app", digest, key)
    assert built(factory.root, "app", digest) == 0
    assert capsys.readouterr().out == (
        f"app: {digest} signed with keys/app.pub: signature 1 of 1 verifies with the key\napp: built {digest}\n"
    )
    state = yaml.safe_load(factory.read("state/images/app.yaml"))
    assert state["runtime"]["currentDigest"] == digest
    assert state["runtime"]["lastBuild"]["reportedBy"] == "team-b"


def test_an_old_signed_build_sent_again_with_new_bases_is_refused(signed_factory, capsys):
    """A replay: the digest is genuinely signed, but it was built on other bases. Recorded, it
    would put the image back on its old build while state believed it built on the new bases."""
    factory, registry, key = signed_factory
    old, _ = registry.push_image("team/app", "candidate", "first")
    cosign_sign(registry, "team/app", old, key)
    first = '{"docker.io/library/python:3.12-slim": "sha256:' + "1" * 64 + '"}'
    assert built(factory.root, "app", old, "--bases", first) == 0
    assert built(factory.root, "app", old, "--bases", first) == 0  # the same report again: harmless
    capsys.readouterr()
    before = factory.snapshot()
    newer = '{"docker.io/library/python:3.12-slim": "sha256:' + "2" * 64 + '"}'
    assert built(factory.root, "app", old, "--bases", newer) == 1
    assert capsys.readouterr().err == (
        f"error: image-built: app@{old} from sender 'team-b' refused: {old} was built before, on other bases: "
        "a report of an old build cannot claim new bases (a replay would put the image back on it and hide "
        "the rebuild it needs). Nothing recorded\n"
    )
    assert factory.snapshot() == before


def test_a_keyless_success_needs_cosign_to_have_passed(signed_factory, capsys):
    factory, registry, _ = signed_factory
    digest, _ = registry.push_image("team/keyless", "candidate", "built")
    before = factory.snapshot()
    assert built(factory.root, "keyless", digest) == 1
    assert (
        "refused: its builds are signed keyless (the default: the factory's build workflow): run `cosign verify`"
        in (capsys.readouterr().err)
    )
    failed = ("--cosign-verified", "false", "--cosign-error", "Error: no matching signatures:\nnone matched")
    assert built(factory.root, "keyless", digest, *failed) == 1
    assert capsys.readouterr().err == (
        f"error: image-built: keyless@{digest} from sender 'team-b' refused: cosign verify failed: "
        "Error: no matching signatures: none matched. Nothing recorded\n"
    )
    assert factory.snapshot() == before
    assert built(factory.root, "keyless", digest, "--cosign-verified", "true") == 0
    assert f"keyless: {digest} signed keyless (the default: the factory's build workflow), checked by cosign" in (
        capsys.readouterr().out
    )


def test_a_failure_report_checks_no_signature_and_records_its_sender(signed_factory, capsys):
    factory, _, _ = signed_factory
    args = ["record-build", "--root", str(factory.root), "--image", "app", "--result", "failure", "--bases", "{}"]
    assert main([*args, "--error", "the test failed", "--require-signature", "--sender", "team-b"]) == 0
    attempt = yaml.safe_load(factory.read("state/images/app.yaml"))["runtime"]["attempts"][-1]
    assert attempt["result"] == "failure" and attempt["reportedBy"] == "team-b"


# --- signing-policy: what the events workflow gives `cosign verify` --------------------------


def test_the_keyless_policy_of_the_bundled_example(example_factory, capsys):
    assert main(["signing-policy", "--root", str(example_factory.root), "--image", "orders-api"]) == 0
    out = capsys.readouterr().out
    delimiter = out.splitlines()[5].removeprefix("cosign-flags<<")
    assert out == (
        "mode=keyless\n"
        "repository=ghcr.io/acme-platform/orders-api\n"
        "key=\n"
        "tuf-mirror=\n"  # public Sigstore: nothing to initialize
        "tuf-root=\n"
        f"cosign-flags<<{delimiter}\n"
        r"--certificate-identity-regexp=^https://github\.com/acme-platform/image-factory/\.github/workflows/build\.yml@"
        "\n"
        "--certificate-oidc-issuer=https://token.actions.githubusercontent.com\n"
        "--certificate-github-workflow-repository=acme-platform/image-factory\n"
        "--certificate-github-workflow-ref=refs/heads/main\n"
        f"{delimiter}\n"
    )
    assert delimiter.startswith("ghadelimiter_")


def test_a_team_image_is_signed_in_its_own_repository_and_a_policy_can_say_otherwise(factory, capsys):
    factory.write(
        "images.yaml",
        """
        kargo: {factoryRepo: acme/factory, githubApiUrl: https://git.acme.example/api/v3}
        sigstore:
          fulcioUrl: https://fulcio.acme.example
          rekorUrl: https://rekor.acme.example
          tufMirror: https://tuf.acme.example
          tufRoot: sigstore/root.json
        images:
          - name: team
            registry: ghcr.io
            repository: acme/team
            source: {provider: github, repo: acme/team-app, branch: release, dockerfile: Dockerfile, workflow: b.yml}
          - name: own
            registry: ghcr.io
            repository: acme/own
            source: {provider: github, repo: acme/own, dockerfile: Dockerfile, workflow: b.yml}
            signing:
              certificateIdentity: https://github.com/acme/own/.github/workflows/release.yml@refs/heads/main
              certificateOidcIssuer: https://token.actions.githubusercontent.com
        """,
    )
    assert main(["signing-policy", "--root", str(factory.root), "--image", "team", "--text"]) == 0
    assert capsys.readouterr().out == (
        "team: signed keyless (the default: the factory's build workflow); cosign verify "
        r"--certificate-identity-regexp=^https://git\.acme\.example/acme/factory/\.github/workflows/build\.yml@ "
        "--certificate-oidc-issuer=https://git.acme.example/_services/token "
        "--certificate-github-workflow-repository=acme/team-app --certificate-github-workflow-ref=refs/heads/release "
        "--rekor-url=https://rekor.acme.example\n"  # images.yaml's own Sigstore
    )
    assert main(["signing-policy", "--root", str(factory.root), "--image", "own", "--text"]) == 0
    assert capsys.readouterr().out == (
        "own: signed keyless (signing in images.yaml); cosign verify "
        "--certificate-identity=https://github.com/acme/own/.github/workflows/release.yml@refs/heads/main "
        "--certificate-oidc-issuer=https://token.actions.githubusercontent.com --rekor-url=https://rekor.acme.example\n"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("signing: {key: k.pub, certificateIdentity: x}", "give key or keyless (certificateIdentity), not both"),
        ("signing: {certificateIdentity: x}", "give key, or keyless"),
        ("signing: {key: ../k.pub}", "must be a relative path in the factory repository"),
        ("signing: {key: k.pub, required: false}", "required"),
    ],
)
def test_a_signing_policy_is_validated_like_verify(entry, message):
    text = (
        "images:\n  - name: a\n    registry: ghcr.io\n    repository: acme/a\n"
        "    source: {provider: local, repo: a, dockerfile: Dockerfile, workflow: b.yml}\n"
        f"    {entry}\n"
    )
    with pytest.raises(FactoryError) as raised:
        parse_config(text)
    assert message in str(raised.value)


def test_signing_is_only_for_managed_images():
    with pytest.raises(FactoryError) as raised:
        parse_config("images:\n  - name: a\n    registry: ghcr.io\n    repository: acme/a\n    signing: {key: k.pub}\n")
    assert "is only for managed images (with a source): it says how their builds are signed" in str(raised.value)


def test_a_reported_run_url_counts_only_for_a_run_of_the_images_own_repository(signed_factory, capsys):
    """Anyone may report a failure: a link in it would be shown on the dashboard and the status
    page, so from an event only a run of the image's own repository on this GitHub is kept."""
    factory, _, _ = signed_factory
    args = ["record-build", "--root", str(factory.root), "--image", "app", "--result", "failure", "--bases", "{}"]
    forged = "https://evil.example/acme/factory/actions/runs/1"
    assert main([*args, "--run-url", forged, "--require-signature", "--sender", "team-b"]) == 0
    assert f"warning: run URL '{forged}' ignored: not a run of https://github.com/acme/factory/actions/runs/" in (
        capsys.readouterr().err
    )
    assert "runUrl" not in yaml.safe_load(factory.read("state/images/app.yaml"))["runtime"]["attempts"][-1]
    genuine = "https://github.com/acme/factory/actions/runs/42"
    assert main([*args, "--error", "again", "--run-url", genuine, "--require-signature", "--sender", "team-b"]) == 0
    assert yaml.safe_load(factory.read("state/images/app.yaml"))["runtime"]["attempts"][-1]["runUrl"] == genuine


# --- trust is read from images.yaml, never from the index's or a state file's copy ------------


def test_trust_senders_come_from_images_yaml_not_the_index_copy(example_factory, capsys):
    """state/index.json keeps images.yaml's settings for speed, but anyone who can push may edit it:
    adding a login there trusts nobody new."""
    root = example_factory.root
    index = json.loads((root / "state" / "index.json").read_text())
    index["settings"]["trust"]["senders"].append("mallory")
    (root / "state" / "index.json").write_text(json.dumps(index))
    before = example_factory.snapshot()
    digest = "sha256:" + "9" * 64
    args = ["--image", "python:3.12-slim", "--digest", digest, "--sender", "mallory"]
    assert main(["record-update", "--root", str(root), *args, "--verified", "true"]) == 1
    assert "'mallory' is not in trust.senders of images.yaml (image-factory-kargo[bot])" in capsys.readouterr().err
    assert main(["expedite", "--root", str(root), *args, "--reason", "CVE-1", "--force"]) == 1
    assert "'mallory' is not in trust.senders of images.yaml" in capsys.readouterr().err
    assert example_factory.snapshot() == before


def test_a_builds_signing_policy_comes_from_images_yaml_not_its_state_file(signed_factory, capsys):
    """A state file carries its image's enrolment; pointing its signing key at one's own key
    makes no forged build acceptable."""
    factory, registry, _ = signed_factory
    forger = new_key()
    factory.write("keys/forger.pub", public_pem(forger).decode())
    state_file = factory.root / "state" / "images" / "app.yaml"
    data = yaml.safe_load(state_file.read_text())
    data["enrolment"]["signing"] = {"key": "keys/forger.pub", "required": True}
    state_file.write_text(yaml.safe_dump(data, sort_keys=False))
    digest, _ = registry.push_image("team/app", "candidate", "forged")
    cosign_sign(registry, "team/app", digest, forger)
    assert built(factory.root, "app", digest) == 1
    assert "refused: not signed with keys/app.pub (signing.key in images.yaml)" in capsys.readouterr().err
    assert main(["signing-policy", "--root", str(factory.root), "--image", "app", "--text"]) == 0
    assert capsys.readouterr().out == "app: signed with the key keys/app.pub (signing.key in images.yaml)\n"


def test_a_watched_images_verify_policy_comes_from_images_yaml_not_its_state_file(example_factory):
    from image_factory.cli.trust import _verify_config
    from image_factory.enrolment.refs import parse_ref

    root = example_factory.root
    (state_file,) = (root / "state" / "base-images").glob("gcr.io-distroless-*.yaml")
    state_file.write_text(state_file.read_text().replace("keyless@distroless", "mallory@evil"))
    _, policy = _verify_config(root, parse_ref("gcr.io/distroless/static-debian12:nonroot@sha256:" + "1" * 64))
    assert policy.identity == "keyless@distroless.iam.gserviceaccount.com"


def test_validate_warns_when_nobody_may_report_a_digest(factory, capsys):
    factory.write("images.yaml", "kargo: {factoryRepo: acme/factory}\nimages: []\n")
    assert main(["validate", "--root", str(factory.root)]) == 0
    assert "images.yaml lists no trust.senders: the events workflow refuses every new digest" in capsys.readouterr().err


GHES = "kargo: {factoryRepo: acme/factory, githubApiUrl: https://git.acme.example/api/v3}\n"
GHES_SIGSTORE = (
    "sigstore: {fulcioUrl: https://fulcio.acme.example, rekorUrl: https://rekor.acme.example,"
    " tufMirror: https://tuf.acme.example, tufRoot: sigstore/root.json}\n"
)
TEAM_IMAGE = (
    "images:\n  - name: app\n    registry: ghcr.io\n    repository: acme/app\n"
    "    source: {provider: github, repo: acme/app, dockerfile: Dockerfile, workflow: b.yml}\n"
)


@pytest.mark.parametrize(
    ("settings", "signing", "refused"),
    [
        (GHES, "", True),  # the default: keyless by the factory's build workflow on the server
        (
            GHES,
            "    signing: {certificateIdentity: x@acme.example, certificateOidcIssuer: https://git.acme.example}\n",
            True,
        ),
        (GHES, "    signing: {key: keys/app.pub}\n", False),
        (
            GHES,
            "    signing: {certificateIdentity: x, certificateOidcIssuer: https://token.actions.githubusercontent.com}\n",
            False,
        ),
        (GHES + GHES_SIGSTORE, "", False),
        ("kargo: {factoryRepo: acme/factory}\n", "", False),  # github.com: public Sigstore
    ],
    ids=["default", "server-issuer", "key", "github-com-issuer", "own-sigstore", "github-com"],
)
def test_keyless_signing_on_github_enterprise_server_needs_a_sigstore_of_its_own(settings, signing, refused):
    """Public Fulcio trusts GitHub's Actions tokens only from https://token.actions.githubusercontent.com
    (sigstore/fulcio config/identity/config.yaml): a server's own issuer is refused there."""
    text = settings + TEAM_IMAGE + signing
    if refused:
        with pytest.raises(FactoryError) as raised:
            parse_config(text)
        (problem,) = raised.value.problems
        assert (
            "app: its builds are signed keyless, which on GitHub Enterprise Server (https://git.acme.example)"
            in str(problem)
        )
        assert "signing: {key: …}, or set sigstore (fulcioUrl, rekorUrl, tufMirror, tufRoot)" in str(problem)
    else:
        assert parse_config(text).by_name("app") is not None


def test_build_info_gives_the_sign_job_images_yamls_own_sigstore(factory, capsys):
    import base64

    factory.write("images.yaml", GHES + GHES_SIGSTORE + TEAM_IMAGE)
    discover(factory.root)
    args = ["build-info", "--root", str(factory.root), "--image", "app", "--bases", "{}"]
    assert main(args) == 1
    assert "error: sigstore/root.json: sigstore.tufRoot cannot be read" in capsys.readouterr().err
    factory.write("sigstore/root.json", '{"signed": {}}\n')
    assert main(args) == 0
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines() if line.startswith("sigstore-"))
    assert lines == {
        "sigstore-fulcio-url": "https://fulcio.acme.example",
        "sigstore-rekor-url": "https://rekor.acme.example",
        "sigstore-tuf-mirror": "https://tuf.acme.example",
        "sigstore-tuf-root": base64.b64encode(b'{"signed": {}}\n').decode(),
    }
