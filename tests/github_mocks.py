"""GitHub REST API mocks for `responses`, in GitHub's documented request and response shapes."""

from __future__ import annotations

import responses

API = "https://api.github.com:443/repos/acme/factory"
BASE, TREE, NEW_TREE, NEW_COMMIT = "a" * 40, "b" * 40, "c" * 40, "d" * 40
BRANCH = "image-factory/acme-payments"


def ref_json(ref: str, sha: str) -> dict:
    return {
        "ref": ref,
        "node_id": "MDM6UmVmcmVmcy9oZWFkcy9tYWlu",
        "url": f"{API.replace(':443', '')}/git/{ref}",
        "object": {"type": "commit", "sha": sha, "url": f"{API.replace(':443', '')}/git/commits/{sha}"},
    }


def commit_json(sha: str, tree: str, parents: list[str]) -> dict:
    person = {"name": "Octo", "email": "octo@example.com", "date": "2026-11-24T10:00:00Z"}
    return {
        "sha": sha,
        "node_id": "C_kwDO",
        "url": f"https://api.github.com/repos/acme/factory/git/commits/{sha}",
        "html_url": f"https://github.com/acme/factory/commit/{sha}",
        "author": person,
        "committer": person,
        "message": "seed",
        "tree": {"sha": tree, "url": f"https://api.github.com/repos/acme/factory/git/trees/{tree}"},
        "parents": [{"sha": p, "url": f"https://api.github.com/repos/acme/factory/git/commits/{p}"} for p in parents],
        "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
    }


def pull_json(number: int) -> dict:
    return {
        "url": f"https://api.github.com/repos/acme/factory/pulls/{number}",
        "id": 1,
        "number": number,
        "state": "open",
        "html_url": f"https://github.com/acme/factory/pull/{number}",
        "title": "Image Factory: bases of acme/payments",
        "body": "",
        "head": {"ref": BRANCH, "sha": NEW_COMMIT, "label": f"acme:{BRANCH}"},
        "base": {"ref": "main", "sha": BASE, "label": "acme:main"},
    }


def repo_json() -> dict:
    return {
        "id": 1296269,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": "factory",
        "full_name": "acme/factory",
        "private": True,
        "owner": {"login": "acme", "id": 1, "type": "Organization"},
        "html_url": "https://github.com/acme/factory",
        "url": "https://api.github.com/repos/acme/factory",
        "default_branch": "main",
    }


def mock_happy_path(*, branch_exists=False, pull_exists=False):
    responses.add(responses.GET, API, json=repo_json())
    responses.add(responses.GET, f"{API}/git/ref/heads/main", json=ref_json("refs/heads/main", BASE))
    responses.add(responses.GET, f"{API}/git/commits/{BASE}", json=commit_json(BASE, TREE, []))
    responses.add(
        responses.POST,
        f"{API}/git/trees",
        status=201,
        json={"sha": NEW_TREE, "url": "u", "tree": [], "truncated": False},
    )
    responses.add(responses.POST, f"{API}/git/commits", status=201, json=commit_json(NEW_COMMIT, NEW_TREE, [BASE]))
    if branch_exists:
        responses.add(
            responses.POST,
            f"{API}/git/refs",
            status=422,
            json={
                "message": "Reference already exists",
                "documentation_url": "https://docs.github.com/rest/git/refs#create-a-reference",
                "status": "422",
            },
        )
        responses.add(responses.GET, f"{API}/git/ref/heads/{BRANCH}", json=ref_json(f"refs/heads/{BRANCH}", "e" * 40))
        responses.add(
            responses.PATCH, f"{API}/git/refs/heads/{BRANCH}", json=ref_json(f"refs/heads/{BRANCH}", NEW_COMMIT)
        )
    else:
        responses.add(responses.POST, f"{API}/git/refs", status=201, json=ref_json(f"refs/heads/{BRANCH}", NEW_COMMIT))
    responses.add(responses.GET, f"{API}/pulls", json=[pull_json(7)] if pull_exists else [])
    if pull_exists:
        responses.add(responses.PATCH, f"{API}/pulls/7", json=pull_json(7))
    else:
        responses.add(responses.POST, f"{API}/pulls", status=201, json=pull_json(8))
