"""The harness's own SSH client key, and the guest host keys made at image build."""

import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness import HarnessError
from harness.host.cache import cache_root, publish, staged_dir


def client_key() -> tuple[Path, str]:
    """(private key path, public key line) of the harness's ed25519 key, made on first use."""
    directory = cache_root() / "ssh"
    private, public = directory / "id_ed25519", directory / "id_ed25519.pub"
    if not (private.exists() and public.exists()):
        # The pair is published as one directory: a concurrent first use (xdist workers)
        # never sees half a key or a private key from one pair and a public from another.
        with staged_dir(directory) as tmp:
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            pub = key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            publish(tmp / private.name, pem, 0o600)
            publish(tmp / public.name, pub + b" uffd-harness\n")
        if not (private.exists() and public.exists()):
            # Another entry was there first and is not a whole pair (a cache from before
            # pairs were published as one directory, or a hand-deleted file).
            raise HarnessError(
                f"{directory} holds an incomplete SSH key pair; remove that directory and "
                "run again (a new pair and new guest images are made)"
            )
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
