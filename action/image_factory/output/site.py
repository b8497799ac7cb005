"""The status page: a self-contained static site of where every managed image stands.

`render_site` is pure: from the merged state and the overview at one time it makes every file
(an overview with counts, filters and the dependency graph, and one page per managed image), all
user text HTML-escaped. `layout_graph` runs Graphviz's `dot` on the graph's source; `build` does
the whole job at the edges and writes the files as one change (`files.apply_changes`).

Nothing in the site loads anything from the network: the one script and the one style sheet are
files of the site, the graph is inline SVG, and a Content-Security-Policy forbids every other
source.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import datetime
from importlib import resources
from pathlib import Path
from urllib.parse import quote, urlsplit

from image_factory.discovery.discover import load_model
from image_factory.enrolment.durations import parse_duration
from image_factory.errors import FactoryError, Problem
from image_factory.kargo import layout as kargo_layout
from image_factory.kargo import names as kargo_names
from image_factory.output.overview import STATES, WORDS, ImageStatus, counts, overview
from image_factory.rebuilds import planner
from image_factory.rebuilds.dispatch import base_key
from image_factory.state.files import apply_changes
from image_factory.state.graph import _node_id, edges
from image_factory.state.store import ImageState, State
from image_factory.timestamps import format_time
from image_factory.user_text import visible

JOURNAL = ".journal"  # files.apply_changes: a write of the site in flight
WRITTEN = ".image-factory-site.json"  # the files the last site wrote: only those are ever removed
ASSETS = ("site.css", "site.js")
# Above this many nodes a picture of the whole graph is no longer readable (nor quick to lay
# out): the overview then draws the images that need attention, with their bases, if they fit.
GRAPH_MAX_NODES = 600
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)
COLOURS = {  # the graph's fill colours; site.css uses the same
    "failed": "#d73a49",
    "blocked": "#e36209",
    "rebuilding": "#6f42c1",
    "due": "#0366d6",
    "waiting": "#b08800",
    "held": "#a0522d",
    "bases-unknown": "#8a63d2",
    "never-built": "#6a737d",
    "up-to-date": "#22863a",
}
ATTENTION = ("failed", "blocked", "rebuilding", "due", "waiting", "held", "bases-unknown")


@dataclass(frozen=True)
class GraphSource:
    """What the overview's graph shows: dot source (None: no picture) and a sentence saying so."""

    dot: str | None
    note: str
    nodes: int = 0


@dataclass
class SiteOutcome:
    files: dict[str, str]  # relative path → text
    changed: list[str]  # written: new or different
    removed: list[str]  # pages of images no longer managed
    graph: GraphSource


def e(text: object) -> str:
    """HTML-escaped text (quotes too: safe in attribute values), bidirectional controls written out."""
    return html.escape(visible("" if text is None else str(text)), quote=True)


def page_name(name: str) -> str:
    """The file of an image's page, under images/ (names are DNS labels; quoted all the same)."""
    return f"{quote(name, safe='')}.html"


def team_of(repository: str) -> str:
    """The team an image belongs to: the owner of its source repository."""
    return repository.split("/", 1)[0]


