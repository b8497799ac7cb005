"""The user docs hold together: the README stays short, every relative link and anchor leads
somewhere, and the README's checklist names every secret and variable the factory's workflows
read."""

from __future__ import annotations

import re
import textwrap

import yaml

from .conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
PAGES = [README, REPO_ROOT / "CONTRIBUTING.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def prose(text: str) -> str:
    """`text` without its code blocks and code spans, where a `[x](y)` is no link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as
    hyphens, a repeated one suffixed -1, -2…"""
    found: set[str] = set()
    for line in FENCE.sub("", text).splitlines():
        if not line.startswith("#"):
            continue
        title = line.lstrip("#").strip()
        slug = re.sub(r"[^\w\- ]", "", title.lower().replace("`", "")).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def test_the_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 400


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in PAGES:
        for match in LINK.finditer(prose(page.read_text(encoding="utf-8"))):
            target = match.group(1) or match.group(2)
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(REPO_ROOT)}: {target} (no such file)")
            elif anchor and (file.suffix != ".md" or anchor not in anchors(file.read_text(encoding="utf-8"))):
                broken.append(f"{page.relative_to(REPO_ROOT)}: {target} (no such heading)")
    assert broken == []


def test_the_anchors_are_githubs():
    assert anchors("## Trust model: who may tell the factory what\n## `images.yaml` reference\n## A\n## A\n") == {
        "trust-model-who-may-tell-the-factory-what",
        "imagesyaml-reference",
        "a",
        "a-1",
    }


def test_the_checklist_names_every_secret_and_variable_the_factory_reads():
    """What a workflow reads from the factory's own settings, not what a caller passes in."""
    read: set[str] = set()
    passed: set[str] = set()
    for path in (REPO_ROOT / ".github" / "workflows").glob("*.yml"):
        text = path.read_text(encoding="utf-8")
        read |= set(re.findall(r"\b(?:secrets|vars)\.([A-Z][A-Z0-9_]*)", text))
        on = yaml.safe_load(text).get(True, {})
        call = on.get("workflow_call") if isinstance(on, dict) else None
        passed |= set((call or {}).get("secrets") or {})
    checklist = README.read_text(encoding="utf-8").split("### Checklist: the factory repository")[1]
    checklist = checklist.split("\n### ")[0]
    missing = sorted(
        name
        for name in read - (passed - {"BASE_REGISTRY_CREDENTIALS", "BUILD_SECRETS"})
        if f"`{name}`" not in checklist
    )
    assert missing == []


def test_the_refreshed_token_lands_where_the_stages_read_it():
    """docs/cluster.md's GitHub App token, minted by External Secrets Operator every half hour,
    fills the Secret and key the generated Stages read, before the token's hour is up."""
    from image_factory.enrolment.durations import parse_duration
    from image_factory.enrolment.model import KargoSettings

    text = (REPO_ROOT / "docs" / "cluster.md").read_text(encoding="utf-8")
    block = next(body for body in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL) if "GithubAccessToken" in body)
    generator, external = yaml.safe_load_all(textwrap.dedent(block))
    defaults = KargoSettings()
    assert generator["kind"] == "GithubAccessToken" and external["kind"] == "ExternalSecret"
    assert generator["metadata"]["namespace"] == external["metadata"]["namespace"] == defaults.project
    assert external["spec"]["target"]["name"] == defaults.token_secret_name
    assert defaults.token_secret_key == "token"  # the key the generator writes
    (source,) = external["spec"]["dataFrom"]
    assert source["sourceRef"]["generatorRef"]["name"] == generator["metadata"]["name"]
    assert parse_duration(external["spec"]["refreshInterval"]).total_seconds() < 3600
    assert set(generator["spec"]["permissions"]) == {"contents", "actions"}
