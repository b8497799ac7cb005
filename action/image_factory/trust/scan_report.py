"""A vulnerability scanner's report, cut to what the factory decides on, and sent to it.

Standard library only, and no import of the package: `synth` puts this file's source in a
ConfigMap, and the scan Job of a watched image runs it beside the scanner (`python3
report.py`). The tool imports the same functions for `record-scan --report`, so the cluster and
an operator read a report the same way.

A report is Trivy's JSON (`trivy image --format json`: `Results[].Vulnerabilities[]`; none at
all when Trivy read nothing it knows, its `Results` being omitempty) or Grype's (`grype -o json`:
`matches[]`). A finding is a vulnerability id, its severity, the affected package, the version
that fixes it and the day it was published. The factory gets the findings at or above a
severity in full, the most severe first (so all those above the least one sent are there), and
the ids of all the others: GitHub's REST description of repos/create-dispatch-event (2022-11-28)
allows 10 top-level `client_payload` keys, and a JSON payload under 64KB.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

SEVERITIES = ("unknown", "negligible", "low", "medium", "high", "critical")  # least to most severe
MAX_FINDINGS = 100
MAX_TEXT = 100  # characters of an id, a package or a version: real ones are far shorter
MAX_SCANNER = 50  # characters of a scanner's name
MAX_ERROR = 200  # characters of why a scan could not run
# Every other id a report lists, ids only: whether a vulnerability is there at all, whatever its
# severity (graded up or down between two scans) or the limit. At most 1,500 ids and 30,000
# characters: with the findings in full, well under the 64 KB.
MAX_OTHER_IDS = 1500
MAX_OTHER_CHARS = 30_000
MAX_FINDINGS_CHARS = 24_000  # the findings' JSON text: 100 real ones take about 12,000
EVENT = "base-image-scanned"


def severity(text: object) -> str:
    """A scanner's severity word in the factory's words: Trivy's CRITICAL, Grype's Critical."""
    word = str(text or "").strip().lower()
    return word if word in SEVERITIES else "unknown"


def rank(word: str) -> int:
    return SEVERITIES.index(severity(word))


def parse_report(data: object) -> tuple[str, list[dict]]:
    """(scanner, findings) of a Trivy or Grype JSON report; ValueError for anything else."""
    if isinstance(data, dict) and isinstance(data.get("Results"), list):
        return "trivy", _unique(_trivy(data["Results"]))
    if isinstance(data, dict) and data.get("Results") is None and "SchemaVersion" in data and "ArtifactName" in data:
        # Results is omitempty: Trivy lists a target for every OS or package file it reads, with
        # or without vulnerabilities, so none at all means it read nothing it knows.
        raise ValueError("the report has no Results: Trivy found no operating system or packages it knows to scan")
    if isinstance(data, dict) and isinstance(data.get("matches"), list):
        descriptor = data.get("descriptor") if isinstance(data.get("descriptor"), dict) else {}
        return scanner_name(descriptor.get("name") or "grype"), _unique(_grype(data["matches"]))
    raise ValueError("neither Trivy's JSON (Results[].Vulnerabilities[]) nor Grype's (matches[])")


def scanner_name(text: object) -> str:
    """A scanner's name as state keeps it: one line, bounded, lower case (Trivy is trivy)."""
    return _given(_text(text, MAX_SCANNER).lower(), "the scanner has no name")


def run_name(text: object) -> str:
    """A scan run's name as state keeps it: one word, bounded."""
    return _given("".join(_text(text).split()), "the scan run has no name")


def error_text(text: object) -> str:
    """Why a scan could not run, as state keeps it: one line, bounded."""
    return _given(_text(text, MAX_ERROR), "say why the scan could not run")


def _given(text: str, missing: str) -> str:
    if not text:
        raise ValueError(missing)
    return text


def _trivy(results: list) -> list[dict]:
    for result in results:
        if not isinstance(result, dict):
            raise ValueError("a Results entry is not an object")
        for item in result.get("Vulnerabilities") or []:
            if not isinstance(item, dict) or not _id(item.get("VulnerabilityID")):
                raise ValueError("a vulnerability without a VulnerabilityID")
            found = (item["VulnerabilityID"], item.get("Severity"), item.get("PkgName"), item.get("FixedVersion"))
            yield _finding(*found, _day(item.get("PublishedDate")))


