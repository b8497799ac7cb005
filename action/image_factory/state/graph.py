"""The dependency graph of watched and managed images, its cycles and its pictures. Pure functions."""

from __future__ import annotations

import json
import re

from image_factory.enrolment.refs import parse_ref
from image_factory.state.store import State


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in `edges` (node → nodes it depends on) as [a, b, ..., a], or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(edges.get(node, [])):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(edges):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def edges(state: State) -> list[tuple[str, str, str]]:
    """(base, image, kind) for every dependency: base is a canonical reference or a managed name."""
    found = []
    for name, image in sorted(state.images.items()):
        for base in image.base_images:
            source = base.image or parse_ref(base.ref, default_tag=None).without_digest().canonical
            found.append((source, name, base.kind))
    return list(dict.fromkeys(found))


def node_id(label: str, managed: bool) -> str:
    """An id Mermaid and dot accept, one per label: every character but a letter or digit is
    written as `_` and its code (`my-tool` and `my.tool` stay two nodes)."""
    return ("m_" if managed else "w_") + re.sub(r"[^A-Za-z0-9]", lambda m: f"_{ord(m.group()):x}_", label)


def render(state: State, fmt: str) -> str:
    """The graph as Mermaid (for PRs and job summaries), Graphviz dot, or JSON."""
    managed = set(state.images)
    watched = sorted({source for source, _, _ in edges(state) if source not in managed} | set(state.base_images))
    if fmt == "json":
        nodes = [{"id": name, "kind": "managed", "ref": state.images[name].ref.canonical} for name in sorted(managed)]
        nodes += [{"id": ref, "kind": "watched", "ref": ref} for ref in watched]
        links = [{"from": source, "to": target, "kind": kind} for source, target, kind in edges(state)]
        return json.dumps({"nodes": nodes, "edges": links}, indent=2)
    lines = ["graph LR"] if fmt == "mermaid" else ["digraph images {", "  rankdir=LR;"]
    for name in sorted(managed):
        node = node_id(name, True)
        lines.append(f'  {node}["{name}"]' if fmt == "mermaid" else f'  {node} [label="{name}", shape=box];')
    for ref in watched:
        node = node_id(ref, False)
        lines.append(f'  {node}(["{ref}"])' if fmt == "mermaid" else f'  {node} [label="{ref}", shape=ellipse];')
    for source, target, kind in edges(state):
        a, b = node_id(source, source in managed), node_id(target, True)
        label = "" if kind == "from" else kind
        if fmt == "mermaid":
            lines.append(f"  {a} -->|{label}| {b}" if label else f"  {a} --> {b}")
        else:
            lines.append(f'  {a} -> {b} [label="{label}"];' if label else f"  {a} -> {b};")
    if fmt == "dot":
        lines.append("}")
    return "\n".join(lines)


def around(state: State, names: list[str]) -> list[tuple[str, str, str]]:
    """The edges of the neighbourhood of `names` (managed images): what each is built on, and
    the managed images built directly on it. What a team's proposal shows, whatever the fleet."""
    chosen = set(names)
    return [(source, target, kind) for source, target, kind in edges(state) if target in chosen or source in chosen]


def render_edges(state: State, links: list[tuple[str, str, str]], limit: int) -> str:
    """Mermaid of `links` alone, at most `limit` characters: past it, the edges that fit and a
    note of how many are left out."""
    managed = set(state.images)
    lines = ["graph LR"]
    nodes = sorted({node for source, target, _ in links for node in (source, target)})
    for node in nodes:
        shown = f'["{node}"]' if node in managed else f'(["{node}"])'
        lines.append(f"  {node_id(node, node in managed)}{shown}")
    size = sum(len(line) + 1 for line in lines)
    for number, (source, target, kind) in enumerate(links):
        a, b = node_id(source, source in managed), node_id(target, True)
        line = f"  {a} -->|{kind}| {b}" if kind != "from" else f"  {a} --> {b}"
        if size + len(line) + 1 > limit - 80:
            left = len(links) - number
            lines.append(f'  more["… {left} more edges: image-factory graph shows them all"]')
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)
