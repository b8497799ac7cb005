"""Names and labels of the generated Kubernetes objects: DNS-1123 labels, stable, never colliding."""

from __future__ import annotations

import hashlib
import re

from image_factory.enrolment.refs import ImageRef

MAX_NAME = 63
LABEL_PREFIX = "image-factory.dev"
ROLE = f"{LABEL_PREFIX}/role"
IMAGE = f"{LABEL_PREFIX}/image"
WATCHED = f"{LABEL_PREFIX}/watched"
AUTO_PROMOTE = f"{LABEL_PREFIX}/auto-promote"
REF_ANNOTATION = f"{LABEL_PREFIX}/ref"
MANAGED_BY = {"app.kubernetes.io/managed-by": "image-factory"}


def _hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _fold(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def fit(name: str) -> str:
    """`name` if it is a short enough label, else shortened with a hash of the whole."""
    if len(name) <= MAX_NAME:
        return name
    return f"{name[: MAX_NAME - 9].rstrip('-')}-{_hash(name)}"


def watched_name(ref: ImageRef) -> str:
    """Warehouse (and recording Stage) of a watched image: `python-3-12-slim-1a2b3c4d`.

    Readable from the repository's last component and the tag; the hash of the canonical
    reference keeps `docker.io/library/python:3.12-slim` and `ghcr.io/x/python:3.12-slim` apart.
    """
    readable = _fold(ref.repository.rsplit("/", 1)[-1] + (f"-{ref.tag}" if ref.tag else ""))[:40].strip("-")
    return f"{readable}-{_hash(ref.canonical)}"


def rebuild_name(image: str, watched: str) -> str:
    """The Stage that rebuilds managed `image` when the watched image `watched` changes."""
    return fit(f"{image}-on-{watched}")


def soak_name(watched: str, delay: str) -> str:
    """The Stage that lets a watched image's Freight soak `delay` (a duration as images.yaml
    writes it, `7d`) for the managed images on it without a Stage of their own, then tells the
    factory (`base-image-soaked`): `python-3-12-slim-ea59dc55-soak-7d`. Unless shortened, it ends
    in the delay's unit, where every other name ends in a hash, `verify` or `verified`."""
    return fit(f"{watched}-soak-{_fold(delay)}")


def verify_name(watched: str) -> str:
    """The AnalysisTemplate that checks the signature of a watched image's Freight."""
    return fit(f"verify-{watched}")


def key_name(watched: str) -> str:
    """The ConfigMap holding a watched image's cosign public key (from the factory repository)."""
    return fit(f"cosign-key-{watched}")


def advisory_name(watched: str) -> str:
    """The Stage that verifies a watched image's Freight without holding it back (required: false)."""
    return fit(f"{watched}-verify")


def verified_name(watched: str) -> str:
    """The Stage that reports a watched image's verified Freight to the factory repository."""
    return fit(f"{watched}-verified")


def scan_name(watched: str) -> str:
    """The Stage, and its AnalysisTemplate, that scan each new digest of a watched image."""
    return fit(f"{watched}-scan")


# The ConfigMap holding the scan Jobs' reporter (trust/scan_report.py), one per project.
SCAN_REPORTER = "image-factory-scan-reporter"


def shard_of(name: str, count: int) -> int:
    """Which of `count` (a power of two) manifest files the pipeline of watched image `name` is in."""
    return int(_hash(name), 16) % count
