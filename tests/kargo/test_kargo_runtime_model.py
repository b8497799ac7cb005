"""Tests of the Kargo v1.11.2 run-time model itself (tests/kargo_model/).

Each test states, in its own words, a behaviour that Kargo's or expr-lang's sources (and Kargo's own tests:
pkg/expressions/json_templates_test.go, http_requester_test.go, local_orchestrator_test.go) pin down.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from ..kargo_model import (
    NIL_MAP,
    NOT_EVALUATED,
    ExprError,
    Freight,
    GoInt64,
    GoState,
    HttpRequest,
    HttpResponse,
    ModelLimit,
    PromotionRejected,
    TemplateError,
    UnsupportedExprError,
    VerificationArgError,
    canonical_header_key,
    evaluate_config,
    evaluate_expr,
    evaluate_template,
    evaluate_verification_args,
    go_duration_string,
    go_json_marshal,
    go_parse_bool,
    go_parse_duration,
    go_parse_float,
    go_quote,
    make_functions,
    run_promotion,
)

PYTHON = "docker.io/library/python"
DIGEST = "sha256:" + "ab" * 32
WAREHOUSES = {"python": [PYTHON]}
FREIGHT = Freight("f0123", [{"repoURL": PYTHON, "tag": "3.12", "digest": DIGEST}])
SECRETS = {"github": {"token": "ghp_secret"}}
DISPATCH_URL = "https://api.github.com/repos/acme/payments/actions/workflows/build.yml/dispatches"
BODY = (
    "${{ quote({ 'ref': 'main', 'inputs': { 'image': 'payments', "
    f"'digest': imageFrom('{PYTHON}').Digest, 'freight': ctx.targetFreight.name }} }}) }}}}"
)


def stage(*steps: dict, verification: dict | None = None, variables: list | None = None) -> dict:
    """A Stage like the generator's: one Warehouse, the given promotion steps."""
    spec: dict[str, Any] = {
        "requestedFreight": [{"origin": {"kind": "Warehouse", "name": "python"}, "sources": {"direct": True}}],
        "promotionTemplate": {"spec": {"steps": list(steps)}},
    }
    if verification is not None:
        spec["verification"] = verification
    if variables is not None:
        spec["vars"] = variables
    metadata = {"name": "rebuild-payments", "namespace": "image-factory"}
    return {"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage", "metadata": metadata, "spec": spec}


def http_step(alias: str = "rebuild", *, retry: dict | None = None, if_: str | None = None, **config: Any) -> dict:
    """An http step POSTing a workflow dispatch to GitHub, overridable field by field."""
    cfg: dict[str, Any] = {
        "method": "POST",
        "url": DISPATCH_URL,
        "headers": [
            {"name": "Authorization", "value": "Bearer ${{ secret('github').token }}"},
            {"name": "X-GitHub-Api-Version", "value": "2022-11-28"},
        ],
        "body": BODY,
        "successExpression": "response.status == 204",
    }
    cfg.update(config)
    step: dict[str, Any] = {"uses": "http", "as": alias, "config": {k: v for k, v in cfg.items() if v is not None}}
    if retry is not None:
        step["retry"] = retry
    if if_ is not None:
        step["if"] = if_
    return step


def server(*answers: HttpResponse | Exception) -> Callable[[HttpRequest], HttpResponse]:
    """Answers requests in turn (the last answer repeats); an exception is a transport error."""
    queue = list(answers)

    def handle(request: HttpRequest) -> HttpResponse:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle


def promote(*steps: dict, http: Callable[[HttpRequest], HttpResponse] | None = None, **options: Any) -> Any:
    return run_promotion(stage(*steps), freight=FREIGHT, warehouses=WAREHOUSES, secrets=SECRETS, http=http, **options)


def functions() -> dict:
    return make_functions(stage=stage(http_step()), freight=FREIGHT, warehouses=WAREHOUSES, secrets=SECRETS)


# --- EvaluateTemplate: delimiters, expansion, coercion (json_templates.go) -------------------------------------


def test_an_expression_that_yields_true_becomes_a_bool() -> None:
    assert evaluate_template("${{ true }}", {}) is True


def test_quote_keeps_true_a_string() -> None:
    assert evaluate_template("${{ quote(true) }}", {}) == "true"


def test_text_without_delimiters_is_never_coerced() -> None:
    assert evaluate_template("42", {}) == "42"
    assert evaluate_template('{"a": 1}', {}) == '{"a": 1}'


def test_json_text_with_an_embedded_expression_becomes_an_object() -> None:
    env = {"vars": {"digest": DIGEST}}
    result = evaluate_template('{"ref": "main", "inputs": {"digest": "${{ vars.digest }}"}}', env)
    assert result == {"ref": "main", "inputs": {"digest": DIGEST}}


