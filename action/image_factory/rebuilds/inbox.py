"""Events as the events workflow received them, one file each, and the commands that apply them.

The workflow's `receive` job writes each `repository_dispatch` down before anything else runs
(docs/reliability.md): the event's type, its client_payload, the sender's login, when GitHub
delivered it and the run's id. The drain reads them back here. Pure: text in, commands out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime

from image_factory.enrolment.expression_guard import unprintable_in
from image_factory.errors import FactoryError, Problem
from image_factory.timestamps import format_time, parse_time
from image_factory.user_text import one_line, visible

TYPES = (
    "base-image-updated",
    "base-image-verified",
    "base-image-cve",
    "base-image-scanned",
    "base-image-soaked",
    "image-built",
)
MAX_EVENT_BYTES = 65536  # far above any event the factory's senders make; a file beyond it is refused


@dataclass(frozen=True)
class Event:
    """One repository_dispatch, as received."""

    id: str  # the receiving run's id: one per delivery
    type: str
    sender: str
    received_at: datetime
    payload: dict

    @property
    def subject(self) -> str:
        """What the event is about: a watched reference, or a managed image's name (image-built)."""
        return self.payload["image"]

    def text(self, key: str) -> str:
        """A payload field as text: '' when absent."""
        return self.payload.get(key) or ""


# What each type needs in its payload, beside `image`.
REQUIRED = {
    "base-image-updated": ("digest",),
    "base-image-verified": ("digest",),
    "base-image-cve": ("digest", "reason"),
    "base-image-scanned": ("digest", "scanner"),
    "base-image-soaked": (),
    "image-built": ("result",),
}


