"""The status page: `overview` (where each image stands) from real state files, the static site's
files, its escaping of user text, and the site as a person sees it in a real browser (Debian's
chromium, driven by selenium through Debian's chromedriver), with no request leaving the machine.

The history is recorded through the real event code (record-update, record-build, reject,
expedite, attempts as dispatch records them) on a copy of the bundled example, with three more
enrolled images from team repositories, so that each of the eight states has an image.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from image_factory.cli import main
from image_factory.discovery.discover import discover, load_model
from image_factory.enrolment.durations import format_hours, parse_duration
from image_factory.enrolment.refs import parse_ref
from image_factory.kargo import names as kargo_names
from image_factory.output import site
from image_factory.output.overview import STATES, WORDS, counts, overview
from image_factory.rebuilds import events, planner
from image_factory.state.graph import node_id

from ..conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "cdk8s"))
import kargo_manifests

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
PYTHON = "docker.io/library/python:3.12-slim"
NODE = "docker.io/library/node:22-bookworm-slim"
NGINX = "docker.io/nginxinc/nginx-unprivileged:1.27-alpine"
GOLANG = "docker.io/library/golang:1.23-bookworm"
DISTROLESS = "gcr.io/distroless/static-debian12:nonroot"
PINNED = "sha256:6ec5aa99dc335666e79dc64e4a6c8b89c33a543a1967f20d360922a80dd21f02"  # examples/metrics-agent
ALPINE = "docker.io/library/alpine:3.20"
BASE_PYTHON = "ghcr.io/acme-platform/base-python:3.12"
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'

EXPECTED = {  # image → (state, eligible-at as the overview table shows it)
    "base-python": ("up-to-date", ""),
    "python-service": ("failed", ""),
    "orders-api": ("blocked", ""),
    "web": ("waiting", "2026-11-30T10:00:00Z"),
    "metrics-agent": ("held", ""),
    "payments-api": ("due", "now"),
    "search-indexer": ("rebuilding", ""),
    "docs-site": ("never-built", ""),
    "ledger": ("bases-unknown", ""),
}

TEAM_IMAGES = """
  - name: payments-api
    registry: ghcr.io
    repository: acme-payments/payments-api
    source: {provider: github, repo: acme-payments/payments-api, dockerfile: Dockerfile, workflow: build.yml}
  - name: search-indexer
    registry: ghcr.io
    repository: acme-search/search-indexer
    source: {provider: github, repo: acme-search/search-indexer, dockerfile: Dockerfile, workflow: build.yml}
  - name: docs-site
    registry: ghcr.io
    repository: acme-docs/docs-site
    source: {provider: github, repo: acme-docs/docs-site, dockerfile: Dockerfile, workflow: build.yml}
  - name: ledger
    registry: ghcr.io
    repository: acme-ledger/ledger
    source: {provider: github, repo: acme-ledger/ledger, dockerfile: Dockerfile, workflow: build.yml}
