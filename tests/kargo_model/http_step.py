"""Kargo's ``http`` promotion step (pkg/promotion/runner/builtin/http_requester.go, v1.11.2) and the HTTP it speaks.

:class:`HttpRequest` is what the step sends (Go's request after ``buildRequest``), :class:`HttpResponse` what a test's
server answers. :func:`run_http` builds the request (Go's net/url parsing, net/http's checks before sending), reads
the response into the ``response`` expression environment, and judges it by the step's success, failure, error
and output expressions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from .errors import ExprError, KargoError, ModelLimit
from .expr import compile_expr
from .expr_runtime import header_get
from .go import (
    GoFunc,
    GoHeader,
    GoInt64,
    GoStrings,
    canonical_header_key,
    go_json_unmarshal,
    go_parse_duration,
    go_quote,
    go_type_of,
    is_token,
)
from .steps import StepError, StepResult


@dataclass
class HttpRequest:
    """One request the http step sent: Go's request after ``buildRequest`` (headers canonical, query encoded)."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: str
    timeout: float  # seconds (the step's ``timeout``, 10s by default)
    at: float = 0.0  # simulated clock, seconds

    def header(self, name: str) -> str | None:
        """The first value of a header, case-insensitively."""
        key = canonical_header_key(name)
        return next((value for k, value in self.headers if k == key), None)

    def json(self) -> Any:
        """The body parsed as JSON (Python's ints and floats)."""
        return json.loads(self.body)


@dataclass
class HttpResponse:
    """What the server answered; ``content_type`` is a shortcut for a Content-Type header."""

    status: int
    headers: Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]] = ()
    body: bytes | str = b""
    content_type: str | None = None

    def go_header(self) -> GoHeader:
        pairs: list[tuple[str, str]] = []
        items = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        for name, value in items:
            values = [value] if isinstance(value, str) else list(value)
            pairs.extend((name, v) for v in values)
        if self.content_type is not None and not any(canonical_header_key(k) == "Content-Type" for k, _ in pairs):
            pairs.append(("Content-Type", self.content_type))
        header = GoHeader()
        for name, value in pairs:
            header.setdefault(canonical_header_key(name), GoStrings()).append(value)
        return header


HttpHandler = Callable[[HttpRequest], HttpResponse]

# pkg/promotion/runner/builtin/http_requester.go:28-46 (v1.11.2)
_MAX_RESPONSE_BYTES = 2 << 20
_REQUEST_TIMEOUT_DEFAULT = 10.0
_HTTP_POLL_INTERVAL_DEFAULT = 30.0


def _media_type(header_value: str) -> str:
    # Go src/mime/mediatype.go ParseMediaType: the lower-cased "type/subtype", "" when malformed.
    base = header_value.split(";", 1)[0].strip().lower()
    kind, slash, subtype = base.partition("/")
    valid = is_token(kind)
    if slash:
        valid = valid and is_token(subtype)
    return base if valid else ""


def _response_env(response: HttpResponse, content_type: str) -> dict[str, Any]:
    # http_requester.go:358-433 (v1.11.2)
    header = response.go_header()
    body = response.body.encode("utf-8") if isinstance(response.body, str) else bytes(response.body)
    length = header.get("Content-Length")
    if length and length[0].isdigit() and int(length[0]) > _MAX_RESPONSE_BYTES:
        raise KargoError(f"response body size {length[0]} exceeds limit of {_MAX_RESPONSE_BYTES} bytes")
    if len(body) > _MAX_RESPONSE_BYTES:
        raise KargoError(f"reading response body: content exceeds limit of {_MAX_RESPONSE_BYTES} bytes")
    result: dict[str, Any] = {
        "status": GoInt64(response.status),  # int64, http_requester.go:387-390
        "header": GoFunc("func(string) string", lambda name: header_get(header, name), 1),
        "headers": header,
        "body": {},  # an empty body stays an empty map
    }
    if not content_type:
        content_type = _media_type(header_get(header, "Content-Type"))
    if body:
        lowered = content_type.lower()  # http_requester.go:465-479: EqualFold
        if lowered in ("application/yaml", "text/yaml", "application/x-yaml"):
            raise ModelLimit("YAML response bodies are not modelled")
        if lowered == "text/plain":
            result["body"] = body.decode("utf-8", "replace")
        else:  # JSON, and the fallback for any other content type
            ok, parsed = go_json_unmarshal(body)
            if ok:
                result["body"] = parsed
            elif content_type == "application/json":
                raise KargoError("failed to parse JSON response: invalid JSON")
            # any other content type with a body that is not JSON: the body is ignored (stays {})
    return {"response": result}


