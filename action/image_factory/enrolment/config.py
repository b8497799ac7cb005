"""Reading images.yaml into the enrolment model, with every error named by file, line and field."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from image_factory.enrolment import sanity, scan_settings, schemas
from image_factory.enrolment.expression_guard import with_expression_problems
from image_factory.enrolment.model import (
    DEFAULT_BRANCH,
    DEFAULT_REBUILD_DELAY,
    DEFAULT_REVISION_TAG,
    GITHUB_ACTIONS_ISSUER,
    GITHUB_COM_API,
    ArgoSettings,
    Config,
    EnrolledImage,
    KargoSettings,
    Policy,
    SigstoreSettings,
    Source,
    TrustSettings,
    VerifyPolicy,
    WarehouseConfig,
    WebhookReceiver,
    github_endpoints,
)
from image_factory.enrolment.refs import InvalidReference, make_ref
from image_factory.enrolment.yaml_source import YamlDocument, load_yaml, parse_yaml
from image_factory.errors import FactoryError, Problem, show_value

CONFIG_FILE = "images.yaml"


def load_config(root: Path) -> Config:
    """Read and check `<root>/images.yaml`; raises FactoryError listing every problem."""
    return config_from_document(load_yaml(root / CONFIG_FILE, CONFIG_FILE))


def parse_config(text: str, file: str = CONFIG_FILE) -> Config:
    return config_from_document(parse_yaml(text, file))


def config_from_document(document: YamlDocument) -> Config:
    if document.data is None:
        raise FactoryError(Problem(document.file, "empty file: expected a mapping with 'images'"))
    if not isinstance(document.data, dict):
        found = show_value(document.data)
        raise FactoryError(Problem(document.file, f"expected a mapping with 'images', found {found}", 1))
    problems = with_expression_problems(document, schemas.validate(document, schemas.IMAGES))
    if problems:  # the shape is wrong: what is checked next assumes the schema's shape
        raise FactoryError(problems)
    problems += sanity.duration_problems(document, _duration_paths(document.data))
    problems += sanity.date_problems(document, scan_settings.ignore_until_paths(document.data))
    if problems:
        raise FactoryError(problems)
    data = document.data
    raw_defaults = data.get("defaults", {})
    defaults = Policy(
        rebuild_delay=raw_defaults.get("rebuildDelay", DEFAULT_REBUILD_DELAY),
        auto_rebuild=raw_defaults.get("autoRebuild", True),
        scan=raw_defaults.get("scan"),
    )
    images, problems = [], []
    for index, entry in enumerate(data["images"]):
        try:
            images.append(_image(document, index, entry, defaults))
        except FactoryError as error:
            problems.extend(error.problems)
    problems.extend(_duplicates(document, images))
    problems.extend(_keyless_without_sigstore(document, images))
    problems.extend(scan_settings.scanning_without_scanner(document, images))
    if problems:
        raise FactoryError(sorted(problems, key=lambda problem: problem.line or 0))
    return config_with(settings(data), document.file, tuple(images))


def _keyless_without_sigstore(document: YamlDocument, images: list[EnrolledImage]) -> list[Problem]:
    """Keyless signing on GitHub Enterprise Server needs a Sigstore of its own: public Fulcio
    accepts GitHub's Actions OIDC tokens only from https://token.actions.githubusercontent.com
    (sigstore/fulcio config/identity/config.yaml), never a server's own /_services/token."""
    data = document.data
    server, issuer = github_endpoints(data.get("kargo", {}).get("githubApiUrl", GITHUB_COM_API))
    if issuer == GITHUB_ACTIONS_ISSUER or "sigstore" in data:
        return []
    return [
        document.problem(
            ("images", image.index, "signing" if image.signing is not None else "source"),
            f"{image.name}: its builds are signed keyless, which on GitHub Enterprise Server ({server}) "
            "needs a Sigstore of your own: public Fulcio trusts only github.com's Actions OIDC issuer. "
            "Give it signing: {key: …}, or set sigstore (fulcioUrl, rekorUrl, tufMirror, tufRoot)",
        )
        for image in images
        if image.managed and _signed_by_this_server(image)
    ]


