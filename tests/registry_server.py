"""A real OCI registry for the tests: Debian's `docker-registry` (distribution v2.8) on 127.0.0.1,
and a small pusher that uploads tiny OCI images and indexes through the registry API itself."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Registry:
    """A running registry and a way to push to it."""

    def __init__(self, folder: Path, proxy_of: Registry | None = None, users: dict[str, str] | None = None):
        binary = shutil.which("docker-registry")
        if binary is None:
            pytest.fail(
                "docker-registry is not installed: apt-get install docker-registry (the README's test command does)"
            )
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.auth = None
        lines = [
            "version: 0.1",
            "log: {level: error}",
            f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}, delete: {{enabled: true}}}}",
            f"http: {{addr: {self.host}}}",
        ]
        if proxy_of:
            lines.append(f"proxy: {{remoteurl: http://{proxy_of.host}}}")
        if users:
            import bcrypt

            hashes = [
                f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=5)).decode()}" for user, pw in users.items()
            ]
            (folder / "htpasswd").write_text("\n".join(hashes) + "\n")
            lines.append(f"auth: {{htpasswd: {{realm: test, path: {folder / 'htpasswd'}}}}}")
            self.auth = next(iter(users.items()))
        config = folder / "config.yml"
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://{self.host}/v2/", timeout=1).status_code in (200, 401):
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"docker-registry did not start on {self.host}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def _blob(self, repository: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = requests.post(f"http://{self.host}/v2/{repository}/blobs/uploads/", auth=self.auth, timeout=10)
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        location = location if location.startswith("http") else f"http://{self.host}{location}"
        done = requests.put(
            location,
            params={"digest": digest},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            auth=self.auth,
            timeout=10,
        )
        assert done.status_code == 201, done.text
        return digest

    def push_image(self, repository: str, tag: str, label: str, architecture: str = "amd64") -> tuple[str, int]:
        """A tiny OCI image (a config, no layers); returns the manifest digest and size."""
        config = json.dumps(
            {
                "architecture": architecture,
                "os": "linux",
                "config": {"Labels": {"v": label}},
                "rootfs": {"type": "layers", "diff_ids": []},
            }
        ).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": self._blob(repository, config), "size": len(config)},
                "layers": [],
            }
        ).encode()
        return self._manifest(repository, tag, manifest, OCI_MANIFEST), len(manifest)

    def push_index(self, repository: str, tag: str, label: str) -> tuple[str, dict[str, str]]:
        """A two-platform index; returns its digest and the per-platform digests."""
        platforms, entries = {}, []
        for arch in ("amd64", "arm64"):
            digest, size = self.push_image(repository, f"{tag}-{arch}", f"{label}-{arch}", arch)
            platforms[f"linux/{arch}"] = digest
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": size,
                    "platform": {"os": "linux", "architecture": arch},
                }
            )
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        return self._manifest(repository, tag, index, OCI_INDEX), platforms

    def _manifest(self, repository: str, tag: str, body: bytes, media_type: str) -> str:
        put = requests.put(
            f"http://{self.host}/v2/{repository}/manifests/{tag}",
            data=body,
            headers={"Content-Type": media_type},
            auth=self.auth,
            timeout=10,
        )
        assert put.status_code == 201, put.text
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        assert put.headers["Docker-Content-Digest"] == digest
        return digest
