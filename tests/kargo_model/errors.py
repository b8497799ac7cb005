"""The errors of the Kargo model: what Kargo (or expr-lang inside it) reports, and what the model cannot tell.

Error texts follow Kargo v1.11.2's; an expr-lang error gets the ``(line:column)`` suffix and snippet of expr-lang
v1.17.8's file/error.go (approximately).
"""

from __future__ import annotations


class ModelLimit(Exception):
    """The model cannot tell what Kargo would do here, so it refuses rather than guesses."""


class KargoError(Exception):
    """An error Kargo itself reports; ``str()`` follows Kargo's wording."""


class ExprError(KargoError):
    """expr-lang rejected an expression while compiling (``phase == "compile"``) or running it (``"run"``)."""

    def __init__(self, message: str, phase: str, source: str = "", position: int | None = None) -> None:
        self.message = message
        self.phase = phase
        super().__init__(_format_expr_error(message, source, position))


class UnsupportedExprError(ExprError, ModelLimit):
    """An expression (or a part of one) that this model does not evaluate."""


class TemplateError(KargoError):
    """An error of Kargo's template layer (``pkg/expressions/json_templates.go``) or of Go's encoding/json."""


class VerificationArgError(KargoError):
    """A verification argument Kargo cannot turn into an AnalysisRun argument."""


class PromotionRejected(Exception):
    """Kargo's admission webhooks would refuse the Promotion (or the Stage) before any step runs."""


def _format_expr_error(message: str, source: str, position: int | None) -> str:
    # expr-lang file/error.go:22-86 (v1.17.8): "message (line:column)" and a snippet pointing at the column.
    if position is None or not source:
        return message
    line, column, line_start = 1, 0, 0
    for index, char in enumerate(source[:position]):
        if char == "\n":
            line, column, line_start = line + 1, 0, index + 1
        else:
            column += 1
    line_end = source.find("\n", line_start)
    text = source[line_start : len(source) if line_end < 0 else line_end]
    if not text:
        return message
    return f"{message} ({line}:{column + 1})\n | {text.replace(chr(9), ' ')}\n | {'.' * column}^"