"""


def digest(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def ago(**delta) -> datetime:
    return NOW - timedelta(**delta)


def every_state(root: Path, hostile: str = HOSTILE) -> Path:
    """The bundled example and three team images, with a history that puts one image in each
    state at NOW, the stored texts carrying `hostile` markup. Returns the root."""
    root.mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "examples", root / "examples")
    shutil.copytree(REPO_ROOT / "state", root / "state")
    (root / "images.yaml").write_text((REPO_ROOT / "images.yaml").read_text() + TEAM_IMAGES)
    teams = root.parent / f"{root.name}-teams"
    for repo, dockerfile in [
        ("acme-payments/payments-api", "FROM python:3.12-slim\n"),
        ("acme-search/search-indexer", "FROM alpine:3.20\n"),
        ("acme-docs/docs-site", "FROM nginx:1.27\n"),
    ]:
        (teams / repo).mkdir(parents=True)
        (teams / repo / "Dockerfile").write_text(dockerfile)
    discover(root, teams)

    # up to date: base-python built on the only python digest, past its delay
    events.record_update(root, PYTHON, digest("py-1"), ago(days=20), "python-freight")
    events.record_build(root, "base-python", digest("bp-1"), "success", {PYTHON: digest("py-1")}, None, ago(days=12))
    # failed: python-service's build on it failed (a hostile error and run URL); blocked: orders-api
    events.record_build(
        root,
        "python-service",
        None,
        "failure",
        {BASE_PYTHON: digest("bp-1")},
        "javascript:alert(document.domain)",
        ago(days=1),
        error=f"test step failed {hostile}",
    )
    # waiting: web was built; a newer node digest is two days old (delay 7d); a newer one rejected
    events.record_update(root, NODE, digest("node-1"), ago(days=20), None)
    events.record_update(root, NGINX, digest("nginx-1"), ago(days=20), f"freight {hostile}")
    web_bases = {NODE: digest("node-1"), NGINX: digest("nginx-1")}
    events.record_build(
        root, "web", digest("web-1"), "success", web_bases, "https://github.com/acme/f/actions/runs/1", ago(days=15)
    )
    events.record_update(root, NODE, digest("node-2"), ago(days=2), None)
    events.record_update(root, NODE, digest("node-3"), ago(days=1), None)
    events.reject(root, NODE, digest("node-3"), f"breaks npm ci {hostile}", ago(hours=20))
    # held: metrics-agent's distroless base requires verification; the new digest is unverified
    events.record_update(root, GOLANG, digest("go-1"), ago(days=20), None)
    events.record_update(root, DISTROLESS, PINNED, ago(days=30), None)
    events.record_update(root, DISTROLESS, PINNED, ago(days=30), None, verified=True, reason="keyless, Google")
    metrics_bases = {GOLANG: digest("go-1"), DISTROLESS: PINNED}
    events.record_build(root, "metrics-agent", digest("ma-1"), "success", metrics_bases, None, ago(days=15))
    events.record_update(root, DISTROLESS, digest("distroless-2"), ago(days=10), None)
    # due: payments-api was never built and python's digest is past the delay
    # rebuilding: search-indexer's build on an expedited alpine digest was dispatched, no report yet
    events.record_update(root, ALPINE, digest("alpine-1"), ago(days=20), None)
    events.record_update(root, ALPINE, digest("alpine-2"), ago(hours=3), None)
    events.expedite(root, ALPINE, digest("alpine-2"), f"CVE-2026-1234 {hostile}", ago(hours=2))
    pending = {"result": "pending", "startedAt": "2026-11-25T08:30:00Z", "baseDigests": {ALPINE: digest("alpine-2")}}
    events.apply_attempts(root, {"search-indexer": pending})
    # never built: docs-site's nginx has no digest recorded yet
    # bases unknown: ledger's team has proposed nothing (no checkout above)
    return root


@pytest.fixture(scope="module")
def history_root(tmp_path_factory) -> Path:
    return every_state(tmp_path_factory.mktemp("site") / "factory")


@pytest.fixture(scope="module")
def built_site(history_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site-out") / "site"
    site.build(history_root, out, NOW)
    return out


def statuses_at(root: Path, now: datetime = NOW):
    config, state = load_model(root)
    plan = planner.plan(state, now, parse_duration(config.cascade_delay))
    return {status.name: status for status in overview(state, plan, now, config.kargo.factory_repo)}


# -- overview ------------------------------------------------------------------------------------


def test_overview_puts_each_image_in_its_state(history_root):
    statuses = statuses_at(history_root)
    assert {name: status.state for name, status in statuses.items()} == {
        name: state for name, (state, _) in EXPECTED.items()
    }
    assert counts(list(statuses.values())) == dict.fromkeys(STATES, 1)


def test_overview_says_why_and_what_next(history_root):
    s = statuses_at(history_root)
    assert s["base-python"].detail == "built on the current digest of every base"
    assert s["base-python"].digest == digest("bp-1") and s["base-python"].built_at == "2026-11-13T10:00:00Z"

    failed = s["python-service"]
    assert failed.error == f"test step failed {HOSTILE}" and failed.run_url == "javascript:alert(document.domain)"
    assert failed.detail.startswith("its build failed (2026-11-24T10:00:00Z): test step failed")

    assert s["orders-api"].blocked_by == "python-service"
    assert s["orders-api"].detail == "python-service's last build failed"

    waiting = s["web"]
    assert (waiting.eligible_at, waiting.next_digest) == ("2026-11-30T10:00:00Z", digest("node-2"))
    assert waiting.detail == f"{NODE}@{digest('node-2')} becomes eligible at 2026-11-30T10:00:00Z"

    held = s["metrics-agent"]
    assert held.next_digest is None
    assert held.detail.startswith(f"{DISTROLESS}@{digest('distroless-2')} is held: not verified yet")

    due = s["payments-api"]
    assert due.next_digest == digest("py-1") and due.repository == "acme-payments/payments-api"
    assert due.detail.startswith(f"a rebuild is due now: {PYTHON}: {digest('py-1')} first seen")

    rebuilding = s["search-indexer"]
    assert rebuilding.detail == f"dispatched at 2026-11-25T08:30:00Z on {ALPINE}@{digest('alpine-2')}"

    assert s["docs-site"].detail == "waiting for a first digest of docker.io/library/nginx:1.27"
    assert s["docs-site"].repository == "acme-docs/docs-site"
    assert s["base-python"].repository == "acme-platform/image-factory"  # a local source: the factory's


def test_overview_bases_say_what_was_built_and_what_is_newest(history_root):
    bases = {base.ref: base for base in statuses_at(history_root)["web"].bases}
    assert bases[NODE].built == digest("node-1") and bases[NODE].current == digest("node-3")
    assert bases[NODE].parent is None
    (parent,) = statuses_at(history_root)["python-service"].bases
    assert (parent.ref, parent.parent) == (BASE_PYTHON, "base-python")
    assert (parent.built, parent.current) == (None, digest("bp-1"))


def test_overview_moves_with_time_and_events(history_root, tmp_path):
    root = tmp_path / "factory"
    shutil.copytree(history_root, root)
    later = NOW + timedelta(days=5)  # node-2 is past its delay: web is due
    assert (statuses_at(root, later)["web"].state, statuses_at(root, later)["web"].eligible_at) == ("due", None)
    # python-service succeeds: orders-api (never built) is no longer blocked, and due
    events.record_build(root, "python-service", digest("ps-1"), "success", {BASE_PYTHON: digest("bp-1")}, None, NOW)
    after = statuses_at(root)
    assert after["python-service"].state == "up-to-date"
    assert after["orders-api"].state == "due" and after["orders-api"].next_digest == digest("py-1")  # 1st due base
    # a rebuild of base-python makes python-service due and orders-api wait for it
    events.record_update(root, PYTHON, digest("py-2"), NOW - timedelta(days=8), None)
    cascade = statuses_at(root)
    assert cascade["base-python"].state == "due"
    assert cascade["python-service"].state == "waiting"
    assert cascade["python-service"].detail == "rebuilt after base-python's rebuild"
    # the distroless digest is verified: metrics-agent (autoRebuild off) is due, by hand
    events.record_update(root, DISTROLESS, digest("distroless-2"), NOW, None, verified=True)
    manual = statuses_at(root)["metrics-agent"]
    assert manual.state == "due" and "autoRebuild is off" in manual.detail


def test_a_failed_dispatch_is_due_again_with_githubs_reason(history_root, tmp_path):
    """The next dispatch sends it again (a refused dispatch is no build): due, as dispatch says,
    with GitHub's reason shown."""
    root = tmp_path / "factory"
    shutil.copytree(history_root, root)
    refused = {
        "result": "dispatch-failed",
        "startedAt": "2026-11-25T09:00:00Z",
        "baseDigests": {PYTHON: digest("py-1")},
        "error": "GitHub refused (404): workflow not found",
    }
    events.apply_attempts(root, {"payments-api": refused})
    status = statuses_at(root)["payments-api"]
    assert status.state == "due" and status.error == "GitHub refused (404): workflow not found"
    assert status.detail.endswith("; its last dispatch failed, sent again: GitHub refused (404): workflow not found")