def _signed_by_this_server(image: EnrolledImage) -> bool:
    """Whether `image`'s builds carry a keyless signature from the server's own OIDC issuer: by
    default (the factory's build workflow there), or a policy naming another issuer than github.com's."""
    policy = image.signing
    if policy is None:
        return True
    if policy.key_file is not None or policy.issuer_regexp is not None:
        return False  # a key; or an issuer pattern, which says nothing certain
    return policy.issuer != GITHUB_ACTIONS_ISSUER


def settings(data: dict) -> dict:
    """Everything images.yaml says but its images (checked with it): what state/index.json keeps."""
    return {key: value for key, value in data.items() if key != "images"}


def config_with(settings: dict, file: str, images: tuple[EnrolledImage, ...]) -> Config:
    """The Config of images.yaml's `settings` (already checked) and `images`."""
    raw_defaults = settings.get("defaults", {})
    defaults = Policy(
        rebuild_delay=raw_defaults.get("rebuildDelay", DEFAULT_REBUILD_DELAY),
        auto_rebuild=raw_defaults.get("autoRebuild", True),
        scan=raw_defaults.get("scan"),
    )
    return Config(
        file,
        images,
        defaults,
        _kargo(settings.get("kargo", {})),
        _argocd(settings.get("argocd", {})),
        cascade_delay=raw_defaults.get("cascadeDelay", "0s"),
        registry_mirrors=dict(settings.get("registryMirrors", {})),
        insecure_registries=frozenset(settings.get("insecureRegistries", [])),
        trust=TrustSettings(senders=tuple(settings.get("trust", {}).get("senders", ()))),
        sigstore=_sigstore(settings.get("sigstore")),
        settings=settings,
    )


def _sigstore(entry: dict | None) -> SigstoreSettings | None:
    if entry is None:
        return None
    return SigstoreSettings(entry["fulcioUrl"], entry["rekorUrl"], entry["tufMirror"], entry["tufRoot"])


def _duration_paths(data: dict) -> list[tuple]:
    paths: list[tuple] = [("defaults", "rebuildDelay"), ("defaults", "cascadeDelay"), ("kargo", "warehouseInterval")]
    for index in range(len(data.get("images") or [])):
        paths += [("images", index, "rebuildDelay"), ("images", index, "warehouse", "interval")]
    return paths


def _kargo(entry: dict) -> KargoSettings:
    secret = entry.get("tokenSecret", {})
    defaults = KargoSettings()
    receivers = tuple(
        WebhookReceiver(r["name"], r["type"], r["secretName"], r.get("virtualRepoName"))
        for r in entry.get("webhookReceivers", [])
    )
    return KargoSettings(
        project=entry.get("project", defaults.project),
        factory_repo=entry.get("factoryRepo"),
        github_api_url=entry.get("githubApiUrl", defaults.github_api_url),
        token_secret_name=secret.get("name", defaults.token_secret_name),
        token_secret_key=secret.get("key", defaults.token_secret_key),
        dispatch_step=entry.get("dispatchStep", defaults.dispatch_step),
        warehouse_interval=entry.get("warehouseInterval", defaults.warehouse_interval),
        objects_per_file=entry.get("objectsPerFile", defaults.objects_per_file),
        webhook_receivers=receivers,
        cosign_image=entry.get("cosignImage", defaults.cosign_image),
        verify_registry_secret=entry.get("verifyRegistrySecret"),
        scanner=scan_settings.scanner_settings(entry.get("scanner")),
    )


def _argocd(entry: dict) -> ArgoSettings:
    defaults = ArgoSettings()
    return ArgoSettings(
        name=entry.get("name"),
        namespace=entry.get("namespace", defaults.namespace),
        project=entry.get("project", defaults.project),
        repo_url=entry.get("repoURL"),
        target_revision=entry.get("targetRevision", defaults.target_revision),
        path=entry.get("path", defaults.path),
        destination_server=entry.get("destinationServer", defaults.destination_server),
    )