def test_quote_of_a_map_stays_a_compact_json_string_with_sorted_keys() -> None:
    assert evaluate_template('${{ quote({ "b": 1, "a": "x" }) }}', {}) == '{"a":"x","b":1}'


def test_an_expression_ends_at_the_first_closing_braces() -> None:
    with pytest.raises(ExprError) as caught:
        evaluate_template('${{ {"a": {"b": 1}} }}', {})
    assert caught.value.phase == "compile"
    assert caught.value.message == "unexpected token EOF"
    assert evaluate_template('${{ {"a": {"b": 1} } }}', {}) == {"a": {"b": 1.0}}


def test_an_unclosed_expression_is_an_error() -> None:
    with pytest.raises(TemplateError, match=r'unclosed expression: expected "}}" but reached end of template'):
        evaluate_template("Bearer ${{ secret('github').token", {})


def test_both_delimiter_styles_expand_left_to_right() -> None:
    assert evaluate_template("${% 'a' %}-${{ 'b' }}-${% 'c' %}", {}) == "a-b-c"


def test_non_string_results_are_inserted_as_go_json() -> None:
    env = {"vars": {"m": {"b": 2.0, "a": "<&>"}}}
    assert evaluate_template("x=${{ vars.m }}", env) == 'x={"a":"\\u003c\\u0026\\u003e","b":2}'
    assert evaluate_template("Bearer ${{ nil }}", {}) == "Bearer null"


def test_numbers_win_over_bools_and_go_number_syntax_counts() -> None:
    assert evaluate_template("${{ '1' }}", {}) == 1.0
    assert evaluate_template("${{ '0' }}", {}) == 0.0
    assert evaluate_template("${{ 'True' }}", {}) is True
    assert evaluate_template("${{ '1_000' }}", {}) == 1000.0
    assert evaluate_template("${{ '0x1p-2' }}", {}) == 0.25
    assert evaluate_template("${{ '3.12' }}", {}) == 3.12
    assert evaluate_template("${{ '1e400' }}", {}) == "1e400"  # out of range: not a float, not JSON either
    assert math.isinf(evaluate_template("${{ 'inf' }}", {}))


def test_json_with_surrounding_whitespace_still_coerces() -> None:
    assert evaluate_template("${{ 'true' }} ", {}) is True
    assert evaluate_template("${{ nil }}", {}) is None


def test_a_trailing_newline_is_dropped_for_coercion_and_kept_for_strings() -> None:
    assert evaluate_template("${{ quote('x') }}\n", {}) == "x\n"
    assert evaluate_template("${{ 'abc' }}\n", {}) == "abc\n"
    assert evaluate_template("${{ 1 }}\n", {}) == 1.0


def test_quote_of_a_string_keeps_gos_escapes_inside() -> None:
    assert evaluate_template("${{ quote('say \"hi\"') }}", {}) == 'say \\"hi\\"'


def test_unsafe_quote_and_as_json() -> None:
    assert evaluate_template("${{ unsafeQuote('x') }}", {}) == '"x"'
    assert evaluate_template("${{ asJSON({'a': [1]}) }}", {}) == '{\n  "a": [\n    1\n  ]\n}\n'


# --- EvaluateJSONTemplate over configs ----------------------------------------------------------------------------


def test_config_strings_are_evaluated_at_any_depth_and_keys_never() -> None:
    config = {"${{ 'k' }}": ["${{ 5 }}", {"x": "${{ 1.5 }}"}], "n": 7, "s": "plain"}
    assert evaluate_config(config, {}) == {"${{ 'k' }}": [5, {"x": 1.5}], "n": 7, "s": "plain"}


def test_a_config_value_coerced_to_nan_fails_marshalling() -> None:
    with pytest.raises(TemplateError, match="json: unsupported value: NaN"):
        evaluate_config({"x": "${{ 'NaN' }}"}, {})


@pytest.mark.parametrize("char", ["\x7f", "\x80", "\ufffe"])
def test_a_config_holding_what_yaml_refuses_is_read_back_as_no_config(char: str) -> None:
    """evaluator.go:316-319 (v1.11.2): the evaluated config, as JSON, read back by yaml.v3; a
    character outside YAML's printable set that JSON leaves raw makes yaml.v3 fail, and Kargo
    then gives the step a nil config (Kargo's own run: "given: null", nothing sent)."""
    assert evaluate_config({"x": f"a{char}b"}, {}) is None
    assert evaluate_config({"x": "a\x01b\x85"}, {}) == {"x": "a\x01b\x85"}  # JSON escapes U+0001; U+0085 is printable
    sent: list = []
    result = promote(http_step(body=f'{{"ref": "main{char}"}}'), http=lambda request: sent.append(request))
    assert result.phase == "Failed" and "given: null" in result.message and sent == []