def run_http(
    alias: str, cfg: Mapping[str, Any], http: HttpHandler | None, now: float, sent: list[HttpRequest]
) -> tuple[StepResult, StepError | None]:
    """The ``http`` step, its config validated: build the request, send it with ``http`` (adding it to ``sent``),
    then judge the response by the step's expressions."""
    # pkg/promotion/runner/builtin/http_requester.go:90-199 (v1.11.2)
    method = cfg.get("method") or "GET"
    url, parse_error = _build_url(cfg["url"], cfg.get("queryParams") or [])
    if parse_error:
        return StepResult("Errored"), StepError(
            f"error building HTTP request: error creating HTTP request: {parse_error}", terminal=True
        )
    try:
        timeout = go_parse_duration(cfg["timeout"]) if cfg.get("timeout") else _REQUEST_TIMEOUT_DEFAULT
    except ValueError as error:
        return StepResult("Errored"), StepError(
            f"error creating HTTP client: error parsing timeout: {error}", terminal=True
        )
    headers = [(canonical_header_key(h["name"]), h["value"]) for h in cfg.get("headers") or []]
    request = HttpRequest(method, url, headers, cfg.get("body", ""), timeout, now)
    op = method[:1] + method[1:].lower()  # Go src/net/http/client.go urlErrorOp
    transport_problem = _transport_check(request)
    if transport_problem:
        return StepResult("Errored"), StepError(
            f"error sending HTTP request: {op} {go_quote(url)}: {transport_problem}", terminal=False
        )
    if http is None:
        raise ModelLimit(f"step {alias!r} sends an HTTP request but run_promotion got no http handler")
    sent.append(request)
    try:
        response = http(request)
    except Exception as error:  # a transport error: http_requester.go:107-111
        return StepResult("Errored"), StepError(
            f"error sending HTTP request: {op} {go_quote(url)}: {error}", terminal=False
        )
    try:
        env = _response_env(response, cfg.get("responseContentType", ""))
    except KargoError as error:
        return StepResult("Errored"), StepError(
            f"error building expression context from HTTP response: {error}", terminal=False
        )
    try:
        success = _criteria(cfg.get("successExpression", ""), "success", env)
        failure = _criteria(cfg.get("failureExpression", ""), "failure", env)
    except StepError as error:
        return StepResult("Errored"), error
    if failure:  # http_requester.go:134-156: failure wins over success
        message, problem = _error_message(cfg.get("errorExpression", ""), env)
        if problem:
            return StepResult("Errored"), problem
        text = f"HTTP ({response.status}) response met failure criteria"
        return StepResult("Failed"), StepError(f"{text}: {go_quote(message)}" if message else text, True)
    if success or (success is None and failure is None and 200 <= response.status < 300):
        try:  # http_requester.go:157-181
            outputs = _build_outputs(cfg.get("outputs") or [], env)
        except StepError as error:
            return StepResult("Errored"), error
        return StepResult("Succeeded", output=outputs), None
    if success is None and failure is None:
        # http_requester.go:182-183: non-2xx without criteria: Failed, no error -> polled, never counted.
        return StepResult("Failed"), None
    # http_requester.go:184-198: criteria unmet -> Running, re-sent after the poll interval.
    try:
        interval = go_parse_duration(cfg["pollInterval"]) if cfg.get("pollInterval") else None
    except ValueError as error:
        return StepResult("Errored"), StepError(f"error parsing pollInterval: {error}", terminal=False)
    return StepResult("Running", retry_after=_HTTP_POLL_INTERVAL_DEFAULT if interval is None else interval), None


def _run_expression(source: str, env: Mapping[str, Any], what: str, name: str) -> Any:
    """One of the step's own expressions: plain expr.Compile (builtins only, no Kargo functions, no quote()), then
    Run against {"response": ...}; an expr-lang error is a StepError, terminal when compiling, not when running."""
    try:
        return compile_expr(source).run(env)
    except ModelLimit:
        raise
    except ExprError as error:
        compiling = error.phase == "compile"
        verb = "compiling" if compiling else "evaluating"
        raise StepError(f"error {verb} {what} expression {go_quote(name)}: {error}", terminal=compiling) from None