def _image(document: YamlDocument, index: int, entry: dict, defaults: Policy) -> EnrolledImage:
    path = ("images", index)
    source = source_of(entry["source"]) if "source" in entry else None
    if source is not None:
        _check_paths(document, (*path, "source"), source)
    warehouse_entry = entry.get("warehouse", {})
    _check_regexes(document, path, warehouse_entry)
    tag = entry.get("tag")
    if tag is None and source is None and _watches_digest(warehouse_entry):
        tag = warehouse_entry.get("constraint")  # the tag a Digest warehouse watches is its constraint
    if tag is None and (source is not None or not _selects_by_pattern(warehouse_entry)):
        tag = "latest"
    try:
        ref = make_ref(entry["registry"], entry["repository"], tag)
    except InvalidReference as error:
        raise FactoryError(document.problem((*path, "repository"), error.reason)) from None
    warehouse = None
    if source is None:
        warehouse = _warehouse(document, path, warehouse_entry, ref)
    policy = Policy(
        rebuild_delay=entry.get("rebuildDelay", defaults.rebuild_delay),
        auto_rebuild=entry.get("autoRebuild", defaults.auto_rebuild),
        scan=scan_settings.scan_policy(defaults.scan, entry.get("scan")) if source is not None else None,
    )
    verify = _verify(document, (*path, "verify"), entry["verify"]) if "verify" in entry else None
    signing = _verify(document, (*path, "signing"), entry["signing"]) if "signing" in entry else None
    test = dict(entry["test"]) if "test" in entry else None
    if test and "structureTest" in test and not _inside(test["structureTest"]):
        where = "must be a relative path inside the source repository"
        problem = document.problem((*path, "test", "structureTest"), f"{show_value(test['structureTest'])} {where}")
        raise FactoryError(problem)
    revision = entry.get("revisionTag", document.data.get("defaults", {}).get("revisionTag", DEFAULT_REVISION_TAG))
    return EnrolledImage(
        entry["name"],
        ref,
        policy,
        source,
        warehouse,
        verify,
        test,
        index,
        document,
        signing,
        revision or None,
        entry.get("team"),
    )


def _verify(document: YamlDocument, path: tuple, entry: dict) -> VerifyPolicy:
    """A verify policy: a key, or keyless with both a certificate identity and an OIDC issuer."""
    policy = VerifyPolicy.from_dict(entry)
    keyless = [name for name in entry if name.startswith("certificate")]
    if "key" in entry and keyless:
        raise FactoryError(document.problem(path, f"give key or keyless ({', '.join(keyless)}), not both"))
    identified = (policy.identity or policy.identity_regexp) and (policy.issuer or policy.issuer_regexp)
    if "key" not in entry and not identified:
        raise FactoryError(
            document.problem(
                path,
                "give key, or keyless: certificateIdentity (or certificateIdentityRegexp) "
                "and certificateOidcIssuer (or certificateOidcIssuerRegexp)",
            )
        )
    if policy.key_file is not None and not _inside(policy.key_file):
        where = "must be a relative path in the factory repository"
        raise FactoryError(document.problem((*path, "key"), f"{show_value(policy.key_file)} {where}"))
    for name in ("certificateIdentityRegexp", "certificateOidcIssuerRegexp"):
        if name in entry:
            try:
                re.compile(entry[name])
            except re.error as error:
                raise FactoryError(
                    document.problem((*path, name), f"{show_value(entry[name])} is not a regular expression: {error}")
                ) from None
    return policy


def _inside(value: str) -> bool:
    """A relative path that stays inside its repository."""
    pure = PurePosixPath(value)
    depth = 0
    for part in pure.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return False
    return not pure.is_absolute() and "\\" not in value


def source_of(entry: dict) -> Source:
    """A source as images.yaml (or a state file's enrolment) gives it."""
    return Source(
        provider=entry["provider"],
        repo=entry["repo"],
        dockerfile=entry["dockerfile"],
        workflow=entry["workflow"],
        branch=entry.get("branch", DEFAULT_BRANCH),
        context=entry.get("context"),
        build_args=dict(entry.get("buildArgs", {})),
        platforms=tuple(entry.get("platforms", ())),
        build_cache=entry.get("buildCache"),
    )