def test_quote_is_a_reserved_environment_key() -> None:
    with pytest.raises(TemplateError, match='"quote" is a forbidden key in the environment map'):
        evaluate_config({"x": "y"}, {"quote": 1})


# --- expr-lang ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'single' + \"double\"", "singledouble"),
        ('"tab\\tnew\\nline\\x41\\u00e9\\101"', "tab\tnew\nlineAéA"),
        ("`raw \\n`", "raw \\n"),
        ("1_000 + 0x10", 1016),
        ("1.5 + 1", 2.5),
        ("[1, 'a', nil][-2]", "a"),
        ("{ ref: 'main', 'x-y': 1 }['x-y']", 1),
        ("1 < 2 < 3", True),
        ("3 > 2 > 2", False),
        ("nil ?? 'd'", "d"),
        ("true ? 'a' : 'b'", "a"),
        ("false ? 'a' : true ? 'b' : 'c'", "b"),
        ("'a' in ['b', 'a']", True),
        ("'a' not in { a: 1 }", False),
        ("!false && not false", True),
        ("[1] == [1.0]", True),
        ("{ a: 1 } == { a: 1.0 }", False),  # maps compare with reflect.DeepEqual: int is not float64
        ("-(1 + 2)", -3),
        ("3 - 1.5", 1.5),
    ],
)
def test_expression_semantics(source: str, expected: Any) -> None:
    assert evaluate_expr(source, {}) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("'a' + 1", "invalid operation: + (mismatched types string and int)"),
        ("!'a'", "invalid operation: ! (mismatched type string)"),
        ("1 ? 'a' : 'b'", "non-bool expression (type int) used as condition"),
        ('"it\\\'s"', "invalid char escape"),
        ("'unterminated", "literal not terminated"),
        ("a ?? b == c", "Operator (==) and coalesce expressions (??) cannot be mixed. Wrap either by parentheses."),
        ("a.", "unexpected end of expression"),
        ("[1, 2]['x']", "array elements can only be selected using an integer (got string)"),
        ("'a' == 1", "invalid operation: == (mismatched types string and int)"),
    ],
)
def test_expressions_expr_lang_refuses_to_compile(source: str, message: str) -> None:
    with pytest.raises(ExprError) as caught:
        evaluate_expr(source, {})
    assert caught.value.phase == "compile"
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("nothing.here", "cannot fetch here from <nil>"),
        ("vars.s + 1", "invalid operation: string + int"),
        ("vars.s < 1", "invalid operation: string < int"),
        ("!vars.s", "interface conversion: interface {} is string, not bool"),
        ("vars.m && vars.t", "interface conversion: interface {} is map[string]interface {}, not bool"),
        ("vars.s ? 1 : 2", "interface conversion: interface {} is string, not bool"),
        ("notAFunction('x')", "invalid operation: cannot call nil"),
        ("vars.l[5]", "index out of range: 5 (array length is 1)"),
        ("vars.l.message", "invalid operation: int(string)"),
        ("vars.s.message", "invalid operation: int(string)"),
    ],
)
def test_expressions_that_fail_at_run_time(source: str, message: str) -> None:
    env = {"vars": {"s": "x", "m": {}, "l": [1], "t": True}}
    with pytest.raises(ExprError) as caught:
        evaluate_expr(source, env)
    assert caught.value.phase == "run"
    assert caught.value.message == message


def test_a_literal_bool_beside_and_or_is_folded_away_before_the_run() -> None:
    """expr-lang's optimizer (fold.go:215-236, v1.17.8) drops `&& true` and `|| false`: the other
    side comes back as it is, a map included, with no bool assertion (Kargo's own run of it)."""
    env = {"vars": {"m": {"a": 1}, "s": "x"}}
    assert evaluate_expr("vars.m && true", env) == {"a": 1}
    assert evaluate_expr("true && vars.s", env) == "x"
    assert evaluate_expr("vars.s || false", env) == "x"
    assert evaluate_expr("vars.m && false", env) is False and evaluate_expr("vars.m || true", env) is True
    with pytest.raises(ExprError, match="not bool"):
        evaluate_expr("vars.m && vars.s == 'x'", env)  # not a literal: the VM asserts the bool


def test_and_or_short_circuit_before_touching_the_right_side() -> None:
    assert evaluate_expr("false && nothing.here", {}) is False
    assert evaluate_expr("true || nothing.here", {}) is True
    # The right side is returned as it is (only the left one must be a bool), when its type is not known statically.
    assert evaluate_expr("true && vars.s", {"vars": {"s": "not a bool"}}) == "not a bool"


def test_a_typed_nil_map_reads_as_nil_fields_and_equals_nil() -> None:
    env = {"outputs": GoState({"rebuild": NIL_MAP})}
    assert evaluate_expr("outputs.rebuild.status", env) is None
    assert evaluate_expr("outputs.rebuild != nil", env) is False
    assert evaluate_expr("outputs.rebuild.status ?? 'none'", env) == "none"
    assert evaluate_expr("outputs.rebuild?.status", env) is None


