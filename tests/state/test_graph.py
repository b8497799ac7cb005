"""`image-factory graph`: the dependency picture, as Mermaid, dot and JSON."""

from __future__ import annotations

import json
import re

from image_factory.cli import main


def test_graph_json_has_every_dependency(example_factory, capsys):
    assert main(["graph", "--root", str(example_factory.root), "--format", "json"]) == 0
    graph = json.loads(capsys.readouterr().out)
    kinds = {node["id"]: node["kind"] for node in graph["nodes"]}
    assert kinds["orders-api"] == "managed" and kinds["docker.io/library/python:3.12-slim"] == "watched"
    assert {"from": "python-service", "to": "orders-api", "kind": "from"} in graph["edges"]
    assert {"from": "base-python", "to": "python-service", "kind": "from"} in graph["edges"]
    assert {"from": "gcr.io/distroless/static-debian12:nonroot", "to": "metrics-agent", "kind": "from"} in graph[
        "edges"
    ]
    assert len(graph["edges"]) == 8


def test_graph_mermaid_and_dot(example_factory, capsys):
    assert main(["graph", "--root", str(example_factory.root)]) == 0
    mermaid = capsys.readouterr().out.splitlines()
    assert mermaid[0] == "graph LR"
    assert "  m_base_2d_python --> m_python_2d_service" in mermaid
    python = "w_docker_2e_io_2f_library_2f_python_3a_3_2e_12_2d_slim"
    assert f'  {python}(["docker.io/library/python:3.12-slim"])' in mermaid
    assert main(["graph", "--root", str(example_factory.root), "--format", "dot"]) == 0
    dot = capsys.readouterr().out.splitlines()
    assert dot[0] == "digraph images {" and dot[-1] == "}"
    assert "  m_python_2d_service -> m_orders_2d_api;" in dot


def test_references_that_differ_only_in_punctuation_are_two_nodes(factory, capsys):
    """`my-tool` and `my.tool` (and `my_tool`) once became one node: every picture lost an image."""
    factory.write(
        "images.yaml",
        """
        images:
          - {name: a, registry: ghcr.io, repository: acme/a,
             source: {provider: local, repo: a, dockerfile: Dockerfile, workflow: build.yml}}
          - {name: b, registry: ghcr.io, repository: acme/b,
             source: {provider: local, repo: b, dockerfile: Dockerfile, workflow: build.yml}}
          - {name: c, registry: ghcr.io, repository: acme/c,
             source: {provider: local, repo: c, dockerfile: Dockerfile, workflow: build.yml}}
        """,
    )
    for name, base in (("a", "my-tool"), ("b", "my.tool"), ("c", "my_tool")):
        factory.write(f"{name}/Dockerfile", f"FROM ghcr.io/acme/{base}:1\n")
    assert main(["discover", "--root", str(factory.root)]) == 0
    capsys.readouterr()
    for fmt in ("mermaid", "dot"):
        assert main(["graph", "--root", str(factory.root), "--format", fmt]) == 0
        lines = capsys.readouterr().out.splitlines()[1:]
        declared = [re.split(r"[\[( ]", line.strip())[0] for line in lines if '"' in line and "->" not in line]
        assert len(declared) == len(set(declared)) == 6, declared  # three images, three bases
        sources = {line.split()[0] for line in lines if "->" in line}
        assert len(sources) == 3 and sources <= set(declared)