# -- the site's files ----------------------------------------------------------------------------


class Page(HTMLParser):
    """Every element and attribute of a page, and its text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def of(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.elements if name == tag]


def pages(out: Path) -> dict[str, Page]:
    return {str(path.relative_to(out)): Page(path.read_text()) for path in sorted(out.rglob("*.html"))}


def test_the_site_has_an_overview_a_page_per_image_and_its_own_assets(built_site):
    files = sorted(str(path.relative_to(built_site)) for path in built_site.rglob("*") if path.is_file())
    site_files = ["index.html", "assets/site.css", "assets/site.js", *(f"images/{name}.html" for name in EXPECTED)]
    assert files == sorted([*site_files, site.WRITTEN])  # and the list of what it wrote
    assert json.loads((built_site / site.WRITTEN).read_text()) == sorted(site_files)
    for path, page in pages(built_site).items():
        (csp,) = [m for m in page.of("meta") if m.get("http-equiv") == "Content-Security-Policy"]
        assert csp["content"].startswith("default-src 'none';"), path
        for attrs in page.of("script"):  # one script, a file of the site
            assert attrs["src"].endswith("assets/site.js"), path
        for tag, attrs in page.elements:
            for key in ("src", "href", "xlink:href"):
                target = attrs.get(key)
                if target is None or urlsplit(target).scheme in ("http", "https"):
                    continue
                assert not urlsplit(target).scheme, f"{path}: {target}"
                resolved = (built_site / path).parent / unquote(urlsplit(target).path)
                assert resolved.is_file(), f"{path}: {tag} {key}={target} leads nowhere"


def test_index_lists_every_image_with_its_state_and_team(built_site):
    page = pages(built_site)["index.html"]
    rows = {attrs["data-name"]: attrs for attrs in page.of("tr") if "data-state" in attrs}
    assert {name: row["data-state"] for name, row in rows.items()} == {n: s for n, (s, _) in EXPECTED.items()}
    assert rows["payments-api"]["data-team"] == "acme-payments"
    assert rows["web"]["data-team"] == "acme-platform"
    text = "".join(page.text)
    assert "2026-11-30T10:00:00Z" in text


def test_graph_has_a_node_per_managed_image_and_watched_base(built_site, history_root):
    _, state = load_model(history_root)
    page = pages(built_site)["index.html"]
    managed = {node_id(name, True) for name in state.images}
    watched = {node_id(key, False) for key, base in state.base_images.items() if base.dependents}
    titles = [
        text
        for text in Page((built_site / "index.html").read_text()).text
        if text.startswith(("m_", "w_")) and "->" not in text
    ]
    assert sorted(titles) == sorted(managed | watched)
    links = {attrs["xlink:href"] for attrs in page.of("a") if "xlink:href" in attrs}
    assert links == {f"images/{name}.html" for name in state.images}


def test_image_page_has_history_attempts_digests_and_kargo_stages(built_site, history_root):
    config, state = load_model(history_root)
    web = (built_site / "images" / "web.html").read_text()
    page = Page(web)
    text = " ".join(page.text)
    for label in ("node-1", "node-2", "node-3"):
        assert digest(label) in text  # full digests
        assert {"type": "button", "class": "copy", "data-copy": digest(label)} in page.of("button")
    assert f"rejected at 2026-11-24T14:00:00Z: breaks npm ci {HOSTILE}" in text
    assert {"href": "https://github.com/acme/f/actions/runs/1", "rel": "noopener noreferrer"} in page.of("a")
    # the Kargo Stages shown are those synth makes that rebuild the image, one per watched base:
    # its own rebuild Stage there if synth makes one, else the soak Stage of its delay on that base
    made = [obj for obj in kargo_manifests.factory_manifests(config, state) if obj["kind"] == "Stage"]
    role = lambda obj: obj["metadata"]["labels"][kargo_names.ROLE]  # noqa: E731
    ref = lambda obj: obj["metadata"]["annotations"][kargo_names.REF_ANNOTATION]  # noqa: E731
    shown_anywhere = set()
    for name, image in state.images.items():
        soak_time = format_hours(parse_duration(image.enrolment["rebuildDelay"]))
        expected = set()
        for key, base in state.base_images.items():
            if base.warehouse is None or name not in {d.image for d in base.dependents}:
                continue
            own = [o for o in made if role(o) == "rebuild" and o["metadata"]["labels"][kargo_names.IMAGE] == name]
            (stage,) = [o for o in own if ref(o) == key] or [
                o
                for o in made
                if role(o) == "soak"
                and ref(o) == key
                and o["spec"]["requestedFreight"][0]["sources"].get("requiredSoakTime", "0s") == soak_time
            ]
            expected.add(stage["metadata"]["name"])
        listed = site.kargo_stages(state).get(name, [])
        assert {stage.name for stage in listed} == expected, name
        shown = Page((built_site / "images" / f"{name}.html").read_text())
        assert expected <= set(shown.text), name
        shown_anywhere |= expected
    assert shown_anywhere == {o["metadata"]["name"] for o in made if role(o) in ("soak", "rebuild")}
    # the bundled example has both kinds: web on the soak Stages, metrics-agent (autoRebuild: false) its own
    text = " ".join(Page((built_site / "images" / "web.html").read_text()).text)
    assert "the factory dispatches this image's rebuild when that Stage's promotion reports the soaked digest" in text
    agent = " ".join(Page((built_site / "images" / "metrics-agent.html").read_text()).text)
    assert "this image's own rebuild Stage on" in agent and "a person promotes it in Kargo's UI" in agent
    alpine = Page((built_site / "images" / "search-indexer.html").read_text())
    assert f"expedited at 2026-11-25T08:00:00Z: CVE-2026-1234 {HOSTILE}" in " ".join(alpine.text)
    distroless = Page((built_site / "images" / "metrics-agent.html").read_text())
    assert "verified at 2026-10-26T10:00:00Z: keyless, Google" in " ".join(distroless.text)
    watched = kargo_names.watched_name(parse_ref(DISTROLESS))
    assert watched in distroless.text


def test_every_template_escapes_what_it_prints():
    """The pages come from Jinja2 templates with autoescape on: no template turns it off or marks
    a value safe, and the one markup handed in is Graphviz's SVG."""
    from image_factory.output.site import pages as site_pages

    templates = sorted((REPO_ROOT / "action/image_factory/output/site/templates").glob("*.html"))
    assert {path.name for path in templates} == set(site_pages.TEMPLATES.list_templates())
    for path in templates:
        text = path.read_text()
        assert site_pages.TEMPLATES.autoescape is True or site_pages.TEMPLATES.autoescape(path.name), path
        for bypass in ("|safe", "| safe", "autoescape false", "|escape", "Markup"):
            assert bypass not in text, f"{path.name}: {bypass}"
    code = (REPO_ROOT / "action/image_factory/output/site/pages.py").read_text()
    # Graphviz's SVG, and the line break between escaped notes
    assert sorted(re.findall(r"Markup\([^)]*\)", code)) == ['Markup("<br>")', "Markup(graph_svg)"]
    page = site_pages.TEMPLATES.get_template("page.html").render(title=HOSTILE + "\u202e", up="", generated=None)
    assert HOSTILE not in page and "&lt;script&gt;" in page and "<U+202E>" not in page.split("<title>")[0]
    assert "&lt;U+202E&gt;" in page  # a bidirectional control is written out, then escaped


