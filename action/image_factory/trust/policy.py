"""The trust boundary of the events the factory receives: who may vouch for a digest, and which
signature a managed image's build must carry before its `image-built` success is recorded.

Every token that may push to the factory (each team's: its proposals are pull requests) may also
send it a repository_dispatch, so an event is a claim to check, not a fact:

- `base-image-updated`, `base-image-verified`, `base-image-cve` and `base-image-scanned` vouch
  for a digest: a sighting chooses what rebuilds pin once its delay has passed, a verdict lets a
  rebuild use it, an expedite skips the delay, findings expedite or hold it. Only the logins
  images.yaml lists in `trust.senders`.
- `image-built` success moves an image to a digest: only for a digest signed as the image's
  `signing` policy says (default: keyless, by the factory's reusable build workflow run in the
  image's source repository on its branch).
- `image-built` failure skips nothing; it is recorded with its sender.

An operator at a terminal gives no sender: repository access is trust enough.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from image_factory.enrolment.model import Config, EnrolledImage, SigstoreSettings, github_endpoints
from image_factory.enrolment.refs import ImageRef, InvalidReference, parse_digest
from image_factory.errors import FactoryError, Problem, show_value
from image_factory.user_text import one_line

if TYPE_CHECKING:
    from image_factory.edges.registry import RegistryClient

BUILD_WORKFLOW = ".github/workflows/build.yml"  # the reusable workflow whose sign job signs builds

# What each event that vouches for a digest would let its sender do.
VOUCHING = {
    "base-image-updated": "a digest it reports becomes the one rebuilds pin once its delay has passed",
    "base-image-verified": "it would let rebuilds use a digest whose signature nobody checked",
    "base-image-cve": "it would let a digest skip the rebuild delay",
    "base-image-scanned": "its findings decide which digests skip the rebuild delay and which are held",
}


def check_sender(config: Config, event: str, sender: str | None, subject: str) -> None:
    """Refuse `event` (about `subject`, an image and digest) from a sender images.yaml does not
    trust. No sender (an operator at a terminal) passes. GitHub logins ignore case."""
    if sender is None:
        return
    allowed = config.trust.senders
    if sender.lower() in {login.lower() for login in allowed}:
        return
    who = f"sender {show_value(one_line(sender))}" if sender else "an empty sender"
    if allowed:
        why = f"{show_value(one_line(sender))} is not in trust.senders of {config.file} ({', '.join(allowed)})"
    else:
        why = f"{config.file} lists no trust.senders, so nobody may send it"
    message = f"{one_line(subject)} from {who} refused: {why}; {VOUCHING[event]}. Nothing recorded"
    raise FactoryError(Problem(event, message))


@dataclass(frozen=True)
class BuildSignature:
    """The signature a managed image's builds carry: a cosign public key file in the factory
    repository (checked here, in Python), or keyless (checked by `cosign verify` with `flags`)."""

    image: str  # the managed image's name
    ref: ImageRef  # the image; its signatures are in its repository
    origin: str  # where the policy comes from, in words
    key_file: str | None = None
    flags: tuple[str, ...] = ()  # keyless: what `cosign verify` is given, one argument each
    sigstore: SigstoreSettings | None = None  # keyless with a private Sigstore: `cosign initialize` first

    @property
    def keyless(self) -> bool:
        return self.key_file is None

    @property
    def repository(self) -> str:
        """registry/repository: what `cosign verify` is given, with `@<digest>`."""
        return self.ref.name

    def github_output(self, delimiter: str | None = None) -> str:
        """`key=value` lines for $GITHUB_OUTPUT; the cosign flags one per line, behind a random
        delimiter (as build-info does), so that no value can end the block early."""
        delimiter = delimiter or f"ghadelimiter_{uuid.uuid4()}"
        flags = "\n".join(self.flags)
        for value in (self.repository, self.key_file or "", *self.flags):
            if "\n" in value or "\r" in value or delimiter in value:
                raise FactoryError(Problem("signing-policy", f"{value!r} cannot be written as a workflow output"))
        mode = "keyless" if self.keyless else "key"
        lines = f"mode={mode}\nrepository={self.repository}\nkey={self.key_file or ''}\n"
        private = self.sigstore if self.keyless else None
        lines += f"tuf-mirror={private.tuf_mirror if private else ''}\ntuf-root={private.tuf_root if private else ''}\n"
        return lines + f"cosign-flags<<{delimiter}\n{flags}\n{delimiter}\n"

    def describe(self) -> str:
        if not self.keyless:
            return f"{self.image}: signed with the key {self.key_file} ({self.origin})"
        return f"{self.image}: signed keyless ({self.origin}); cosign verify {' '.join(self.flags)}"


def build_signature(config: Config, name: str) -> BuildSignature:
    """The signature the builds of managed image `name` must carry: its `signing` policy, else
    keyless by the factory's reusable build workflow, run in the image's source repository (the
    factory itself for a local source) on the branch the factory dispatches (`source.branch`)."""
    image = config.by_name(name)
    if image is None or not image.managed:
        raise FactoryError(Problem("--image", f"{name!r} is not a managed image in {config.file}"))
    ref = image.ref
    policy = image.signing
    if policy is not None and policy.key_file is not None:
        return BuildSignature(name, ref, f"signing.key in {config.file}", key_file=policy.key_file)
    if policy is not None:
        given = {
            "--certificate-identity": policy.identity,
            "--certificate-identity-regexp": policy.identity_regexp,
            "--certificate-oidc-issuer": policy.issuer,
            "--certificate-oidc-issuer-regexp": policy.issuer_regexp,
        }
        flags = tuple(f"{flag}={value}" for flag, value in given.items() if value is not None)
        flags += _rekor(config)
        return BuildSignature(name, ref, f"signing in {config.file}", flags=flags, sigstore=config.sigstore)
    flags = _default_flags(config, image) + _rekor(config)
    return BuildSignature(name, ref, "the default: the factory's build workflow", flags=flags, sigstore=config.sigstore)


def _rekor(config: Config) -> tuple[str, ...]:
    """A private Sigstore's transparency log, where `cosign verify` looks the signature up."""
    return (f"--rekor-url={config.sigstore.rekor_url}",) if config.sigstore is not None else ()


