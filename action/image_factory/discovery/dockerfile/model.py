"""What discovery finds in a Dockerfile: each use of an image, and the build args that changed one."""

from __future__ import annotations

from dataclasses import dataclass

FROM, COPY_FROM, MOUNT_FROM = "from", "copy-from", "mount-from"


@dataclass(frozen=True)
class BaseUse:
    """One place where a build uses an image: `ref` is canonical, or the raw text when unresolved."""

    ref: str
    kind: str
    stage: str
    line: int
    resolved: bool = True
    platform: str | None = None

    def to_dict(self) -> dict:
        data = {"ref": self.ref, "kind": self.kind, "stage": self.stage, "line": self.line}
        if not self.resolved:
            data["unresolved"] = True
        if self.platform:
            data["platform"] = self.platform
        return data


@dataclass(frozen=True)
class Overridden:
    """A global ARG whose default the build args replace: the build uses `value`, not `default`."""

    name: str
    default: str
    value: str
    line: int


@dataclass(frozen=True)
class Discovery:
    """What one Dockerfile builds on, every use in file order."""

    uses: tuple[BaseUse, ...]
    missing: bool = False  # the checkout no longer has the Dockerfile
    overridden: tuple[Overridden, ...] = ()

    @property
    def images(self) -> list[str]:
        """Canonical references, deduplicated, in first-appearance order."""
        return list(dict.fromkeys(use.ref for use in self.uses if use.resolved))

    @property
    def unresolved(self) -> list[str]:
        return list(dict.fromkeys(use.ref for use in self.uses if not use.resolved))

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "unresolved": self.unresolved,
            "details": [use.to_dict() for use in self.uses],
        }