def _grype(matches: list) -> list[dict]:
    for match in matches:
        vulnerability = match.get("vulnerability") if isinstance(match, dict) else None
        if not isinstance(vulnerability, dict) or not _id(vulnerability.get("id")):
            raise ValueError("a match without vulnerability.id")
        artifact = match.get("artifact") if isinstance(match.get("artifact"), dict) else {}
        fix = vulnerability.get("fix") if isinstance(vulnerability.get("fix"), dict) else {}
        fixed = ", ".join(str(version) for version in fix.get("versions") or [])
        yield _finding(vulnerability["id"], vulnerability.get("severity"), artifact.get("name"), fixed)


def _finding(vulnerability: object, level: object, package: object, fixed: object, published: object = None) -> dict:
    finding = {"id": _id(vulnerability), "severity": severity(level), "package": _text(package) or "?"}
    if not finding["id"]:
        raise ValueError("a finding without an id")
    if _text(fixed):
        finding["fixed"] = _text(fixed)
    if _day(published):
        finding["published"] = _day(published)
    return finding


def _day(stamp: object) -> str | None:
    """The YYYY-MM-DD a scanner's timestamp (2019-09-10T17:15:00Z) starts with, if it is one."""
    text = str(stamp or "")[:10]
    digits = text[:4] + text[5:7] + text[8:10]
    return text if len(text) == 10 and text[4] == text[7] == "-" and digits.isdigit() else None


def _id(value: object) -> str:
    """A vulnerability id: one word (ids are listed separated by spaces)."""
    return "".join(_text(value).split())


def _text(value: object, limit: int = MAX_TEXT) -> str:
    """One line of printable ASCII, bounded: a report is input from outside, and an event is
    JSON inside JSON, where a quote, a backslash or another script would take several bytes."""
    text = "".join(_plain(char) for char in str(value or ""))
    return " ".join(text.split())[:limit]


def _plain(char: str) -> str:
    if " " <= char <= "~" and char not in '"\\':
        return char
    return "?" if char.isprintable() else " "


def _unique(findings) -> list[dict]:
    """One finding per (id, package), the most severe first, then by id and package."""
    chosen: dict[tuple[str, str], dict] = {}
    for finding in findings:
        key = (finding["id"], finding["package"])
        if key not in chosen or rank(finding["severity"]) > rank(chosen[key]["severity"]):
            chosen[key] = finding
    return sorted(chosen.values(), key=lambda f: (-rank(f["severity"]), f["id"], f["package"]))


def at_least(findings: list[dict], minimum: str, limit: int = MAX_FINDINGS) -> tuple[list[dict], int]:
    """The findings at or above `minimum`, at most `limit` in MAX_FINDINGS_CHARS (the most severe:
    `findings` are in `_unique`'s order), and how many more were left out."""
    kept = [finding for finding in findings if rank(finding["severity"]) >= rank(minimum)]
    chosen, length = [], 0
    for finding in kept[:limit]:
        length += len(json.dumps(finding, separators=(",", ":"))) + 1
        if length > MAX_FINDINGS_CHARS:
            break
        chosen.append(finding)
    return chosen, len(kept) - len(chosen)


def other_ids(findings: list[dict], kept: list[dict], limit: int = MAX_OTHER_IDS) -> tuple[list[str], int]:
    """The ids of `findings` that `kept` does not list, sorted, at most `limit`, and how many
    more were left out."""
    listed = {finding["id"] for finding in kept}
    others = sorted({finding["id"] for finding in findings} - listed)
    chosen, length = [], 0
    for vulnerability in others[:limit]:
        length += len(vulnerability) + 1
        if length > MAX_OTHER_CHARS + 1:
            break
        chosen.append(vulnerability)
    return chosen, len(others) - len(chosen)


def ids_from_text(text: str) -> str:
    """Ids an event carries, separated by spaces, as state keeps them (sorted, once each);
    ValueError names what is wrong."""
    ids = text.split()
    if len(ids) > MAX_OTHER_IDS or len(" ".join(ids)) > MAX_OTHER_CHARS:
        raise ValueError(f"{len(ids)} other ids: at most {MAX_OTHER_IDS}, in {MAX_OTHER_CHARS} characters, are kept")
    if any(_id(vulnerability) != vulnerability for vulnerability in ids):
        raise ValueError(f"an id is not printable or longer than {MAX_TEXT} characters")
    return " ".join(sorted(set(ids)))


