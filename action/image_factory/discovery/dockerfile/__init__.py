"""Base-image discovery: every external image a Dockerfile builds on, resolved like BuildKit does.

A module per part of BuildKit's frontend (moby/buildkit, frontend/dockerfile/), so each can be
read beside the code it follows: `parser` (parser/: lines, directives, continuations, heredocs),
`lexer` (shell/lex.go: one word's quotes and `$` expansions), `stages` (instructions/parse.go and
dockerfile2llb/: stages, `COPY --from`, `RUN --mount=from=`, ONBUILD, the order check), and
`bases`, which runs them. `model` holds what they find.
"""

from image_factory.discovery.dockerfile.bases import find_bases
from image_factory.discovery.dockerfile.model import COPY_FROM, FROM, MOUNT_FROM, BaseUse, Discovery, Overridden

__all__ = ["COPY_FROM", "FROM", "MOUNT_FROM", "BaseUse", "Discovery", "Overridden", "find_bases"]