def safe_url(url: str | None) -> str | None:
    """`url` when it may be a link (http or https with a host), else None: shown as text."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None


# -- the graph -----------------------------------------------------------------------------------


def _dot_string(text: str) -> str:
    """A dot quoted string showing `text` as it is: no escape sequence (\\N, \\l…) is expanded."""
    return '"' + " ".join(text.splitlines()).replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_source(state: State, statuses: list[ImageStatus], limit: int = GRAPH_MAX_NODES) -> GraphSource:
    """The dependency graph as dot: one node per managed image (coloured by state, linking to its
    page) and per watched base. A graph over `limit` nodes is cut to the images that need
    attention and their bases; when even that is too large, there is no picture."""
    by_name = {status.name: status for status in statuses}
    links = edges(state)
    watched = {source for source, _, _ in links if source not in by_name} | {
        key for key, base in state.base_images.items() if base.dependents
    }
    total = len(by_name) + len(watched)
    shown = set(by_name)
    note = f"{len(by_name)} managed images and {len(watched)} watched bases."
    if total > limit:
        shown = {name for name, status in by_name.items() if status.state in ATTENTION}
        links = [link for link in links if link[1] in shown]
        watched = {source for source, _, _ in links if source not in by_name}
        shown |= {source for source, _, _ in links if source in by_name}
        if not shown:
            return GraphSource(None, f"{note} No image needs attention: the whole graph is too large to draw.")
        if len(shown) + len(watched) > limit:
            return GraphSource(
                None,
                f"{note} Too many to draw legibly ({len(shown)} need attention): each image's page lists its "
                "bases and dependents; `image-factory graph --format dot` prints the whole graph.",
            )
        note = (
            f"{note} Drawn: the {len(shown)} images that need attention (and their managed parents) with "
            f"their bases; the whole graph is too large to draw legibly."
        )
    lines = [
        "digraph images {",
        "  rankdir=LR;",
        '  graph [fontname="DejaVu Sans", fontsize=10, nodesep=0.2, ranksep=0.6];',
        '  node [fontname="DejaVu Sans", fontsize=10, height=0.3];',
        '  edge [fontname="DejaVu Sans", fontsize=8, color="#8c959f"];',
    ]
    for name in sorted(shown):
        status = by_name[name]
        label = f"{name}\n{WORDS[status.state]}"
        lines.append(
            f'  {_node_id(name, True)} [label={_dot_string(name)}, shape=box, style="rounded,filled", '
            f'fillcolor="{COLOURS[status.state]}", fontcolor="#ffffff", color="{COLOURS[status.state]}", '
            f'class="managed state-{status.state}", URL={_dot_string("images/" + page_name(name))}, '
            f"tooltip={_dot_string(label)}];"
        )
    for ref in sorted(watched):
        lines.append(
            f"  {_node_id(ref, False)} [label={_dot_string(ref)}, shape=ellipse, style=filled, "
            f'fillcolor="#f6f8fa", class="watched", tooltip={_dot_string(ref + " (watched)")}];'
        )
    for source, target, kind in links:
        if source not in shown and source not in watched:
            continue
        edge = f"  {_node_id(source, source in by_name)} -> {_node_id(target, True)}"
        lines.append(f"{edge} [label={_dot_string(kind)}];" if kind != "from" else f"{edge};")
    lines.append("}")
    return GraphSource("\n".join(lines) + "\n", note, len(shown) + len(watched))


def layout_graph(dot_source: str) -> str:
    """The graph laid out by Graphviz as an SVG element, ready to inline in a page."""
    dot = shutil.which("dot")
    if dot is None:
        raise FactoryError(
            Problem("site", "the dependency graph is laid out by Graphviz, and `dot` is not on PATH (apt: graphviz)")
        )
    result = subprocess.run([dot, "-Tsvg"], input=dot_source, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FactoryError(Problem("site", f"dot failed: {result.stderr.strip()}"))
    svg = result.stdout
    return svg[svg.index("<svg") :].strip()  # no XML prolog or DOCTYPE inside HTML


# -- pages ---------------------------------------------------------------------------------------


def _page(title: str, body: str, depth: int, now: datetime | None) -> str:
    """A page of the site, `depth` folders down; `now` (the overview only) is said in its footer.
    An image page leaves the time out: it changes only when the image's story does."""
    up = "../" * depth
    footer = (
        f'<p class="generated">Generated by image-factory at <time>{e(format_time(now))}</time>: '
        "the state as of that time.</p>\n"
        if now is not None
        else ""
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(title)}</title>\n"
        f'<link rel="stylesheet" href="{up}assets/site.css">\n'
        "</head>\n<body>\n"
        f"{body}{footer}"
        f'<script src="{up}assets/site.js"></script>\n'
        "</body>\n</html>\n"
    )


def _badge(state: str) -> str:
    return f'<span class="state state-{e(state)}">{e(WORDS[state])}</span>'


def _short(digest: str | None) -> str:
    if not digest:
        return ""
    algorithm, _, hexes = digest.partition(":")
    return f'<code title="{e(digest)}">{e(algorithm)}:{e(hexes[:12])}…</code>'


def _digest(digest: str | None) -> str:
    """A full digest and a button that copies it."""
    if not digest:
        return '<span class="muted">none</span>'
    button = f'<button type="button" class="copy" data-copy="{e(digest)}">copy</button>'
    return f'<code class="digest">{e(digest)}</code>{button}'


def _eligible(status: ImageStatus) -> str:
    if status.eligible_at:
        return f"<time>{e(status.eligible_at)}</time>"
    if status.state == "due":
        return "now"
    return ""


def _link(url: str | None, text: str | None = None) -> str:
    """A link to an http(s) URL; anything else (javascript:, data:…) as plain text."""
    if not url:
        return ""
    safe = safe_url(url)
    if safe is None:
        return f"<code>{e(url)}</code>"
    return f'<a href="{e(safe)}" rel="noopener noreferrer">{e(text or url)}</a>'