def from_payload(text: str) -> list[dict]:
    """The findings an event carries (`payload`'s JSON text), checked and bounded; ValueError
    names what is wrong. They come from outside: nothing but the known fields is kept."""
    try:
        items = json.loads(text)
    except ValueError as error:
        raise ValueError(f"findings are not JSON: {error}") from None
    if not isinstance(items, list):
        raise ValueError("findings are not a list")
    if len(items) > MAX_FINDINGS:
        raise ValueError(f"{len(items)} findings: at most {MAX_FINDINGS} are kept")
    findings = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict) or not all(isinstance(item.get(key), str) for key in ("id", "severity")):
            raise ValueError(f"finding {number} needs an id and a severity")
        if severity(item["severity"]) != item["severity"].lower():
            raise ValueError(
                f"finding {number}: severity {item['severity'][:20]!r} is not one of {', '.join(SEVERITIES)}"
            )
        found = (item["id"], item["severity"], item.get("package"), item.get("fixed"), item.get("published"))
        findings.append(_finding(*found))
    return _unique(findings)


def payload(image: str, digest: str, scanner: str, scan: dict | None, error: str | None = None) -> dict:
    """The client_payload of `base-image-scanned`: every value a string (the receive job keeps
    them so; GitHub allows 10 top-level keys), the findings as one JSON text, the other ids
    separated by spaces. `scan`: `cut`'s outcome; None with `error`."""
    body = {"image": image, "digest": digest, "scanner": _text(scanner, MAX_SCANNER) or "trivy"}
    if scan is not None and scan.get("run"):
        body["run"] = scan["run"]
    if scan is None:
        body["error"] = _text(error, MAX_ERROR) or "no reason given"
        return body
    body["findings"] = json.dumps(scan["findings"], separators=(",", ":"))
    body["min_severity"] = scan["minSeverity"]
    body["other_ids"] = scan["otherIds"]
    for key, field in (("omitted", "omitted"), ("other_ids_omitted", "otherIdsOmitted")):
        if scan.get(field):
            body[key] = str(scan[field])
    return body


def cut(findings: list[dict], minimum: str) -> dict:
    """A report's findings as the factory keeps them: those at or above `minimum` in full (the
    most severe MAX_FINDINGS), every other id, and counts of what was left out."""
    kept, omitted = at_least(findings, minimum)
    others, others_omitted = other_ids(findings, kept)
    scan = {"minSeverity": minimum, "findings": kept, "otherIds": " ".join(others)}
    scan.update({"omitted": omitted} if omitted else {})
    scan.update({"otherIdsOmitted": others_omitted} if others_omitted else {})
    return scan


# -- in the scan Job ---------------------------------------------------------------------------
#
# Three containers share the folder WORK: `targets` (this file) writes the digests to scan, the
# new one first, then the newest earlier digests of its Warehouse, scanned again so that the
# next comparison is between scans made with the same database; the scanner scans each one; the
# reporter (this file) sends one event per digest.

DIGEST_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
SERVICE_ACCOUNT = "/var/run/secrets/image-factory"  # the projected token, CA and namespace


MAX_BUILT_ON = 10  # built-on digests scanned again: the 5 most used, and 5 more that change by run


def targets(env: dict) -> list[str]:
    """The digests to scan: the new one; then those images are built on, from the factory's
    state/built-on/<base>.json (GitHub's contents API, the Stages' token); then up to RESCAN
    earlier ones of the Warehouse, the newest first, read from Kargo's Freight with the Job's own
    token (get and list Freight, in the project's namespace). Rescans are a help, not a need:
    what cannot be read is left out, and the reason printed."""
    digest = env["DIGEST"]
    if not DIGEST_PATTERN.match(digest):
        raise ValueError(f"{digest[:80]!r} is not a sha256 digest")
    chosen = [digest, *built_on(env)]
    return list(dict.fromkeys([*chosen, *_earlier(env, digest)]))