def test_an_alias_that_never_ran_is_untyped_nil_and_fetching_from_it_fails() -> None:
    env = {"outputs": GoState({"rebuild": NIL_MAP})}
    with pytest.raises(ExprError, match="cannot fetch status from <nil>"):
        evaluate_expr("outputs.never.status", env)
    assert evaluate_expr("outputs.never?.status", env) is None
    assert evaluate_expr("outputs['never'] == nil", env) is True


def test_hyphenated_aliases_need_brackets() -> None:
    env = {"outputs": GoState({"open-pr": {"url": "u"}})}
    assert evaluate_expr("outputs['open-pr'].url", env) == "u"
    with pytest.raises(ExprError, match="cannot fetch url from <nil>"):  # outputs.open - pr.url
        evaluate_expr("outputs.open-pr.url", env)


def test_builtins_are_refused_as_unmodelled() -> None:
    with pytest.raises(UnsupportedExprError) as caught:
        evaluate_expr("len('abc')", {})
    assert isinstance(caught.value, ModelLimit)
    with pytest.raises(UnsupportedExprError, match=r"the operator \* is not modelled"):
        evaluate_expr("1 * 2", {})


# --- Kargo's functions --------------------------------------------------------------------------------------------


def test_image_from_gives_the_freights_image_fields() -> None:
    fns = functions()
    assert evaluate_template(f"${{{{ imageFrom('{PYTHON}').Digest }}}}", {}, fns) == DIGEST
    assert evaluate_template(f"${{{{ imageFrom('{PYTHON}').RepoURL }}}}", {}, fns) == PYTHON
    assert evaluate_template(f"${{{{ imageFrom('{PYTHON}').Tag }}}}", {}, fns) == 3.12  # coerced!
    assert evaluate_template(f"${{{{ quote(imageFrom('{PYTHON}').Tag) }}}}", {}, fns) == "3.12"


def test_image_from_checks_field_names_at_compile_time() -> None:
    with pytest.raises(ExprError) as caught:
        evaluate_template(f"${{{{ imageFrom('{PYTHON}').digest }}}}", {}, functions())
    assert caught.value.phase == "compile"
    assert caught.value.message == "type v1alpha1.Image has no field digest"


def test_image_from_an_unsubscribed_repository_is_nil_and_its_digest_fails() -> None:
    fns = functions()
    with pytest.raises(ExprError) as caught:
        evaluate_template("${{ imageFrom('docker.io/library/node').Digest }}", {}, fns)
    assert caught.value.message == "reflect: call of reflect.Value.Field on zero Value"
    assert evaluate_template("${{ imageFrom('docker.io/library/node')?.Digest ?? 'none' }}", {}, fns) == "none"
    assert evaluate_template("${{ imageFrom('docker.io/library/node') == nil }}", {}, fns) is True


def test_image_from_refuses_ambiguous_subscriptions() -> None:
    two = stage(http_step())
    two["spec"]["requestedFreight"].append({"origin": {"kind": "Warehouse", "name": "python-too"}})
    fns = make_functions(
        stage=two, freight=Freight("f", [], origin="python"), warehouses={"python": [PYTHON], "python-too": [PYTHON]}
    )
    with pytest.raises(ExprError, match="multiple requested Freight could potentially provide a container image"):
        evaluate_template(f"${{{{ imageFrom('{PYTHON}').Digest }}}}", {}, fns)


def test_a_missing_secret_is_an_empty_map_whose_keys_read_as_empty_strings() -> None:
    fns = functions()
    assert evaluate_template("Bearer ${{ secret('absent').token }}", {}, fns) == "Bearer "
    assert evaluate_template("${{ secret('github')['token'] }}", {}, fns) == "ghp_secret"


def test_typed_function_arguments_are_checked_at_compile_time() -> None:
    with pytest.raises(ExprError) as caught:
        evaluate_template("${{ imageFrom(1).Digest }}", {}, functions())
    assert caught.value.message == "cannot use int as argument (type string) to call imageFrom "
    with pytest.raises(ExprError, match="not enough arguments to call secret"):
        evaluate_template("${{ secret() }}", {}, functions())


# --- Go helpers ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1.0),
        ("-1.5e3", -1500.0),
        (".5", 0.5),
        ("1_000", 1000.0),
        ("0x1.8p1", 3.0),
        ("Infinity", math.inf),
        ("-inf", -math.inf),
        ("_1", None),
        ("1__0", None),
        ("0x10", None),  # a hexadecimal mantissa needs a p exponent
        ("1e400", None),
        ("+nan", None),
        ("infin", None),
        ("1.2.3", None),
        ("", None),
        ("sha256:ab", None),
    ],
)
def test_go_parse_float(text: str, expected: float | None) -> None:
    assert go_parse_float(text) == expected


