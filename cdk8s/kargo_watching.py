"""A watched image's Warehouse, the Stage that records each new digest, and its signature checks.

With a verify policy: an AnalysisTemplate running `cosign verify`, the public key's ConfigMap,
the advisory Stage of `required: false`, and the Stage that reports verified Freight.
"""

from __future__ import annotations

from github_steps import factory_event
from image_factory.enrolment.durations import format_hours, parse_duration
from image_factory.enrolment.model import Config
from image_factory.kargo import names
from kargo_expressions import TARGET_FREIGHT
from kargo_objects import KARGO_API, Watched, image_field, meta, ref_annotation


def warehouse(config: Config, watched: Watched) -> dict:
    subscription = watched.warehouse.to_dict()
    interval = subscription.pop("interval", None) or config.kargo.warehouse_interval
    labels = {names.ROLE: "warehouse", names.WATCHED: watched.name}
    return {
        "apiVersion": KARGO_API,
        "kind": "Warehouse",
        "metadata": meta(
            watched.name, config.kargo.project, labels, {names.REF_ANNOTATION: watched.base.ref.canonical}
        ),
        "spec": {
            "interval": format_hours(parse_duration(interval)),
            "freightCreationPolicy": "Automatic",
            "subscriptions": [{"image": subscription}],
        },
    }


def recording_stage(config: Config, watched: Watched) -> dict:
    """Takes every new Freight straight from the Warehouse and reports it to the factory repository
    (`repository_dispatch` `base-image-updated`), so the digest lands in the state history in git."""
    settings = config.kargo
    payload = {
        "image": watched.base.ref.canonical,
        "repoURL": watched.warehouse.repo_url,
        "tag": image_field(watched, "Tag"),
        "digest": image_field(watched, "Digest"),
        "freight": TARGET_FREIGHT,
    }
    steps = factory_event(config, "record", "base-image-updated", payload)
    labels = {names.ROLE: "record", names.WATCHED: watched.name, names.AUTO_PROMOTE: "true"}
    spec: dict = {
        "requestedFreight": [{"origin": {"kind": "Warehouse", "name": watched.name}, "sources": {"direct": True}}],
        "promotionTemplate": {"spec": {"steps": steps}},
    }
    if watched.base.verification_required:
        # Downstream Stages (soak, rebuild, verified) only see Freight verified here.
        spec["verification"] = verification(watched)
    return {
        "apiVersion": KARGO_API,
        "kind": "Stage",
        "metadata": meta(watched.name, settings.project, labels, ref_annotation(watched)),
        "spec": spec,
    }


def key_config_map(config: Config, watched: Watched, pem: str) -> dict:
    """The cosign public key from the factory repository, mounted into the verification Job.
    A public key is not a credential: it may sit in a manifest."""
    labels = {names.ROLE: "verify-key", names.WATCHED: watched.name}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(names.key_name(watched.name), config.kargo.project, labels, ref_annotation(watched)),
        "data": {"cosign.pub": pem},
    }


