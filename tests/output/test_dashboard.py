"""The dashboard issue: its body from the factory's state, and keeping one issue on GitHub (mocked
with `responses` in the shapes of GitHub's REST documentation) up to date: found by its label,
edited in place, opened with the label when none is open, never duplicated."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import responses
import yaml
from responses import matchers

from image_factory.cli import main
from image_factory.discovery import discover
from image_factory.edges import dashboard_issue, github_client
from image_factory.errors import FactoryError
from image_factory.output import dashboard, overview
from image_factory.rebuilds import events, planner

from ..conftest import REPO_ROOT

API = "https://api.github.com:443/repos/acme/factory"
LABEL = "image-factory-dashboard"
NOW = "2026-11-25T10:00:00Z"
D = {name: f"sha256:{char * 64}" for name, char in (("py1", "1"), ("py2", "2"), ("go1", "3"), ("go2", "4"))}
D |= {name: f"sha256:{char * 64}" for name, char in (("node", "5"), ("base", "a"), ("app", "b"), ("held", "c"))}
HOSTILE = (
    "@octocat see https://evil.example and www.evil.example [click](https://evil.example) "
    "<img src=x onerror=alert(1)> | #1 ``` ~~~ owner/repo#2 mail@evil.example\n::error::forged"
)


def issue_json(number: int, body: str = "", *, created: str = "2026-11-01T09:00:00Z", pull: bool = False) -> dict:
    """An issue as GitHub's REST API documents it (`GET /repos/{owner}/{repo}/issues`): pull
    requests come from the same endpoint, with a `pull_request` key."""
    item = {
        "id": 1000 + number,
        "node_id": f"I_kwDOABC{number}",
        "url": f"https://api.github.com/repos/acme/factory/issues/{number}",
        "repository_url": "https://api.github.com/repos/acme/factory",
        "labels_url": f"https://api.github.com/repos/acme/factory/issues/{number}/labels{{/name}}",
        "comments_url": f"https://api.github.com/repos/acme/factory/issues/{number}/comments",
        "events_url": f"https://api.github.com/repos/acme/factory/issues/{number}/events",
        "html_url": f"https://github.com/acme/factory/{'pull' if pull else 'issues'}/{number}",
        "number": number,
        "state": "open",
        "title": "Image Factory dashboard",
        "body": body,
        "user": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
        "labels": [
            {
                "id": 208045946,
                "node_id": "MDU6TGFiZWwyMDgwNDU5NDY=",
                "url": f"https://api.github.com/repos/acme/factory/labels/{LABEL}",
                "name": LABEL,
                "description": dashboard_issue.LABEL_DESCRIPTION,
                "color": dashboard_issue.LABEL_COLOUR,
                "default": False,
            }
        ],
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "locked": False,
        "comments": 0,
        "closed_at": None,
        "created_at": created,
        "updated_at": created,
        "author_association": "NONE",
    }
    if pull:
        item["pull_request"] = {
            "url": f"https://api.github.com/repos/acme/factory/pulls/{number}",
            "html_url": f"https://github.com/acme/factory/pull/{number}",
            "diff_url": f"https://github.com/acme/factory/pull/{number}.diff",
            "patch_url": f"https://github.com/acme/factory/pull/{number}.patch",
        }
    return item


def label_json() -> dict:
    return issue_json(1)["labels"][0]


LISTING = matchers.query_param_matcher(
    {"labels": LABEL, "state": "open", "sort": "created", "direction": "asc", "per_page": "100", "page": "1"}
)


def mock_listing(*items: dict) -> None:
    responses.add(responses.GET, f"{API}/issues", json=list(items), match=[LISTING])


@pytest.fixture
def fleet(factory, monkeypatch):
    """Five images, one in each state worth showing: `waiting` (a new python digest inside its
    delay), `up-to-date` (built on `waiting`'s last build), `held` (its new golang digest was
    rejected, for a hostile reason), `failed` (its build failed, with a hostile error and run URL)
    and `blocked` (built on the failed one)."""
    factory.write(
        "images.yaml",
        """
        kargo: {factoryRepo: acme/factory}
        images:
          - {name: base, registry: ghcr.io, repository: acme/base,
             source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: build.yml}}
          - {name: app, registry: ghcr.io, repository: acme/app,
             source: {provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}
          - {name: tool, registry: ghcr.io, repository: acme/tool,
             source: {provider: local, repo: tool, dockerfile: Dockerfile, workflow: build.yml}}
          - {name: web, registry: ghcr.io, repository: acme/web,
             source: {provider: github, repo: acme/web, dockerfile: Dockerfile, workflow: build.yml}}
          - {name: web-extra, registry: ghcr.io, repository: acme/web-extra,
             source: {provider: local, repo: web-extra, dockerfile: Dockerfile, workflow: build.yml}}
        """,
    )
    factory.write("base/Dockerfile", "FROM python:3.12-slim\n")
    factory.write("app/Dockerfile", "FROM ghcr.io/acme/base:latest\n")
    factory.write("tool/Dockerfile", "FROM golang:1.23\n")
    factory.write("web-extra/Dockerfile", "FROM ghcr.io/acme/web:latest\n")
    (factory.root / "sources/acme/web").mkdir(parents=True)
    (factory.root / "sources/acme/web/Dockerfile").write_text("FROM node:22\n")
    discover.discover(factory.root, factory.root / "sources")
    root = str(factory.root)
    python, golang, node = (
        "docker.io/library/python:3.12-slim",
        "docker.io/library/golang:1.23",
        "docker.io/library/node:22",
    )
    day = lambda n: datetime(2026, 11, n, 9, tzinfo=UTC)  # noqa: E731
    events.record_update(factory.root, python, D["py1"], day(1), None)
    events.record_update(factory.root, golang, D["go1"], day(1), None)
    events.record_update(factory.root, node, D["node"], day(1), None)

    def built(image: str, result: str, bases: dict, *extra: str) -> None:
        args = ["record-build", "--root", root, "--image", image, "--result", result, "--bases", json.dumps(bases)]
        assert main([*args, "--finished-at", "2026-11-10T09:00:00Z", *extra]) == 0

    built("base", "success", {python: D["py1"]}, "--digest", D["base"])
    built("app", "success", {"ghcr.io/acme/base:latest": D["base"]}, "--digest", D["app"])
    built("tool", "success", {golang: D["go1"]}, "--digest", D["held"])
    built("web", "failure", {node: D["node"]}, "--error", HOSTILE, "--run-url", "javascript:alert(1)//" + HOSTILE)
    events.record_update(factory.root, python, D["py2"], day(24), None)  # eligible on Dec 1
    events.record_update(factory.root, golang, D["go2"], day(2), None)
    events.reject(factory.root, golang, D["go2"], HOSTILE, day(3))
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_example")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return factory


def dry_run(root, *extra: str) -> str:
    return _run(["dashboard", "--root", str(root), "--now", NOW, "--dry-run", *extra])


def _run(argv: list[str]) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    assert code == 0, out.getvalue()
    return out.getvalue()


def outside_code(markdown: str) -> str:
    """The Markdown with every code span and fenced block taken out: what GitHub would render as
    text, links and mentions."""
    markdown = re.sub(r"^```mermaid\n.*?^```$", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)", "", markdown)


def test_the_body_shows_each_image_its_state_and_what_happens_next(fleet):
    body = dry_run(fleet.root, "--site-url", "https://acme.github.io/factory/")
    assert body.startswith(dashboard.MARKER + "\n")
    assert "**5 managed images**: 1 failed · 1 blocked · 1 waiting · 1 held · 1 up to date" in body
    assert "| failed | 1 |\n| blocked | 1 |\n| rebuilding | 0 |\n| due now | 0 |\n| waiting | 1 |" in body
    assert "[the status site](https://acme.github.io/factory/)" in body
    rows = [line for line in body.splitlines() if line.startswith("| **")]
    # the images needing attention first, in the order of the states
    assert [row.split(" | ")[0:2] for row in rows] == [
        ["| **web**", "failed"],
        ["| **web-extra**", "blocked"],
        ["| **base**", "waiting"],
        ["| **tool**", "held"],
        ["| **app**", "up to date"],
    ]
    waiting = rows[2]
    assert f"`docker.io/library/python:3.12-slim@{D['py2']} becomes eligible at 2026-12-01T09:00:00Z`" in waiting
    assert "`web's last build failed`" in rows[1]
    assert f"`docker.io/library/golang:1.23@{D['go2']} is held: rejected: @octocat" in rows[3]
    assert "its build failed (2026-11-10T09:00:00Z): @octocat see https://evil.example" in rows[0]
    assert " · run: ````javascript:alert(1)//@octocat" in rows[0]  # not a run URL: shown, never linked
    assert "[run](" not in body
    assert "## Waiting or blocked\n\n```mermaid\ngraph LR\n" in body


def test_the_graph_draws_what_is_not_up_to_date_with_one_node_per_name(fleet):
    body = dry_run(fleet.root)
    graph = body[body.index("```mermaid\n") + 11 : body.rindex("\n```")].splitlines()
    assert graph[0] == "graph LR"
    nodes = [line.strip() for line in graph if "[" in line and "-->" not in line and "classDef" not in line]
    ids = [node.split("[")[0].split("(")[0] for node in nodes]
    assert len(ids) == len(set(ids))
    assert 'm_web["web: failed"]' in nodes and 'm_web_2d_extra["web-extra: blocked"]' in nodes
    assert 'm_base["base: waiting"]' in nodes and 'm_tool["tool: held"]' in nodes
    assert "m_app" not in body  # up to date, and nothing it feeds is drawn
    assert 'w_docker_2e_io_2f_library_2f_python_3a_3_2e_12_2d_slim(["docker.io/library/python:3.12-slim"])' in nodes
    assert "  m_web --> m_web_2d_extra" in graph
    assert "  class m_web failed" in graph and "  class m_web_2d_extra blocked" in graph


def test_the_graph_ids_stay_apart_and_labels_cannot_escape():
    """`my-tool` and `my.tool` are two nodes; a label keeps quotes, brackets, arrows, backticks and
    tags as Mermaid entity codes."""
    from image_factory.output.overview import BaseStatus, ImageStatus

    def status(name: str, ref: str) -> ImageStatus:
        return ImageStatus(name, name, "waiting", "d", "acme/factory", bases=(BaseStatus(ref, None, None, None),))

    lines = dashboard.mermaid([status("my-tool", 'evil"] --> x["`<b>@a</b>'), status("my.tool", "ok")], {})
    label = lines[1][lines[1].index('(["') + 3 : lines[1].rindex('"])')]
    assert label == "evil#34;#93; --#62; x#91;#34;#96;#60;b#62;#64;a#60;/b#62;"
    assert lines[2] == '  m_my_2d_tool["my-tool"]' and lines[4] == '  m_my_2e_tool["my.tool"]'
    assert len({line.split("[")[0].split("(")[0] for line in lines[1:5]}) == 4


def test_hostile_text_is_shown_as_text_never_as_links_mentions_or_markup(fleet):
    body = dry_run(fleet.root)
    rendered = outside_code(body)
    assert "octocat" not in rendered and "evil" not in rendered
    assert not re.search(r"@\w|://|www\.|<img|#\d|\]\(", rendered.replace(dashboard.MARKER, ""))
    # every row stays one table row of three cells (a `|` in the text is escaped)
    for line in body.splitlines():
        if line.startswith("| **"):
            assert len(re.findall(r"(?<!\\)\|", line)) == 4, line
    assert "::error::forged" not in [line.lstrip() for line in body.splitlines()]
    # the code spans hold the text as it was given, on one line
    assert "rejected: @octocat see https://evil.example and www.evil.example [click](https://evil.example)" in body


def mock_created(number: int = 12) -> None:
    responses.add(responses.POST, f"{API}/labels", status=201, json=label_json())
    responses.add(responses.POST, f"{API}/issues", status=201, json=issue_json(number, "…"))


def dashboard_cli(root, *extra: str) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["dashboard", "--root", str(root), "--now", NOW, *extra])
    return code, out.getvalue(), err.getvalue()


def calls() -> list[tuple[str, str]]:
    return [(c.request.method, c.request.url.split("?")[0].replace(API, "")) for c in responses.calls]


@responses.activate
def test_the_issue_found_by_its_label_is_edited_in_place(fleet):
    expected = dry_run(fleet.root)
    mock_listing(issue_json(7, "an older body"))
    responses.add(responses.PATCH, f"{API}/issues/7", json=issue_json(7, expected))
    code, out, err = dashboard_cli(fleet.root)
    assert (code, err) == (0, "")
    assert calls() == [("GET", "/issues"), ("PATCH", "/issues/7")]
    assert json.loads(responses.calls[1].request.body) == {"body": expected}
    assert responses.calls[1].request.headers["Authorization"] == "token ghs_example"
    assert out == "dashboard issue #7 edited: https://github.com/acme/factory/issues/7\n"


@responses.activate
def test_none_open_creates_the_label_and_the_issue_with_it(fleet):
    mock_listing()
    mock_created()
    code, out, _ = dashboard_cli(fleet.root)
    assert code == 0
    assert calls() == [("GET", "/issues"), ("POST", "/labels"), ("POST", "/issues")]
    assert json.loads(responses.calls[1].request.body) == {
        "name": LABEL,
        "color": dashboard_issue.LABEL_COLOUR,
        "description": dashboard_issue.LABEL_DESCRIPTION,
    }
    created = json.loads(responses.calls[2].request.body)
    assert created == {"title": "Image Factory dashboard", "body": dry_run(fleet.root), "labels": [LABEL]}
    assert out == "dashboard issue #12 created: https://github.com/acme/factory/issues/12\n"


@responses.activate
def test_a_label_that_exists_already_is_fine(fleet):
    """GitHub answers 422 with `already_exists` when the label is there (the last dashboard was
    closed): the issue is opened with it."""
    mock_listing()
    exists = {
        "message": "Validation Failed",
        "errors": [{"resource": "Label", "code": "already_exists", "field": "name"}],
        "documentation_url": "https://docs.github.com/rest/issues/labels#create-a-label",
        "status": "422",
    }
    responses.add(responses.POST, f"{API}/labels", status=422, json=exists)
    responses.add(responses.POST, f"{API}/issues", status=201, json=issue_json(13, "…"))
    code, out, _ = dashboard_cli(fleet.root)
    assert code == 0 and out == "dashboard issue #13 created: https://github.com/acme/factory/issues/13\n"
    assert calls()[-1] == ("POST", "/issues")


@responses.activate
def test_an_unchanged_body_is_not_edited(fleet):
    # GitHub may give the body back with CRLF line ends
    mock_listing(issue_json(7, dry_run(fleet.root).replace("\n", "\r\n")))
    code, out, _ = dashboard_cli(fleet.root)
    assert code == 0 and calls() == [("GET", "/issues")]
    assert out == "dashboard issue #7 unchanged: https://github.com/acme/factory/issues/7\n"


@responses.activate
def test_of_two_open_dashboards_the_oldest_is_edited_and_the_run_says_so(fleet, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    # listed newest first, as a GitHub that ignored `direction` would: the oldest is still chosen
    mock_listing(issue_json(9, "b", created="2026-11-20T09:00:00Z"), issue_json(4, "a", created="2026-10-01T09:00:00Z"))
    responses.add(responses.PATCH, f"{API}/issues/4", json=issue_json(4, "new"))
    code, out, err = dashboard_cli(fleet.root)
    assert "::warning::" not in out
    assert code == 0 and calls() == [("GET", "/issues"), ("PATCH", "/issues/4")]
    warning = (
        "2 open issues in acme/factory carry the label image-factory-dashboard: edited the oldest, #4; "
        "close the others (#9)"
    )
    assert err == f"warning: {warning}\n::warning::{warning}\n"  # workflow commands on stderr, as the runner reads


@responses.activate
def test_pull_requests_from_the_issues_endpoint_are_not_the_dashboard(fleet):
    mock_listing(issue_json(3, "a pull request", pull=True))
    mock_created(14)
    code, out, _ = dashboard_cli(fleet.root)
    assert code == 0 and ("PATCH", "/issues/3") not in calls()
    assert calls() == [("GET", "/issues"), ("POST", "/labels"), ("POST", "/issues")]
    assert "#14 created" in out


@responses.activate
def test_dry_run_prints_the_body_and_calls_nothing(fleet, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN")
    body = dry_run(fleet.root)
    assert len(responses.calls) == 0 and body.startswith(dashboard.MARKER)


@pytest.mark.parametrize(
    ("status", "body", "headers", "message"),
    [
        (
            401,
            {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"},
            {},
            "github: GitHub refused the token (401) while listing the open issues labelled image-factory-dashboard "
            "in acme/factory: it is wrong or expired",
        ),
        (
            403,
            {"message": "Resource not accessible by integration", "status": "403"},
            {},
            "github: forbidden (403) while listing the open issues labelled image-factory-dashboard in "
            "acme/factory: the token needs Issues: write there (the events workflow's job: `permissions: "
            "issues: write`) (Resource not accessible by integration)",
        ),
        (
            404,
            {"message": "Not Found", "status": "404"},
            {},
            "github: acme/factory was not found (404) while listing the open issues labelled "
            "image-factory-dashboard: check --repo (or kargo.factoryRepo) and that the token can see acme/factory",
        ),
        (
            410,
            {"message": "Issues are disabled for this repo", "status": "410"},
            {},
            "github: issues are turned off in acme/factory (410) while listing the open issues labelled "
            "image-factory-dashboard: turn them on in its settings (Issues are disabled for this repo)",
        ),
        (
            403,
            {"message": "API rate limit exceeded for installation ID 1.", "status": "403"},
            {"x-ratelimit-limit": "1000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1795000030"},
            "github: GitHub rate limit exhausted (403) while listing the open issues labelled "
            "image-factory-dashboard in acme/factory: it resets at 2026-11-18T11:07:10Z",
        ),
    ],
    ids=["401", "403", "404", "410", "rate-limit"],
)
@responses.activate
def test_github_refusals_are_one_worded_error(fleet, status, body, headers, message):
    responses.add(responses.GET, f"{API}/issues", status=status, json=body, headers=headers)
    code, out, err = dashboard_cli(fleet.root)
    assert code == 1 and out == ""
    assert err == f"error: {message}\n"


@responses.activate
def test_a_refused_edit_and_an_unreachable_github_are_worded_too(fleet):
    mock_listing(issue_json(7, "old"))
    invalid = {
        "message": "Validation Failed",
        "errors": [{"resource": "Issue", "code": "custom", "field": "body", "message": "body is too long"}],
        "status": "422",
    }
    responses.add(responses.PATCH, f"{API}/issues/7", status=422, json=invalid)
    code, _, err = dashboard_cli(fleet.root)
    assert code == 1
    assert err == (
        "error: github: GitHub refused editing the dashboard issue #7 in acme/factory (422): Validation Failed"
        " (body is too long)\n"
    )
    client = github_client.connect("ghs_example", "https://api.github.com")
    responses.reset()  # no mock: responses refuses the connection, as an unreachable GitHub would
    with pytest.raises(FactoryError) as raised:
        dashboard_issue.update(client, "acme/factory", "t", "b")
    assert str(raised.value).startswith(
        "github: could not reach GitHub while listing the open issues labelled image-factory-dashboard in "
        "acme/factory: ConnectionError: Connection refused by Responses"
    )
    assert str(raised.value).endswith("; the next event tries again")


def test_the_repository_comes_from_images_yaml_or_the_environment(fleet, monkeypatch, capsys):
    text = fleet.read("images.yaml").replace("kargo: {factoryRepo: acme/factory}\n", "")
    fleet.write("images.yaml", text)
    assert main(["discover", "--root", str(fleet.root)]) == 0
    capsys.readouterr()
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    assert main(["dashboard", "--root", str(fleet.root), "--dry-run"]) == 1
    assert "--repo: which repository holds the dashboard? pass --repo OWNER/NAME" in capsys.readouterr().err
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/elsewhere")
    assert "managed image of `acme/elsewhere` stands" in dry_run(fleet.root)
    assert "managed image of `acme/third` stands" in dry_run(fleet.root, "--repo", "acme/third")
    assert main(["dashboard", "--root", str(fleet.root), "--dry-run", "--site-url", "javascript:x"]) == 1
    assert "--site-url: not an http(s) address: 'javascript:x'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def big_fleet(tmp_path_factory):
    """bench/scale.py's generated factory of 10,000 images, discovered."""
    spec = importlib.util.spec_from_file_location("bench_scale", REPO_ROOT / "bench" / "scale.py")
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    root = tmp_path_factory.mktemp("fleet")
    scale.build_factory(root, 10_000)
    discover.discover(root)
    return root


@pytest.mark.slow
def test_a_10000_image_fleet_fits_githubs_limit_and_links_the_site(big_fleet):
    _, state = discover.load_model(big_fleet)
    now = datetime(2026, 11, 25, 10, tzinfo=UTC)
    plan = planner.plan(state, now, None)
    statuses = overview.overview(state, plan, now, "acme/factory")
    # some failed (a long error each): their rows come first
    statuses = [s if i % 97 else replace(s, state="failed", detail="x" * 300) for i, s in enumerate(statuses)]
    body = dashboard.body(statuses, factory_repo="acme/factory", site_url="https://acme.github.io/factory/")
    assert len(body) < dashboard.GITHUB_BODY_LIMIT and len(body.encode()) <= dashboard.BUDGET
    failed = sum(1 for s in statuses if s.state == "failed")
    assert f"**10000 managed images**: {failed} failed · {10_000 - failed} never built" in body
    rows = [line for line in body.splitlines() if line.startswith("| **")]
    assert rows[0].startswith("| **svc-00000** | failed |") and len(rows) > 100
    assert [row.split(" | ")[1] for row in rows[:failed]] == ["failed"] * failed  # the failed ones first
    shown_never = len(rows) - failed
    assert (
        f"…and {10_000 - len(rows)} more ({10_000 - failed - shown_never} never built): "
        "see [the status site](https://acme.github.io/factory/)."
    ) in body
    graph = body[body.index("```mermaid") :]
    drawn = re.search(r"The (\d+) images first in the table above; (\d+) more are not drawn", body)
    assert drawn and int(drawn[1]) + int(drawn[2]) == 10_000 and int(drawn[1]) >= 50
    assert graph.count(': failed"]') >= 1 and graph.count("-->") <= 500
    # and without a site, it says where to look instead
    assert "`image-factory status` and `plan` list them all" in dashboard.body(statuses)


def test_events_updates_the_dashboard_after_every_event_and_never_fails_for_it():
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "events.yml").read_text())
    job = workflow["jobs"]["drain"]
    assert job["permissions"]["issues"] == "write"
    steps = job["steps"]
    names = [s["name"] for s in steps]
    step = steps[names.index("Update the dashboard issue")]
    # on by default; a very large fleet turns it off with a repository variable (docs/scale.md)
    assert step["if"] == "always() && steps.install.outcome == 'success' && vars.IMAGE_FACTORY_DASHBOARD != 'off'"
    assert step["continue-on-error"] is True
    assert step["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    assert step["env"]["REPO"] == "${{ github.repository }}"
    assert '"$TOOL" dashboard "${args[@]}"' in step["run"] and '--repo "$REPO"' in step["run"]
    assert names.index("Summary") < names.index("Update the dashboard issue")  # after the event is handled
    assert names.index("Apply every event received") < names.index("Summary")


def test_a_code_span_holds_any_text_on_one_line():
    from image_factory.user_text import code_span

    assert code_span("a ``b`` c") == "```a ``b`` c```"
    assert code_span("`x`") == "`` `x` ``"
    assert code_span("a | b\n::error::x", table_cell=True) == "`a \\| b ::error::x`"


def test_a_failed_builds_run_is_linked_and_an_up_to_date_fleet_draws_no_graph():
    from image_factory.output.overview import ImageStatus

    failed = ImageStatus(
        "web", "ghcr.io/acme/web:latest", "failed", "its build failed (2026-11-10T09:00:00Z): tests", "acme/web",
        error="tests", run_url="https://github.com/acme/web/actions/runs/9/attempts/2",
    )  # fmt: skip
    body = dashboard.body([failed])
    assert "| **web** | failed | `its build failed (2026-11-10T09:00:00Z): tests` · " in body
    assert "[run](https://github.com/acme/web/actions/runs/9/attempts/2) |" in body
    fine = ImageStatus("app", "ghcr.io/acme/app:latest", "up-to-date", "built on the current digest", "acme/app")
    assert "## Waiting or blocked\n\nNothing: every managed image is up to date.\n" in dashboard.body([fine])
    assert "```mermaid" not in dashboard.body([fine])
    assert "No managed images in `images.yaml`." in dashboard.body([])


def test_the_bundled_example_in_every_state_reads_right_on_the_dashboard(tmp_path):
    """The same history the status page is tested with in a browser: one image in each of the
    eight states, each row saying its state and why, the Mermaid graph holding every image that
    is not up to date."""
    from .test_site import EXPECTED, every_state, statuses_at

    root = every_state(tmp_path / "factory")
    statuses = list(statuses_at(root).values())
    text = dashboard.body(statuses, factory_repo="acme-platform/image-factory", site_url="https://acme.example/f/")
    rows = {line.split("|")[1].strip(" *"): line for line in text.splitlines() if line.startswith("| **")}
    assert {name: rows[name].split("|")[2].strip() for name in EXPECTED} == {
        name: dashboard.WORDS[state] for name, (state, _) in EXPECTED.items()
    }
    assert "2026-11-30T10:00:00Z" in rows["web"]  # when the waiting one becomes eligible
    assert "python-service" in rows["orders-api"]  # who blocks it
    graph = text[text.index("```mermaid") :]
    for name, (state, _) in EXPECTED.items():
        if state != "up-to-date":  # an up-to-date one appears only as the parent of one that is not
            assert f'"{name}: {dashboard.WORDS[state]}"' in graph, name
    assert "https://acme.example/f/" in text
