"""The harness's own SSH client key, and the guest host keys made at image build."""

import os
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness import HarnessError
from harness.host.cache import cache_root


def client_key() -> tuple[Path, str]:
    """(private key path, public key line) of the harness's ed25519 key, made on first use."""
    directory = cache_root() / "ssh"
    directory.mkdir(mode=0o700, exist_ok=True)
    private, public = directory / "id_ed25519", directory / "id_ed25519.pub"
    if not (private.exists() and public.exists()):
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        pub = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        # Write under temporary names then rename, so a concurrent first use (xdist
        # workers) never sees half a key; 0600 from creation, not chmod after.
        tmp = directory / f".id_ed25519.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        (directory / f".id_ed25519.pub.{os.getpid()}").write_bytes(pub + b" uffd-harness\n")
        os.replace(directory / f".id_ed25519.pub.{os.getpid()}", public)
        os.replace(tmp, private)
    return private, public.read_text().strip()


def make_dropbear_host_key(path: Path) -> str:
    """Generate an ed25519 dropbear host key at `path`; return its public line to pin."""
    try:
        proc = subprocess.run(
            ["dropbearkey", "-t", "ed25519", "-f", str(path)], capture_output=True, text=True
        )
    except FileNotFoundError:
        raise HarnessError(
            "dropbearkey not found; install it with `apt-get install dropbear-bin`"
        ) from None
    if proc.returncode != 0:
        raise HarnessError(f"dropbearkey failed: {proc.stderr.strip()}")
    for line in proc.stdout.splitlines():
        if line.startswith("ssh-ed25519 "):
            return " ".join(line.split()[:2])
    raise HarnessError(f"dropbearkey printed no public key: {proc.stdout!r}")
