"""The status page: a self-contained static site of where every managed image stands.

An overview with counts, filters and the dependency graph (`graph`), and one page per managed
image, rendered from Jinja2 templates with autoescape on (`pages`, `templates/`); `job.build`
writes them. Nothing in the site loads anything from the network: the one script and the one
style sheet are files of the site (`assets/`), the graph is inline SVG, and a
Content-Security-Policy forbids every other source.
"""

from image_factory.output.site.graph import COLOURS, GraphSource, dot_string, graph_source, layout_graph
from image_factory.output.site.job import JOURNAL, WRITTEN, SiteOutcome, build
from image_factory.output.site.links import page_name, safe_url, team_of
from image_factory.output.site.pages import kargo_stages, render_site

__all__ = [
    "COLOURS",
    "JOURNAL",
    "WRITTEN",
    "GraphSource",
    "SiteOutcome",
    "build",
    "dot_string",
    "graph_source",
    "kargo_stages",
    "layout_graph",
    "page_name",
    "render_site",
    "safe_url",
    "team_of",
]