def seal(event: dict, key: str) -> str:
    """The receive job's seal on an event (every field but `mac`): HMAC-SHA256 with the secret
    IMAGE_FACTORY_INBOX_KEY, which only the factory's workflows hold. Anyone with Contents write
    on the factory can push a ref to the inbox; only a sealed one is applied."""
    body = {name: value for name, value in event.items() if name != "mac"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def parse_event(name: str, text: str, key: str | None = None) -> Event:
    """An event file's contents; anything but the receive job's shape is refused, naming `name`.
    With `key`, the event must carry the receive job's seal made with it (`seal`)."""

    def refuse(why: str) -> FactoryError:
        return FactoryError(Problem(name, f"not an event the receive job wrote: {why}"))

    if len(text.encode()) > MAX_EVENT_BYTES:
        raise refuse(f"over {MAX_EVENT_BYTES} bytes")
    try:
        data = json.loads(text)
    except ValueError as error:
        raise refuse(f"not JSON ({error})") from None
    if not isinstance(data, dict):
        raise refuse("not a JSON object")
    if key is not None and not hmac.compare_digest(str(data.get("mac", "")), seal(data, key)):
        raise refuse("its seal is missing or wrong (written by something other than events.yml's receive job?)")
    fields = {field: data.get(field) for field in ("id", "type", "sender", "receivedAt")}
    missing = [field for field, value in fields.items() if not isinstance(value, str) or not value]
    if missing:
        raise refuse(f"{', '.join(missing)} missing")
    if data["type"] not in TYPES:
        raise refuse(f"type {visible(one_line(data['type']))[:80]!r} is not one of {', '.join(TYPES)}")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise refuse("payload is not an object")
    for field, value in payload.items():
        allowed = (dict,) if field == "bases" else (str, bool) if field == "signed" else (str,)
        if value is not None and not isinstance(value, allowed):
            raise refuse(f"payload.{visible(one_line(str(field)))[:40]} is a {type(value).__name__}")
    absent = [field for field in ("image", *REQUIRED[data["type"]]) if not payload.get(field)]
    if absent:
        raise refuse(f"payload.{', payload.'.join(absent)} missing")
    if data["type"] == "image-built" and payload["result"] not in ("success", "failure"):
        raise refuse("payload.result is neither success nor failure")
    # Text the state files and the log would carry: a control character (a NUL) or one YAML cannot
    # hold would break every later read of the state file, or a workflow command in the log.
    for where, value in _strings({"id": data["id"], "sender": data["sender"], "payload": payload}):
        char = unprintable_in(value) or next((c for c in value if c in "\n\r"), None)
        if char is not None:
            raise refuse(f"{where} holds U+{ord(char):04X}, which no event field may hold")
    try:
        received = parse_time(data["receivedAt"], "receivedAt")
    except FactoryError:
        raise refuse(f"receivedAt {visible(one_line(data['receivedAt']))[:40]!r} is not a time") from None
    return Event(data["id"], data["type"], data["sender"], received, payload)


def _strings(value, where: str = ""):
    """Every string in `value` (keys too), with where it is."""
    if isinstance(value, dict):
        for field, item in value.items():
            yield f"{where}.{field}".lstrip(".") + " (a key)", str(field)
            yield from _strings(item, f"{where}.{field}".lstrip("."))
    elif isinstance(value, str):
        yield where, value


def commands(event: Event, cosign: tuple[bool, str] | None = None) -> list[list[str]]:
    """The image-factory commands that apply `event`, as the events workflow ran them one per
    event before the drain (each at the time GitHub received the event, so the order events are
    applied in never changes what is recorded). `cosign`: the outcome of `cosign verify` of a
    keyless-signed build. The soak event records nothing: its Stage saw the digest stay. Every
    value is given as `--flag=value`: a payload value starting with `-` stays a value."""
    at = format_time(event.received_at)
    given = {"--image": event.subject, "--digest": event.text("digest"), "--sender": event.sender}
    if event.type == "base-image-updated":
        command = [
            "record-update",
            {**given, "--seen-by": "kargo", "--seen-at": at, "--freight": event.text("freight")},
        ]
    elif event.type == "base-image-verified":
        reason = f"verified by Kargo (Freight {event.text('freight')})"
        command = ["record-update", {**given, "--verified": "true", "--reason": reason, "--seen-at": at}]
    elif event.type == "base-image-cve":
        # --force: a trusted scanner may name a fixed digest before Kargo reported it; it is built
        # on now but never becomes the current digest until Kargo sees it.
        command = ["expedite", {**given, "--reason": event.text("reason"), "--at": at}, "--force"]
    elif event.type == "base-image-scanned":
        found = {
            "--findings": event.text("findings"),
            "--omitted": event.text("omitted"),
            "--min-severity": event.text("min_severity"),
            "--other-ids-omitted": event.text("other_ids_omitted"),
            "--run": event.text("run"),
        }
        # none at all is an answer too: the option is given, empty (_argv leaves out empty values)
        listed = [f"--other-ids={event.text('other_ids')}"] if isinstance(event.payload.get("other_ids"), str) else []
        if event.text("error"):
            found, listed = {"--error": event.text("error")}, []
        # --force: the scan Stage takes the digest straight from the Warehouse, so its findings
        # may come before the recording Stage's sighting; they are kept, and count from it.
        values = {**given, "--scanner": event.text("scanner"), **found, "--at": at}
        command = ["record-scan", values, *listed, "--force"]
    elif event.type == "image-built":
        signed = str(event.payload.get("signed")).lower()
        values = {
            **given,
            "--result": event.text("result"),
            "--finished-at": format_time(finished_at(event)),
            "--bases": json.dumps(event.payload.get("bases") or {}),
            "--run-url": event.text("run_url"),
            "--error": event.text("error"),
            "--revision-tag": event.text("revision_tag"),
            "--signed": signed if signed in ("true", "false") else "",
        }
        if cosign is not None:
            values["--cosign-verified"] = "true" if cosign[0] else "false"
            values["--cosign-error"] = "" if cosign[0] else cosign[1][-2000:]
        command = ["record-build", values, "--require-signature"]
    else:
        return []
    return [_argv(command)]


def finished_at(event: Event) -> datetime:
    """When a reported build finished: the time its report carries (build.yml sends it, so a copy
    sent again is the same build), never later than GitHub received it; else when it was received."""
    try:
        given = parse_time(event.text("finished_at"), "finished_at") if event.text("finished_at") else None
    except FactoryError:
        given = None
    return min(given, event.received_at) if given is not None else event.received_at


def _argv(command: list) -> list[str]:
    """A command, its `--flag=value` options (the empty ones left out) and its switches."""
    name, values, *switches = command
    return [name, *(f"{flag}={value}" for flag, value in values.items() if value), *switches]


def checks(event: Event) -> list[list[str]]:
    """Commands that may fail without refusing the event: a new digest's signature check
    against a key in the repository (keyless ones are Kargo's to report); an unreachable
    registry must not hold up the rebuilds the event makes due."""
    if event.type != "base-image-updated":
        return []
    at = format_time(event.received_at)  # the verdict's time is the event's: a second drain changes nothing
    return [["verify", f"--image={event.subject}@{event.text('digest')}", "--record", f"--at={at}"]]


def order(events: list[Event]) -> list[Event]:
    """The order a drain applies events in: as GitHub received them (then by run id)."""
    return sorted(events, key=lambda event: (event.received_at, event.id))
