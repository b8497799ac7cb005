"""The functions Kargo gives a Stage's expressions (pkg/expressions/function/functions.go, v1.11.2).

``imageFrom`` and ``warehouse`` over the Freight a Promotion references (with pkg/controller/freight/finder.go),
``secret`` and ``configMap``, and the step-status functions ``always``, ``failure``, ``success`` and ``status``;
each with the Go types Kargo declares to expr.Function. :class:`Freight` and :class:`Image` describe the Freight.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import KargoError
from .expr import N_BOOL, N_IMAGE, N_ORIGIN, N_STRING, N_STRING_MAP, ExprFunction, Signature
from .go import NIL_IMAGE, NIL_STRING_MAP, GoNamedString, GoStringMap, GoStruct, go_quote, go_type_of
from .steps import StepMeta, has_failures


@dataclass(frozen=True)
class Image:
    """One image of a Freight (``api/v1alpha1/stage_types.go:670-681``)."""

    repo_url: str
    tag: str = ""
    digest: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, value: Image | Mapping[str, Any]) -> Image:
        if isinstance(value, Image):
            return value
        return cls(
            value["repoURL"], value.get("tag", ""), value.get("digest", ""), dict(value.get("annotations") or {})
        )

    def go_value(self) -> GoStruct:
        annotations = GoStringMap(self.annotations) if self.annotations else NIL_STRING_MAP
        fields = {"RepoURL": self.repo_url, "Tag": self.tag, "Digest": self.digest, "Annotations": annotations}
        tags = (("RepoURL", "repoURL"), ("Tag", "tag"), ("Digest", "digest"), ("Annotations", "annotations"))
        return GoStruct("v1alpha1.Image", fields, tags, pointer=True)


@dataclass(frozen=True)
class Freight:
    """A Freight: its name, its images and the Warehouse it came from (``origin``)."""

    name: str
    images: Sequence[Image | Mapping[str, Any]] = ()
    origin: str | None = None
    alias: str = ""

    @classmethod
    def of(cls, value: Freight | Mapping[str, Any]) -> Freight:
        if isinstance(value, Freight):
            return value
        return cls(value["name"], tuple(value.get("images") or ()), value.get("origin"), value.get("alias", ""))


def _origin_struct(name: str) -> GoStruct:
    fields = {"Kind": GoNamedString("Warehouse", "v1alpha1.FreightOriginKind"), "Name": name}
    return GoStruct("v1alpha1.FreightOrigin", fields, (("Kind", "kind"), ("Name", "name")))


def _arg_string(args: Sequence[Any], what: str = "argument") -> str:
    if not isinstance(args[0], str) or isinstance(args[0], GoNamedString):
        raise KargoError(f"{what} must be string, got {go_type_of(args[0])}")
    return args[0]


def _only_string_arg(args: Sequence[Any]) -> str:
    # The one-argument functions (warehouse, secret, configMap, status): the count, then the type.
    if len(args) != 1:
        raise KargoError(f"expected 1 argument, got {len(args)}")
    return _arg_string(args)


@dataclass(frozen=True)
class FreightContext:
    """What imageFrom() searches: the Stage's project and requested Warehouses, and the Freight it references."""

    project: str
    requested: tuple[str, ...]  # Warehouse names of spec.requestedFreight
    references: tuple[Freight, ...]  # the FreightCollection's references
    warehouses: Mapping[str, Sequence[str]]

    def find_image(self, repo_url: str, origin: str | None) -> Any:
        # pkg/controller/freight/finder.go:97-165 (v1.11.2): the requested Warehouse that subscribes to the
        # repoURL (exact string match) is the origin; none -> nil; two -> an error; then the Freight from it.
        if origin is None:
            for warehouse in self.requested:
                if warehouse not in self.warehouses:
                    raise KargoError(f"Warehouse {go_quote(warehouse)} not found in namespace {go_quote(self.project)}")
                if repo_url in self.warehouses[warehouse]:
                    if origin is not None:
                        raise KargoError(
                            "multiple requested Freight could potentially provide a container image from "
                            f"repository {repo_url}: please provide a Freight origin to disambiguate"
                        )
                    origin = warehouse
        if origin is None:
            return NIL_IMAGE
        for freight in self.references:
            if freight.origin == origin:
                for image in map(Image.of, freight.images):
                    if image.repo_url == repo_url:
                        return image.go_value()
        return NIL_IMAGE


def _unsupported(*names: str) -> dict[str, ExprFunction]:
    """Kargo functions the model does not evaluate: an expression that calls one is an UnsupportedExprError."""
    return {name: ExprFunction(name, lambda *_: None, unsupported=True) for name in names}


