"""A team's opt-in enrolment: images.yaml entries for its Dockerfiles no enrolled image builds,
added to its proposal for the factory's reviewers to accept or not. Pure: text in, text out."""

from __future__ import annotations

import re

REGISTRY = "ghcr.io"
WORKFLOW = "build.yml"  # the team's build workflow, as the README shows it (reviewers may change it)
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
    list's own indentation, under a comment naming who proposed them; the rest as it was."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(r"^images:\s*(#.*)?$", line)), None)
    if start is None:
        raise ValueError("images.yaml has no block `images:` list to add to")
    end = next((i for i in range(start + 1, len(lines)) if _TOP_LEVEL.match(lines[i])), len(lines))
    while end - 1 > start and not lines[end - 1].strip():
        end -= 1
    indent = next((m.group(1) for line in lines[start + 1 : end] if (m := _ITEM.match(line))), "  ")
    block = [f"{indent}# proposed by {team_repo}: review the name, registry, repository and workflow\n"]
    for _, entry in new:
        source = entry["source"]
        block += [
            f"{indent}- name: {entry['name']}\n",
            f"{indent}  registry: {entry['registry']}\n",
            f"{indent}  repository: {entry['repository']}\n",
            f"{indent}  source:\n",
            f"{indent}    provider: github\n",
            f"{indent}    repo: {source['repo']}\n",
            f'{indent}    dockerfile: "{source["dockerfile"]}"\n',
            f"{indent}    workflow: {source['workflow']}\n",
        ]
    head = lines[:end]
    if head and not head[-1].endswith("\n"):
        head[-1] += "\n"
    return "".join(head + block + lines[end:])