def test_go_parse_float_nan_and_bools() -> None:
    assert math.isnan(go_parse_float("NaN") or 0.0)
    assert [go_parse_bool(t) for t in ("1", "t", "TRUE", "True", "0", "F", "false", "yes", "tRUE")] == [
        True,
        True,
        True,
        True,
        False,
        False,
        False,
        None,
        None,
    ]


def test_go_json_marshal() -> None:
    value = {"b": [1e21, 1e-7, 0.1, -0.0, 100.0, 123456789.0], "a": "<\u2028\b>", "n": None, "t": NIL_MAP}
    assert go_json_marshal(value) == (
        '{"a":"\\u003c\\u2028\\b\\u003e","b":[1e+21,1e-7,0.1,-0,100,123456789],"n":null,"t":null}'
    )


def test_go_quote_and_headers_and_durations() -> None:
    assert go_quote('a"b\n\x01é\x7f') == '"a\\"b\\n\\x01é\\x7f"'
    assert canonical_header_key("x-ratelimit-remaining") == "X-Ratelimit-Remaining"
    assert canonical_header_key("bad header") == "bad header"
    assert [go_duration_string(s) for s in (120, 3600, 0.5, 90, 1.5)] == ["2m0s", "1h0m0s", "500ms", "1m30s", "1.5s"]
    assert go_parse_duration("1h30m") == 5400.0
    with pytest.raises(ValueError, match='time: unknown unit "d" in duration "7d"'):
        go_parse_duration("7d")


# --- the http step's own expressions ----------------------------------------------------------------------------


def test_response_header_is_case_insensitive_but_headers_is_canonical_lists() -> None:
    answer = HttpResponse(403, {"x-ratelimit-remaining": "0"}, b'{"message": "API rate limit exceeded"}')
    result = promote(
        http_step(
            failureExpression="response.status == 403 && response.header('X-RateLimit-Remaining') != '0'",
            outputs=[
                {"name": "lower", "fromExpression": "response.headers['x-ratelimit-remaining'] == nil"},
                {"name": "asList", "fromExpression": "response.headers['X-Ratelimit-Remaining'] == '0'"},
                {"name": "first", "fromExpression": "response.headers['X-Ratelimit-Remaining'][0]"},
            ],
            successExpression="response.header('x-RATELIMIT-remaining') == '0'",
        ),
        http=server(answer),
    )
    assert result.phase == "Succeeded"
    assert result.state["rebuild"] == {"lower": True, "asList": False, "first": "0"}


def test_response_status_is_int64_and_the_body_parsed_json() -> None:
    result = promote(
        http_step(
            successExpression="response.status == 200",
            outputs=[
                {"name": "id", "fromExpression": "response.body.id"},
                {"name": "status", "fromExpression": "response.status"},
            ],
        ),
        http=server(HttpResponse(200, body='{"id": 7}', content_type="application/json; charset=utf-8")),
    )
    assert result.phase == "Succeeded"
    assert result.state["rebuild"] == {"id": 7.0, "status": 200}
    assert type(result.state["rebuild"]["status"]) is GoInt64


def test_a_non_json_body_under_an_unknown_content_type_is_ignored() -> None:
    result = promote(
        http_step(outputs=[{"name": "body", "fromExpression": "response.body"}], successExpression=None),
        http=server(HttpResponse(200, body="<html>", content_type="text/html")),
    )
    assert result.state["rebuild"] == {"body": {}}


# --- run_promotion: the step loop ------------------------------------------------------------------------------------


def test_a_dispatch_that_gets_204_succeeds_and_sends_the_json_body() -> None:
    result = promote(http_step(), http=server(HttpResponse(204)))
    assert result.phase == "Succeeded"
    assert result.step("rebuild").status == "Succeeded"
    assert len(result.requests) == 1
    request = result.requests[0]
    assert (request.method, request.url, request.timeout) == ("POST", DISPATCH_URL, 10.0)
    assert request.header("authorization") == "Bearer ghp_secret"
    assert request.json() == {"ref": "main", "inputs": {"image": "payments", "digest": DIGEST, "freight": "f0123"}}
    assert result.step("rebuild").config["body"] == request.body
    assert result.state == {"rebuild": {}}  # success without outputs: an empty map, not nil


def test_a_body_written_as_json_text_becomes_an_object_and_fails_the_schema() -> None:
    body = '{"ref": "main", "inputs": {"digest": "${{ imageFrom(\'' + PYTHON + "').Digest }}\"}}"
    result = promote(http_step(body=body), http=server(HttpResponse(204)))
    assert result.phase == "Failed"
    assert result.requests == []
    assert result.message == 'step "rebuild": invalid http config: body: Invalid type. Expected: string, given: object'


