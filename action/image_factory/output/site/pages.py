"""The site's pages, rendered from the Jinja2 templates beside this module with autoescape on.

Every value a template prints is HTML-escaped (quotes too), with bidirectional controls written
out (`user_text.visible`): a template cannot forget to escape. The only markup handed to a
template is the graph's SVG, which Graphviz wrote from labels `graph.dot_string` quoted. Data is
shaped here (rows, sections); the templates hold the markup.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from image_factory.kargo import layout as kargo_layout
from image_factory.kargo import names as kargo_names
from image_factory.output.overview import STATES, WORDS, ImageStatus, counts
from image_factory.output.site.graph import GraphSource
from image_factory.output.site.links import page_name, safe_url, team_of
from image_factory.rebuilds.dispatch import base_key
from image_factory.state.runtime_events import rejection
from image_factory.state.store import ImageState, State
from image_factory.timestamps import format_time
from image_factory.trust.scan_report import SEVERITIES
from image_factory.user_text import visible

ASSETS = ("site.css", "site.js")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)


def _shown(value: object) -> object:
    """What `{{ value }}` prints before autoescape: None as nothing, text with its bidi controls visible."""
    if value is None:
        return ""
    if isinstance(value, Markup):  # a macro's output, already escaped
        return value
    return visible(str(value))


def _digest_head(digest: str) -> str:
    algorithm, _, hexes = digest.partition(":")
    return f"{algorithm}:{hexes[:12]}"


def _join_lines(texts: list[str]) -> Markup:
    return Markup("<br>").join(escape(visible(text)) for text in texts)


TEMPLATES = Environment(
    loader=PackageLoader("image_factory.output.site", "templates"),
    autoescape=True,  # every template is HTML
    undefined=StrictUndefined,  # a misspelt name fails the build, never prints nothing
    finalize=_shown,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
TEMPLATES.globals.update(words=WORDS, states=STATES, csp=CSP)
TEMPLATES.filters.update(page=page_name, team=team_of, http_url=safe_url, head=_digest_head, join_lines=_join_lines)


@dataclass(frozen=True)
class HistoryRow:
    """A recorded digest, and what was said of it."""

    digest: str
    first_seen: str
    seen_by: str
    freight: str
    notes: list[str]


@dataclass(frozen=True)
class AttemptRow:
    result: str
    started: str
    finished: str
    digest: str | None
    tag: str | None
    signed: str
    bases: list[tuple[str, str]]  # (reference, digest) the build pinned
    run_url: str | None
    notes: list[str]
    reported_by: str | None


@dataclass(frozen=True)
class BaseSection:
    """One base of an image on its page: a managed parent, a watched image or a pinned one."""

    key: str
    kind: str
    stage: str | None
    built: str | None
    current: str | None
    history: list[HistoryRow]
    managed: str | None = None  # the managed parent's name
    pinned: str | None = None  # the reference as written, when it has a digest
    watched: str | None = None  # its Warehouse and recording Stage; None: not watched
    verification_required: bool = False


@dataclass(frozen=True)
class KargoStage:
    """The Kargo Stage that rebuilds a managed image when watched image `ref` changes: the soak
    Stage of its `delay`, shared with the other images on `ref` with that delay, or (`own`) a
    rebuild Stage of its own (kargo_layout.own_rebuild_stage)."""

    name: str
    ref: str
    own: bool
    delay: str
    auto: bool = True  # an own Stage: auto-promoted (else a person promotes it in Kargo's UI)


def kargo_stages(state: State) -> dict[str, list[KargoStage]]:
    """Managed image → the Stages `synth` makes that rebuild it, one per watched base."""
    stages: dict[str, list[KargoStage]] = {}
    for key, base in sorted(state.base_images.items()):
        if base.warehouse is None:
            continue
        watched = kargo_names.watched_name(base.ref)
        for dependent in base.dependents:
            enrolment = state.images[dependent.image].enrolment
            if kargo_layout.own_rebuild_stage(enrolment):
                name = kargo_names.rebuild_name(dependent.image, watched)
                stage = KargoStage(name, key, True, enrolment["rebuildDelay"], enrolment["autoRebuild"])
            else:
                delay = kargo_layout.soak_delay(enrolment)
                stage = KargoStage(kargo_names.soak_name(watched, delay), key, False, delay)
            stages.setdefault(dependent.image, []).append(stage)
    return stages


def history_rows(history: list[dict]) -> list[HistoryRow]:
    """A digest history, newest first."""
    rows = []
    for entry in reversed(history):
        notes = []
        verification = entry.get("verification")
        if verification:
            word = "verified" if verification["verified"] else "verification failed"
            why = f": {verification['reason']}" if verification.get("reason") else ""
            notes.append(f"{word} at {verification['at']}{why}")
        if entry.get("rejected"):
            lifted = "" if rejection(entry) else " (accepted since)"
            notes.append(f"rejected at {entry['rejected']['at']}: {entry['rejected']['reason']}{lifted}")
        if entry.get("expedited"):
            notes.append(f"expedited at {entry['expedited']['at']}: {entry['expedited']['reason']}")
        if entry.get("accepted"):
            notes.append(f"accepted at {entry['accepted']['at']}: what was found before holds it no more")
        if entry.get("scan"):
            notes.append(scan_note(entry["scan"]))
        if entry.get("scanFailed"):  # newer than the scan above, which still counts
            notes.append(scan_note(entry["scanFailed"]))
        rows.append(HistoryRow(entry["digest"], entry["firstSeen"], entry["seenBy"], entry.get("freight", ""), notes))
    return rows


def scan_note(scan: dict) -> str:
    """`scanned at T by trivy: 2 critical, 4 medium (CVE-…, CVE-…)`, or why the scan could not run."""
    if scan.get("error"):
        return f"scan failed at {scan['at']}: {scan['error']}"
    findings = scan.get("findings", [])
    counts = Counter(finding["severity"] for finding in findings)
    found = ", ".join(f"{counts[level]} {level}" for level in reversed(SEVERITIES) if counts[level]) or "no findings"
    worst = [f for f in findings if f["severity"] == findings[0]["severity"]] if findings else []
    ids = list(dict.fromkeys(f["id"] for f in worst))
    shown = f" ({', '.join(ids[:3])}{' …' if len(ids) > 3 else ''})" if ids else ""
    omitted = f", {scan['omitted']} more not kept" if scan.get("omitted") else ""
    return f"scanned at {scan['at']} by {scan['scanner']}: {found}{shown}{omitted}"


def attempt_rows(attempts: list[dict]) -> list[AttemptRow]:
    """Build attempts, newest first."""
    return [
        AttemptRow(
            result=attempt["result"],
            started=attempt["startedAt"],
            finished=attempt.get("finishedAt", ""),
            digest=attempt.get("digest"),
            tag=attempt.get("revisionTag"),
            signed={True: "signed", False: "not signed"}.get(attempt.get("signed"), ""),
            bases=list(attempt.get("baseDigests", {}).items()),
            run_url=attempt.get("runUrl"),
            notes=[text for text in (attempt.get("error"), attempt.get("reason")) if text],
            reported_by=attempt.get("reportedBy"),
        )
        for attempt in reversed(attempts)
    ]


def base_sections(state: State, image: ImageState, status: ImageStatus) -> list[BaseSection]:
    built = {base.ref: base for base in status.bases}
    sections = []
    for base in image.base_images:
        key = base_key(base, state)
        summary = built.get(key)
        where = {
            "key": key,
            "kind": base.kind,
            "stage": base.stage,
            "built": summary.built if summary else None,
            "current": summary.current if summary else None,
        }
        if base.image:
            parent = state.images.get(base.image)
            history = history_rows(parent.runtime.history if parent else [])
            sections.append(BaseSection(**where, history=history, managed=base.image))
            continue
        watched = state.base_images.get(key)
        pinned = base.ref if "@" in base.ref else None
        if watched is None or watched.warehouse is None:
            sections.append(BaseSection(**where, history=[], pinned=pinned))
            continue
        sections.append(
            BaseSection(
                **where,
                history=history_rows(watched.runtime.history),
                pinned=pinned,
                watched=kargo_names.watched_name(watched.ref),
                verification_required=watched.verification_required,
            )
        )
    return sections


def render_index(statuses: list[ImageStatus], graph_svg: str | None, graph: GraphSource, now: datetime) -> str:
    return TEMPLATES.get_template("index.html").render(
        title="Image Factory status",
        up="",
        generated=format_time(now),
        statuses=statuses,
        number=counts(statuses),
        teams=sorted({status.team or team_of(status.repository) for status in statuses}),
        graph=graph,
        graph_svg=Markup(graph_svg) if graph_svg else None,  # Graphviz's SVG of escaped labels
    )


def render_image(
    state: State, image: ImageState, status: ImageStatus, stages: list[KargoStage], dependents: list[str]
) -> str:
    """An image's page. It leaves the time out: it changes only when the image's story does."""
    return TEMPLATES.get_template("image.html").render(
        title=f"{image.name}: Image Factory",
        up="../",
        generated=None,
        image=image,
        status=status,
        source=image.enrolment["source"],
        last=image.runtime.last_build or {},
        bases=base_sections(state, image, status),
        attempts=attempt_rows(image.runtime.attempts),
        stages=stages,
        dependents=dependents,
    )


def asset(name: str) -> str:
    return (resources.files(__package__) / "assets" / name).read_text(encoding="utf-8")


def render_site(
    state: State, statuses: list[ImageStatus], graph: GraphSource, graph_svg: str | None, now: datetime
) -> dict[str, str]:
    """Every file of the site, by path relative to its folder."""
    files = {"index.html": render_index(statuses, graph_svg, graph, now)}
    files.update({f"assets/{name}": asset(name) for name in ASSETS})
    stages = kargo_stages(state)
    dependents: dict[str, list[str]] = {}
    for name, image in state.images.items():
        for base in image.base_images:
            if base.image:
                dependents.setdefault(base.image, []).append(name)
    for status in statuses:
        image = state.images[status.name]
        files[f"images/{page_name(status.name)}"] = render_image(
            state, image, status, stages.get(status.name, []), sorted(set(dependents.get(status.name, [])))
        )
    return files