def test_user_text_cannot_inject_markup(built_site):
    """Reasons, errors, Freight names and run URLs are user text: escaped everywhere; a run URL
    that is not http(s) is shown, never linked."""
    for path, page in pages(built_site).items():
        assert [tag for tag, _ in page.elements if tag in ("img", "iframe", "object", "embed", "form")] == [], path
        assert len(page.of("script")) == 1, path
        for tag, attrs in page.elements:
            assert not any(key.startswith("on") for key in attrs), f"{path}: {tag} {attrs}"
            for key in ("href", "src", "xlink:href"):
                value = (attrs.get(key) or "").strip().lower()
                assert not value.startswith(("javascript:", "data:")), f"{path}: {tag} {attrs}"
    failing = built_site / "images" / "python-service.html"
    assert "javascript:alert(document.domain)" in " ".join(Page(failing.read_text()).text)  # as text
    assert HOSTILE not in failing.read_text()  # only its escaped form


def test_graph_labels_are_shown_as_written(tmp_path):
    """dot expands \\N, \\G and \\l in labels and ends a string at a quote: labels are escaped."""
    label = 'a\\N"b -> c [URL="javascript:x"] \\l<script>'
    svg = site.layout_graph(f"digraph g {{ n [label={site.dot_string(label)}]; }}")
    page = Page(svg)
    assert label in page.text
    assert all("javascript" not in str(attrs) for _, attrs in page.elements)


