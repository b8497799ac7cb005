"""What a build of a managed image needs: paths, tags and the BuildKit contexts that pin its bases."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from image_factory.enrolment.refs import InvalidReference, parse_digest, parse_ref
from image_factory.errors import FactoryError, Problem
from image_factory.state.store import ImageState, State

SIGSTORE_OUTPUTS = ("fulcio-url", "rekor-url", "tuf-mirror", "tuf-root")


@dataclass(frozen=True)
class BuildInfo:
    context: str
    dockerfile: str
    tags: str
    registry: str
    pins: dict[str, str]  # what the build is pinned to, reported back with its result
    build_contexts: tuple[str, ...]
    repository: str = ""  # registry/repository, where the candidate is pushed by digest
    test_command: str = ""  # run inside the candidate before the tag moves
    structure_test: str = ""  # a container-structure-test config, in the checkout
    structure_test_image: str = ""  # what runs it, pinned by digest
    build_args: tuple[str, ...] = ()  # NAME=value, as discovery resolved the FROM lines with them
    already_built: str = ""  # why this build would repeat one that succeeded (a re-sent dispatch)
    signing: str = "keyless"  # how images.yaml says its builds are signed: key or keyless
    # A private Sigstore (images.yaml `sigstore`) the sign job uses: its URLs, and its TUF root.json
    # in base64 (that job has no checkout of the factory).
    sigstore: dict[str, str] = field(default_factory=dict)
    cache_from: str = ""  # BuildKit's cache import and export (images.yaml source.buildCache)
    cache_to: str = ""

    def github_output(self, delimiter: str | None = None) -> str:
        """`key=value` lines for $GITHUB_OUTPUT, the multi-line values in heredoc form behind a
        delimiter drawn at random (as GitHub's own toolkit does), so that no value, a test
        command say, can end its heredoc early and set outputs of its own."""
        lines = {
            "context": self.context,
            "dockerfile": self.dockerfile,
            "tags": self.tags,
            "registry": self.registry,
            "repository": self.repository,
            "structure-test": self.structure_test,
            "structure-test-image": self.structure_test_image,
            "bases": json.dumps(self.pins, sort_keys=True),
            "already-built": self.already_built,
            "signing": self.signing,
            **{f"sigstore-{key}": self.sigstore.get(key, "") for key in SIGSTORE_OUTPUTS},
            "cache-from": self.cache_from,
            "cache-to": self.cache_to,
        }
        blocks = {
            "build-contexts": "\n".join(self.build_contexts),
            "build-args": "\n".join(self.build_args),
            "test-command": self.test_command,
        }
        delimiter = delimiter or f"ghadelimiter_{uuid.uuid4()}"
        text = "".join(f"{key}={value}\n" for key, value in lines.items())
        for key, value in {**lines, **blocks}.items():
            if delimiter in value or (key in lines and "\n" in value):
                raise FactoryError(Problem("build-info", f"{key} cannot be written as a workflow output: {value!r}"))
        return text + "".join(f"{key}<<{delimiter}\n{value}\n{delimiter}\n" for key, value in blocks.items())


def parse_pins(text: str) -> dict[str, str]:
    """`{"python:3.12-slim": "sha256:…"}` → canonical reference → digest."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise FactoryError(Problem("--bases", f"not JSON: {error}")) from None
    except RecursionError:  # an event's payload: nested past what the parser follows
        raise FactoryError(
            Problem("--bases", "nested too deep: expected a JSON object of reference → digest")
        ) from None
    if raw is None:  # a failed build may report no bases
        return {}
    if not isinstance(raw, dict):
        raise FactoryError(Problem("--bases", "expected a JSON object of reference → digest"))
    pins = {}
    for ref_text, digest in raw.items():
        try:
            ref = parse_ref(ref_text).without_digest()
        except InvalidReference as error:
            raise FactoryError(Problem("--bases", str(error))) from None
        try:
            # a list or object is named, not printed: it may nest deeper than repr() goes
            shown = repr(digest) if not isinstance(digest, list | dict) else f"a JSON {type(digest).__name__}"
            pins[ref.canonical] = parse_digest(digest if isinstance(digest, str) else shown)
        except InvalidReference as error:
            raise FactoryError(Problem("--bases", f"{ref_text}: {error.reason}")) from None
    return pins


def build_contexts(image: ImageState, state: State, pins: dict[str, str]) -> tuple[str, ...]:
    """One `name=docker-image://repo@digest` per base as the Dockerfile names it, so BuildKit
    resolves every FROM / COPY --from / RUN --mount=from to the pinned digest."""
    contexts = []
    for base in image.base_images:
        written = parse_ref(base.ref, default_tag=None)
        key = state.images[base.image].ref.canonical if base.image else written.without_digest().canonical
        digest = pins.get(key)
        if digest:
            contexts.append(f"{written.familiar}=docker-image://{written.name}@{digest}")
    return tuple(dict.fromkeys(contexts))


def build_info(
    state: State,
    name: str,
    pins: dict[str, str],
    already_built: str = "",
    signing: str = "keyless",
    sigstore: dict[str, str] | None = None,
) -> BuildInfo:
    image = state.managed(name)
    source = image.enrolment["source"]
    # local sources live in this repository, github sources at the root of their own checkout
    prefix = PurePosixPath(source["repo"]) if source["provider"] == "local" else PurePosixPath(".")
    test = image.enrolment.get("test", {})
    cache_from, cache_to = _cache(source.get("buildCache"), image)
    return BuildInfo(
        context=str(prefix / source["context"]),
        dockerfile=str(prefix / source["dockerfile"]),
        tags=image.ref.canonical,
        registry=image.ref.registry,
        pins=dict(sorted(pins.items())),
        build_contexts=build_contexts(image, state, pins),
        repository=image.ref.name,
        test_command=test.get("command", ""),
        structure_test=str(prefix / test["structureTest"]) if "structureTest" in test else "",
        structure_test_image=test.get("structureTestImage", ""),
        build_args=tuple(f"{key}={value}" for key, value in sorted(source.get("buildArgs", {}).items())),
        already_built=already_built,
        signing=signing,
        sigstore=dict(sigstore or {}),
        cache_from=cache_from,
        cache_to=cache_to,
    )


def _cache(kind: str | None, image: ImageState) -> tuple[str, str]:
    """BuildKit's cache-from and cache-to for images.yaml's `source.buildCache` (docker/build-push-action
    gives the gha backend its URL and token itself). Every layer (mode=max) is kept, so a rebuild on a
    new base digest reuses what does not depend on it; the pins still decide what is built on."""
    if kind == "gha":
        scope = f"image-factory-{image.name}"
        return f"type=gha,scope={scope}", f"type=gha,scope={scope},mode=max"
    if kind == "registry":
        ref = f"{image.ref.name}:buildcache"
        return f"type=registry,ref={ref}", f"type=registry,ref={ref},mode=max"
    return "", ""
