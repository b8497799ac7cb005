"""The dashboard issue's body: where every managed image stands, in Markdown, for GitHub. Pure.

The convention Renovate's users know as the Dependency Dashboard: one open issue in the factory
repository, rewritten after every event (`dashboard_issue` finds it and edits it). It shows the
counts per state, one row per image (the images needing attention first) and a Mermaid graph of
what is not up to date. Stored text (reasons, errors, run URLs) is shown in code spans or as
Mermaid entity codes: no Markdown, HTML, link, `@mention` or `#123` reference is made of it.

A long fleet is summarised: the body stays within GitHub's limit for an issue body, the rows that
do not fit are counted ("and N more"), and the status site, when its address is given, shows them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from image_factory.output.overview import STATES, WORDS, ImageStatus, counts
from image_factory.state.graph import node_id
from image_factory.user_text import code_span, markdown_text, one_line

MARKER = "<!-- image-factory-dashboard: rewritten by `image-factory dashboard`; edits here are lost -->"
TITLE = "Image Factory dashboard"
GITHUB_BODY_LIMIT = 65_536  # characters, GitHub's limit for an issue body
BUDGET = 60_000  # what the body may take, in UTF-8 bytes: a margin below the limit however it counts
GRAPH_BUDGET = 20_000  # bytes of Mermaid at most; GitHub's Mermaid also refuses more than 500 edges
GRAPH_IMAGES = 100  # images drawn at most (with their bases), the ones needing attention first
GRAPH_EDGES = 400

COLOURS = {  # Mermaid classDef styles per state
    "failed": "fill:#f8d7da,stroke:#b02a37,color:#58151c",
    "blocked": "fill:#fde2c8,stroke:#c4661f,color:#5c2c06",
    "rebuilding": "fill:#cfe2ff,stroke:#0a58ca,color:#052c65",
    "due": "fill:#d1ecf1,stroke:#0c8599,color:#053d44",
    "waiting": "fill:#fff3cd,stroke:#b58105,color:#523c02",
    "held": "fill:#e2d9f3,stroke:#6f42c1,color:#2c1a4d",
    "bases-unknown": "fill:#ede7f6,stroke:#8a63d2,color:#311b63",
    "never-built": "fill:#e9ecef,stroke:#6c757d,color:#212529",
    "up-to-date": "fill:#d1e7dd,stroke:#146c43,color:#0a3622",
}
# A run link is drawn only for what a GitHub Actions run URL looks like; anything else is shown as text.
_RUN_URL = re.compile(
    r"https://[A-Za-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/actions/runs/[0-9]+"
    r"(/attempts/[0-9]+)?(/job/[0-9]+)?/?"
)
_SITE_URL = re.compile(r"https?://[^\s<>()\[\]`\"'\\]+")
# Mermaid label characters written as they are; every other one as an entity code (`#35;`).
_MERMAID_PLAIN = re.compile(r"[A-Za-z0-9 ._:/-]")


def valid_site_url(url: str) -> bool:
    """An http(s) address that can stand in a Markdown link as it is."""
    return _SITE_URL.fullmatch(url) is not None


def body(statuses: list[ImageStatus], *, factory_repo: str | None = None, site_url: str | None = None) -> str:
    """The issue body for these statuses (as `overview.overview` gives them), within `BUDGET`."""
    if site_url is not None and not valid_site_url(site_url):
        raise ValueError(f"not an http(s) address: {site_url!r}")
    ordered = sorted(statuses, key=lambda s: (STATES.index(s.state), s.name))
    tally = counts(statuses)
    site = f"[the status site]({site_url})" if site_url else None
    where = f" of {code_span(factory_repo)}" if factory_repo else ""
    head = [
        MARKER,
        f"Where every managed image{where} stands. The `events` workflow rewrites this issue after each "
        "event (`image-factory dashboard`): edits made here are lost, and closing it makes the next event "
        "open a new one." + (f" Every image, its bases and their digest history: {site}." if site else ""),
        "",
        f"**{len(statuses)} managed image{'s' if len(statuses) != 1 else ''}**"
        + (": " + " · ".join(f"{n} {WORDS[state]}" for state, n in tally.items() if n) if statuses else ""),
        "",
        "| state | images |",
        "|---|---:|",
        *(f"| {WORDS[state]} | {n} |" for state, n in tally.items()),
        "",
    ]
    graph = _graph_section(ordered)
    table_head = ["## Images, those needing attention first", "", "| image | state | detail |", "|---|---|---|"]
    used = _size(head) + _size(table_head) + _size(graph)
    rows: list[str] = []
    for status in ordered:
        row = _row(status)
        if used + _size([row]) + 600 > BUDGET:  # 600: room for the "and N more" line
            break
        rows.append(row)
        used += _size([row])
    rest = ordered[len(rows) :]
    more = []
    if rest:
        by_state = counts(rest)
        what = ", ".join(f"{n} {WORDS[state]}" for state, n in by_state.items() if n)
        see = f": see {site}" if site else " (`image-factory status` and `plan` list them all)"
        more = ["", f"…and {len(rest)} more ({what}){see}."]
    rows_part = [*table_head, *rows, *more, ""] if statuses else ["No managed images in `images.yaml`.", ""]
    return "\n".join([*head, *rows_part, *graph]).rstrip("\n") + "\n"


def _size(lines: list[str]) -> int:
    return sum(len(line.encode("utf-8")) + 1 for line in lines)


def _row(status: ImageStatus) -> str:
    name = markdown_text(status.name)
    detail = code_span(status.detail, table_cell=True)
    if status.state == "failed" and status.run_url:
        url = one_line(status.run_url)
        detail += f" · [run]({url})" if _RUN_URL.fullmatch(url) else f" · run: {code_span(url, table_cell=True)}"
    return f"| **{name}** | {WORDS[status.state]} | {detail} |"


def _graph_section(ordered: list[ImageStatus]) -> list[str]:
    """A Mermaid graph of the images not up to date and their bases, within its budget."""
    pending = [s for s in ordered if s.state != "up-to-date"]
    if not pending:
        return ["## Waiting or blocked", "", "Nothing: every managed image is up to date."]
    limit, edges = 0, 0
    for status in pending[:GRAPH_IMAGES]:
        edges += len(status.bases) + 1  # its bases, and perhaps the failed ancestor it is blocked behind
        if edges > GRAPH_EDGES and limit:
            break
        limit += 1
    while True:
        shown = pending[:limit]
        lines = mermaid(shown, {s.name: s for s in ordered})
        size = _size(lines)
        if size <= GRAPH_BUDGET or limit == 1:
            break
        limit //= 2
    cut = len(pending) - len(shown)
    note = [f"The {len(shown)} images first in the table above; {cut} more are not drawn.", ""] if cut else []
    return ["## Waiting or blocked", "", *note, "```mermaid", *lines, "```"]


def mermaid(shown: list[ImageStatus], by_name: dict[str, ImageStatus]) -> list[str]:
    """`graph LR` of `shown` and their direct bases (managed parents and watched images), every
    managed node coloured by its state; a blocked image also gets a dotted edge from the failed
    ancestor it waits on. Node ids as `graph` makes them (one per name, never two)."""
    nodes: dict[str, str] = {}  # id → declaration
    classes: dict[str, list[str]] = {}
    edges: list[str] = []

    def managed(name: str) -> str:
        node = node_id(name, True)
        if node not in nodes:
            status = by_name.get(name)
            state = status.state if status else None
            label = f"{name}: {WORDS[state]}" if state else name
            nodes[node] = f'  {node}["{mermaid_label(label)}"]'
            if state:
                classes.setdefault(state, []).append(node)
        return node

    def watched(ref: str) -> str:
        node = node_id(ref, False)
        nodes.setdefault(node, f'  {node}(["{mermaid_label(ref)}"])')
        return node

    for status in shown:
        new = [(managed(b.parent) if b.parent else watched(b.ref), "-->") for b in status.bases]
        if status.blocked_by and status.blocked_by not in {b.parent for b in status.bases}:
            new.append((managed(status.blocked_by), "-.->|blocks|"))
        target = managed(status.name)
        edges += [f"  {source} {arrow} {target}" for source, arrow in new]
    styles = [f"  classDef {_class(state)} {COLOURS[state]}" for state in STATES if state in classes]
    members = [f"  class {','.join(classes[state])} {_class(state)}" for state in STATES if state in classes]
    return ["graph LR", *nodes.values(), *_unique(edges), *styles, *members]


def _class(state: str) -> str:
    return state.replace("-", "_")


def _unique(lines: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def mermaid_label(text: str) -> str:
    """Text inside a quoted Mermaid label: letters, digits and `._:/-` as they are, every other
    character as Mermaid's entity code (`#34;`), so a quote, bracket, backtick or tag in it can
    neither end the label, the node or the code block, nor become HTML."""
    return "".join(ch if _MERMAID_PLAIN.fullmatch(ch) else f"#{ord(ch)};" for ch in one_line(text))
