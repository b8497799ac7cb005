"""GitHub through PyGithub, at the edge: one call per dispatch, and errors worded for people."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from image_factory.errors import FactoryError, Problem

if TYPE_CHECKING:
    from github import Github, GithubException


class DispatchFailed(Exception):
    """GitHub answered with an error, or could not be reached; `str()` says what happened and
    what to do. The dispatch is recorded as failed and sent again by the next `dispatch`."""


def connect(token: str | None, api_url: str) -> Github:
    from github import Auth, Github  # imported here: it costs every other command 0.2 s at start-up

    if not token:
        raise FactoryError(Problem("GITHUB_TOKEN", "no GitHub token: set GITHUB_TOKEN (or pass --token)"))
    # No automatic retries: a rate limit is reported with its reset time instead of sleeping.
    # PyGithub spaces writes a second apart (GitHub's advice against secondary rate limits);
    # IMAGE_FACTORY_GITHUB_WRITE_INTERVAL changes that (the tests set 0 against their mock).
    interval = float(os.environ.get("IMAGE_FACTORY_GITHUB_WRITE_INTERVAL", "1"))
    return Github(
        timeout=int(os.environ.get("IMAGE_FACTORY_GITHUB_TIMEOUT", "15")),  # seconds per request (PyGithub: int)
        auth=Auth.Token(token),
        base_url=api_url,
        retry=None,
        lazy=True,
        seconds_between_requests=min(interval, 0.25),
        seconds_between_writes=interval,
    )


def dispatch_workflow(client: Github, repo: str, workflow: str, ref: str, inputs: dict[str, str]) -> None:
    """`POST /repos/{repo}/actions/workflows/{workflow}/dispatches`; GitHub answers 204."""
    import requests
    from github import GithubException

    try:
        client.get_repo(repo).get_workflow(workflow).create_dispatch(ref=ref, inputs=inputs, throw=True)
    except GithubException as error:
        raise DispatchFailed(explain(error, repo, workflow)) from None
    except requests.exceptions.Timeout as error:
        # The request may have reached GitHub: a second dispatch may start a second, identical run.
        raise DispatchFailed(
            f"no answer from GitHub for {workflow} in {repo} ({type(error).__name__}): it may or may not "
            "have started; dispatch sends it again"
        ) from None
    except (requests.exceptions.RequestException, OSError) as error:
        raise DispatchFailed(f"could not reach GitHub for {workflow} in {repo}: {_cause(error)}") from None


def _cause(error: BaseException) -> str:
    """The innermost reason of a network error (DNS, refused, reset), in one line."""
    while error.__context__ is not None and not isinstance(error.__context__, KeyboardInterrupt):
        error = error.__context__
    return f"{type(error).__name__}: {error}".splitlines()[0][:300]


def message_of(error: GithubException) -> str:
    """GitHub's own words in an error answer."""
    return (error.data or {}).get("message", "") if isinstance(error.data, dict) else str(error.data or "")


def rate_limit_reset(error: GithubException) -> str | None:
    """When an exhausted rate limit resets (`later` when GitHub did not say); None: not a rate limit."""
    from github import RateLimitExceededException

    headers = {key.lower(): value for key, value in (error.headers or {}).items()}
    if not isinstance(error, RateLimitExceededException) and not (
        error.status in (403, 429) and headers.get("x-ratelimit-remaining") == "0"
    ):
        return None
    reset = headers.get("x-ratelimit-reset")
    return datetime.fromtimestamp(int(reset), UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if reset else "later"


def explain(error: GithubException, repo: str, workflow: str) -> str:
    message = message_of(error)
    if (when := rate_limit_reset(error)) is not None:
        return f"GitHub rate limit exhausted ({error.status}): it resets at {when}; dispatch again then"
    if error.status == 401:
        return "GitHub refused the token (401): it is wrong or expired"
    if error.status == 403:
        return f"forbidden (403) on {repo}: the token needs Actions: write there ({message})"
    if error.status == 404:
        return (
            f"{repo} or its workflow {workflow} was not found (404): check the repository, the workflow file "
            f"name, and that the token can see {repo}"
        )
    if error.status == 422:
        return f"GitHub refused the dispatch of {workflow} in {repo} (422): {message}"
    return f"GitHub answered {error.status} for {workflow} in {repo}: {message}"