def built_on(env: dict) -> list[str]:
    """The digests images are built on, per the factory's state (most images first)."""
    if not env.get("BUILT_ON"):
        return []
    url = f"{env['GITHUB_API'].rstrip('/')}/repos/{env['FACTORY_REPO']}/contents/{env['BUILT_ON']}"
    headers = {"Authorization": f"Bearer {env['GITHUB_TOKEN']}", "Accept": "application/vnd.github.raw+json"}
    headers.update({"X-GitHub-Api-Version": "2022-11-28", "User-Agent": "image-factory"})
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as answer:
            images = json.loads(answer.read().decode())
    except urllib.error.HTTPError as error:  # 404: no image built on it yet, or a token that cannot read it
        print(f"no built-on digests scanned again: {env['BUILT_ON']} ({error.code})", file=sys.stderr)
        return []
    except (OSError, ValueError) as error:
        print(f"the digests images are built on could not be read ({error})", file=sys.stderr)
        return []
    counts: dict[str, int] = {}
    for value in images.values() if isinstance(images, dict) else []:
        if isinstance(value, str) and DIGEST_PATTERN.match(value):
            counts[value] = counts.get(value, 0) + 1
    most = sorted(counts, key=lambda d: (-counts[d], d))
    # the rest in an order each new digest shuffles: over runs, every one is scanned with some
    rest = sorted(most[5:], key=lambda d: hashlib.sha256((env["DIGEST"] + d).encode()).hexdigest())
    return [*most[:5], *rest][:MAX_BUILT_ON]


def _earlier(env: dict, digest: str) -> list[str]:
    """Up to RESCAN digests of the Warehouse discovered before `digest`, the newest first."""
    wanted = int(env.get("RESCAN", "3"))
    if wanted <= 0:
        return []
    try:
        freight = _freight(env)
    except (OSError, ValueError, urllib.error.URLError) as error:
        print(f"no earlier digests scanned again: Kargo's Freight could not be read ({error})", file=sys.stderr)
        return []
    ours = [f for f in freight if isinstance(f, dict) and (f.get("origin") or {}).get("name") == env["WAREHOUSE"]]
    # Kargo's Freight.EffectiveDiscoveredAt (api/v1alpha1/freight_types.go): discoveredAt, else
    # creationTimestamp, both RFC 3339 in UTC, so they sort as text
    ours.sort(key=lambda f: str(f.get("discoveredAt") or (f.get("metadata") or {}).get("creationTimestamp")))
    found = [d for f in reversed(ours) for d in _digests(f, env["REPO_URL"])]
    newer = found.index(digest) + 1 if digest in found else 0  # only digests discovered before the new one
    earlier = [d for d in dict.fromkeys(found[newer:]) if d != digest]
    return earlier[:wanted]


def _digests(freight: dict, repo_url: str) -> list[str]:
    images = freight.get("images") if isinstance(freight.get("images"), list) else []
    return [
        image["digest"]
        for image in images
        if isinstance(image, dict)
        and image.get("repoURL") == repo_url
        and DIGEST_PATTERN.match(str(image.get("digest") or ""))
    ]


def _freight(env: dict) -> list:
    """Every Freight of the namespace, page by page (Kubernetes' list API: limit and continue;
    the resource is `freights`, charts/kargo/resources/crds/kargo.akuity.io_freights.yaml)."""
    folder = env.get("SERVICE_ACCOUNT", SERVICE_ACCOUNT)
    with open(f"{folder}/token", encoding="utf-8") as file:
        token = file.read().strip()
    with open(f"{folder}/namespace", encoding="utf-8") as file:
        namespace = file.read().strip()
    api = env.get("KUBERNETES_API", "https://kubernetes.default.svc").rstrip("/")
    context = None
    if api.startswith("https:"):
        import ssl

        context = ssl.create_default_context(cafile=f"{folder}/ca.crt")
    items, token_next = [], ""
    for _ in range(100):  # 50,000 Freight at most
        query = urllib.parse.urlencode({"limit": 500, **({"continue": token_next} if token_next else {})})
        url = f"{api}/apis/kargo.akuity.io/v1alpha1/namespaces/{namespace}/freights?{query}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            page = json.loads(answer.read().decode())
        items += page.get("items") or []
        token_next = (page.get("metadata") or {}).get("continue") or ""
        if not token_next:
            break
    return items


