"""`image-factory graph`: the dependency picture, as Mermaid, dot and JSON."""

from __future__ import annotations

import json

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
    assert "  m_base_python --> m_python_service" in mermaid
    assert '  w_docker_io_library_python_3_12_slim(["docker.io/library/python:3.12-slim"])' in mermaid
    assert main(["graph", "--root", str(example_factory.root), "--format", "dot"]) == 0
    dot = capsys.readouterr().out.splitlines()
    assert dot[0] == "digraph images {" and dot[-1] == "}"
    assert "  m_python_service -> m_orders_api;" in dot