def test_one_transport_error_fails_the_promotion_with_the_default_threshold() -> None:
    result = promote(http_step(), http=server(ConnectionRefusedError("connect: connection refused")))
    assert result.phase == "Errored"
    assert len(result.requests) == 1
    assert result.message == (
        'step "rebuild" met error threshold of 1: error running step "rebuild": error sending HTTP request: '
        f'Post "{DISPATCH_URL}": connect: connection refused'
    )


def test_an_error_threshold_of_five_survives_four_transport_errors() -> None:
    errors = [TimeoutError("context deadline exceeded")] * 4
    result = promote(http_step(retry={"errorThreshold": 5}), http=server(*errors, HttpResponse(204)))
    assert result.phase == "Succeeded"
    assert len(result.requests) == 5
    assert result.step("rebuild").error_count == 4
    assert result.reconciles == 5


def test_an_error_threshold_of_five_gives_up_at_the_fifth_error() -> None:
    result = promote(http_step(retry={"errorThreshold": 5}), http=server(TimeoutError("timeout")))
    assert result.phase == "Errored"
    assert len(result.requests) == 5
    assert result.message.startswith('step "rebuild" met error threshold of 5: error running step "rebuild"')


def test_a_429_with_only_a_success_expression_is_polled_and_re_posted() -> None:
    result = promote(http_step(), http=server(HttpResponse(429), HttpResponse(429), HttpResponse(204)))
    assert result.phase == "Succeeded"
    assert [round(r.at) for r in result.requests] == [0, 30, 60]  # the default 30s poll interval
    assert {r.body for r in result.requests} == {result.requests[0].body}
    assert result.step("rebuild").error_count == 0


def test_polling_stops_at_the_retry_timeout_one_poll_late() -> None:
    result = promote(
        http_step(pollInterval="30s", retry={"timeout": "2m"}), http=server(HttpResponse(503)), max_reconciles=50
    )
    assert result.phase == "Errored"
    assert result.message == 'step "rebuild" timed out after 2m0s'
    assert [round(r.at) for r in result.requests] == [0, 30, 60, 90, 120]


def test_without_criteria_a_non_2xx_answer_is_retried_every_five_minutes_and_never_counted() -> None:
    result = promote(http_step(successExpression=None), http=server(HttpResponse(404)), max_reconciles=4)
    assert result.phase == "Running"
    assert [round(r.at) for r in result.requests] == [0, 300, 600, 900]
    assert (result.step("rebuild").status, result.step("rebuild").error_count) == ("Failed", 0)


def test_failure_and_error_expressions_fail_with_githubs_message() -> None:
    step = http_step(
        failureExpression="response.status >= 400 && response.status < 500 && response.status != 429",
        errorExpression="'GitHub refused: ' + (response.body.message ?? 'no message')",
    )
    answer = HttpResponse(
        422, body='{"message": "Unexpected inputs provided: [\\"x\\"]"}', content_type="application/json"
    )
    result = promote(step, http=server(answer))
    assert result.phase == "Failed"
    assert result.message == (
        'step "rebuild": HTTP (422) response met failure criteria: '
        '"GitHub refused: Unexpected inputs provided: [\\"x\\"]"'
    )


def test_an_error_expression_that_fails_falls_back_to_the_bare_message() -> None:
    step = http_step(failureExpression="response.status == 422", errorExpression="response.body.error.detail")
    result = promote(step, http=server(HttpResponse(422, body="{}")))
    assert result.message == 'step "rebuild": HTTP (422) response met failure criteria'


def test_a_success_expression_that_fails_on_a_refusal_body_is_an_error() -> None:
    step = http_step(successExpression="response.body.run.id != nil")
    result = promote(step, http=server(HttpResponse(422, body='{"message": "no"}')))
    assert result.phase == "Errored"
    assert 'error evaluating success expression "response.body.run.id != nil": cannot fetch id from <nil>' in (
        result.message
    )


def test_outputs_of_a_failed_step_are_a_typed_nil_and_a_never_run_alias_is_not() -> None:
    refused = http_step(failureExpression="response.status == 422")
    later = [
        {"uses": "compose-output", "as": "nil-check", "if": "${{ outputs.rebuild != nil }}", "config": {"a": "b"}},
        {"uses": "compose-output", "as": "status", "if": "${{ outputs.rebuild.status == nil }}", "config": {"a": "b"}},
        {"uses": "compose-output", "as": "never", "if": "${{ outputs.absent.status == nil }}", "config": {"a": "b"}},
        {"uses": "compose-output", "as": "no-if", "config": {"a": "b"}},
    ]
    result = promote(refused, *later, http=server(HttpResponse(422)))
    assert result.state["rebuild"] is NIL_MAP
    assert result.if_values == {"nil-check": False, "status": True}
    assert result.step("no-if").if_value is NOT_EVALUATED
    assert result.step("nil-check").status == "Skipped"
    assert result.step("status").status == "Succeeded"
    assert result.step("never").status == "Errored"
    assert result.step("never").message.startswith(
        'error checking if step "never" should be skipped: cannot fetch status from <nil>'
    )
    assert result.step("no-if").status == "Skipped"  # an empty if skips once any earlier step failed
    assert result.phase == "Errored"  # the worst status decides: Errored beats Failed


