"""A team's opt-in enrolment: images.yaml entries for its Dockerfiles no enrolled image builds,
added to its proposal for the factory's reviewers to accept or not. Pure: text in, text out."""

from __future__ import annotations

import json
import re

from image_factory.enrolment.config import CONFIG_FILE
from image_factory.errors import FactoryError, Problem

REGISTRY = "ghcr.io"
WORKFLOW = "build.yml"  # the team's build workflow, as docs/federation.md shows it (reviewers may change it)
_TOP_LEVEL = re.compile(r"^[^\s#-]")
_ITEM = re.compile(r"^(\s*)- ")


def image_name(team_repo: str, dockerfile: str, taken: set[str]) -> str:
    """A name for the image `dockerfile` of `team_repo` builds: the repository's name, with the
    Dockerfile's folder or variant; a DNS label, unique among `taken`."""
    repo = team_repo.split("/", 1)[-1]
    parts = dockerfile.split("/")
    file, folder = parts[-1], parts[-2] if len(parts) > 1 else ""
    variant = (
        file.removeprefix("Dockerfile").lstrip(".")
        if file.startswith("Dockerfile")
        else file.removesuffix(".Dockerfile")
    )
    words = [repo] + [word for word in (folder, variant) if word and word != repo]
    base = re.sub(r"[^a-z0-9]+", "-", "-".join(words).lower()).strip("-")[:55].strip("-") or "image"
    name, number = base, 2
    while name in taken:
        name, number = f"{base}-{number}", number + 1
    return name


def entries(team_repo: str, dockerfiles: list[str], taken: set[str]) -> list[tuple[str, dict]]:
    """(name, entry) for each Dockerfile: in the team's organisation's ghcr.io, built by its build
    workflow."""
    owner = team_repo.split("/", 1)[0].lower()
    found = []
    for path in dockerfiles:
        name = image_name(team_repo, path, taken)
        taken.add(name)
        source = {"provider": "github", "repo": team_repo, "dockerfile": path, "workflow": WORKFLOW}
        found.append((name, {"name": name, "registry": REGISTRY, "repository": f"{owner}/{name}", "source": source}))
    return found


def add_to_images_yaml(text: str, team_repo: str, new: list[tuple[str, dict]]) -> str:
    """images.yaml's text with `new` entries at the end of its `images` list, as block YAML in the
    list's own indentation, under a comment naming who proposed them; the rest as it was, line
    endings included. Every value is written as a JSON string, which YAML reads as itself: a
    path holding a quote, a backslash or a line break stays that path, never more YAML."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(r"^images:\s*(\[\s*\])?\s*(#.*)?$", line)), None)
    if start is None:
        raise FactoryError(Problem(CONFIG_FILE, "no `images:` list at the top level to add the team's entries to"))
    empty = re.match(r"^images:\s*\[\s*\]", lines[start])
    if empty:  # `images: []`: the list starts here
        lines[start] = "images:" + newline
    end = next((i for i in range(start + 1, len(lines)) if _TOP_LEVEL.match(lines[i])), len(lines))
    while end - 1 > start and not lines[end - 1].strip():
        end -= 1
    indent = next((m.group(1) for line in lines[start + 1 : end] if (m := _ITEM.match(line))), "  ")
    block = [f"{indent}# proposed by {json.dumps(team_repo)}: review the name, registry, repository and workflow"]
    for _, entry in new:
        source = entry["source"]
        block += [
            f"{indent}- name: {json.dumps(entry['name'])}",
            f"{indent}  registry: {json.dumps(entry['registry'])}",
            f"{indent}  repository: {json.dumps(entry['repository'])}",
            f"{indent}  source:",
            f"{indent}    provider: github",
            f"{indent}    repo: {json.dumps(source['repo'])}",
            f"{indent}    dockerfile: {json.dumps(source['dockerfile'])}",
            f"{indent}    workflow: {json.dumps(source['workflow'])}",
        ]
    head = lines[:end]
    if head and not head[-1].endswith(("\n", "\r")):
        head[-1] += newline
    return "".join(head) + "".join(line + newline for line in block) + "".join(lines[end:])
