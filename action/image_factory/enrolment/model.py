"""The enrolment model: what images.yaml says, normalised. Read by every command and the cdk8s app."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePosixPath

from image_factory.enrolment.refs import ImageRef

DEFAULT_REBUILD_DELAY = "7d"
DEFAULT_BRANCH = "main"
STRATEGIES = ("Digest", "SemVer", "Lexical", "NewestBuild")
# The verifier is part of what is trusted: pinned by digest (cosign v2.4.1's official image).
COSIGN_IMAGE = (
    "ghcr.io/sigstore/cosign/cosign:v2.4.1@sha256:b03690aa52bfe94054187142fba24dc54137650682810633901767d8a3e15b31"
)


@dataclass(frozen=True)
class Source:
    """Where a managed image is built from."""

    provider: str  # "github" or "local"
    repo: str
    dockerfile: str
    workflow: str
    branch: str = DEFAULT_BRANCH
    context: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    platforms: tuple[str, ...] = ()  # empty: those every pinned base is published for
    build_cache: str | None = None  # gha or registry; None: none

    @property
    def build_context(self) -> str:
        """The context folder: as configured, else the Dockerfile's folder."""
        return self.context or str(PurePosixPath(self.dockerfile).parent)

    def to_dict(self) -> dict:
        data = {
            "provider": self.provider,
            "repo": self.repo,
            "branch": self.branch,
            "dockerfile": self.dockerfile,
            "context": self.build_context,
            "workflow": self.workflow,
        }
        if self.build_args:
            data["buildArgs"] = dict(sorted(self.build_args.items()))
        if self.platforms:
            data["platforms"] = list(self.platforms)
        if self.build_cache:
            data["buildCache"] = self.build_cache
        return data


@dataclass(frozen=True)
class WarehouseConfig:
    """A Kargo image subscription (Warehouse) as the cdk8s app generates it."""

    repo_url: str
    strategy: str
    constraint: str | None = None
    allow_tags_regexes: tuple[str, ...] = ()
    ignore_tags_regexes: tuple[str, ...] = ()
    platform: str | None = None
    interval: str | None = None

    def to_dict(self) -> dict:
        data: dict = {"repoURL": self.repo_url, "imageSelectionStrategy": self.strategy}
        optional = {
            "constraint": self.constraint,
            "allowTagsRegexes": list(self.allow_tags_regexes),
            "ignoreTagsRegexes": list(self.ignore_tags_regexes),
            "platform": self.platform,
            "interval": self.interval,
        }
        data.update({key: value for key, value in optional.items() if value})
        return data

    @classmethod
    def from_dict(cls, data: dict) -> WarehouseConfig:
        return cls(
            repo_url=data["repoURL"],
            strategy=data["imageSelectionStrategy"],
            constraint=data.get("constraint"),
            allow_tags_regexes=tuple(data.get("allowTagsRegexes", ())),
            ignore_tags_regexes=tuple(data.get("ignoreTagsRegexes", ())),
            platform=data.get("platform"),
            interval=data.get("interval"),
        )