def render_index(statuses: list[ImageStatus], graph_svg: str | None, graph: GraphSource, now: datetime) -> str:
    number = counts(statuses)
    teams = sorted({status.team or team_of(status.repository) for status in statuses})
    chips = "".join(
        f'<li><button type="button" class="count" data-state="{e(state)}" aria-pressed="false">'
        f'<span class="number">{number[state]}</span>{_badge(state)}</button></li>'
        for state in STATES
    )
    state_options = "".join(f'<option value="{e(state)}">{e(WORDS[state])}</option>' for state in STATES)
    team_options = "".join(f'<option value="{e(team)}">{e(team)}</option>' for team in teams)
    rows = []
    for status in statuses:
        team = status.team or team_of(status.repository)
        rows.append(
            f'<tr data-state="{e(status.state)}" data-team="{e(team)}" data-name="{e(status.name.lower())}">'
            f'<td><a href="images/{e(page_name(status.name))}">{e(status.name)}</a></td>'
            f"<td>{_badge(status.state)}</td>"
            f"<td>{e(status.detail)}</td>"
            f'<td class="eligible">{_eligible(status)}</td>'
            f"<td>{_short(status.next_digest)}</td>"
            f'<td>{e(team)}<br><span class="muted">{e(status.repository)}</span></td></tr>'
        )
    picture = f'<div class="graph">{graph_svg}</div>\n' if graph_svg else ""
    legend = "".join(_badge(state) for state in STATES)
    body = (
        "<h1>Image Factory</h1>\n"
        f'<p class="muted">{len(statuses)} managed images, as of <time>{e(format_time(now))}</time>.</p>\n'
        f'<ul class="counts" aria-label="images per state">{chips}</ul>\n'
        '<div class="filters">'
        f'<label>State <select id="filter-state"><option value="">all</option>{state_options}</select></label>'
        f'<label>Team <select id="filter-team"><option value="">all</option>{team_options}</select></label>'
        '<label>Name <input id="search" type="search" placeholder="search by name" autocomplete="off"></label>'
        f'<span id="shown" class="muted">{len(statuses)} of {len(statuses)} images shown</span></div>\n'
        '<table id="images"><thead><tr><th>image</th><th>state</th><th>why, and what happens next</th>'
        "<th>eligible at</th><th>digest it will use</th><th>team / source repository</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>\n"
        '<h2 id="graph">Dependency graph</h2>\n'
        f'<p class="muted">{e(graph.note)}</p>\n<div class="legend">{legend}</div>\n{picture}'
    )
    return _page("Image Factory status", body, 0, now)


def _history_rows(history: list[dict]) -> str:
    rows = []
    for entry in reversed(history):  # newest first
        notes = []
        verification = entry.get("verification")
        if verification:
            word = "verified" if verification["verified"] else "verification failed"
            why = f": {verification['reason']}" if verification.get("reason") else ""
            notes.append(f"{word} at {verification['at']}{why}")
        if entry.get("rejected"):
            notes.append(f"rejected at {entry['rejected']['at']}: {entry['rejected']['reason']}")
        if entry.get("expedited"):
            notes.append(f"expedited at {entry['expedited']['at']}: {entry['expedited']['reason']}")
        rows.append(
            f"<tr><td>{_digest(entry['digest'])}</td><td><time>{e(entry['firstSeen'])}</time></td>"
            f"<td>{e(entry['seenBy'])}</td><td>{e(entry.get('freight', ''))}</td>"
            f"<td>{'<br>'.join(e(note) for note in notes)}</td></tr>"
        )
    if not rows:
        return '<p class="muted">No digest recorded yet.</p>\n'
    return (
        "<table><thead><tr><th>digest</th><th>first seen</th><th>seen by</th><th>Kargo Freight</th>"
        "<th>verified, rejected, expedited</th></tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n"
    )