def _freight_functions(freight: FreightContext) -> dict[str, ExprFunction]:
    def image_from(*args: Any) -> Any:
        # functions.go:640-676 (v1.11.2)
        if not 1 <= len(args) <= 2:
            raise KargoError(f"expected 1-2 arguments, got {len(args)}")
        repo_url = _arg_string(args, "first argument")
        origin = None
        if len(args) == 2:
            if not (isinstance(args[1], GoStruct) and args[1].go_type == "v1alpha1.FreightOrigin"):
                raise KargoError(f"second argument must be FreightOrigin, got {go_type_of(args[1])}")
            origin = args[1].fields["Name"]
        return freight.find_image(repo_url, origin)

    def warehouse(*args: Any) -> GoStruct:
        # functions.go:543-561 (v1.11.2)
        name = _only_string_arg(args)
        if not name:
            raise KargoError("name must not be empty")
        return _origin_struct(name)

    untyped = ("commitFrom", "chartFrom", "artifactFrom", "freightMetadata")
    return {
        # functions.go:133-135, 178-191: declared Go types, checked at compile time.
        "warehouse": ExprFunction("warehouse", warehouse, (Signature((N_STRING,), N_ORIGIN),)),
        "imageFrom": ExprFunction(
            "imageFrom",
            image_from,
            (Signature((N_STRING, N_ORIGIN), N_IMAGE), Signature((N_STRING,), N_IMAGE)),
        ),
        **_unsupported(*untyped),
    }


def _data_functions(secrets: Mapping[str, Mapping[str, str]], config_maps: Mapping[str, Mapping[str, str]]) -> dict:
    def lookup(store: Mapping[str, Mapping[str, str]]) -> Callable[..., GoStringMap]:
        def get(*args: Any) -> GoStringMap:
            # functions.go:999-1057 (v1.11.2): a missing Secret (or ConfigMap) is an empty map, not an error.
            return GoStringMap(store.get(_only_string_arg(args), {}))

        return get

    typed = (Signature((N_STRING,), N_STRING_MAP),)
    untyped = ("sharedSecret", "sharedConfigMap", "stageMetadata", "semverDiff", "semverParse")
    return {
        "secret": ExprFunction("secret", lookup(secrets), typed),  # functions.go:446-452
        "configMap": ExprFunction("configMap", lookup(config_maps), typed),  # functions.go:436-442
        **_unsupported(*untyped),
    }


def status_functions(metas: Sequence[StepMeta]) -> dict[str, ExprFunction]:
    def status(*args: Any) -> str:
        # functions.go:1072-1107 (v1.11.2)
        alias = _only_string_arg(args)
        if not alias:
            raise KargoError("argument must not be empty")
        return next((m.status for m in metas if m.alias == alias), "")

    no_args = (Signature((), N_BOOL),)
    return {  # functions.go:488-537 (v1.11.2)
        "always": ExprFunction("always", lambda: True, no_args),
        "failure": ExprFunction("failure", lambda: has_failures(metas), no_args),
        "success": ExprFunction("success", lambda: not has_failures(metas), no_args),
        "status": ExprFunction("status", status, (Signature((N_STRING,), N_STRING),)),
    }


def stage_functions(
    context: FreightContext,
    secrets: Mapping[str, Mapping[str, str]],
    config_maps: Mapping[str, Mapping[str, str]],
) -> dict[str, ExprFunction]:
    """The freight and data functions (imageFrom, warehouse, secret, configMap, ...) over one Promotion's Freight."""
    return {**_freight_functions(context), **_data_functions(secrets, config_maps)}


def make_functions(
    *,
    stage: Mapping[str, Any],
    freight: Freight | Mapping[str, Any],
    warehouses: Mapping[str, Sequence[str]],
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    config_maps: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, ExprFunction]:
    """The functions a Stage's step configs see, without the status ones: imageFrom, warehouse, secret, ..."""
    context = freight_context(stage, [target_freight(freight, stage)], warehouses)
    return stage_functions(context, secrets or {}, config_maps or {})


def requested_origins(stage: Mapping[str, Any]) -> tuple[str, ...]:
    """The Warehouse names of the Stage's ``spec.requestedFreight``."""
    requested = (stage.get("spec") or {}).get("requestedFreight") or []
    return tuple(item["origin"]["name"] for item in requested)


def target_freight(freight: Freight | Mapping[str, Any], stage: Mapping[str, Any]) -> Freight:
    """The Freight to promote, its origin filled in from the Stage's one requested Warehouse when not given."""
    target = Freight.of(freight)
    if target.origin is not None:
        return target
    requested = requested_origins(stage)
    if len(requested) != 1:
        raise ValueError(f"Freight {target.name!r} needs an origin: the Stage requests {len(requested)} origins")
    return Freight(target.name, target.images, requested[0], target.alias)


def freight_context(
    stage: Mapping[str, Any], references: Sequence[Freight], warehouses: Mapping[str, Sequence[str]]
) -> FreightContext:
    """The :class:`FreightContext` of a Stage and the Freight a Promotion references."""
    project = stage.get("metadata", {}).get("namespace", "")
    return FreightContext(project, requested_origins(stage), tuple(references), warehouses)