@dataclass(frozen=True)
class VerifyPolicy:
    """How a watched image's digests are verified before anything is rebuilt on them: a cosign
    public key (a PEM file in the factory repository, or a Kubernetes Secret holding
    `cosign.pub`) or keyless (the signing certificate's identity and OIDC issuer)."""

    key_file: str | None = None
    key_secret: str | None = None
    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    required: bool = True
    transparency_log: bool = True  # cosign checks the Rekor entry; false for keys that never upload there

    @property
    def keyless(self) -> bool:
        return self.key_file is None and self.key_secret is None

    def to_dict(self) -> dict:
        data: dict = {}
        if self.key_file is not None:
            data["key"] = self.key_file
        if self.key_secret is not None:
            data["key"] = {"secret": self.key_secret}
        optional = {
            "certificateIdentity": self.identity,
            "certificateIdentityRegexp": self.identity_regexp,
            "certificateOidcIssuer": self.issuer,
            "certificateOidcIssuerRegexp": self.issuer_regexp,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        data["required"] = self.required
        if not self.transparency_log:
            data["transparencyLog"] = False
        return data

    @classmethod
    def from_dict(cls, data: dict) -> VerifyPolicy:
        key = data.get("key")
        return cls(
            key_file=key if isinstance(key, str) else None,
            key_secret=key["secret"] if isinstance(key, dict) else None,
            identity=data.get("certificateIdentity"),
            identity_regexp=data.get("certificateIdentityRegexp"),
            issuer=data.get("certificateOidcIssuer"),
            issuer_regexp=data.get("certificateOidcIssuerRegexp"),
            required=data.get("required", True),
            transparency_log=data.get("transparencyLog", True),
        )


DEFAULT_REVISION_TAG = "{tag}-r{n}"
GITHUB_COM_API = "https://api.github.com"
GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"  # github.com's Actions OIDC issuer


def github_endpoints(api_url: str) -> tuple[str, str]:
    """The GitHub server and its Actions OIDC issuer, from the REST API's URL (kargo.githubApiUrl)."""
    if api_url.rstrip("/") == GITHUB_COM_API:
        return "https://github.com", GITHUB_ACTIONS_ISSUER
    server = re.sub(r"/api/v3/?$", "", api_url.rstrip("/"))
    return server, f"{server}/_services/token"  # GitHub Enterprise Server's issuer


@dataclass(frozen=True)
class Policy:
    rebuild_delay: str = DEFAULT_REBUILD_DELAY
    auto_rebuild: bool = True
    scan: dict | None = None  # what scan findings decide (rebuilds.scan_evidence); None: off


@dataclass(frozen=True)
class EnrolledImage:
    """One entry of images.yaml. Managed when it has a source, external otherwise."""

    name: str
    ref: ImageRef  # tag is None for an external image whose warehouse selects tags by pattern
    policy: Policy
    source: Source | None = None
    warehouse: WarehouseConfig | None = None  # external images only
    verify: VerifyPolicy | None = None  # external images only
    test: dict | None = None  # managed images only: command, structureTest, analysisTemplates
    index: int | None = None  # position in images.yaml
    document: object = field(default=None, compare=False, repr=False)  # the YamlDocument it came from
    # managed images only: the signature its builds carry (None: the factory's keyless default, see trust.py)
    signing: VerifyPolicy | None = None
    # managed images only: the immutable tag each rebuild also gets (promote), None: none
    revision_tag: str | None = DEFAULT_REVISION_TAG
    team: str | None = None  # images.yaml `team`: who owns it, for the status site's filter

    @property
    def managed(self) -> bool:
        return self.source is not None

    @property
    def line(self) -> int | None:
        """Its line in images.yaml (worked out only when an error needs it)."""
        if self.document is None or self.index is None:
            return None
        return self.document.line_of(("images", self.index))


@dataclass(frozen=True)
class WebhookReceiver:
    """A registry (or forge) that pushes refreshes to Kargo instead of waiting for the interval."""

    name: str
    type: str
    secret_name: str
    virtual_repo_name: str | None = None


@dataclass(frozen=True)
class ScannerSettings:
    """The scan Job of a watched image (docs/scanning.md)."""

    image: str  # Trivy, pinned by digest
    reporter_image: str  # python3, pinned by digest: runs trust/scan_report.py
    db_repository: str
    java_db_repository: str | None = None
    memory: str = "2Gi"  # the scanner's memory limit; Kubernetes kills the container past it
    disk: str = "10Gi"  # the Job's scratch space: databases, cache and layers
    rescan: int = 3  # earlier digests of the Warehouse scanned again with each new one


@dataclass(frozen=True)
class KargoSettings:
    """How the Kargo manifests are generated."""

    project: str = "image-factory"
    factory_repo: str | None = None  # owner/name
    github_api_url: str = GITHUB_COM_API
    token_secret_name: str = "image-factory-github"
    token_secret_key: str = "token"
    dispatch_step: str = "http"  # or gha-dispatch-workflow (Kargo on the Akuity Platform)
    warehouse_interval: str = "1h"
    objects_per_file: int = 500
    webhook_receivers: tuple[WebhookReceiver, ...] = ()
    cosign_image: str = COSIGN_IMAGE
    verify_registry_secret: str | None = None  # a dockerconfigjson Secret cosign reads private registries with
    scanner: ScannerSettings | None = None


@dataclass(frozen=True)
class TrustSettings:
    """Who may vouch for a digest through the events workflow (see trust.py)."""

    # GitHub logins (a repository_dispatch's sender) that may send base-image-verified and base-image-cve
    senders: tuple[str, ...] = ()


@dataclass(frozen=True)
class SigstoreSettings:
    """A private Sigstore (Fulcio, Rekor and their TUF root) for keyless signatures."""

    fulcio_url: str
    rekor_url: str
    tuf_mirror: str
    tuf_root: str  # a file of the factory repository


@dataclass(frozen=True)
class ArgoSettings:
    """The ArgoCD Application that applies the published manifests. None: derived defaults."""

    name: str | None = None
    namespace: str = "argocd"
    project: str = "default"
    repo_url: str | None = None
    target_revision: str = "main"
    path: str = "dist"
    destination_server: str = "https://kubernetes.default.svc"


@dataclass(frozen=True)
class Config:
    """All of images.yaml."""

    file: str
    images: tuple[EnrolledImage, ...]
    defaults: Policy = Policy()
    kargo: KargoSettings = KargoSettings()
    argocd: ArgoSettings = ArgoSettings()
    cascade_delay: str = "0s"  # wait after a managed image's rebuild before rebuilding its dependents
    registry_mirrors: dict[str, str] = field(default_factory=dict)  # registry host → mirror host (reads)
    insecure_registries: frozenset[str] = frozenset()  # plain-HTTP registry hosts
    trust: TrustSettings = TrustSettings()
    sigstore: SigstoreSettings | None = None  # None: public Sigstore (github.com only)
    settings: dict = field(default_factory=dict, compare=False, repr=False)  # as images.yaml gives them

    @property
    def managed(self) -> tuple[EnrolledImage, ...]:
        return tuple(image for image in self.images if image.managed)

    @property
    def external(self) -> tuple[EnrolledImage, ...]:
        return tuple(image for image in self.images if not image.managed)

    def by_name(self, name: str) -> EnrolledImage | None:
        return next((image for image in self.images if image.name == name), None)

    def managed_for(self, ref: ImageRef) -> EnrolledImage | None:
        """The managed image a reference names (same registry/repository, any tag or digest)."""
        return self._managed_by_repository.get(ref.name)

    def external_for(self, ref: ImageRef) -> EnrolledImage | None:
        """The external enrolment watching exactly this reference (ignoring a digest pin)."""
        return self._external_by_ref.get(ref.without_digest())

    @cached_property
    def _managed_by_repository(self) -> dict[str, EnrolledImage]:
        return {image.ref.name: image for image in reversed(self.managed)}

    @cached_property
    def _external_by_ref(self) -> dict[ImageRef, EnrolledImage]:
        return {image.ref: image for image in reversed(self.external)}


def warehouse_for(ref: ImageRef, configured: WarehouseConfig | None = None) -> WarehouseConfig | None:
    """The Warehouse subscription that watches `ref`; None when there is nothing to watch.

    A tag is watched for new digests (strategy Digest, the tag as constraint); an enrolled
    external image may choose another strategy and tag patterns instead.
    """
    if configured is not None:
        return configured
    if ref.tag is None:
        return None  # a digest-only reference can never change
    return WarehouseConfig(repo_url=ref.name, strategy="Digest", constraint=ref.tag)