def _attempt_rows(attempts: list[dict]) -> str:
    rows = []
    for attempt in reversed(attempts):  # newest first
        bases = "<br>".join(f"{e(ref)}@{_short(digest)}" for ref, digest in attempt.get("baseDigests", {}).items())
        notes = [text for text in (attempt.get("error"), attempt.get("reason")) if text]
        signed = {True: "signed", False: "not signed"}.get(attempt.get("signed"), "")
        rows.append(
            f'<tr class="attempt attempt-{e(attempt["result"])}"><td>{e(attempt["result"])}</td>'
            f"<td><time>{e(attempt['startedAt'])}</time></td><td><time>{e(attempt.get('finishedAt', ''))}</time></td>"
            f"<td>{_digest(attempt.get('digest')) if attempt.get('digest') else ''}"
            f"{'<br>tag <code>' + e(attempt['revisionTag']) + '</code>' if attempt.get('revisionTag') else ''}"
            f"{'<br>' + e(signed) if signed else ''}</td>"
            f"<td>{bases}</td><td>{_link(attempt.get('runUrl'), 'run')}</td>"
            f"<td>{'<br>'.join(e(note) for note in notes)}"
            f"{'<br>reported by ' + e(attempt['reportedBy']) if attempt.get('reportedBy') else ''}</td></tr>"
        )
    if not rows:
        return '<p class="muted">No build attempted yet.</p>\n'
    return (
        "<table><thead><tr><th>result</th><th>started</th><th>finished</th><th>digest pushed</th>"
        "<th>built on</th><th>run</th><th>error, reason</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>\n"
    )


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


def _stage_row(stage: KargoStage) -> str:
    ref = f"<code>{e(stage.ref)}</code>"
    if stage.own:
        who = "Kargo promotes it" if stage.auto else "a person promotes it in Kargo's UI"
        what = (
            f"this image's own rebuild Stage on {ref}: once a digest has soaked {e(stage.delay)}, {who}"
            " and its promotion dispatches this image's build"
        )
    else:
        what = (
            f"soaks {ref} for {e(stage.delay)}, for every image on it with that delay: the factory dispatches"
            " this image's rebuild when that Stage's promotion reports the soaked digest (base-image-soaked)"
        )
    return f"<li><code>{e(stage.name)}</code> ({what})</li>"


def render_image(
    state: State,
    image: ImageState,
    status: ImageStatus,
    stages: list[KargoStage],
    dependents: list[str],
) -> str:
    source = image.enrolment["source"]
    last = image.runtime.last_build or {}
    facts = [
        ("reference", f"<code>{e(image.ref.canonical)}</code>"),
        ("state", f"{_badge(status.state)} {e(status.detail)}"),
        ("eligible at", _eligible(status) or '<span class="muted">—</span>'),
        ("digest it will use", _digest(status.next_digest) if status.next_digest else '<span class="muted">—</span>'),
        ("team / source", f"{e(status.team or team_of(status.repository))}: {e(status.repository)}"),
        (
            "source",
            f"{e(source['provider'])} <code>{e(source['repo'])}</code>, <code>{e(source['dockerfile'])}</code>, "
            f"workflow <code>{e(source['workflow'])}</code>",
        ),
        (
            "rebuild delay",
            f"{e(image.enrolment['rebuildDelay'])}, autoRebuild {'on' if image.enrolment['autoRebuild'] else 'off'}",
        ),
        ("current digest", _digest(image.runtime.current_digest)),
        (
            "last successful build",
            f"<time>{e(last.get('finishedAt'))}</time> {_link(last.get('runUrl'), 'run')}"
            + (f" as <code>{e(last['revisionTag'])}</code>" if last.get("revisionTag") else "")
            if last
            else '<span class="muted">never</span>',
        ),
    ]
    if status.blocked_by:
        facts.append(("blocked by", f'<a href="{e(page_name(status.blocked_by))}">{e(status.blocked_by)}</a>'))
    if status.error:
        facts.append(("last error", e(status.error)))
    if status.run_url:
        facts.append(("last run", _link(status.run_url)))
    built = {base.ref: base for base in status.bases}
    sections = []
    for base in image.base_images:
        key = base_key(base, state)
        summary = built.get(key)
        where = f"{e(base.kind)}" + (f", stage {e(base.stage)}" if base.stage else "")
        head = f'<h3><code>{e(key)}</code> <span class="muted">({where})</span></h3>\n'
        if base.image:
            parent = state.images.get(base.image)
            text = (
                f'<p>Managed image <a href="{e(page_name(base.image))}">{e(base.image)}</a>: its builds are its '
                f"digests. Built on {_digest(summary.built if summary else None)}; its newest build: "
                f"{_digest(summary.current if summary else None)}</p>\n"
            )
            history = parent.runtime.history if parent else []
            sections.append(head + text + _history_rows(history))
            continue
        watched = state.base_images.get(key)
        pinned = f"<p>Pinned in the Dockerfile: <code>{e(base.ref)}</code></p>\n" if "@" in base.ref else ""
        if watched is None or watched.warehouse is None:
            sections.append(head + pinned + '<p class="muted">Not watched: a digest-only reference never changes.</p>')
            continue
        text = (
            f"<p>Built on {_digest(summary.built if summary else None)}; current "
            f"{_digest(summary.current if summary else None)}. Kargo Warehouse and recording Stage "
            f"<code>{e(kargo_names.watched_name(watched.ref))}</code>"
            + (", verification required" if watched.verification_required else "")
            + ".</p>\n"
        )
        sections.append(head + pinned + text + _history_rows(watched.runtime.history))
    if image.unresolved:
        sections.append(f"<p>Unresolved: {e(', '.join(image.unresolved))}</p>\n")
    stage_rows = "".join(_stage_row(stage) for stage in stages)
    dependent_rows = "".join(f'<li><a href="{e(page_name(name))}">{e(name)}</a></li>' for name in dependents)
    body = (
        '<p><a href="../index.html">← all images</a></p>\n'
        f"<h1>{e(image.name)}</h1>\n"
        '<dl class="facts">'
        + "".join(f"<dt>{e(label)}</dt><dd>{value}</dd>" for label, value in facts)
        + "</dl>\n<h2>Bases and their digests</h2>\n"
        + ("".join(sections) or '<p class="muted">Builds on no image.</p>\n')
        + "<h2>Build attempts</h2>\n"
        + _attempt_rows(image.runtime.attempts)
        + "<h2>Kargo Stages</h2>\n"
        + (f'<ul class="stages">{stage_rows}</ul>\n' if stage_rows else '<p class="muted">None.</p>\n')
        + "<h2>Images built on it</h2>\n"
        + (f"<ul>{dependent_rows}</ul>\n" if dependent_rows else '<p class="muted">None.</p>\n')
    )
    return _page(f"{image.name}: Image Factory", body, 1, None)


