"""The `site` job: the site of a factory written to its folder as one change, at the edges.

`build` loads the model, lays the graph out with Graphviz when `dot` is there, renders every
page (`pages`) and writes what changed with `files.apply_changes`. Only files an earlier site
wrote (its list, `WRITTEN`) are ever removed.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from image_factory.discovery.discover import load_model
from image_factory.enrolment.durations import parse_duration
from image_factory.output.overview import overview
from image_factory.output.site.graph import GraphSource, graph_source, layout_graph
from image_factory.output.site.pages import ASSETS, render_site
from image_factory.rebuilds import planner
from image_factory.state.files import apply_changes

JOURNAL = ".journal"  # files.apply_changes: a write of the site in flight
WRITTEN = ".image-factory-site.json"  # the files the last site wrote: only those are ever removed


@dataclass
class SiteOutcome:
    files: dict[str, str]  # relative path → text
    changed: list[str]  # written: new or different
    removed: list[str]  # pages of images no longer managed
    graph: GraphSource


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
