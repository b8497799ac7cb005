"""Each managed image's Dockerfile read from its checkout: bounded, never through a symlink out.

A local repository is a folder of the factory; a github one a checkout (a team's own in its
action, or `--source-root/owner/name`). What discover last read of each (`dockerfile_record`)
lets a rerun with nothing changed skip the reading (`as_read`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from image_factory.discovery.dockerfile import Discovery, find_bases
from image_factory.enrolment.config import CONFIG_FILE
from image_factory.enrolment.model import Config, Source
from image_factory.errors import FactoryError, Problem
from image_factory.speed import parallel


def _checkout(root: Path, source: Source, source_root: Path | None, checkouts: dict[str, Path] | None) -> Path | None:
    """The folder of a managed image's source repository: a local one inside the factory, a
    github one its checkout (`checkouts[owner/name]`, a team's own in its action, or
    `source_root/owner/name`); None when no checkout is at hand."""
    if source.provider == "local":
        return root / source.repo
    checkout = (checkouts or {}).get(source.repo)
    if checkout is None and source_root is not None:
        checkout = source_root / source.repo
    return checkout if checkout is not None and checkout.is_dir() else None


def _real(path: str, memo: dict[str, str]) -> str:
    """os.path.realpath(path) for an absolute path, with the resolved folders above it
    remembered: a fleet's Dockerfiles share most of their folders, and resolving each from the
    root costs a stat per folder."""
    parent, name = os.path.split(path)
    if not name or parent == path:
        return os.path.realpath(path)
    real_parent = memo.get(parent)
    if real_parent is None:
        real_parent = memo[parent] = _real(parent, memo)
    candidate = os.path.join(real_parent, name)
    return os.path.realpath(candidate) if name in (".", "..") or os.path.islink(candidate) else candidate


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _escapes(path: Path, repository: Path, root: Path, local: bool, memo: dict[str, str]) -> bool:
    """Whether `path` (or its repository folder) leads outside where it must stay, through a
    symlink: the factory for a local repository, the repository for its Dockerfile."""
    real_repository = _real(os.path.abspath(repository), memo)
    if local and not _inside(real_repository, _real(os.path.abspath(root), memo)):
        return True
    return not _inside(_real(os.path.abspath(path), memo), real_repository)


MAX_DOCKERFILE_BYTES = 1024 * 1024
NOT_FOUND = "not found"
# The most distinct images one Dockerfile may build on (images.yaml defaults.maxBases): each becomes
# a watched image with a Warehouse polling its registry, so 10,000 FROM lines must not make 10,000.
DEFAULT_MAX_BASES = 50


def read_discoveries(
    root: Path,
    config: Config,
    source_root: Path | None,
    checkouts: dict[str, Path] | None = None,
    only: set[str] | None = None,
    missing_ok: bool = False,
    read: dict[str, dict] | None = None,
    problems: list[Problem] | None = None,
) -> dict[str, Discovery | None]:
    """Discovery for each managed image whose Dockerfile can be read (of `only`, when given);
    every problem reported at once, or, with `problems`, added to it: an image whose Dockerfile
    was refused then has None, as one with no checkout (it keeps its recorded bases). With
    `missing_ok`, a Dockerfile gone from its checkout is recorded as missing (a team removed it)
    instead of being an error. `read`, when given, gets each image's `dockerfile_record` (for
    state/discovered.json; a refused one's without its digest, so the next run reads it again).
    A large fleet's Dockerfiles are read and parsed half in a second process."""
    images = [image for image in config.managed if only is None or image.name in only]
    limit = config.settings.get("defaults", {}).get("maxBases", DEFAULT_MAX_BASES)
    items = [(image.name, image.source) for image in images]
    middle = len(items) // 2
    worthwhile = middle >= parallel.WORTHWHILE_FILES
    with parallel.background(
        _read_some, root, items[middle:], source_root, checkouts, missing_ok, limit, worthwhile=worthwhile
    ) as rest:
        found = _read_some(root, items[:middle], source_root, checkouts, missing_ok, limit)
        found += rest.result()
    discoveries: dict[str, Discovery | None] = {image.name: None for image in config.managed}
    found_problems: list[Problem] = []
    by_name = {image.name: image for image in images}
    for name, outcome, record, trouble in found:
        if isinstance(outcome, str):  # not found: said with the image's line in images.yaml
            image = by_name[name]
            trouble = [Problem(config.file, f"Dockerfile of {name!r} not found: {outcome}", image.line, "images")]
            outcome = None
        if read is not None:
            read[name] = {**record, "sha256": None} if trouble else record
        discoveries[name] = outcome
        found_problems += trouble
    if found_problems and problems is None:
        raise FactoryError(found_problems)
    if problems is not None:
        problems += found_problems
    return discoveries


