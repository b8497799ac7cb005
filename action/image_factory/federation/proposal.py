"""What a team repository proposes to the factory: its images' discovered bases as state changes,
and the pull request text that explains them. Computed locally; nothing here talks to GitHub."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from image_factory import timestamps
from image_factory.discovery.discover import changed_files
from image_factory.discovery.dockerfiles import read_discoveries
from image_factory.discovery.merge import merge_state
from image_factory.enrolment.config import CONFIG_FILE, load_config, parse_config
from image_factory.enrolment.expression_guard import unprintable_in
from image_factory.errors import FactoryError, Problem
from image_factory.federation import enrolment
from image_factory.rebuilds import planner
from image_factory.rebuilds.planner import Held
from image_factory.state import graph
from image_factory.state.store import load_state
from image_factory.user_text import code_span

GRAPH_LIMIT = 20_000  # characters of Mermaid in a proposal's body


@dataclass(frozen=True)
class ImageChange:
    image: str
    old_bases: tuple[str, ...]
    new_bases: tuple[str, ...]


@dataclass(frozen=True)
class Unresolved:
    """A base reference in a team's Dockerfile that names no image (an ARG without a value)."""

    image: str
    dockerfile: str  # the path in the team repository
    line: int
    ref: str

    def warning(self) -> str:
        return (
            f"{self.image}: cannot resolve {self.ref!r} (an ARG without a default or build arg): "
            "this base is not watched, so the image is not rebuilt when it changes"
        )


@dataclass(frozen=True)
class Overridden:
    """An ARG default in a team's Dockerfile that images.yaml's buildArgs replace in every build."""

    image: str
    dockerfile: str  # the path in the team repository
    line: int
    name: str
    default: str
    value: str

    def warning(self) -> str:
        return (
            f"{self.image}: ARG {self.name}={self.default!r} is overridden by images.yaml's source.buildArgs: "
            f"the factory builds with {self.name}={self.value!r} (ask the platform team to change it there)"
        )