def _criteria(source: str, kind: str, env: Mapping[str, Any]) -> bool | None:
    # http_requester.go:203-257 (v1.11.2): plain expr.Compile (builtins only, no Kargo functions, no quote())
    # against {"response": ...}; a compile error is terminal, a run error is not; non-bool is an error.
    if not source:
        return None
    value = _run_expression(source, env, kind, source)
    if isinstance(value, bool):
        return value
    raise StepError(
        f"{kind} expression {go_quote(source)} did not evaluate to a boolean (got {go_type_of(value)})", False
    )


def _error_message(source: str, env: Mapping[str, Any]) -> tuple[str, StepError | None]:
    # http_requester.go:272-298 (v1.11.2): compile error -> terminal Errored; run error or non-string -> "".
    if not source:
        return "", None
    try:
        value = _run_expression(source, env, "error", source)
    except StepError as error:
        return "", error if error.terminal else None
    return (value if type(value) is str else ""), None


def _build_outputs(outputs: Sequence[Mapping[str, str]], env: Mapping[str, Any]) -> dict[str, Any]:
    # http_requester.go:435-452 (v1.11.2): a non-nil map, even with no outputs; compile errors terminal, run not.
    result: dict[str, Any] = {}
    for output in outputs:
        try:
            result[output["name"]] = _run_expression(output["fromExpression"], env, "output", output["name"])
        except StepError as error:
            raise StepError(f"error extracting outputs from HTTP response: {error.message}", error.terminal) from None
    return result


_PERCENT = re.compile(r"%(?![0-9a-fA-F]{2})")


def _query_unescape(text: str) -> str | None:
    return None if _PERCENT.search(text) else unquote_plus(text)


def _build_url(url: str, query_params: Sequence[Mapping[str, str]]) -> tuple[str, str | None]:
    """Go's ``http.NewRequest`` URL parse, then the query params added and re-encoded (sorted by key)."""
    # http_requester.go:300-328 (v1.11.2); Go src/net/url/url.go Parse (the checks modelled: control characters,
    # bad %-escapes before the query, a non-numeric port) and Values.Encode.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return url, f"parse {go_quote(url)}: net/url: invalid control character in URL"
    head, hash_mark, fragment = url.partition("#")
    base, _, raw_query = head.partition("?")
    bad = _PERCENT.search(base)
    if bad:
        return url, f"parse {go_quote(url)}: invalid URL escape {go_quote(base[bad.start() : bad.start() + 3])}"
    authority = base.split("://", 1)[1].split("/", 1)[0] if "://" in base else ""
    host_port = authority.rsplit("@", 1)[-1]
    if ":" in host_port and not host_port.endswith("]"):
        port = host_port.rsplit(":", 1)[1]
        if port and not port.isdigit():
            return url, f"parse {go_quote(url)}: invalid port {go_quote(':' + port)} after host"
    if not query_params:
        return url, None
    values: dict[str, list[str]] = {}
    for part in raw_query.split("&") if raw_query else []:
        if ";" in part or not part:
            continue
        key, _, value = part.partition("=")
        key_text, value_text = _query_unescape(key), _query_unescape(value)
        if key_text is not None and value_text is not None:
            values.setdefault(key_text, []).append(value_text)
    for param in query_params:
        values.setdefault(param["name"], []).append(param["value"])
    encoded = "&".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k in sorted(values) for v in values[k])
    return base + "?" + encoded + (hash_mark + fragment), None


def _transport_check(request: HttpRequest) -> str | None:
    """What Go's client refuses before sending: scheme, host, header names and values."""
    # Go src/net/http/transport.go roundTrip, src/net/http/client.go send.
    scheme = request.url.split("://", 1)[0].lower() if "://" in request.url else ""
    if scheme not in ("http", "https"):
        return f"unsupported protocol scheme {go_quote(scheme)}"
    authority = request.url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not authority.rsplit("@", 1)[-1]:
        return "http: no Host in request URL"
    for name, value in request.headers:
        if not is_token(name):
            return f"net/http: invalid header field name {go_quote(name)}"
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
            return f"net/http: invalid header field value for {go_quote(name)}"
    return None