def _default_flags(config: Config, image: EnrolledImage) -> tuple[str, ...]:
    factory = config.kargo.factory_repo
    if factory is None:
        raise FactoryError(
            Problem(
                config.file,
                f"{image.name}: its builds are signed by the factory's build workflow by default, which needs "
                "kargo.factoryRepo; set it, or give the image a signing policy",
                image.line,
            )
        )
    server, issuer = github_endpoints(config.kargo.github_api_url)
    source = image.source
    runs_in = factory if source.provider == "local" else source.repo
    return (
        f"--certificate-identity-regexp=^{_literal(f'{server}/{factory}/{BUILD_WORKFLOW}')}@",
        f"--certificate-oidc-issuer={issuer}",
        f"--certificate-github-workflow-repository={runs_in}",
        f"--certificate-github-workflow-ref=refs/heads/{source.branch}",
    )


def run_url_prefix(config: Config, name: str) -> str:
    """How the URL of a run of managed image `name`'s build starts: the build reports
    `<server>/<its repository>/actions/runs/<id>` (a local source's repository is the factory)."""
    image = config.by_name(name)
    if image is None or not image.managed:
        raise FactoryError(Problem("--image", f"{name!r} is not a managed image in {config.file}"))
    repository = image.source.repo if image.source.provider == "github" else config.kargo.factory_repo
    server, _ = github_endpoints(config.kargo.github_api_url)
    return f"{server}/{repository}/actions/runs/"


def _literal(text: str) -> str:
    """`text` as a regular expression matching only itself (RE2, as cosign reads it)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def check_build_signature(
    required: BuildSignature,
    digest: str,
    root: Path,
    registry: RegistryClient,
    cosign_verified: bool | None,
    cosign_error: str | None,
    sender: str | None,
) -> str:
    """Refuse an `image-built` success whose digest is not signed as `required`; say how it was
    checked. A key is checked here; a keyless signature by `cosign verify` in the events
    workflow, whose outcome comes in as `cosign_verified`."""
    from image_factory.trust import signatures  # cryptography: only when a signature is checked

    try:
        digest = parse_digest(digest)
    except InvalidReference as error:
        raise FactoryError(Problem("--digest", error.reason)) from None
    who = f" from sender {show_value(one_line(sender))}" if sender is not None else ""
    event = f"{required.image}@{digest}{who}"
    if required.keyless:
        if cosign_verified is None:
            why = (
                f"its builds are signed keyless ({required.origin}): run `cosign verify` with the flags of "
                f"`image-factory signing-policy --image {required.image}` and pass --cosign-verified"
            )
        elif not cosign_verified:
            why = f"cosign verify failed: {one_line(cosign_error or 'no reason given')}"
        else:
            return f"signed keyless ({required.origin}), checked by cosign verify"
        raise FactoryError(Problem("image-built", f"{event} refused: {why}. Nothing recorded"))
    key = signatures.read_public_key(root / required.key_file)
    ref = ImageRef(required.ref.registry, required.ref.repository, digest=digest)
    outcome = signatures.verify_image(registry, ref, key)
    if not outcome.verified:
        why = f"not signed with {required.key_file} ({required.origin}): {outcome.reason}"
        raise FactoryError(Problem("image-built", f"{event} refused: {why}. Nothing recorded"))
    return f"signed with {required.key_file}: {outcome.reason}"
