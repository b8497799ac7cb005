"""What Kargo v1.11.2 (with expr-lang v1.17.8 inside it) does at run time with a generated Stage: a test oracle.

Every rule cites its source at the tag: ``akuity/kargo`` paths at v1.11.2, ``expr-lang`` paths at v1.17.8, ``Go``
for the standard library. Where the model cannot tell what Kargo would do it raises :class:`ModelLimit` instead of
guessing. This package exports what the tests use; each module's docstring says what it models.
"""

from .errors import (
    ExprError,
    ModelLimit,
    PromotionRejected,
    TemplateError,
    UnsupportedExprError,
    VerificationArgError,
)
from .expr import evaluate_expr
from .functions import Freight, Image, make_functions
from .go import (
    NIL_MAP,
    GoInt64,
    GoState,
    canonical_header_key,
    go_duration_string,
    go_json_marshal,
    go_parse_bool,
    go_parse_duration,
    go_parse_float,
    go_quote,
)
from .http_step import HttpRequest, HttpResponse
from .promotion import NOT_EVALUATED, PromotionResult, StepOutcome, run_promotion
from .templates import evaluate_config, evaluate_template
from .verification import evaluate_verification_args

__all__ = [
    "NIL_MAP",
    "NOT_EVALUATED",
    "ExprError",
    "Freight",
    "GoInt64",
    "GoState",
    "HttpRequest",
    "HttpResponse",
    "Image",
    "ModelLimit",
    "PromotionRejected",
    "PromotionResult",
    "StepOutcome",
    "TemplateError",
    "UnsupportedExprError",
    "VerificationArgError",
    "canonical_header_key",
    "evaluate_config",
    "evaluate_expr",
    "evaluate_template",
    "evaluate_verification_args",
    "go_duration_string",
    "go_json_marshal",
    "go_parse_bool",
    "go_parse_duration",
    "go_parse_float",
    "go_quote",
    "make_functions",
    "run_promotion",
]
