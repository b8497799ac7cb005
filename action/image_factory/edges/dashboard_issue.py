"""The dashboard issue on GitHub, through PyGithub, at the edge: found by its label, edited in
place, opened when none is open, never duplicated.

Calls (GitHub's REST API): `GET /repos/{repo}/issues?labels=…&state=open&sort=created&direction=asc`
to find it; `PATCH /repos/{repo}/issues/{number}` when its body changed (nothing when it did not);
otherwise `POST /repos/{repo}/labels` (a 422 `already_exists` is fine) and `POST /repos/{repo}/issues`.
Every refusal or network failure is one FactoryError saying what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from image_factory.edges import github_client
from image_factory.errors import FactoryError, Problem

LABEL = "image-factory-dashboard"
LABEL_COLOUR = "1d76db"
LABEL_DESCRIPTION = "The Image Factory dashboard: rewritten by the events workflow"
MAX_PAGES = 10  # of 100 open issues with the label: far more than a repository should ever have


def valid_repo(name: str) -> bool:
    """`OWNER/NAME` as GitHub spells repositories."""
    return re.fullmatch(r"[A-Za-z0-9-]+/[A-Za-z0-9_.-]+", name) is not None


@dataclass(frozen=True)
class Outcome:
    action: str  # "created", "edited" or "unchanged"
    number: int
    url: str
    warnings: list[str] = field(default_factory=list)


def update(client, repo: str, title: str, body: str, label: str = LABEL) -> Outcome:
    """Make the open issue labelled `label` in `repo` carry `body`, or open it."""
    import requests
    from github import GithubException

    doing = f"listing the open issues labelled {label}"
    try:
        found = _open_issues(client, repo, label)
        warnings = []
        if found:
            issue = min(found, key=lambda item: (item.get("created_at") or "", item["number"]))
            if len(found) > 1:
                others = ", ".join(f"#{item['number']}" for item in found if item is not issue)
                warnings.append(
                    f"{len(found)} open issues in {repo} carry the label {label}: edited the oldest, "
                    f"#{issue['number']}; close the others ({others})"
                )
            if _same(issue.get("body") or "", body):
                return Outcome("unchanged", issue["number"], issue["html_url"], warnings)
            doing = f"editing the dashboard issue #{issue['number']}"
            _, edited = client.requester.requestJsonAndCheck(
                "PATCH", f"/repos/{repo}/issues/{issue['number']}", input={"body": body}
            )
            return Outcome("edited", edited["number"], edited["html_url"], warnings)
        doing = f"creating the label {label}"
        target = client.get_repo(repo)  # lazy: no request
        try:
            target.create_label(label, LABEL_COLOUR, LABEL_DESCRIPTION)
        except GithubException as error:
            if not _already_exists(error):
                raise
        doing = "opening the dashboard issue"
        created = target.create_issue(title=title, body=body, labels=[label])
        return Outcome("created", created.number, created.html_url, warnings)
    except GithubException as error:
        raise FactoryError(Problem("github", explain(error, repo, doing))) from None
    except (requests.exceptions.RequestException, OSError) as error:
        cause = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        raise FactoryError(
            Problem("github", f"could not reach GitHub while {doing} in {repo}: {cause}; the next event tries again")
        ) from None


def _open_issues(client, repo: str, label: str) -> list[dict]:
    """The open issues (not pull requests) with the label, as GitHub's JSON. Read through the
    requester: PyGithub's `Issue.pull_request` would GET each issue again to learn it has none
    (the issues endpoint returns pull requests too, told apart by their `pull_request` key)."""
    found: list[dict] = []
    parameters = {"labels": label, "state": "open", "sort": "created", "direction": "asc", "per_page": 100}
    for page in range(1, MAX_PAGES + 1):
        _, items = client.requester.requestJsonAndCheck(
            "GET", f"/repos/{repo}/issues", parameters={**parameters, "page": page}
        )
        found += [item for item in items if "pull_request" not in item]
        if len(items) < parameters["per_page"]:
            break
    return found


def _same(stored: str, body: str) -> bool:
    """GitHub may hand a body back with CRLF line ends or without its last newline."""
    return stored.replace("\r\n", "\n").rstrip() == body.replace("\r\n", "\n").rstrip()


def _already_exists(error) -> bool:
    data = error.data if isinstance(error.data, dict) else {}
    return error.status == 422 and any(
        isinstance(item, dict) and item.get("code") == "already_exists" for item in data.get("errors", [])
    )


def explain(error, repo: str, doing: str) -> str:
    """GitHub's refusal in words, with what to do."""
    message = github_client.message_of(error)
    if (when := github_client.rate_limit_reset(error)) is not None:
        return f"GitHub rate limit exhausted ({error.status}) while {doing} in {repo}: it resets at {when}"
    if error.status == 401:
        return f"GitHub refused the token (401) while {doing} in {repo}: it is wrong or expired"
    if error.status == 403:
        return (
            f"forbidden (403) while {doing} in {repo}: the token needs Issues: write there "
            f"(the events workflow's job: `permissions: issues: write`) ({message})"
        )
    if error.status == 404:
        return (
            f"{repo} was not found (404) while {doing}: check --repo (or kargo.factoryRepo) and that the "
            f"token can see {repo}"
        )
    if error.status == 410:
        return f"issues are turned off in {repo} (410) while {doing}: turn them on in its settings ({message})"
    if error.status == 422:
        details = "; ".join(
            str(item.get("message") or item.get("code"))
            for item in ((error.data or {}).get("errors") or [] if isinstance(error.data, dict) else [])
            if isinstance(item, dict)
        )
        return f"GitHub refused {doing} in {repo} (422): {message}" + (f" ({details})" if details else "")
    return f"GitHub answered {error.status} while {doing} in {repo}: {message}"
