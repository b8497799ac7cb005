"""`cosign verify` of a keyless-signed build, run by the drain (cosign is on PATH in the events
workflow: sigstore/cosign-installer). An edge: a subprocess."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from image_factory.trust.policy import BuildSignature

TIMEOUT = 300  # seconds: cosign retries Rekor and the registry itself


class Unavailable(Exception):
    """cosign could not give a verdict (not installed, its TUF root not initialised, no answer in
    time): the event waits for the next drain, it is not refused."""


class Cosign:
    """One drain's cosign: a private Sigstore's TUF root is initialised once, before the first check."""

    def __init__(self, root: Path):
        self.root = root
        self.initialised: set[tuple[str, str]] = set()

    def verify(self, required: BuildSignature, digest: str) -> tuple[bool, str]:
        """Whether `cosign verify` with the policy's flags accepts `repository@digest`; its words."""
        binary = shutil.which("cosign")
        if binary is None:
            raise Unavailable("cosign is not on PATH (the events workflow installs it)")
        private = required.sigstore
        if private is not None and (private.tuf_mirror, private.tuf_root) not in self.initialised:
            root_file = str(self.root / private.tuf_root)
            done = self._run([binary, "initialize", "--mirror", private.tuf_mirror, "--root", root_file])
            if not done[0]:
                raise Unavailable(f"cosign initialize failed: {done[1]}")
            self.initialised.add((private.tuf_mirror, private.tuf_root))
        return self._run([binary, "verify", *required.flags, f"{required.repository}@{digest}"])

    @staticmethod
    def _run(command: list[str]) -> tuple[bool, str]:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"cosign {command[1]} gave no answer in {TIMEOUT} s") from None
        return done.returncode == 0, done.stderr.strip()[-2000:]