@dataclass
class Proposal:
    team_repo: str
    images: list[str]
    files: dict[str, str | None]  # path in the factory repo → new text, None to delete
    changes: list[ImageChange] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # images whose Dockerfile the team removed
    mermaid: str = ""
    held: list[Held] = field(default_factory=list)  # base digests its images will not be built on, and why
    unresolved: list[Unresolved] = field(default_factory=list)
    overridden: list[Overridden] = field(default_factory=list)
    unenrolled: list[str] = field(default_factory=list)  # Dockerfiles here no enrolled image builds
    more_unenrolled: int = 0  # past MAX_LISTED: not listed
    enrolled: list[str] = field(default_factory=list)  # images this proposal adds to images.yaml (enrol)

    @property
    def changed(self) -> bool:
        return bool(self.files)

    @property
    def branch(self) -> str:
        return "image-factory/" + self.team_repo.replace("/", "-")

    @property
    def title(self) -> str:
        return f"Image Factory: bases of {self.team_repo}"

    def body(self) -> str:
        lines = [
            f"Discovered from the Dockerfiles of **{self.team_repo}** by the Image Factory action.",
            "",
            "| image | bases before | bases now |",
            "|---|---|---|",
        ]
        for change in self.changes:
            old = "<br>".join(f"`{ref}`" for ref in change.old_bases) or "(new)"
            new = "<br>".join(f"`{ref}`" for ref in change.new_bases) or "(none)"
            lines.append(f"| {change.image} | {old} | {new} |")
        if self.unresolved:
            lines += [
                "",
                "**Base references that name no image** (an ARG without a default, and no build arg in"
                " images.yaml): these bases are not watched, and the image is not rebuilt when they change.",
                "",
                "| image | where | reference |",
                "|---|---|---|",
            ]
            lines += [
                # a team's own text, in code: GitHub makes no @mention, link or #reference of it
                f"| {u.image} | {code_span(f'{u.dockerfile}:{u.line}', table_cell=True)} "
                f"| {code_span(u.ref, table_cell=True)} |"
                for u in self.unresolved
            ]
        if self.overridden:
            lines += [
                "",
                "**ARG defaults the factory overrides** (images.yaml `source.buildArgs`): the factory builds"
                " with its value, not the Dockerfile's. Change it in images.yaml to change what is built.",
                "",
                "| image | where | ARG | Dockerfile default | built with |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {o.image} | {code_span(f'{o.dockerfile}:{o.line}', table_cell=True)} "
                f"| {code_span(o.name, table_cell=True)} | {code_span(o.default, table_cell=True)} "
                f"| {code_span(o.value, table_cell=True)} |"
                for o in self.overridden
            ]
        if self.enrolled:
            lines += [
                "",
                "**Images this proposal enrols** (entries added to images.yaml: reviewers, check the name,"
                " registry, repository and build workflow, and change them here before merging):",
                "",
            ]
            lines += [f"- **{name}**" for name in self.enrolled]
        if self.unenrolled:
            lines += [
                "",
                "**Dockerfiles no enrolled image builds** (to have the factory rebuild one, enrol it in"
                " images.yaml with `source.repo` this repository and `source.dockerfile` its path):",
                "",
            ]
            lines += [f"- {code_span(path)}" for path in self.unenrolled]
            if self.more_unenrolled:
                lines.append(f"- … and {self.more_unenrolled} more (listed {MAX_LISTED} at a time)")
        lines += ["", "Files:"]
        lines += [
            f"- `{path}`" + (" (removed: its data moved)" if text is None else "")
            for path, text in sorted(self.files.items())
        ]
        if self.missing:
            lines += [
                "",
                "Dockerfiles no longer in the repository: these images are kept, with the bases last seen,"
                " until they are retired. If they are, remove them from images.yaml and run"
                " `image-factory prune` in the factory:",
            ]
            lines += [f"- **{name}**" for name in self.missing]
        if self.held:
            lines += ["", "Base digests these images are held back from (rejected, or not verified):", ""]
            lines += ["| image | base | digest | why |", "|---|---|---|---|"]
            lines += [
                f"| {h.image} | `{h.base}` | `{h.digest[:19]}…` | {code_span(h.reason, table_cell=True)} |"
                for h in self.held
            ]
        if self.orphans:
            lines += ["", "No longer referenced (run `image-factory prune` in the factory to remove them):"]
            lines += [f"- `{path}`" for path in self.orphans]
        lines += ["", "```mermaid", self.mermaid, "```"]
        return "\n".join(lines) + "\n"


def team_images(config, team_repo: str, names: list[str] | None) -> list[str]:
    """The managed images this team builds: those named, or those whose source is its repository."""
    if names:
        unknown = [n for n in names if config.by_name(n) is None or not config.by_name(n).managed]
        if unknown:
            raise FactoryError(
                Problem("images", f"not managed images in the factory's images.yaml: {', '.join(unknown)}")
            )
        return sorted(names)
    mine = [
        i.name for i in config.managed if i.source.provider == "github" and i.source.repo.lower() == team_repo.lower()
    ]
    if not mine:
        raise FactoryError(
            Problem(
                config.file,
                f"no managed image has source.repo {team_repo}: enrol one, name them with --image, "
                "or propose this repository's Dockerfiles for enrolment (the action's input enrol: true)",
            )
        )
    return sorted(mine)


