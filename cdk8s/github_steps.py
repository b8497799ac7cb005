"""The `http` promotion steps that call GitHub: the factory's events and workflow dispatches."""

from __future__ import annotations

from image_factory.enrolment.model import Config
from kargo_expressions import json_body, secret, string

GITHUB_HEADERS = (("Accept", "application/vnd.github+json"), ("X-GitHub-Api-Version", "2022-11-28"))
# GitHub answers a dispatch with 204, and with 200 and the run's details when asked for them (the
# workflow dispatch endpoint's `return_run_details`): any 2xx succeeds. A 4xx is a refusal (bad
# token, unknown workflow, bad inputs) and fails the promotion with GitHub's message, except for
# its rate limits: 429, and 403 with no requests left or a Retry-After (primary and secondary
# limits). Those and 5xx are neither success nor failure: the http step polls, re-sending the
# request, until the retry timeout.
SUCCESS = "response.status >= 200 && response.status < 300"
RATE_LIMITED = "(response.header('X-RateLimit-Remaining') == '0' || response.header('Retry-After') != '')"
REFUSED = (
    "response.status >= 400 && response.status < 500 && response.status != 429"
    f" && !(response.status == 403 && {RATE_LIMITED})"
)
MESSAGE = "response.body.message"
# Kargo's default errorThreshold is 1: one timeout or connection error would fail the promotion,
# and Kargo never auto-promotes that Freight again. An errored step is retried after the
# controller's exponential backoff (5 ms doubling, at most 1000 s), so the threshold buys
# attempts, not time: 20 rides out about half an hour of GitHub being unreachable, and the
# step's timeout ends it after an hour whatever happens (docs/kargo.md §4).
RETRY = {"errorThreshold": 20, "timeout": "1h"}
POLL_INTERVAL = "1m"


def factory_event(config: Config, name: str, event_type: str, payload: dict) -> list[dict]:
    """Steps sending the factory repository a `repository_dispatch` event."""
    settings = config.kargo
    return github_call(
        config,
        name=name,
        url=f"{settings.github_api_url}/repos/{settings.factory_repo}/dispatches",
        body={"event_type": event_type, "client_payload": payload},
        refused=f"GitHub refused the {event_type} dispatch",
    )


def github_call(config: Config, *, name: str, url: str, body: dict, refused: str) -> list[dict]:
    """An `http` step calling GitHub: any 2xx succeeds; a refusal fails the promotion with GitHub's
    own message (Kargo shows `HTTP (422) response met failure criteria: "<message>"`); rate
    limits and 5xx are polled until the retry timeout. `refused` opens the failure message."""
    settings = config.kargo
    token = secret(settings.token_secret_name, settings.token_secret_key).template()
    headers = [{"name": "Authorization", "value": f"Bearer {token}"}]
    headers += [{"name": key, "value": value} for key, value in GITHUB_HEADERS]
    headers.append({"name": "Content-Type", "value": "application/json"})
    headers.append({"name": "User-Agent", "value": "image-factory"})
    return [
        {
            "uses": "http",
            "as": name,
            "config": {
                "method": "POST",
                "url": url,
                "headers": headers,
                "body": json_body(body),
                "timeout": "30s",
                "pollInterval": POLL_INTERVAL,
                "successExpression": SUCCESS,
                "failureExpression": REFUSED,
                "errorExpression": f"{string(refused + ': ')} + ({MESSAGE} ?? 'no message')",
            },
            "retry": RETRY,
        }
    ]