def analysis_template(config: Config, watched: Watched) -> dict:
    """An Argo Rollouts AnalysisTemplate whose Job runs `cosign verify` on `<repo>@<digest>`, the
    digest passed in by the recording Stage's verification. A failed Job fails the verification:
    the Freight never reaches the soak and rebuild Stages, and Kargo's UI shows why."""
    settings, policy = config.kargo, watched.base.verify
    args = ["verify"]
    mounts, volumes = [], []
    if policy.keyless:
        for flag, value in (
            ("--certificate-identity", policy.identity),
            ("--certificate-identity-regexp", policy.identity_regexp),
            ("--certificate-oidc-issuer", policy.issuer),
            ("--certificate-oidc-issuer-regexp", policy.issuer_regexp),
        ):
            if value is not None:
                args += [flag, value]
    else:
        args += ["--key", "/cosign/cosign.pub"]
        mounts.append({"name": "cosign-key", "mountPath": "/cosign", "readOnly": True})
        if policy.key_file is not None:
            volumes.append({"name": "cosign-key", "configMap": {"name": names.key_name(watched.name)}})
        else:
            volumes.append(
                {
                    "name": "cosign-key",
                    "secret": {"secretName": policy.key_secret, "items": [{"key": "cosign.pub", "path": "cosign.pub"}]},
                }
            )
    if not policy.transparency_log:
        args.append("--insecure-ignore-tlog=true")
    args.append(f"{watched.warehouse.repo_url}@{{{{args.digest}}}}")
    container: dict = {"name": "cosign", "image": settings.cosign_image, "args": args}
    if settings.verify_registry_secret:
        mounts.append({"name": "registry-auth", "mountPath": "/docker", "readOnly": True})
        volumes.append(
            {
                "name": "registry-auth",
                "secret": {
                    "secretName": settings.verify_registry_secret,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        )
        container["env"] = [{"name": "DOCKER_CONFIG", "value": "/docker"}]
    if mounts:
        container["volumeMounts"] = mounts
    pod: dict = {"restartPolicy": "Never", "containers": [container]}
    if volumes:
        pod["volumes"] = volumes
    labels = {names.ROLE: "verify", names.WATCHED: watched.name}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": meta(names.verify_name(watched.name), settings.project, labels, ref_annotation(watched)),
        "spec": {
            "args": [{"name": "digest"}],
            "metrics": [
                {
                    "name": "cosign-verify",
                    "provider": {
                        "job": {"spec": {"backoffLimit": 0, "activeDeadlineSeconds": 600, "template": {"spec": pod}}}
                    },
                }
            ],
        },
    }


def verification(watched: Watched) -> dict:
    return {
        "analysisTemplates": [{"name": names.verify_name(watched.name)}],
        "args": [{"name": "digest", "value": image_field(watched, "Digest").template()}],
    }


def advisory_stage(config: Config, watched: Watched) -> dict:
    """With `required: false`: verifies each Freight from the recording Stage without holding the
    rebuilds back (they take Freight from the recording Stage); the outcome shows in Kargo's UI,
    and verified Freight goes on to the verified Stage. Its promotion only notes the digest."""
    labels = {names.ROLE: "verify", names.WATCHED: watched.name, names.AUTO_PROMOTE: "true"}
    note = {
        "uses": "compose-output",
        "as": "candidate",
        "config": {"digest": image_field(watched, "Digest").template()},
    }
    return {
        "apiVersion": KARGO_API,
        "kind": "Stage",
        "metadata": meta(names.advisory_name(watched.name), config.kargo.project, labels, ref_annotation(watched)),
        "spec": {
            "requestedFreight": [
                {"origin": {"kind": "Warehouse", "name": watched.name}, "sources": {"stages": [watched.name]}}
            ],
            "promotionTemplate": {"spec": {"steps": [note]}},
            "verification": verification(watched),
        },
    }


def verified_stage(config: Config, watched: Watched) -> dict:
    """Takes the Freight verified (in the recording Stage, or the advisory one) and reports it to
    the factory repository (`repository_dispatch` `base-image-verified`): state marks the digest
    verified, and `plan` lets a rebuild use it."""
    settings = config.kargo
    payload = {
        "image": watched.base.ref.canonical,
        "digest": image_field(watched, "Digest"),
        "freight": TARGET_FREIGHT,
    }
    steps = factory_event(config, "verified", "base-image-verified", payload)
    labels = {names.ROLE: "verified", names.WATCHED: watched.name, names.AUTO_PROMOTE: "true"}
    gate = watched.name if watched.base.verification_required else names.advisory_name(watched.name)
    return {
        "apiVersion": KARGO_API,
        "kind": "Stage",
        "metadata": meta(names.verified_name(watched.name), settings.project, labels, ref_annotation(watched)),
        "spec": {
            "requestedFreight": [
                {"origin": {"kind": "Warehouse", "name": watched.name}, "sources": {"stages": [gate]}}
            ],
            "promotionTemplate": {"spec": {"steps": steps}},
        },
    }
