"""Where things stand: `status`, `graph`, `site` and `dashboard`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from image_factory.cli.common import (
    DISCARD_JOURNAL_HELP,
    discarded,
    discover,
    github_client,
    graph,
    parse_duration,
    planner,
    status,
    when,
)
from image_factory.errors import FactoryError, Problem
from image_factory.user_text import command_data


def register(commands, root: argparse.ArgumentParser) -> None:
    """This group's commands, each with its handler below."""
    stale = commands.add_parser(
        "status", parents=[root], help="images built on a base digest older than the current one"
    )
    stale.add_argument("--now", metavar="TIME", help="as of this time (default: now)")
    stale.add_argument("--json", action="store_true")
    stale.set_defaults(run=_status)

    summary = commands.add_parser(
        "step-summary", help="add a Markdown file to the job summary, cut to GitHub's 1 MiB per step if need be"
    )
    summary.add_argument("file", type=Path, metavar="FILE", help="the Markdown to add")
    summary.add_argument(
        "--artifact",
        required=True,
        metavar="NAME",
        help="the artifact the workflow uploads FILE as when it is cut (named in the note)",
    )
    summary.set_defaults(run=_step_summary)

    picture = commands.add_parser("graph", parents=[root], help="the dependency graph of bases and managed images")
    picture.add_argument("--format", choices=["mermaid", "dot", "json"], default="mermaid")
    picture.set_defaults(run=_graph)

    page = commands.add_parser("site", parents=[root], help="write the status site: every image's state, the graph")
    page.add_argument("--out", type=Path, help="output folder (default: ROOT/site)")
    page.add_argument("--now", metavar="TIME", help="as of this time (default: now)")
    page.add_argument("--discard-journal", action="store_true", help=DISCARD_JOURNAL_HELP)
    page.set_defaults(run=_site)

    board = commands.add_parser(
        "dashboard", parents=[root], help="write where every image stands into the factory's dashboard issue"
    )
    board.add_argument("--repo", metavar="OWNER/NAME", help="default: kargo.factoryRepo, else $GITHUB_REPOSITORY")
    board.add_argument("--now", metavar="TIME", help="as of this time (default: now)")
    board.add_argument("--site-url", metavar="URL", help="the status site, linked for what the issue cannot hold")
    board.add_argument("--dry-run", action="store_true", help="print the issue body, call nothing")
    board.add_argument("--token", help="default: $GITHUB_TOKEN")
    board.add_argument("--api-url", help="GitHub API (default: $GITHUB_API_URL or https://api.github.com)")
    board.set_defaults(run=_dashboard)


def _status(args: argparse.Namespace) -> int:
    config, state = discover.load_model(args.root, settings_only=True)
    now = when(args.now, "--now")
    plan = planner.plan(state, now, parse_duration(config.cascade_delay))
    rows, unbuilt = status.stale_images(state, plan, now), status.never_built(state, plan, now)
    if args.json:
        print(json.dumps({"stale": rows, "neverBuilt": unbuilt}, indent=2))
        return 0
    if not rows and not unbuilt:
        print("every managed image is built on the current digest of its bases (as far as state knows)")
    for row in unbuilt:
        if row["build"].startswith("bases unknown"):
            print(f"{row['image']}: never built; {row['build']}")
            continue
        pins = row["wouldBuildOn"].items()
        bases = ", ".join(f"{key}@{digest}" if digest else f"{key} (no digest eligible yet)" for key, digest in pins)
        print(f"{row['image']}: never built; its first build would use {bases or 'no base'}; {row['build']}")
    for row in rows:
        print(
            f"{row['image']} ← {row['base']}: built on {row['built'][:19]}…, current {row['current'][:19]}… "
            f"(since {row['currentSince']}, {row['age']}); {row['rebuild']}"
        )
    return 0


def _graph(args: argparse.Namespace) -> int:
    _, state = discover.load_model(args.root, settings_only=True)
    print(graph.render(state, args.format))
    return 0


def _site(args: argparse.Namespace) -> int:
    from image_factory.output import site

    out = args.out or args.root / "site"
    if args.discard_journal:
        discarded(out / site.JOURNAL)
    outcome = site.build(args.root, out, when(args.now, "--now"))
    pages = sum(1 for path in outcome.files if path.startswith("images/"))
    print(
        f"{out / 'index.html'}: {pages} image pages, {len(outcome.changed)} files written, "
        f"{len(outcome.removed)} removed"
    )
    print(f"graph: {outcome.graph.note}")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from image_factory.edges import dashboard_issue
    from image_factory.output import dashboard, overview

    config, state = discover.load_model(args.root, settings_only=True)
    repo = args.repo or config.kargo.factory_repo or os.environ.get("GITHUB_REPOSITORY")
    if not repo:
        raise FactoryError(
            Problem(
                "--repo",
                "which repository holds the dashboard? pass --repo OWNER/NAME, or set kargo.factoryRepo in "
                "images.yaml or $GITHUB_REPOSITORY",
            )
        )
    if not dashboard_issue.valid_repo(repo):
        raise FactoryError(Problem("--repo", f"{repo!r} is not a GitHub repository (OWNER/NAME)"))
    if args.site_url is not None and not dashboard.valid_site_url(args.site_url):
        raise FactoryError(Problem("--site-url", f"not an http(s) address: {args.site_url!r}"))
    now = when(args.now, "--now")
    plan = planner.plan(state, now, parse_duration(config.cascade_delay))
    statuses = overview.overview(state, plan, now, config.kargo.factory_repo)
    text = dashboard.body(statuses, factory_repo=repo, site_url=args.site_url)
    if args.dry_run:
        print(text, end="")
        return 0
    token = args.token or os.environ.get("GITHUB_TOKEN")
    api_url = args.api_url or os.environ.get("GITHUB_API_URL") or "https://api.github.com"
    outcome = dashboard_issue.update(github_client.connect(token, api_url), repo, dashboard.TITLE, text)
    for warning in outcome.warnings:
        print(f"warning: {warning}", file=sys.stderr)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            print(f"::warning::{command_data(warning)}", file=sys.stderr)  # stdout may be a summary (see app)
    print(f"dashboard issue #{outcome.number} {outcome.action}: {outcome.url}")
    return 0


def _step_summary(args: argparse.Namespace) -> int:
    from image_factory.output import summary

    try:
        text = args.file.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise FactoryError(Problem(str(args.file), error.strerror or str(error))) from None
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    used = Path(target).stat().st_size if target and Path(target).exists() else 0
    fitted, cut = summary.fit(text, summary.LIMIT - used, args.artifact)
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(fitted)
    else:
        sys.stdout.write(fitted)
    if path := os.environ.get("GITHUB_OUTPUT"):
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"cut={'true' if cut else 'false'}\n")
    if cut:
        print(f"{args.file}: {len(text.encode()):,} bytes, cut to fit the job summary", file=sys.stderr)
    return 0
