"""`discover --check-pr`, validate.yml's check of a pull request: state derived in the checkout,
and a failure only for what the pull request itself must carry."""

from __future__ import annotations

from image_factory.cli import main

IMAGES = """kargo: {factoryRepo: acme/factory}
images:
  - name: base
    registry: ghcr.io
    repository: acme/base
    tag: "1"
    source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: build.yml}
  - name: web
    registry: ghcr.io
    repository: acme/web
    source: {provider: github, repo: acme/web, dockerfile: Dockerfile, workflow: build.yml}
"""


def factory(tmp_path):
    root = tmp_path / "factory"
    (root / "base").mkdir(parents=True)
    (root / "base/Dockerfile").write_text("FROM python:3.12-slim\n")
    (root / "images.yaml").write_text(IMAGES)
    team = tmp_path / "teams/acme/web"
    team.mkdir(parents=True)
    (team / "Dockerfile").write_text("FROM ghcr.io/acme/newthing:1\n")
    assert main(["discover", "--root", str(root), "--source-root", str(tmp_path / "teams")]) == 0
    return root


def test_a_team_image_linked_to_a_base_enrolled_since_is_derived_not_lacking(tmp_path, capsys):
    """The team proposed `FROM ghcr.io/acme/newthing:1`; the default branch has enrolled newthing
    since: discover links web to it, which the team's pull request cannot carry, nor need to."""
    root = factory(tmp_path)
    extra = '  - name: newthing\n    registry: ghcr.io\n    repository: acme/newthing\n    tag: "1"\n'
    extra += "    source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: build.yml}\n"
    (root / "images.yaml").write_text(IMAGES + extra)
    assert main(["discover", "--root", str(root)]) == 0  # the default branch, after its own pull request
    web = (root / "state/images/web.yaml").read_text()
    assert "image: newthing" in web
    capsys.readouterr()
    assert main(["discover", "--root", str(root), "--check-pr"]) == 0


def test_an_image_enrolled_or_a_dockerfile_changed_without_discover_is_lacking(tmp_path, capsys):
    root = factory(tmp_path)
    extra = "  - name: late\n    registry: ghcr.io\n    repository: acme/late\n"
    extra += "    source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: build.yml}\n"
    (root / "images.yaml").write_text(IMAGES + extra)
    capsys.readouterr()
    assert main(["discover", "--root", str(root), "--check-pr"]) == 1
    assert "behind: state/images/late.yaml" in capsys.readouterr().err
    root = factory(tmp_path / "second")
    (root / "base/Dockerfile").write_text("FROM python:3.13-slim\n")
    capsys.readouterr()
    assert main(["discover", "--root", str(root), "--check-pr"]) == 1
    assert "behind: state/images/base.yaml" in capsys.readouterr().err


def test_a_missing_source_root_is_an_error_and_a_missing_checkout_is_named(tmp_path, capsys):
    root = factory(tmp_path)
    assert main(["discover", "--root", str(root), "--source-root", str(tmp_path / "nowhere")]) == 1
    assert f"--source-root: {tmp_path / 'nowhere'} is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["discover", "--root", str(root), "--source-root", str(tmp_path / "empty"), "--full"]) == 0
    expected = tmp_path / "empty/acme/web"
    assert f"note: no checkout of acme/web at {expected}: web keeps its recorded bases" in capsys.readouterr().err


def test_ctrl_c_is_one_line_that_says_what_became_of_state(tmp_path, capsys, monkeypatch):
    from image_factory.rebuilds import planner

    root = factory(tmp_path)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(planner, "plan", interrupted)
    capsys.readouterr()
    assert main(["plan", "--root", str(root)]) == 130
    assert capsys.readouterr().err == "interrupted: state unchanged\n"  # and no traceback


def test_every_command_says_what_it_does_and_times_may_be_relative(tmp_path, capsys):
    from datetime import timedelta

    from image_factory.cli.app import build_parser
    from image_factory.cli.common import when
    from image_factory.timestamps import now

    parser = build_parser()
    commands = next(action for action in parser._actions if hasattr(action, "choices") and action.choices)
    for name, command in commands.choices.items():
        assert command.description, name
        for action in command._actions:
            if action.metavar == "TIME":
                assert "+7d" in action.help, (name, action.dest)
    assert abs(when("+7d", "--now") - (now() + timedelta(days=7))) <= timedelta(seconds=2)
    assert abs(when("-36h", "--now") - (now() - timedelta(hours=36))) <= timedelta(seconds=2)
    root = factory(tmp_path)
    capsys.readouterr()
    assert main(["plan", "--root", str(root), "--now", "+1 week"]) == 1
    assert "'+1 week'" in capsys.readouterr().err