def test_run_urls_become_links_only_when_http(tmp_path):
    assert site.safe_url("https://github.com/a/b/actions/runs/1") == "https://github.com/a/b/actions/runs/1"
    for url in ("javascript:alert(1)", "data:text/html,x", "//evil.example/x", "http:/no-host", "file:///etc/passwd"):
        assert site.safe_url(url) is None, url


def test_rebuilding_the_site_removes_pages_of_images_gone_and_keeps_other_files(history_root, tmp_path):
    """Only what an earlier site wrote (its list says) is removed: the user's own page in
    images/, a CNAME, and whatever an edited list names outside the site's own shape all stay."""
    out = tmp_path / "site"
    (out / "images").mkdir(parents=True)
    (out / "images" / "gone.html").write_text("old")
    (out / "images" / "mine.html").write_text("the user's own page")
    (out / "notes.html").write_text("the user's own notes")
    (out / "CNAME").write_text("status.example.com\n")
    listed = ["images/gone.html", "index.html", "notes.html", "../outside.html", "CNAME"]
    (out / site.WRITTEN).write_text(json.dumps(listed))
    (tmp_path / "outside.html").write_text("outside")
    outcome = site.build(history_root, out, NOW)
    assert outcome.removed == ["images/gone.html"] and not (out / "images" / "gone.html").exists()
    assert (out / "images" / "mine.html").read_text() == "the user's own page"
    assert (out / "notes.html").exists() and (tmp_path / "outside.html").exists()
    assert (out / "CNAME").read_text() == "status.example.com\n"
    assert not (out / site.JOURNAL).exists()
    again = site.build(history_root, out, NOW)
    assert again.changed == [] and again.removed == []


