"""Where the site's pages are and what may be a link on them."""

from __future__ import annotations

from urllib.parse import quote, urlsplit


def page_name(name: str) -> str:
    """The file of an image's page, under images/ (names are DNS labels; quoted all the same)."""
    return f"{quote(name, safe='')}.html"


def team_of(repository: str) -> str:
    """The team an image belongs to: the owner of its source repository."""
    return repository.split("/", 1)[0]


def safe_url(url: str | None) -> str | None:
    """`url` when it may be a link (http or https with a host), else None: shown as text."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None
