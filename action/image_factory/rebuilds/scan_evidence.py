"""What a scanner's findings decide about a new digest of a base, for one image. Pure.

The scan Job reports each new digest's findings (`base-image-scanned`, kept on its history
entry as `scan`). Against the digest the image is built on now:

- a new digest that no longer has a finding at or above the image's `scan.expedite` severity
  is due at once, like an expedited one: it fixes something that matters;
- a new digest with a finding at or above `scan.hold` that the built-on one lacks is held,
  like a rejected one: it brings something that matters. `unreject` accepts it anyway;
- anything else soaks as usual. So does a digest when either scan is missing, failed or was
  cut short: no evidence, no decision.

Findings are compared by vulnerability id. An id in `scan.ignore` counts for neither, until the
day after its `until` date. The policy is read from the image's enrolment, so a change to
images.yaml changes the decisions at once; nothing decided is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from image_factory.state.store import HistoryEntry
from image_factory.timestamps import parse_time
from image_factory.trust.scan_report import rank


@dataclass(frozen=True)
class Ignore:
    id: str
    reason: str
    until: date  # the last day it is ignored


@dataclass(frozen=True)
class ScanPolicy:
    expedite: str | None  # a fix of a finding this severe or more skips the delay; None: never
    hold: str | None  # a new finding this severe or more holds the digest; None: never
    ignore: tuple[Ignore, ...] = ()

    @classmethod
    def of(cls, enrolment: dict) -> ScanPolicy | None:
        """The image's policy, as discover wrote it into its enrolment; None: scanning is off."""
        scan = enrolment.get("scan")
        if not scan:
            return None
        ignore = tuple(
            Ignore(item["id"], item["reason"], date.fromisoformat(item["until"])) for item in scan.get("ignore", [])
        )
        return cls(_threshold(scan.get("expedite")), _threshold(scan.get("hold")), ignore)

    def ignored(self, vulnerability: str, now: datetime) -> bool:
        end = lambda day: datetime.combine(day + timedelta(days=1), time(), UTC)  # noqa: E731
        return any(item.id == vulnerability and now < end(item.until) for item in self.ignore)


def _threshold(word: str | None) -> str | None:
    return None if word in (None, "none") else word


@dataclass(frozen=True)
class Evidence:
    fixes: tuple[dict, ...] = ()  # findings of the built-on digest the new one no longer has
    introduces: tuple[dict, ...] = ()  # findings of the new digest the built-on one lacks
    note: str | None = None  # why the findings decide nothing, when they could have

    @property
    def expedites(self) -> bool:
        return bool(self.fixes) and not self.introduces


def judge(candidate: HistoryEntry, built_on: HistoryEntry | None, policy: ScanPolicy | None, now: datetime) -> Evidence:
    """What the findings of `candidate`, newer than the digest the image is built on, decide."""
    if policy is None or (policy.expedite is None and policy.hold is None):
        return Evidence()
    new, old = _usable(candidate, now), _usable(built_on, now) if built_on is not None else None
    if isinstance(new, str):
        return Evidence(note=new)
    if old is None:
        return Evidence(note="the digest it is built on has no findings recorded: the delay applies")
    if isinstance(old, str):
        return Evidence(note=f"the digest it is built on: {old}")
    old_ids, new_ids = {f["id"] for f in old}, {f["id"] for f in new}
    fixes = _worst_first(f for f in old if _counts(f, policy.expedite, policy, now) and f["id"] not in new_ids)
    introduces = _worst_first(f for f in new if _counts(f, policy.hold, policy, now) and f["id"] not in old_ids)
    return Evidence(fixes, introduces)


def _usable(entry: HistoryEntry, now: datetime) -> list[dict] | str:
    """The findings of a digest's scan by `now`, or why there are none to decide on."""
    scan = entry.get("scan")
    if not scan or parse_time(scan["at"]) > now:
        return "not scanned yet: the delay applies"
    if scan.get("error"):
        return f"its scan failed ({scan['error']}): the delay applies"
    if scan.get("omitted"):
        return f"its scan lists more findings than are kept ({scan['omitted']} left out): the delay applies"
    return scan.get("findings", [])


def _counts(finding: dict, threshold: str | None, policy: ScanPolicy, now: datetime) -> bool:
    return (
        threshold is not None
        and rank(finding["severity"]) >= rank(threshold)
        and not policy.ignored(finding["id"], now)
    )


def _worst_first(findings) -> tuple[dict, ...]:
    """One finding per id (its most severe), the most severe first."""
    by_id: dict[str, dict] = {}
    for finding in findings:
        if finding["id"] not in by_id or rank(finding["severity"]) > rank(by_id[finding["id"]]["severity"]):
            by_id[finding["id"]] = finding
    return tuple(sorted(by_id.values(), key=lambda f: (-rank(f["severity"]), f["id"])))


def describe(findings: tuple[dict, ...], limit: int = 3) -> str:
    """`CVE-2019-14697 (critical, musl)`, the first `limit`, then how many more."""
    shown = [f"{f['id']} ({f['severity']}, {f['package']})" for f in findings[:limit]]
    more = len(findings) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