def test_a_typed_nil_output_becomes_untyped_nil_once_a_reconcile_persists_the_state() -> None:
    """Across reconciles the state goes through the Promotion's status as JSON: the typed nil is lost."""
    failing = {"uses": "fail", "as": "gate", "config": {"message": "no"}}
    polling = http_step("poll", if_="${{ always() }}")
    check = {"uses": "compose-output", "as": "check", "if": "${{ outputs.gate.x == nil }}", "config": {"a": "b"}}
    same_reconcile = promote(failing, polling, check, http=server(HttpResponse(204)))
    assert same_reconcile.step("check").status == "Succeeded"
    after_a_poll = promote(failing, polling, check, http=server(HttpResponse(503), HttpResponse(204)))
    assert after_a_poll.step("poll").status == "Succeeded"
    assert after_a_poll.step("check").status == "Errored"
    assert "cannot fetch x from <nil>" in after_a_poll.step("check").message


def test_an_if_without_delimiters_is_a_string_and_so_an_error() -> None:
    result = promote(http_step(if_="success()"), http=server(HttpResponse(204)))
    assert result.step("rebuild").status == "Errored"
    assert result.step("rebuild").message == (
        'error checking if step "rebuild" should be skipped: expression must evaluate to a boolean, got string'
    )
    assert result.requests == []


def test_if_values_and_status_functions() -> None:
    steps = [
        {"uses": "fail", "as": "gate"},
        {"uses": "compose-output", "as": "by-status", "if": "${{ status('gate') == 'Failed' }}", "config": {"a": "b"}},
        {
            "uses": "compose-output",
            "as": "by-meta",
            "if": "${{ stepMetas.gate.Status == 'Failed' }}",
            "config": {"a": "b"},
        },
        {"uses": "compose-output", "as": "on-failure", "if": "${{ failure() }}", "config": {"a": "b"}},
    ]
    result = promote(*steps)
    assert result.if_values == {"by-status": True, "by-meta": False, "on-failure": True}
    assert (
        result.step("gate").message
        == 'step "gate": invalid fail config: (root): Invalid type. Expected: object, given: null'
    )
    assert result.phase == "Failed"


def test_a_step_kind_that_is_not_registered_errors_and_the_loop_goes_on() -> None:
    gha = {"uses": "gha-dispatch-workflow", "as": "rebuild", "config": {"workflowFile": "build.yml"}}
    notify = {"uses": "compose-output", "as": "notify", "if": "${{ always() }}", "config": {"a": "b"}}
    result = promote(gha, notify)
    assert result.step("rebuild").status == "Errored"
    assert result.step("rebuild").message.startswith('step kind "gha-dispatch-workflow" is not registered;')
    assert result.step("notify").status == "Succeeded"
    assert result.phase == "Errored"


def test_a_config_that_fails_to_evaluate_errors_the_step_without_retry() -> None:
    step = http_step(
        body="${{ quote({ 'digest': imageFrom('docker.io/library/node').Digest }) }}", retry={"errorThreshold": 5}
    )
    result = promote(step, http=server(HttpResponse(204)))
    assert result.phase == "Errored"
    assert result.requests == []
    assert result.message.startswith(
        "failed to build step context: failed to get step config: reflect: call of reflect.Value.Field on zero Value"
    )


def test_a_header_from_a_secret_with_a_trailing_newline_is_refused_by_gos_client() -> None:
    result = run_promotion(
        stage(http_step()),
        freight=FREIGHT,
        warehouses=WAREHOUSES,
        secrets={"github": {"token": "ghp_x\n"}},
        http=server(HttpResponse(204)),
    )
    assert result.phase == "Errored"
    assert result.requests == []
    assert 'net/http: invalid header field value for "Authorization"' in result.message


def test_an_empty_header_value_fails_the_schema() -> None:
    step = http_step(headers=[{"name": "Authorization", "value": "${{ secret('absent').token }}"}])
    result = promote(step, http=server(HttpResponse(204)))
    assert result.phase == "Failed"
    assert "headers.0.value: String length must be greater than or equal to 1" in result.message


