"""Image references: Docker's reference grammar, canonical form and file-name slugs.

One model for every reference the factory handles. `python` becomes
`docker.io/library/python:latest`; anything that is not a valid reference is an error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_REGISTRY = "docker.io"
_LEGACY_REGISTRIES = {"index.docker.io", "registry-1.docker.io"}
_MAX_NAME_LENGTH = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = re.compile(rf"^{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_IMAGE_ID = re.compile(r"^[a-f0-9]{64}$")
_WHITESPACE = re.compile(r"\s")


class InvalidReference(ValueError):
    """A string that is not a valid image reference under Docker's grammar."""

    def __init__(self, text: str, reason: str):
        super().__init__(f"invalid image reference {text!r}: {reason}")
        self.text = text
        self.reason = reason


@dataclass(frozen=True, order=True)
class ImageRef:
    """A normalised image reference; `tag` and `digest` are each optional."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`registry/repository`: the repository URL, never with a tag (Kargo's repoURL)."""
        return f"{self.registry}/{self.repository}"

    @property
    def canonical(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def __str__(self) -> str:
        return self.canonical

    @property
    def familiar(self) -> str:
        """The short form Docker prints and BuildKit matches named contexts by: `python:3.12-slim`,
        `bitnami/redis:7`, `ghcr.io/acme/app` (no `:latest`)."""
        name = self.name
        if self.registry == DEFAULT_REGISTRY:
            path = self.repository
            name = path.removeprefix("library/") if path.count("/") == 1 else path
        if self.tag and self.tag != "latest":
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name

    def without_digest(self) -> ImageRef:
        """The tag this reference follows; a digest-only reference stays as it is."""
        if self.tag is None:
            return self
        return ImageRef(self.registry, self.repository, self.tag)

    def with_tag(self, tag: str | None) -> ImageRef:
        return ImageRef(self.registry, self.repository, tag, self.digest)

    def slug(self) -> str:
        """A file-name stem: readable, and distinct for distinct references.

        The readable part folds characters that file systems dislike (and case); the hash of the
        canonical reference keeps two references that fold alike apart.
        """
        readable = re.sub(r"[^a-z0-9.-]+", "-", self.canonical.lower()).strip("-.")[:80]
        fingerprint = hashlib.sha256(self.canonical.encode()).hexdigest()[:12]
        return f"{readable}-{fingerprint}"


@lru_cache(maxsize=65536)
def parse_ref(text: str, *, default_tag: str | None = "latest") -> ImageRef:
    """Parse `text` as Docker does and return its canonical form.

    A reference without tag or digest gets `default_tag`; one with only a digest gets no tag.
    (Memoised: the same references come back thousands of times in a large factory, and an
    ImageRef is immutable.)
    """
    if not isinstance(text, str) or not text:
        raise InvalidReference(str(text), "empty reference")
    if _WHITESPACE.search(text):
        raise InvalidReference(text, "contains whitespace")
    if _IMAGE_ID.match(text):
        raise InvalidReference(text, "a 64-character hex string is an image ID, not a reference")

    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        _check_digest(text, digest)

    tag = None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReference(text, f"invalid tag {tag!r}")

    if not remainder:
        raise InvalidReference(text, "missing repository name")
    first, sep, rest = remainder.partition("/")
    is_domain = bool(sep) and ("." in first or ":" in first or first == "localhost" or first.lower() != first)
    registry, path = (first, rest) if is_domain else (DEFAULT_REGISTRY, remainder)
    registry, repository = _normalise_name(text, registry, path)
    if tag is None and digest is None:
        tag = default_tag
    return ImageRef(registry, repository, tag, digest)


def make_ref(registry: str, repository: str, tag: str | None = None) -> ImageRef:
    """The reference for a registry host and a repository path given separately."""
    text = f"{registry}/{repository}" + (f":{tag}" if tag else "")
    if tag is not None and not _TAG.match(tag):
        raise InvalidReference(text, f"invalid tag {tag!r}")
    registry, repository = _normalise_name(text, registry, repository)
    return ImageRef(registry, repository, tag)


def _normalise_name(text: str, registry: str, path: str) -> tuple[str, str]:
    if not _DOMAIN.match(registry):
        raise InvalidReference(text, f"invalid registry {registry!r}")
    if not path:
        raise InvalidReference(text, "missing repository name")
    if registry in _LEGACY_REGISTRIES:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    for component in path.split("/"):
        if component.lower() != component and _PATH_COMPONENT.match(component.lower()):
            raise InvalidReference(text, "repository name must be lowercase")
        if not _PATH_COMPONENT.match(component):
            raise InvalidReference(text, f"invalid repository path component {component!r}")
    if len(f"{registry}/{path}") > _MAX_NAME_LENGTH:
        raise InvalidReference(text, f"repository name longer than {_MAX_NAME_LENGTH} characters")
    return registry, path


def _check_digest(text: str, digest: str) -> None:
    """Only the canonical form: `sha256:` and 64 lowercase hex digits. Registries serve sha256;
    `SHA256:…`, `md5:…` or another case would name the same image twice, or none."""
    if not _DIGEST.match(digest):
        raise InvalidReference(text, f"invalid digest {digest!r}")
    algorithm, hex_part = digest.split(":", 1)
    if algorithm != "sha256":
        raise InvalidReference(text, f"invalid digest {digest!r}: only sha256 digests (what registries serve)")
    if len(hex_part) != 64 or hex_part != hex_part.lower():
        raise InvalidReference(text, "invalid sha256 digest: 64 lowercase hex digits")


def parse_digest(text: str) -> str:
    """A digest on its own (`sha256:<64 hex>`), checked like one inside a reference."""
    _check_digest(text, text)
    return text