def propose(
    factory_root: Path,
    team_repo: str,
    team_checkout: Path,
    names: list[str] | None = None,
    now: datetime | None = None,
    *,
    enrol: bool = False,
) -> Proposal:
    """The state changes the team's current Dockerfiles call for in the factory at `factory_root`.
    `enrol`: also images.yaml entries for the Dockerfiles no enrolled image builds."""
    config = load_config(factory_root)
    old = load_state(factory_root)
    enrolled = {
        posixpath.normpath(i.source.dockerfile)
        for i in config.managed
        if i.source.provider == "github" and i.source.repo.lower() == team_repo.lower()
    }
    found, more = dockerfiles(team_checkout, skip=enrolled)
    unenrolled = found
    added_yaml, added = None, []
    if enrol and unenrolled and not names:
        with open(factory_root / CONFIG_FILE, encoding="utf-8", newline="") as handle:  # its line endings kept
            text = handle.read()
        new = enrolment.entries(team_repo, unenrolled, {image.name for image in config.images})
        # each entry checked as images.yaml is: one images.yaml refuses (a path with a backslash)
        # stays listed, and does not hold up the others
        fits = [item for item in new if _valid(enrolment.add_to_images_yaml(text, team_repo, [item]))]
        if fits:
            added_yaml = enrolment.add_to_images_yaml(text, team_repo, fits)
            config = parse_config(added_yaml)  # what the reviewers would merge
            added = [name for name, _ in fits]
            unenrolled = [path for path in unenrolled if path not in {e["source"]["dockerfile"] for _, e in fits}]
    images = team_images(config, team_repo, names)
    read: dict[str, dict] = {}
    checkouts = {team_repo: team_checkout}
    discoveries = read_discoveries(factory_root, config, None, checkouts, set(images), missing_ok=True, read=read)
    merge = merge_state(config, discoveries, old)
    files, _ = changed_files(factory_root, merge, old)
    # Only the team's own images' files: whatever the whole fleet makes (a watched base's
    # dependents, the index, the graph) is derived on the default branch after the merge
    # (synth.yml: `discover --full --push`). So no two teams' proposals touch one file, and
    # none conflicts with another, merged in any order.
    mine = {merge.state.images[name].path for name in images}
    files = {path: text for path, text in files.items() if path in mine}
    if added_yaml is not None:
        files[CONFIG_FILE] = added_yaml
    changes = []
    for name in images:
        before = tuple(b.ref for b in old.images[name].base_images) if name in old.images else ()
        after = tuple(b.ref for b in merge.state.images[name].base_images)
        if before != after or name not in old.images:
            changes.append(ImageChange(name, before, after))
    missing = [name for name in images if merge.state.images[name].dockerfile_missing]
    unresolved = [
        Unresolved(name, config.by_name(name).source.dockerfile, use.line, use.ref)
        for name in images
        if discoveries.get(name) is not None
        for use in discoveries[name].uses
        if not use.resolved
    ]
    overridden = [
        Overridden(name, config.by_name(name).source.dockerfile, o.line, o.name, o.default, o.value)
        for name in images
        if discoveries.get(name) is not None
        for o in discoveries[name].overridden
    ]
    held = [item for item in planner.plan(merge.state, now or timestamps.now()).held if item.image in images]
    # the team's images, their bases and the images built directly on them: not the whole fleet,
    # and bounded, so the body stays within GitHub's 65,536 characters for a pull request
    mermaid = graph.render_edges(merge.state, graph.around(merge.state, images), GRAPH_LIMIT)
    return Proposal(
        team_repo,
        images,
        files,
        changes,
        merge.orphans,
        missing,
        mermaid,
        held,
        unresolved,
        overridden,
        unenrolled=unenrolled,
        more_unenrolled=more,
        enrolled=added,
    )


def _valid(text: str) -> bool:
    try:
        parse_config(text)
    except FactoryError:
        return False
    return True


MAX_LISTED = 50  # Dockerfiles listed (and enrolled) from one repository in one proposal


def dockerfiles(checkout: Path, skip: set[str] = frozenset()) -> tuple[list[str], int]:
    """The Dockerfiles of a checkout (`Dockerfile`, `Dockerfile.*`, `*.Dockerfile`) but those in
    `skip`, as paths in it, sorted, at most MAX_LISTED; and how many more there are. None under
    `.git` or a `node_modules` folder, none whose path holds a control character."""
    found, more = [], 0
    for path in sorted(checkout.rglob("*")):
        relative = path.relative_to(checkout)
        if {".git", "node_modules"} & set(relative.parts) or not path.is_file() or path.is_symlink():
            continue
        name, text = path.name, relative.as_posix()
        if not (name == "Dockerfile" or name.startswith("Dockerfile.") or name.endswith(".Dockerfile")):
            continue
        if text in skip or unprintable_in(text) is not None or "\n" in text:
            continue
        if len(found) < MAX_LISTED:
            found.append(text)
        else:
            more += 1
    return found, more
