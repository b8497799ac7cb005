"""A real Docker engine for the tests: Debian's `dockerd` (package docker.io) run as root in a temporary
folder (vfs storage, no iptables, no bridge), trusting plain-HTTP registries on 127.0.0.0/8."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from .registry_server import Registry

APT = "apt-get install -y docker.io busybox-static"
BUSYBOX = Path("/bin/busybox")
# Debian's docker CLI (package docker.io, 20.10) has BuildKit's client built in; docker CLIs from 23 on
# hand `docker build` with BuildKit to the buildx plugin, which no registry this project uses ships.
BUILDKIT_CLIENT = Path("/usr/bin/docker")


class DockerEngine:
    """A running dockerd on its own socket, with its own client configuration (DOCKER_CONFIG)."""

    def __init__(self) -> None:
        daemon, client = shutil.which("dockerd"), shutil.which("docker")
        if daemon is None or client is None:
            pytest.fail(f"dockerd/docker are not installed: {APT} (as root)")
        self.client = client
        version = (
            subprocess.run([str(BUILDKIT_CLIENT), "--version"], capture_output=True, text=True, check=False).stdout
            if BUILDKIT_CLIENT.is_file()
            else ""
        )
        if not re.match(r"Docker version (1\d|2[0-2])\.", version):
            pytest.fail(f"{BUILDKIT_CLIENT} is not a docker CLI with BuildKit built in (<23) ({version!r}): {APT}")
        # A short folder of our own: containerd's sockets live under it (unix paths stop at 108 bytes).
        self.root = Path(tempfile.mkdtemp(prefix="dockerd-"))
        self.config = self.root / "client"
        self.config.mkdir()
        self.host = f"unix://{self.root}/docker.sock"
        self.log = self.root / "dockerd.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    daemon,
                    "--storage-driver=vfs",
                    "--iptables=false",
                    "--ip-masq=false",
                    "--bridge=none",
                    f"--data-root={self.root / 'data'}",
                    f"--exec-root={self.root / 'exec'}",
                    f"--pidfile={self.root / 'dockerd.pid'}",
                    f"--host={self.host}",
                    "--insecure-registry=127.0.0.0/8",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        tail = self.log.read_text(errors="replace")[-3000:]
        self.stop()
        pytest.fail(f"dockerd did not start (must run as root):\n{tail}")

    def env(self) -> dict[str, str]:
        """What a client (the docker CLI, a workflow run by act) needs to use this engine."""
        return {
            "DOCKER_HOST": self.host,
            "DOCKER_CONFIG": str(self.config),
            "IMAGE_FACTORY_BUILDKIT_DOCKER": str(BUILDKIT_CLIENT),
        }

    def docker(self, *args: str, stdin: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this engine; its output as text."""
        raw = subprocess.run(
            [self.client, *args],
            input=stdin,
            capture_output=True,
            env={**os.environ, **self.env(), "DOCKER_BUILDKIT": "0"},
            timeout=300,
            check=False,
        )
        result = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(), raw.stderr.decode())
        if check and result.returncode != 0:
            pytest.fail(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result

    def busybox_image(self, registry: Registry, repository: str = "base/busybox", tag: str = "1") -> str:
        """Import a one-layer image of Debian's static busybox (/bin/busybox and its applets), check that
        it runs, push it to `registry` as `repository:tag`; its manifest digest."""
        if not BUSYBOX.is_file() or b"/lib64/ld-linux" in BUSYBOX.read_bytes()[:4096]:
            pytest.fail(f"{BUSYBOX} is missing or not static: {APT}")
        reference = f"{registry.host}/{repository}:{tag}"
        self.docker("import", "--change", 'CMD ["sh"]', "-", reference, stdin=busybox_rootfs())
        assert self.docker("run", "--rm", "--network", "none", reference, "sh", "-c", "echo ok").stdout == "ok\n"
        self.docker("push", reference)
        pinned = self.docker("image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", reference)
        return next(line.split("@", 1)[1] for line in pinned.stdout.split() if line.startswith(f"{registry.host}/"))

    def stop(self) -> None:
        """Stop dockerd (it stops its containerd) and remove its folder."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def busybox_rootfs() -> bytes:
    """A root filesystem tarball: /bin/busybox, a symlink per applet, and the usual empty folders."""
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("bin", "etc", "tmp", "root", "proc", "sys", "dev"):
            entry = tarfile.TarInfo(folder)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(entry)
        tar.add(BUSYBOX, "bin/busybox")
        for name in applets:
            if name != "busybox":
                link = tarfile.TarInfo(f"bin/{name}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        passwd = b"root:x:0:0:root:/root:/bin/sh\n"
        entry = tarfile.TarInfo("etc/passwd")
        entry.size = len(passwd)
        tar.addfile(entry, io.BytesIO(passwd))
    return buffer.getvalue()
