"""What a scanner's findings decide about a new digest of a base, for one image. Pure.

The scan Job reports each new digest's findings (`base-image-scanned`, kept on its history
entry as `scan`). Against the digest the image is built on now:

- a new digest that no longer has a finding at or above the image's `scan.expedite` severity
  is due at once, like an expedited one: it fixes something that matters;
- a new digest with a finding at or above `scan.hold` that the built-on one lacks is held,
  like a rejected one: it brings something that matters. `unreject` accepts it anyway;
- anything else soaks as usual. So does a digest when either scan is missing or failed, or
  the two are by different scanners: no evidence, no decision.

Findings are compared by vulnerability id, at any severity (graded up and down between scans),
and only as a run that scanned both digests saw them: one vulnerability database, one view of
each vulnerability's affected versions. The scan Job scans the new digest and the newest
earlier ones in one run; each digest keeps its last runs (`pastScans`), so a decision lasts
after the built-on digest is no longer scanned again. A failed scan adds nothing and takes
nothing away. A fix skips the delay only when nothing it may bring is unknown. An id in
`scan.ignore` counts for neither, until the day after its `until` date. The policy is read from
the image's enrolment (written by discover), so nothing decided is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from image_factory.state.runtime_events import past_scan, past_scans
from image_factory.state.store import HistoryEntry
from image_factory.timestamps import parse_time
from image_factory.trust.scan_report import SEVERITIES, rank


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
    note: str | None = None  # why the findings decide nothing (or less), when they could have

    @property
    def expedites(self) -> bool:
        return bool(self.fixes) and not self.introduces


Runs = dict[str, dict[str, frozenset[str]]]  # run → digest → every id that run's scan of it found


def runs_of(history: list[HistoryEntry], now: datetime) -> Runs:
    """Every scan run of a base's digests made by `now`, from each digest's scan and pastScans."""
    runs: Runs = {}
    for entry in history:
        for scan in (*past_scans(entry), past_scan(entry.get("scan"))):
            if scan and parse_time(scan["at"]) <= now:
                runs.setdefault(scan["run"], {})[entry["digest"]] = frozenset(scan["ids"].split())
    return runs


def judge(
    candidate: HistoryEntry, built_on: HistoryEntry | None, policy: ScanPolicy | None, now: datetime, runs: Runs
) -> Evidence:
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
    if new.scanner != old.scanner:  # scanners name and grade vulnerabilities differently
        return Evidence(note=f"scanned by {new.scanner}, the digest it is built on by {old.scanner}: not compared")
    # Only a run that scanned both digests compares them: one database, one view of each
    # vulnerability's affected versions. Ids are compared, at any severity (graded up and down).
    together = [(found[candidate["digest"]], found[built_on["digest"]]) for found in runs.values()
                if candidate["digest"] in found and built_on["digest"] in found]  # fmt: skip
    if not together:
        return Evidence(
            note=f"never scanned in one run with the digest it is built on ({built_on['digest'][:19]}…): the delay "
            "applies until a scan Job takes both (state/built-on names it), or both are scanned by hand with one "
            "`image-factory record-scan --run`"
        )
    both = set().union(*(n & o for n, o in together))
    brought = set().union(*(n - o for n, o in together)) - both
    gone = set().union(*(o - n for n, o in together)) - both
    fixes = _worst_first(f for f in old.findings if _counts(f, policy.expedite, policy, now) and f["id"] in gone)
    counted = [f for f in new.findings if _counts(f, policy.hold, policy, now)]
    introduces = _worst_first(f for f in counted if f["id"] in brought)
    unsure = _worst_first(f for f in counted if f["id"] not in brought | both)
    notes = []
    if unsure:
        notes.append(
            f"{describe(unsure)} not compared: found since the last run that scanned it with the digest it is built on"
        )
    if policy.hold is not None and new.whole_from > rank(policy.hold):
        # a finding as severe as `hold` may be among the ids it lists without a severity
        notes.append(f"its scan lists no {policy.hold} findings in full: one it brings would not be seen")
    if fixes and notes:  # what it may bring is not known: what it fixes does not skip the delay
        notes.append("so what it fixes does not skip the delay")
        fixes = ()
    return Evidence(fixes, introduces, "; ".join(notes) or None)


@dataclass(frozen=True)
class _Scan:
    scanner: str
    findings: list[dict]  # in full: id, severity, package
    whole_from: int  # every finding this severe (a rank) or more is in `findings`; past critical: none


def _usable(entry: HistoryEntry, now: datetime) -> _Scan | str:
    """The findings of a digest's scan by `now`, or why there are none to decide on."""
    scan = entry.get("scan")
    if not scan or parse_time(scan["at"]) > now:
        return "not scanned yet: the delay applies"
    if scan.get("error"):
        return f"its scan failed ({scan['error']}): the delay applies"
    if "otherIds" not in scan or scan.get("otherIdsOmitted"):
        return "its scan does not list every vulnerability id it found: the delay applies"
    findings = scan.get("findings", [])
    whole_from = rank(scan.get("minSeverity", "critical"))
    if scan.get("omitted"):  # the most severe are kept: those above the least kept are all there
        least = min((rank(f["severity"]) for f in findings), default=len(SEVERITIES) - 1)
        whole_from = max(whole_from, least + 1)
    return _Scan(scan["scanner"], findings, whole_from)


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
