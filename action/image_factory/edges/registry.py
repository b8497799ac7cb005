"""Reading digests from OCI / Docker registries (the distribution v2 API), at the edge.

HEAD /v2/<name>/manifests/<ref> with every manifest media type in Accept; the digest is the
`Docker-Content-Digest` header (or, when a registry omits it, the sha256 of the GET body).
Anonymous and authenticated bearer tokens (the WWW-Authenticate flow), basic credentials and the
Docker config file; tokens cached per scope until they expire; 429 and 5xx retried with back-off
honouring Retry-After; every answer cached for the run, every request counted. Credentials are
never logged. Raw manifests and digest-checked blobs for the signature checks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import requests

from image_factory.enrolment.refs import DEFAULT_REGISTRY, ImageRef
from image_factory.errors import FactoryError, Problem

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
INDEXES = (OCI_INDEX, DOCKER_LIST)
API_HOSTS = {DEFAULT_REGISTRY: "registry-1.docker.io"}
MAX_RETRY_WAIT = 30.0


@dataclass(frozen=True)
class Resolved:
    """What a reference points at now."""

    ref: ImageRef
    digest: str
    media_type: str | None
    platforms: dict[str, str] = field(default_factory=dict)  # "linux/amd64" → manifest digest

    def to_dict(self) -> dict:
        return {
            "ref": self.ref.canonical,
            "digest": self.digest,
            "mediaType": self.media_type,
            "platforms": self.platforms,
        }


ENV_CREDENTIALS = "IMAGE_FACTORY_REGISTRY_CREDENTIALS"


def docker_credentials(environ: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """Registry host → (user, password): from $IMAGE_FACTORY_REGISTRY_CREDENTIALS (JSON,
    `{"ghcr.io": "user:token"}`, for CI secrets), else from the Docker config file
    ($DOCKER_CONFIG or ~/.docker/config.json)."""
    environ = os.environ if environ is None else environ
    from_env = parse_credentials(environ.get(ENV_CREDENTIALS, ""))
    return {**_config_credentials(environ), **from_env}


def parse_credentials(text: str, name: str = ENV_CREDENTIALS) -> dict[str, tuple[str, str]]:
    """Registry host → (user, password) from JSON `{"host": "user:password"}` (`name` says where it
    came from: this variable, or a workflow's secret)."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raise FactoryError(Problem(name, 'is not JSON: expected {"host": "user:password"}')) from None
    if not isinstance(raw, dict) or not all(isinstance(v, str) and ":" in v for v in raw.values()):
        raise FactoryError(Problem(name, 'expected {"host": "user:password"}'))
    return {host: tuple(value.split(":", 1)) for host, value in raw.items()}


def _config_credentials(environ) -> dict[str, tuple[str, str]]:
    folder = Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else Path.home() / ".docker"
    try:
        auths = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("auths", {})
    except (OSError, ValueError):
        return {}
    found = {}
    for host, entry in auths.items():
        host = re.sub(r"^https?://", "", host).split("/")[0]
        if entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            found[host] = (user, password)
        elif entry.get("username"):
            found[host] = (entry["username"], entry.get("password", ""))
    if "index.docker.io" in found:
        found.setdefault(DEFAULT_REGISTRY, found["index.docker.io"])
    return found


class RegistryClient:
    """One run's view of the registries: credentials, tokens, answers and a request count."""

    def __init__(
        self,
        *,
        mirrors: dict[str, str] | None = None,
        insecure: set[str] | None = None,
        credentials: dict[str, tuple[str, str]] | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        retries: int = 4,
    ):
        self.mirrors = mirrors or {}
        self.insecure = insecure or set()
        self.credentials = docker_credentials() if credentials is None else credentials
        self.session = session or requests.Session()
        self.sleep = sleep
        self.retries = retries
        self.requests = 0
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._basic: dict[str, str] = {}  # hosts that asked for basic credentials → the header
        self._answers: dict[str, Resolved] = {}

    def resolve(self, ref: ImageRef) -> Resolved:
        """The digest `ref` points at (its own digest when it carries one), once per run."""
        key = ref.canonical
        if key not in self._answers:
            self._answers[key] = self._resolve(ref)
        return self._answers[key]

    def manifest(self, ref: ImageRef, reference: str) -> tuple[bytes, str | None] | None:
        """The raw manifest `reference` (a tag or digest) of `ref`'s repository and its media
        type; None when the registry has no such manifest (404)."""
        response = self._request("GET", f"{self._base_url(ref)}/manifests/{reference}", ref, missing_ok=True)
        if response is None:
            return None
        return response.content, (response.headers.get("Content-Type") or "").split(";")[0] or None

    def blob(self, ref: ImageRef, digest: str) -> bytes:
        """A blob of `ref`'s repository, checked against its digest."""
        content = self._request("GET", f"{self._base_url(ref)}/blobs/{digest}", ref).content
        algorithm, _, expected = digest.partition(":")
        if algorithm != "sha256" or hashlib.sha256(content).hexdigest() != expected:
            raise FactoryError(Problem("registry", f"{ref}: blob {digest} does not match its digest"))
        return content

    def _base_url(self, ref: ImageRef, mirrored: bool = True) -> str:
        host = self.mirrors.get(ref.registry, ref.registry) if mirrored else ref.registry
        scheme = "http" if host in self.insecure else "https"
        return f"{scheme}://{API_HOSTS.get(host, host)}/v2/{ref.repository}"

    def _resolve(self, ref: ImageRef) -> Resolved:
        reference = ref.digest or ref.tag or "latest"
        url = f"{self._base_url(ref)}/manifests/{reference}"
        response = self._request("HEAD", url, ref)
        digest = response.headers.get("Docker-Content-Digest")
        media_type = (response.headers.get("Content-Type") or "").split(";")[0] or None
        body = None
        if not digest or media_type in INDEXES:
            body = self._request("GET", url, ref)
            media_type = (body.headers.get("Content-Type") or "").split(";")[0] or media_type
            digest = (
                digest
                or body.headers.get("Docker-Content-Digest")
                or "sha256:" + hashlib.sha256(body.content).hexdigest()
            )
        platforms = {}
        if body is not None and media_type in INDEXES:
            for manifest in body.json().get("manifests", []):
                platform = manifest.get("platform") or {}
                if platform.get("os") and platform.get("architecture"):
                    name = f"{platform['os']}/{platform['architecture']}" + (
                        f"/{platform['variant']}" if platform.get("variant") else ""
                    )
                    platforms.setdefault(name, manifest["digest"])
        return Resolved(ref, digest, media_type, platforms)

    def tags(self, ref: ImageRef) -> list[str]:
        """Every tag of `ref`'s repository, from the registry itself (never a mirror): the
        distribution API's tags/list, page by page as its Link header leads (OCI distribution spec,
        "Listing Tags")."""
        url: str | None = f"{self._base_url(ref, mirrored=False)}/tags/list?n=1000"
        found: list[str] = []
        while url:
            answer = self._request("GET", url, ref, missing_ok=True, push=True)
            if answer is None:  # no repository yet: no tags
                return found
            found += [tag for tag in (answer.json().get("tags") or []) if isinstance(tag, str)]
            following = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', answer.headers.get("Link", ""))
            url = urljoin(url, following.group(1)) if following else None
        return found

    def tag(self, ref: ImageRef, manifest: tuple[bytes, str | None]) -> None:
        """Point `ref`'s tag at a manifest already in its repository (as `manifest` read it), as
        `crane tag` does: the manifest is put back under the tag, byte for byte."""
        body, media_type = manifest
        # Writes never go through a read-only mirror.
        url = f"{self._base_url(ref, mirrored=False)}/manifests/{ref.tag or 'latest'}"
        headers = {"Content-Type": media_type or OCI_MANIFEST}
        self._request("PUT", url, ref, push=True, body=body, headers=headers)

    def _request(
        self,
        method: str,
        url: str,
        ref: ImageRef,
        missing_ok: bool = False,
        *,
        push: bool = False,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ):
        """The answer (None for a 404 when `missing_ok`), after authenticating and retrying."""
        scope = f"repository:{ref.repository}:{'pull,push' if push else 'pull'}"
        host = ref.registry if push else self.mirrors.get(ref.registry, ref.registry)
        auth_header = self._cached_auth(host, scope)
        authenticated = False
        attempt = 0
        while True:
            sent = {"Accept": ACCEPT, **(headers or {}), **({"Authorization": auth_header} if auth_header else {})}
            try:
                self.requests += 1
                response = self.session.request(method, url, headers=sent, data=body, timeout=30)
            except requests.RequestException as error:
                raise FactoryError(Problem("registry", f"{ref}: cannot reach {host}: {type(error).__name__}")) from None
            if response.status_code == 401 and not authenticated:
                auth_header, authenticated = self._authenticate(host, scope, response, ref), True
                continue
            retryable = response.status_code == 429 or response.status_code >= 500
            if retryable and attempt < self.retries:
                self.sleep(_retry_after(response, attempt))
                attempt += 1
                continue
            if missing_ok and response.status_code == 404:
                return None
            return _checked(response, ref, host)

    def _cached_auth(self, host: str, scope: str) -> str | None:
        if host in self._basic:
            return self._basic[host]
        token = self._tokens.get((host, scope))
        if token and token[1] > time.time():
            return f"Bearer {token[0]}"
        return None

    def _authenticate(self, host: str, scope: str, challenge: requests.Response, ref: ImageRef) -> str:
        header = challenge.headers.get("WWW-Authenticate", "")
        credentials = self.credentials.get(host)
        if header.lower().startswith("basic"):
            if not credentials:
                raise FactoryError(Problem("registry", f"{ref}: {host} asks for credentials and none are configured"))
            self._basic[host] = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
            return self._basic[host]
        fields = dict(re.findall(r'(\w+)="([^"]*)"', header))
        if not header.lower().startswith("bearer") or "realm" not in fields:
            raise FactoryError(Problem("registry", f"{ref}: {host} answered 401 without a usable challenge"))
        params = {"service": fields.get("service", ""), "scope": fields.get("scope", scope)}
        self.requests += 1
        try:
            answer = self.session.get(fields["realm"], params=params, auth=credentials, timeout=30)
        except requests.RequestException as error:
            raise FactoryError(
                Problem("registry", f"{ref}: cannot reach the token service of {host}: {type(error).__name__}")
            ) from None
        if answer.status_code != 200:
            raise FactoryError(
                Problem(
                    "registry", f"{ref}: {host}'s token service refused ({answer.status_code}): check the credentials"
                )
            )
        data = answer.json()
        token = data.get("token") or data.get("access_token")
        expires = time.time() + max(int(data.get("expires_in", 60)) - 10, 10)
        self._tokens[(host, params["scope"])] = (token, expires)
        return f"Bearer {token}"


def _retry_after(response: requests.Response, attempt: int) -> float:
    value = response.headers.get("Retry-After", "")
    wait = float(value) if value.replace(".", "", 1).isdigit() else 2.0**attempt
    return min(wait, MAX_RETRY_WAIT)


def _checked(response: requests.Response, ref: ImageRef, host: str) -> requests.Response:
    status = response.status_code
    if status < 300:
        return response
    if status == 404:
        raise FactoryError(Problem("registry", f"{ref}: not found on {host} (404)"))
    if status in (401, 403):
        raise FactoryError(
            Problem("registry", f"{ref}: {host} refused access ({status}): check the credentials for it")
        )
    if status == 429:
        raise FactoryError(Problem("registry", f"{ref}: {host} is rate limiting (429) and kept doing so"))
    raise FactoryError(Problem("registry", f"{ref}: {host} answered {status}"))
