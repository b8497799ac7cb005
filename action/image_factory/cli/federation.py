"""Team repositories: `open-pr`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from image_factory.cli.common import (
    github_client,
    github_outputs,
    proposal,
    pull_request,
)
from image_factory.errors import FactoryError, Problem
from image_factory.user_text import command_data, command_property


def register(commands, root: argparse.ArgumentParser) -> None:
    """This group's commands, each with its handler below."""
    pr = commands.add_parser("open-pr", help="propose a team repository's discovered bases to the factory")
    pr.add_argument("--factory-repo", required=True, metavar="OWNER/NAME")
    pr.add_argument("--factory-root", type=Path, default=Path("."), help="a checkout of the factory (default: .)")
    pr.add_argument("--source-root", type=Path, help="the team's checkout (default: $GITHUB_WORKSPACE or .)")
    pr.add_argument("--team-repo", metavar="OWNER/NAME", help="default: $GITHUB_REPOSITORY")
    pr.add_argument("--image", action="append", default=[], metavar="NAME", help="default: every image built here")
    pr.add_argument("--base", default="main", help="the factory's branch to propose to")
    pr.add_argument("--dry-run", action="store_true", help="print the proposal, call nothing")
    pr.add_argument(
        "--enrol",
        action="store_true",
        help="also propose images.yaml entries for the Dockerfiles here no enrolled image builds",
    )
    pr.add_argument("--token", help="default: $GITHUB_TOKEN")
    pr.add_argument("--api-url", help="GitHub API (default: $GITHUB_API_URL or https://api.github.com)")
    pr.set_defaults(run=_open_pr)


def _open_pr(args: argparse.Namespace) -> int:
    team_repo = args.team_repo or os.environ.get("GITHUB_REPOSITORY")
    if not team_repo:
        raise FactoryError(
            Problem("--team-repo", "which repository is this? pass --team-repo or set GITHUB_REPOSITORY")
        )
    checkout = args.source_root or Path(os.environ.get("GITHUB_WORKSPACE", "."))
    found = proposal.propose(args.factory_root, team_repo, checkout, args.image or None, enrol=args.enrol)
    for item in [*found.unresolved, *found.overridden]:  # never silent: a base not watched, an ARG replaced
        print(f"warning: {item.dockerfile}:{item.line}: {item.warning()}", file=sys.stderr)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            where = f"file={command_property(item.dockerfile)},line={item.line}"
            print(f"::warning {where}::{command_data(item.warning())}", file=sys.stderr)  # see app.main
    url = ""
    if not found.changed:
        print(f"nothing changed: the factory already has the bases of {', '.join(found.images)}")
    elif args.dry_run:
        print(found.body())
    else:
        token = args.token or os.environ.get("GITHUB_TOKEN")
        api_url = args.api_url or os.environ.get("GITHUB_API_URL") or "https://api.github.com"
        client = github_client.connect(token, api_url)
        url = pull_request.open_or_update(client, args.factory_repo, args.base, found)
        print(f"pull request: {url}")
    github_outputs(
        {"pr-url": url, "changed": "true" if found.changed else "false"}, found.body() if found.changed else ""
    )
    return 0