def asset(name: str) -> str:
    return (resources.files(__package__) / "site_assets" / name).read_text(encoding="utf-8")


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


# -- the job -------------------------------------------------------------------------------------


def _read_or_none(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _made_here(out: Path) -> list[str]:
    """The files an earlier site wrote in `out`, as its list says (`WRITTEN`): a page of the user's
    own in `out/images/` is never taken for one. Only names a site could have written count, so an
    edited list removes nothing else."""
    try:
        listed = json.loads((out / WRITTEN).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return []  # no list (a first site, or one from before lists): remove nothing
    if not isinstance(listed, list):
        return []
    return [path for path in listed if isinstance(path, str) and _site_shaped(path) and (out / path).is_file()]


def _site_shaped(path: str) -> bool:
    if path == "index.html" or path in {f"assets/{name}" for name in ASSETS}:
        return True
    folder, _, name = path.partition("/")
    return folder == "images" and name.endswith(".html") and "/" not in name and not name.startswith(".")


def build(root: Path, out: Path, now: datetime) -> SiteOutcome:
    """Write the site of the factory at `root`, as of `now`, to `out` (all files or none). Pages of
    images no longer managed are removed; other files in `out` are left alone."""
    config, state = load_model(root, settings_only=True)
    plan = planner.plan(state, now, parse_duration(config.cascade_delay))
    statuses = overview(state, plan, now, config.kargo.factory_repo)
    graph = graph_source(state, statuses)
    if graph.dot and shutil.which("dot") is None:  # the page without its picture, and why
        graph = replace(
            graph,
            dot=None,
            note=f"{graph.note} Not drawn: Graphviz's `dot` is not on PATH where the site was built (apt: graphviz).",
        )
        print("warning: site: the dependency graph is not drawn: Graphviz's `dot` is not on PATH", file=sys.stderr)
    svg = layout_graph(graph.dot) if graph.dot else None
    files = render_site(state, statuses, graph, svg, now)
    changed = []
    for path, text in files.items():
        target = out / path
        try:
            same = target.read_text(encoding="utf-8") == text
        except (FileNotFoundError, UnicodeDecodeError):
            same = False
        if not same:
            changed.append(path)
    removed = sorted(path for path in _made_here(out) if path not in files)
    listing = json.dumps(sorted(files), indent=0) + "\n"
    writes = {out / p: files[p] for p in changed}
    if _read_or_none(out / WRITTEN) != listing:
        writes[out / WRITTEN] = listing
    remedy = "If no image-factory command is running, `image-factory site --discard-journal` removes it"
    apply_changes({**writes, **{out / p: None for p in removed}}, out / JOURNAL, remedy)
    return SiteOutcome(files, changed, removed, graph)