def test_site_command(history_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["site", "--root", str(history_root), "--out", str(out), "--now", "2026-11-25T10:00:00Z"]) == 0
    printed = capsys.readouterr().out
    assert f"{out / 'index.html'}: 9 image pages, 12 files written, 0 removed" in printed
    assert "graph: 9 managed images and 7 watched bases." in printed


def test_a_large_graph_is_cut_to_what_needs_attention(history_root):
    _, state = load_model(history_root)
    statuses = list(statuses_at(history_root).values())
    whole = site.graph_source(state, statuses)
    assert whole.nodes == 16
    cut = site.graph_source(state, statuses, limit=14)
    assert "need attention" in cut.note and cut.nodes < 15
    assert node_id("docs-site", True) not in cut.dot and node_id("base-python", True) in cut.dot  # a parent
    none = site.graph_source(state, statuses, limit=3)
    assert none.dot is None and "image-factory graph --format dot" in none.note


# -- in a real browser ---------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium through Debian's chromedriver; Selenium Manager never runs (an
    explicit driver and browser, offline)."""
    offline = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file(), "apt-get install chromium chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1100")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        if offline is None:
            os.environ.pop("SE_OFFLINE", None)


def requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def visible_rows(driver) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {
        row.get_attribute("data-name"): row.get_attribute("data-state")
        for row in driver.find_elements(By.CSS_SELECTOR, "#images tbody tr")
        if row.is_displayed()
    }


@pytest.mark.slow
def test_in_a_browser(browser, built_site, history_root, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = browser
    driver.get_log("performance")  # start clean
    driver.get((built_site / "index.html").as_uri())

    # every managed image with its state and eligible-at, as shown
    rows = driver.find_elements(By.CSS_SELECTOR, "#images tbody tr")
    shown = {
        row.get_attribute("data-name"): (
            row.find_element(By.CSS_SELECTOR, ".state").text,
            row.find_element(By.CSS_SELECTOR, "td.eligible").text,
        )
        for row in rows
    }
    assert shown == {name: (WORDS[state], eligible) for name, (state, eligible) in EXPECTED.items()}
    counted = {
        chip.get_attribute("data-state"): int(chip.find_element(By.CSS_SELECTOR, ".number").text)
        for chip in driver.find_elements(By.CSS_SELECTOR, "button.count")
    }
    assert counted == dict.fromkeys(STATES, 1)

    # the graph: one node per managed image and per watched base, the managed ones linked
    _, state = load_model(history_root)
    nodes = driver.find_elements(By.CSS_SELECTOR, ".graph svg g.node")
    watched = [key for key, base in state.base_images.items() if base.dependents]
    assert len(nodes) == len(state.images) + len(watched)
    assert len(driver.find_elements(By.CSS_SELECTOR, ".graph svg g.node.managed")) == len(state.images)
    failed_fill = driver.find_element(By.CSS_SELECTOR, ".graph svg g.node.state-failed path")
    assert failed_fill.get_attribute("fill") == site.COLOURS["failed"]
    full_height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, full_height + 140)  # the whole page, graph included
    driver.save_screenshot(str(tmp_path / "overview.png"))
    driver.set_window_size(1400, 1100)

    # filter by state: the fragment says so, and a link with it reproduces the view
    Select(driver.find_element(By.ID, "filter-state")).select_by_value("failed")
    assert visible_rows(driver) == {"python-service": "failed"}
    assert driver.execute_script("return location.hash") == "#state=failed"
    assert driver.find_element(By.ID, "shown").text == "1 of 9 images shown"
    Select(driver.find_element(By.ID, "filter-state")).select_by_value("")
    # by team, and search by name
    Select(driver.find_element(By.ID, "filter-team")).select_by_value("acme-platform")
    assert set(visible_rows(driver)) == {"base-python", "python-service", "orders-api", "web", "metrics-agent"}
    driver.find_element(By.ID, "search").send_keys("API")
    assert visible_rows(driver) == {"orders-api": "blocked"}
    Select(driver.find_element(By.ID, "filter-team")).select_by_value("")
    assert visible_rows(driver) == {"orders-api": "blocked", "payments-api": "due"}
    assert driver.execute_script("return location.hash") == "#q=API"
    # a count button filters by its state
    driver.find_element(By.ID, "search").clear()
    driver.find_element(By.CSS_SELECTOR, "button.count[data-state='held']").click()
    assert visible_rows(driver) == {"metrics-agent": "held"}
    driver.get((built_site / "index.html").as_uri() + "#state=waiting&team=acme-platform")
    assert visible_rows(driver) == {"web": "waiting"}
    assert Select(driver.find_element(By.ID, "filter-state")).first_selected_option.text == "waiting"

    # a node of the graph leads to the image's page
    driver.get((built_site / "index.html").as_uri())
    link = driver.find_element(By.CSS_SELECTOR, ".graph svg g.node.state-held a")
    driver.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", link)
    assert driver.find_element(By.TAG_NAME, "h1").text == "metrics-agent"

    driver.get((built_site / "images" / "web.html").as_uri())
    assert driver.find_element(By.CSS_SELECTOR, "dd .state").text == "waiting"
    hostile = [cell for cell in driver.find_elements(By.TAG_NAME, "td") if "breaks npm ci" in cell.text]
    assert hostile and HOSTILE in hostile[0].text  # shown as text, not run
    assert driver.execute_script("return window.__pwned === undefined && document.images.length === 0")
    button = driver.find_element(By.CSS_SELECTOR, f"button.copy[data-copy='{digest('node-2')}']")
    button.click()
    WebDriverWait(driver, 5).until(lambda _: button.text != "copy")
    assert button.text in ("copied", "select and copy")
    driver.save_screenshot(str(tmp_path / "image-page.png"))

    # nothing left the machine; no script or style was refused
    urls = requested_urls(driver)
    assert urls, "the performance log recorded no request at all"
    assert all(url.startswith(("file://", "data:")) for url in urls), [u for u in urls if not u.startswith("file")]
    problems = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert problems == []

    artifacts = Path(os.environ.get("IMAGE_FACTORY_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    for name in ("overview.png", "image-page.png"):
        if artifacts != tmp_path:
            shutil.copy(tmp_path / name, artifacts / name)
        assert (artifacts / name).stat().st_size > 10_000
    if os.environ.get("IMAGE_FACTORY_UPDATE_SCREENSHOT"):  # the README's: the same states, plain words
        site.build(every_state(tmp_path / "plain", hostile="(see the run)"), tmp_path / "plain-site", NOW)
        driver.get((tmp_path / "plain-site" / "index.html").as_uri())
        driver.set_window_size(1400, driver.execute_script("return document.documentElement.scrollHeight") + 140)
        assert driver.save_screenshot(str(REPO_ROOT / "docs" / "site-overview.png"))


def test_without_graphviz_the_site_is_written_without_its_graph_and_says_so(
    history_root, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("PATH", "/nonexistent")
    out = tmp_path / "site"
    assert main(["site", "--root", str(history_root), "--out", str(out)]) == 0
    assert "the dependency graph is not drawn: Graphviz's `dot` is not on PATH" in capsys.readouterr().err
    page = (out / "index.html").read_text()
    assert "Not drawn: Graphviz" in page and "<svg" not in page and (out / "images/web.html").is_file()


def test_the_team_filter_reads_images_yaml_team_else_the_repository_owner(example_factory, tmp_path):
    """One organisation's repositories all have one owner: `team:` tells its teams apart."""
    root = example_factory.root
    text = (
        (root / "images.yaml").read_text().replace("  - name: web\n", "  - name: web\n    team: Storefront Squad\n", 1)
    )
    (root / "images.yaml").write_text(text)
    assert main(["discover", "--root", str(root)]) == 0
    assert main(["site", "--root", str(root), "--out", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site/index.html").read_text()
    assert '<option value="Storefront Squad">Storefront Squad</option>' in page
    assert 'data-team="Storefront Squad" data-name="web"' in page
    assert 'data-team="acme-platform" data-name="base-python"' in page  # no team: the repository's owner