def test_a_composed_integer_is_a_float_and_the_next_step_takes_it() -> None:
    """compose-output converts its config through JSON (ConfigToStruct): 5 is a float64 in the
    shared state, which the next step's deep copy takes (Kargo's own run of it)."""
    counted = {"uses": "compose-output", "as": "count", "config": {"n": 5}}
    after = {"uses": "compose-output", "as": "after", "config": {"n": "${{ outputs.count.n }}"}}
    result = promote(counted, after)
    assert result.phase == "Succeeded", result.message
    assert result.state["count"] == {"n": 5.0} and isinstance(result.state["count"]["n"], float)


def test_query_params_are_added_and_encoded_sorted() -> None:
    step = http_step(url="https://example.com/x?z=1", queryParams=[{"name": "a b", "value": "c&d"}])
    result = promote(step, http=server(HttpResponse(204)))
    assert result.requests[0].url == "https://example.com/x?a+b=c%26d&z=1"


def test_admission_refuses_duplicate_and_reserved_aliases_and_empty_stages() -> None:
    with pytest.raises(PromotionRejected, match="duplicates"):
        promote(http_step("a"), http_step("a"))
    with pytest.raises(PromotionRejected, match="reserved"):
        promote(http_step("step-1"))
    with pytest.raises(PromotionRejected, match="no promotion steps"):
        promote()


def test_registered_but_unmodelled_kinds_are_refused_by_the_model() -> None:
    with pytest.raises(ModelLimit, match="git-clone"):
        promote({"uses": "git-clone", "config": {"repoURL": "https://x"}})


# --- verification arguments --------------------------------------------------------------------------------------


def verification(*args: dict) -> dict:
    return {"analysisTemplates": [{"name": "verify-python"}], "args": list(args)}


def test_verification_args_evaluate_to_strings() -> None:
    checked = stage(
        http_step(),
        verification=verification(
            {"name": "digest", "value": f"${{{{ imageFrom('{PYTHON}').Digest }}}}"},
            {"name": "tag", "value": f"${{{{ quote(imageFrom('{PYTHON}').Tag) }}}}"},
            {"name": "stage", "value": "${{ ctx.stage }}"},
        ),
    )
    assert evaluate_verification_args(checked, FREIGHT, WAREHOUSES) == {
        "digest": DIGEST,
        "tag": "3.12",
        "stage": "rebuild-payments",
    }


def test_a_verification_arg_that_coerces_to_a_number_is_an_error() -> None:
    checked = stage(
        http_step(), verification=verification({"name": "tag", "value": f"${{{{ imageFrom('{PYTHON}').Tag }}}}"})
    )
    with pytest.raises(VerificationArgError, match='evaluated argument "tag" value is not a string but float64'):
        evaluate_verification_args(checked, FREIGHT, WAREHOUSES)


def test_verification_has_no_vars_unless_the_stage_declares_some() -> None:
    arg = {"name": "v", "value": "${{ vars.x }}"}
    with pytest.raises(VerificationArgError, match='evaluate argument "v": cannot fetch x from <nil>'):
        evaluate_verification_args(stage(http_step(), verification=verification(arg)), FREIGHT, WAREHOUSES)
    declared = stage(http_step(), verification=verification(arg), variables=[{"name": "x", "value": "hello"}])
    assert evaluate_verification_args(declared, FREIGHT, WAREHOUSES) == {"v": "hello"}


def test_retries_after_transport_errors_are_milliseconds_apart() -> None:
    """A retryable error goes back to controller-runtime's progressive backoff (5ms, 10ms, ...), not a poll."""
    result = promote(http_step(retry={"errorThreshold": 5}), http=server(TimeoutError("timeout")))
    assert result.phase == "Errored"
    assert [round(r.at, 3) for r in result.requests] == [0.0, 0.006, 0.017, 0.038, 0.079]


def test_stage_and_step_vars_reach_configs() -> None:
    step = {
        "uses": "compose-output",
        "as": "note",
        "vars": [{"name": "short", "value": "${{ vars.digest + '!' }}"}],
        "config": {"digest": "${{ vars.digest }}", "short": "${{ vars.short }}"},
    }
    checked = stage(step, variables=[{"name": "digest", "value": f"${{{{ imageFrom('{PYTHON}').Digest }}}}"}])
    result = run_promotion(checked, freight=FREIGHT, warehouses=WAREHOUSES)
    assert result.state["note"] == {"digest": DIGEST, "short": DIGEST + "!"}


def test_continue_on_error_keeps_a_failure_out_of_the_phase_and_of_failure() -> None:
    optional = {"uses": "fail", "as": "optional", "continueOnError": True, "config": {"message": "meh"}}
    after = {"uses": "compose-output", "as": "after", "config": {"a": "b"}}
    result = promote(optional, after)
    assert result.step("optional").status == "Failed"
    assert result.step("optional").message == 'step "optional": failed: meh'
    assert result.step("after").status == "Succeeded"
    assert result.phase == "Succeeded"
