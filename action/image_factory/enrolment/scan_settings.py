"""images.yaml's scan settings: each image's policy (rebuilds.scan_evidence reads it from the
enrolment), the scan Job's images and database (kargo.scanner), and what the schema cannot check."""

from __future__ import annotations

from datetime import date

from image_factory.enrolment.model import EnrolledImage, ScannerSettings
from image_factory.enrolment.yaml_source import YamlDocument
from image_factory.errors import Problem


def scan_policy(defaults: dict | None, own: dict | None) -> dict | None:
    """An image's scan policy as its enrolment keeps it: its own settings over the defaults',
    the ignore lists of both; None when scanning is off for it."""
    merged = {**(defaults or {}), **(own or {})}
    if not merged.get("enabled", False):
        return None
    policy = {"expedite": merged.get("expedite", "critical"), "hold": merged.get("hold", "critical")}
    ignore = [*(defaults or {}).get("ignore", []), *(own or {}).get("ignore", [])]
    if ignore:
        policy["ignore"] = [{"id": i["id"], "reason": i["reason"], "until": i["until"]} for i in ignore]
    return policy


def scanning_without_scanner(document: YamlDocument, images: list[EnrolledImage]) -> list[Problem]:
    """An image deciding on scan findings needs the scan Job that makes them (kargo.scanner)."""
    if "scanner" in document.data.get("kargo", {}):
        return []
    scanning = [image for image in images if image.policy.scan is not None]
    if not scanning:
        return []
    # where scanning was switched on: the defaults, else the first image that switched it on itself
    entries = document.data["images"]
    own = next((image.index for image in scanning if (entries[image.index].get("scan") or {}).get("enabled")), None)
    defaults = (document.data.get("defaults") or {}).get("scan") or {}
    where = ("defaults", "scan") if defaults.get("enabled") or own is None else ("images", own, "scan")
    names = ", ".join(image.name for image in scanning[:5]) + (" …" if len(scanning) > 5 else "")
    return [
        document.problem(
            where,
            f"scan.enabled ({names}) needs kargo.scanner: the scan Job's Trivy and reporter images and its "
            "vulnerability database (docs/scanning.md)",
        )
    ]


def ignore_until_paths(data: dict) -> list[tuple]:
    """Where images.yaml gives a scan ignore's end date."""
    places = [(("defaults", "scan"), data.get("defaults", {}).get("scan") or {})]
    places += [(("images", index, "scan"), entry.get("scan") or {}) for index, entry in enumerate(data["images"])]
    return [(*at, "ignore", n, "until") for at, scan in places for n in range(len(scan.get("ignore", [])))]


def scanner_settings(entry: dict | None) -> ScannerSettings | None:
    if entry is None:
        return None
    return ScannerSettings(
        entry["image"],
        entry["reporterImage"],
        entry["dbRepository"],
        entry.get("javaDbRepository"),
        entry.get("memory", ScannerSettings.memory),
        entry.get("disk", ScannerSettings.disk),
        entry.get("rescan", ScannerSettings.rescan),
    )


def ended_ignores(images: list[EnrolledImage], today: date) -> list[str]:
    """`validate`'s warnings: scan ignores past their `until`, whose findings count again."""
    ended: dict[tuple[str, str], list[str]] = {}
    for image in images:
        for item in (image.policy.scan or {}).get("ignore", []):
            if date.fromisoformat(item["until"]) < today:
                ended.setdefault((item["id"], item["until"]), []).append(image.name)
    return [
        f"scan.ignore {vulnerability} ended on {until} ({', '.join(names[:5])}{' …' * (len(names) > 5)}): "
        "its findings count again; extend its until or remove it"
        for (vulnerability, until), names in sorted(ended.items())
    ]
