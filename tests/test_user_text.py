"""Free text given to the tool (reasons, errors) never becomes a GitHub Actions workflow command,
in what the tool prints or in the Markdown it writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from image_factory.cli import main
from image_factory.discovery.discover import discover
from image_factory.rebuilds import events
from image_factory.user_text import markdown_text, one_line

HOSTILE = "broke npm ci\n::add-mask::ghs_secret\r\n::stop-commands::token\n::error file=x::forged"
DIGEST = "sha256:" + "ab" * 32


def commands_in(output: str) -> list[str]:
    """Lines GitHub Actions would run as workflow commands (leading spaces are ignored)."""
    return [line for line in output.splitlines() if line.lstrip().startswith("::")]


@pytest.fixture
def chain(factory):
    factory.write(
        "images.yaml",
        """
        images:
          - name: app
            registry: ghcr.io
            repository: acme/app
            source: {provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}
        """,
    )
    factory.write("app/Dockerfile", "FROM python:3.12-slim\n")
    discover(factory.root)
    events.record_update(factory.root, "python:3.12-slim", DIGEST, datetime(2026, 11, 1, tzinfo=UTC), None)
    return factory


@pytest.mark.parametrize(
    "command",
    [
        ["reject", "--image", "python:3.12-slim", "--digest", DIGEST, "--reason", HOSTILE],
        ["expedite", "--image", "python:3.12-slim", "--digest", DIGEST, "--reason", HOSTILE],
        [
            "record-update",
            "--image",
            "python:3.12-slim",
            "--digest",
            DIGEST,
            "--verified",
            "false",
            "--reason",
            HOSTILE,
        ],
        ["record-build", "--image", "app", "--result", "failure", "--bases", "{}", "--error", HOSTILE],
    ],
    ids=["reject", "expedite", "record-update", "record-build"],
)
def test_a_reason_with_workflow_commands_is_stored_and_printed_on_one_line(chain, capsys, command):
    assert main([command[0], "--root", str(chain.root), *command[1:]]) == 0
    out = capsys.readouterr()
    assert commands_in(out.out + out.err) == []
    state = "".join(path.read_text() for path in (chain.root / "state").rglob("*.yaml"))
    assert "broke npm ci ::add-mask::ghs_secret ::stop-commands::token ::error file=x::forged" in state
    assert main(["plan", "--root", str(chain.root)]) == 0
    out = capsys.readouterr()
    assert commands_in(out.out + out.err) == []
    assert main(["plan", "--root", str(chain.root), "--json"]) == 0
    json.loads(capsys.readouterr().out)  # JSON keeps the text as data


def test_text_that_starts_like_a_command_is_marked():
    assert one_line("::add-mask::x") == "» ::add-mask::x"
    assert one_line("  \n::set-output name=x::y") == "» ::set-output name=x::y"
    assert one_line("CVE-2026-1234\u2028::error::x") == "CVE-2026-1234 ::error::x"


def test_markdown_gets_text_not_markup():
    assert markdown_text("bad | digest <img src=x onerror=alert(1)> [link](http://x) *bold*") == (
        "bad \\| digest &lt;img src=x onerror=alert(1)&gt; \\[link\\](http://x) \\*bold\\*"
    )


def test_the_plan_in_a_job_summary_shows_stored_text_and_renders_none_of_it(chain, capsys):
    """A reject reason full of Markdown (a link, an image, HTML, a mention, code fences) lands in
    the job summary as text: inside one code block that nothing in it can close."""
    reason = "see [Approve](https://evil.example) ![x](https://evil.example/t.png) <b>@acme/admins</b> ```` ~~~"
    reject = ["reject", "--root", str(chain.root), "--image", "python:3.12-slim", "--digest", DIGEST]
    assert main([*reject, "--reason", reason]) == 0
    capsys.readouterr()
    assert main(["plan", "--root", str(chain.root), "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["## Rebuild plan", "", "`````text"]
    fence = "`````"
    assert lines[-1] == fence
    body = lines[3:-1]
    assert not any(line.lstrip(" ").startswith("```") or line.lstrip(" ").startswith("~~~") for line in body)
    assert any(reason in line for line in body)  # shown as it was given


def test_bidirectional_overrides_are_written_out_wherever_text_is_shown(chain, capsys, tmp_path):
    """An override (U+202E) makes a reason read otherwise than it is written: the terminal, the job
    summary, the site and the dashboard show it as <U+202E>, never as the character."""
    reason = "safe \u202e4pm.exe\u202c \u2066hidden\u2069"
    reject = ["reject", "--root", str(chain.root), "--image", "python:3.12-slim", "--digest", DIGEST]
    assert main([*reject, "--reason", reason]) == 0
    shown = [capsys.readouterr().out]
    for command in (["plan"], ["plan", "--markdown"], ["status"], ["dashboard", "--dry-run", "--repo", "acme/f"]):
        main([command[0], "--root", str(chain.root), *command[1:]])
        shown.append(capsys.readouterr().out)
    assert main(["site", "--root", str(chain.root), "--out", str(tmp_path / "site")]) == 0
    shown += [page.read_text() for page in (tmp_path / "site").rglob("*.html")]
    everything = "".join(shown)
    assert not any(mark in everything for mark in "\u202e\u202c\u2066\u2069")
    assert sum("<U+202E>" in text or "&lt;U+202E&gt;" in text for text in shown) >= 4