def _check_paths(document: YamlDocument, path: tuple, source: Source) -> None:
    """Paths stay inside their repository (and a local repo inside the factory): no absolute, no `..` escape."""
    fields = {"dockerfile": source.dockerfile, "context": source.context}
    if source.provider == "local":
        fields["repo"] = source.repo
    problems = []
    for name, value in fields.items():
        if value is None:
            continue
        if not _inside(value):
            problems.append(
                document.problem((*path, name), f"{show_value(value)} must be a relative path inside the repository")
            )
    if problems:
        raise FactoryError(problems)


def _selects_by_pattern(warehouse: dict) -> bool:
    return bool(
        warehouse.get("allowTags")
        or warehouse.get("allowTagsRegexes")
        or warehouse.get("imageSelectionStrategy", "Digest") != "Digest"
    )


def _watches_digest(warehouse: dict) -> bool:
    return warehouse.get("imageSelectionStrategy", "Digest") == "Digest" and not _selects_by_pattern(warehouse)


def _warehouse(document: YamlDocument, path: tuple, entry: dict, ref) -> WarehouseConfig:
    allow = list(entry.get("allowTagsRegexes", []))
    if entry.get("allowTags"):
        # Kargo v1.11 fails discovery on allowTags: carry the regex over to allowTagsRegexes.
        allow.append(entry["allowTags"])
    strategy = entry.get("imageSelectionStrategy") or ("Digest" if ref.tag and not allow else "SemVer")
    constraint = entry.get("constraint")
    if strategy == "Digest":
        constraint = constraint or ref.tag
        if not constraint:
            raise FactoryError(
                document.problem((*path, "warehouse"), "strategy Digest needs a tag to watch: set tag or constraint")
            )
        if constraint != ref.tag:
            # The digests would be recorded, named and dispatched under the other tag.
            raise FactoryError(
                document.problem(
                    (*path, "warehouse", "constraint"),
                    f"strategy Digest watches tag {constraint!r} but the image's tag is {ref.tag!r}: "
                    "give one of them, or the same tag in both",
                )
            )
    return WarehouseConfig(
        repo_url=entry.get("repoURL", ref.name),
        strategy=strategy,
        constraint=constraint,
        allow_tags_regexes=tuple(dict.fromkeys(allow)),
        ignore_tags_regexes=tuple(entry.get("ignoreTagsRegexes", [])),
        platform=entry.get("platform"),
        interval=entry.get("interval"),
    )


def _check_regexes(document: YamlDocument, path: tuple, warehouse: dict) -> None:
    fields = [("allowTags",)] if "allowTags" in warehouse else []
    for key in ("allowTagsRegexes", "ignoreTagsRegexes"):
        fields += [(key, i) for i in range(len(warehouse.get(key, [])))]
    problems = []
    for field_path in fields:
        pattern = warehouse[field_path[0]] if len(field_path) == 1 else warehouse[field_path[0]][field_path[1]]
        try:
            re.compile(pattern)
        except re.error as error:
            problems.append(
                document.problem(
                    (*path, "warehouse", *field_path), f"{show_value(pattern)} is not a regular expression: {error}"
                )
            )
    if problems:
        raise FactoryError(problems)


def _duplicates(document: YamlDocument, images: list[EnrolledImage]) -> list[Problem]:
    problems = []
    names: dict[str, int] = {}
    refs: dict[str, str] = {}
    managed_repos: dict[str, str] = {}
    for index, image in enumerate(images):
        where = ("images", index)
        if image.name in names:
            problems.append(
                document.problem(
                    (*where, "name"), f"duplicate name {image.name!r} (first at images[{names[image.name]}])"
                )
            )
        names.setdefault(image.name, index)
        key = image.ref.canonical
        if key in refs:
            problems.append(document.problem((*where, "repository"), f"{key} is already enrolled as {refs[key]!r}"))
        refs.setdefault(key, image.name)
        if image.managed:
            if image.ref.name in managed_repos:
                problems.append(
                    document.problem(
                        (*where, "repository"),
                        f"{image.ref.name} is already built by managed image {managed_repos[image.ref.name]!r}: "
                        "a FROM of that repository could not tell them apart",
                    )
                )
            managed_repos.setdefault(image.ref.name, image.name)
    return problems
