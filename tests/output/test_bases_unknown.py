"""A team's image enrolled before its repository proposed anything: its bases are unknown, and
every view says what it waits for (not "never built … first build would use no base")."""

from __future__ import annotations

import json

from image_factory.cli import main
from image_factory.federation.proposal import propose

IMAGES = """kargo: {factoryRepo: acme/factory}
trust: {senders: ["kargo[bot]"]}
images:
  - name: team-app
    registry: ghcr.io
    repository: acme/team-app
    source: {provider: github, repo: acme/team-app, dockerfile: Dockerfile, workflow: build.yml}
"""
WAITING = "bases unknown: waiting for acme/team-app to propose them"


def test_an_image_no_discover_has_read_waits_for_its_teams_proposal(tmp_path, capsys):
    root = tmp_path / "factory"
    root.mkdir()
    (root / "images.yaml").write_text(IMAGES)
    assert main(["discover", "--root", str(root)]) == 0
    assert "basesUnknown: true" in (root / "state/images/team-app.yaml").read_text()
    capsys.readouterr()
    assert main(["status", "--root", str(root)]) == 0
    assert capsys.readouterr().out == f"team-app: never built; {WAITING}\n"
    assert main(["dashboard", "--root", str(root), "--dry-run", "--repo", "acme/factory"]) == 0
    assert f"| **team-app** | bases unknown | `{WAITING}` |" in capsys.readouterr().out
    assert main(["site", "--root", str(root), "--out", str(tmp_path / "site")]) == 0
    assert WAITING in (tmp_path / "site/images/team-app.html").read_text()
    capsys.readouterr()
    assert main(["plan", "--root", str(root), "--json"]) == 0
    assert all(not items for items in json.loads(capsys.readouterr().out).values())  # nothing built on no base

    team = tmp_path / "team-app"
    team.mkdir()
    (team / "Dockerfile").write_text("FROM docker.io/library/python:3.12-slim\n")
    for path, text in propose(root, "acme/team-app", team).files.items():
        (root / path).write_text(text)
    assert main(["discover", "--root", str(root), "--full"]) == 0  # synth.yml after the merge
    assert "basesUnknown" not in (root / "state/images/team-app.yaml").read_text()
    capsys.readouterr()
    assert main(["status", "--root", str(root)]) == 0
    assert WAITING not in capsys.readouterr().out
