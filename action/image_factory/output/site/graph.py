"""The overview's dependency graph: its dot source (`graph_source`), laid out by Graphviz (`layout_graph`)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from image_factory.errors import FactoryError, Problem
from image_factory.output.overview import WORDS, ImageStatus
from image_factory.output.site.links import page_name
from image_factory.state.graph import edges, node_id
from image_factory.state.store import State

# Above this many nodes a picture of the whole graph is no longer readable (nor quick to lay
# out): the overview then draws the images that need attention, with their bases, if they fit.
GRAPH_MAX_NODES = 600
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


def dot_string(text: str) -> str:
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
            f'  {node_id(name, True)} [label={dot_string(name)}, shape=box, style="rounded,filled", '
            f'fillcolor="{COLOURS[status.state]}", fontcolor="#ffffff", color="{COLOURS[status.state]}", '
            f'class="managed state-{status.state}", URL={dot_string("images/" + page_name(name))}, '
            f"tooltip={dot_string(label)}];"
        )
    for ref in sorted(watched):
        lines.append(
            f"  {node_id(ref, False)} [label={dot_string(ref)}, shape=ellipse, style=filled, "
            f'fillcolor="#f6f8fa", class="watched", tooltip={dot_string(ref + " (watched)")}];'
        )
    for source, target, kind in links:
        if source not in shown and source not in watched:
            continue
        edge = f"  {node_id(source, source in by_name)} -> {node_id(target, True)}"
        lines.append(f"{edge} [label={dot_string(kind)}];" if kind != "from" else f"{edge};")
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
