"""Opening (or updating) the factory pull request of a team repository, through PyGithub.

One commit carries every changed file (Git Data API: one tree with the contents inline, one
commit, one ref), on one branch per team repository, force-updated. The number of API calls does
not depend on how many files changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from image_factory.errors import FactoryError, Problem
from image_factory.federation.proposal import Proposal

MAX_RATE_LIMIT_WAIT = 60  # seconds: wait this long for a rate limit to reset, fail beyond it


def _github_error(error, repo: str, doing: str) -> FactoryError:
    from github import RateLimitExceededException

    message = error.data.get("message", "") if isinstance(error.data, dict) else str(error.data or "")
    headers = {k.lower(): v for k, v in (error.headers or {}).items()}
    if isinstance(error, RateLimitExceededException) or headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset")
        when = datetime.fromtimestamp(int(reset), UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if reset else "later"
        return FactoryError(Problem("github", f"rate limit exhausted while {doing}: it resets at {when}"))
    if error.status == 404:
        return FactoryError(
            Problem(
                "github",
                f"{repo} not found while {doing} (404): the token needs Contents and Pull requests "
                f"write on {repo}, and must be able to see it",
            )
        )
    if error.status in (401, 403):
        return FactoryError(Problem("github", f"GitHub refused {doing} on {repo} ({error.status}): {message}"))
    return FactoryError(Problem("github", f"GitHub answered {error.status} while {doing} on {repo}: {message}"))


def _call(action: Callable, repo: str, doing: str, sleep: Callable[[float], None], clock: Callable[[], float]):
    """Run one API call; wait out a rate limit that resets soon, once."""
    from github import GithubException

    for attempt in (1, 2):
        try:
            return action()
        except GithubException as error:
            headers = {k.lower(): v for k, v in (error.headers or {}).items()}
            reset = headers.get("x-ratelimit-reset")
            if attempt == 1 and headers.get("x-ratelimit-remaining") == "0" and reset:
                wait = int(reset) - clock()
                if 0 <= wait <= MAX_RATE_LIMIT_WAIT:
                    sleep(wait + 1)
                    continue
            raise _github_error(error, repo, doing) from None
    return None


def open_or_update(
    client,
    factory_repo: str,
    base_branch: str,
    proposal: Proposal,
    *,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> str:
    """Push the proposal as one commit on its branch and open its pull request, or update both."""
    from github import GithubException, InputGitTreeElement

    sleep, clock = sleep or time.sleep, clock or time.time

    def call(action, doing):
        return _call(action, factory_repo, doing, sleep, clock)

    # Not lazy: objects must carry the URLs GitHub returns (a lazy GitRef would PATCH .../git/ref/...).
    repo = call(lambda: client.withLazy(False).get_repo(factory_repo), f"reading {factory_repo}")
    base = call(lambda: repo.get_git_ref(f"heads/{base_branch}"), f"reading branch {base_branch}")
    parent = call(lambda: repo.get_git_commit(base.object.sha), "reading the base commit")
    elements = [
        InputGitTreeElement(path, "100644", "blob", content=text)
        if text is not None
        else InputGitTreeElement(path, "100644", "blob", sha=None)
        for path, text in sorted(proposal.files.items())
    ]
    tree = call(lambda: repo.create_git_tree(elements, parent.tree), "writing the tree")
    message = f"{proposal.title}\n\n" + "\n".join(f"{c.image}: {', '.join(c.new_bases)}" for c in proposal.changes)
    commit = call(lambda: repo.create_git_commit(message, tree, [parent]), "writing the commit")

    ref_name = f"refs/heads/{proposal.branch}"
    try:
        repo.create_git_ref(ref_name, commit.sha)
    except GithubException as error:
        if error.status != 422 or "already exists" not in str(error.data):
            raise _github_error(error, factory_repo, f"creating {ref_name}") from None
        # The branch from an earlier run: move it to the new commit (it only ever holds ours).
        branch = call(lambda: repo.get_git_ref(f"heads/{proposal.branch}"), f"reading {ref_name}")
        call(lambda: branch.edit(commit.sha, force=True), f"updating {ref_name}")

    owner = factory_repo.split("/")[0]
    head = f"{owner}:{proposal.branch}"
    existing = call(lambda: list(repo.get_pulls(state="open", head=head, base=base_branch)), "listing pull requests")
    if existing:
        pull = existing[0]
        call(lambda: pull.edit(title=proposal.title, body=proposal.body()), "updating the pull request")
        return pull.html_url
    try:
        pull = repo.create_pull(base=base_branch, head=proposal.branch, title=proposal.title, body=proposal.body())
    except GithubException as error:
        if error.status == 422 and "already exists" in str(error.data):  # opened meanwhile: same branch
            pulls = call(lambda: list(repo.get_pulls(state="open", head=head, base=base_branch)), "listing pulls")
            if pulls:
                return pulls[0].html_url
        raise _github_error(error, factory_repo, "opening the pull request") from None
    return pull.html_url