def _read_some(
    root: Path,
    items: list[tuple[str, Source]],
    source_root: Path | None,
    checkouts: dict[str, Path] | None,
    missing_ok: bool,
    limit: int,
) -> list[tuple[str, Discovery | str | None, dict, list[Problem]]]:
    """For each managed image (name, source): its discovery (None: no checkout, or refused; a
    str: the Dockerfile's display path, not found), its `dockerfile_record`, and its problems.
    `limit`: the most distinct images one Dockerfile may build on."""
    memo: dict[str, str] = {}
    root = Path(os.path.abspath(root))  # relative paths would cost a getcwd() per use
    return [_read_one(root, name, source, source_root, checkouts, missing_ok, limit, memo) for name, source in items]


def _read_one(
    root: Path,
    name: str,
    source: Source,
    source_root: Path | None,
    checkouts: dict[str, Path] | None,
    missing_ok: bool,
    limit: int,
    memo: dict[str, str],
) -> tuple[str, Discovery | str | None, dict, list[Problem]]:
    record = dockerfile_record(source)
    checkout = _checkout(root, source, source_root, checkouts)
    if checkout is None:
        return name, None, record, []
    path = checkout / source.dockerfile
    display = _display(root, path)
    if _escapes(path, checkout, root, source.provider == "local", memo):
        # Said before anything is read, the same whether the target exists or not.
        return (
            name,
            None,
            record,
            [Problem(display, f"Dockerfile of {name!r} leads outside its repository (a symlink)")],
        )
    try:
        size = path.stat().st_size
        if size > MAX_DOCKERFILE_BYTES:  # not read at all: one team's file never stops the fleet
            return (
                name,
                None,
                record,
                [Problem(display, f"Dockerfile of {name!r} is {size:,} bytes, over 1 MiB: refused")],
            )
        data = path.read_bytes()
        record["sha256"] = hashlib.sha256(data).hexdigest()
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text() reads it
    except (FileNotFoundError, NotADirectoryError):
        if missing_ok and source.provider == "github":
            return name, Discovery((), missing=True), record, []
        return name, display, record, []
    except (OSError, UnicodeDecodeError) as error:
        return name, None, record, [Problem(display, f"cannot read Dockerfile of {name!r}: {error}")]
    try:
        found = find_bases(text, source.build_args, display)
    except FactoryError as error:
        return name, None, record, list(error.problems)
    distinct = {use.ref for use in found.uses}
    if len(distinct) > limit:  # each would be a watched image, a Warehouse polling its registry
        message = f"Dockerfile of {name!r} builds on {len(distinct):,} distinct images, over defaults.maxBases"
        return name, None, record, [Problem(display, f"{message} ({limit}) in {CONFIG_FILE}: refused")]
    return name, found, record, []


def dockerfile_record(source: Source) -> dict:
    """What state/discovered.json keeps of a managed image's Dockerfile: its provider, its path from
    the factory (local) or from a --source-root (github), and the sha256 of the bytes last read."""
    return {"provider": source.provider, "path": f"{source.repo}/{source.dockerfile}", "sha256": None}


def as_read(root: Path, source_root: Path | None, record: dict) -> bool:
    """Whether a Dockerfile is as discover last read it, so that reading it again changes nothing."""
    if record.get("provider") not in ("local", "github") or not isinstance(record.get("path"), str):
        return False
    local = record["provider"] == "local"
    if not local and source_root is None:
        return True  # no checkout: discover keeps the bases it recorded
    path = (root if local else source_root) / str(record.get("path"))
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == record.get("sha256")
    except OSError:
        # a github checkout that is not here keeps its recorded bases; anything else is an error
        return not local and not (source_root / str(record.get("path")).split("/")[0]).exists()


def _display(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