def _scan_outcome(env: dict, digest: str) -> tuple[str, dict | None, str | None]:
    """(scanner, `cut`'s outcome or None, error) of the scanner's run on one digest."""
    scanner, work = env.get("SCANNER", "trivy"), env.get("WORK", "/work")
    if os.path.exists(f"{work}/{digest}.failed"):
        log = _tail(f"{work}/{digest}.log")
        return scanner, None, f"the scan did not run: {log or 'no output'}"
    try:
        with open(f"{work}/{digest}.json", encoding="utf-8") as file:
            found_by, findings = parse_report(json.load(file))
    except (OSError, ValueError) as error:
        return scanner, None, f"its report could not be read: {error}"
    scan = cut(findings, severity(env.get("MIN_SEVERITY", "high")))
    # one run, one database: the Job's Pod (each verification makes a new one)
    return found_by, {**scan, "run": run_name(env.get("RUN") or f"job-{os.getpid()}-{time.time_ns()}")}, None


def _tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return ([line.strip() for line in file if line.strip()] or [""])[-1]
    except OSError:
        return ""


def send(env: dict, body: dict, sleep=time.sleep, clock=time.monotonic) -> int:
    """POST the event to the factory, as the Stages' http steps call GitHub: any 2xx succeeds;
    a refusal (4xx but 429 and a 403 rate limit) fails at once with GitHub's message; a rate
    limit, a 5xx or no answer is tried again every RETRY_SECONDS until TIMEOUT_SECONDS."""
    url = f"{env['GITHUB_API'].rstrip('/')}/repos/{env['FACTORY_REPO']}/dispatches"
    data = json.dumps({"event_type": EVENT, "client_payload": body}).encode()
    headers = {
        "Authorization": f"Bearer {env['GITHUB_TOKEN']}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "Content-Type": "application/json",
        "User-Agent": "image-factory",
    }
    interval, deadline = float(env.get("RETRY_SECONDS", 60)), clock() + float(env.get("TIMEOUT_SECONDS", 3600))
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data, headers, method="POST"), timeout=30):
                print(f"{body['image']}@{body['digest']}: {EVENT} sent")
                return 0
        except urllib.error.HTTPError as error:
            limited = error.code == 429 or (
                error.code == 403
                and (error.headers.get("X-RateLimit-Remaining") == "0" or error.headers.get("Retry-After"))
            )
            if 400 <= error.code < 500 and not limited:
                print(f"GitHub refused the {EVENT} dispatch ({error.code}): {_message(error)}", file=sys.stderr)
                return 1
            why = f"GitHub answered {error.code}"
        except (urllib.error.URLError, OSError) as error:
            why = f"no answer from GitHub: {error}"
        if clock() + interval > deadline:
            print(f"gave up sending {EVENT}: {why}", file=sys.stderr)
            return 1
        print(f"{why}; trying again in {interval:g} s", file=sys.stderr)
        sleep(interval)


def _message(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read().decode()).get("message") or "no message")
    except (ValueError, AttributeError, OSError):
        return "no message"


def main(argv: list[str] | None = None, env: dict | None = None) -> int:
    """`report.py targets`: write WORK/targets. `report.py`: send the scan of each target."""
    env = dict(os.environ if env is None else env)
    work = env.get("WORK", "/work")
    if (sys.argv[1:] if argv is None else argv) == ["targets"]:
        chosen = targets(env)
        with open(f"{work}/targets", "w", encoding="utf-8") as file:
            file.write("".join(f"{digest}\n" for digest in chosen))
        print(f"{env['IMAGE']}: scanning {chosen[0]}, and again {len(chosen) - 1} earlier digest(s)")
        return 0
    with open(f"{work}/targets", encoding="utf-8") as file:
        chosen = [line.strip() for line in file if DIGEST_PATTERN.match(line.strip())]
    failed = 0
    for digest in chosen:
        scanner, scan, error = _scan_outcome(env, digest)
        found = f"{len(scan['findings'])} findings at or above {scan['minSeverity']}" if scan else error
        print(f"{env['IMAGE']}@{digest}: {found}")
        failed += send(env, payload(env["IMAGE"], digest, scanner, scan, error))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
