"""A guest is used only when it proves it is ours: the host key pinned at image build, and
this boot's token on its kernel command line (issue 12, trust). Against a real dropbear
and a real /proc/cmdline: the unit tests of the SSH layer cannot show either."""

import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness import HarnessError
from harness.guest.ssh import HostKeyMismatch, SshSession, connect
from harness.image.sshkeys import client_key

from .helpers import make_guest

pytestmark = pytest.mark.guest


@pytest.fixture
def own_guest(guest_pool):
    """A guest of the test's own (the token test replaces its connection), stopped before
    the test ends: only the shared guest may outlive a test."""
    g = make_guest(guest_pool.settings)
    g.start()
    yield g
    g.stop()
    g.cleanup()


def other_host_key() -> str:
    pub = Ed25519PrivateKey.generate().public_key()
    return pub.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def test_a_guest_offering_another_host_key_is_refused(own_guest):
    key_path, _ = client_key()
    port = own_guest.port
    # The right key connects (so the refusal below is about the key, nothing else).
    SshSession(port, own_guest.image.host_key, key_path).close()
    with pytest.raises(HostKeyMismatch, match="not the pinned key of this guest image"):
        SshSession(port, other_host_key(), key_path)
    # connect() does not retry a mismatch until its deadline: it stops at once.
    t0 = time.monotonic()
    with pytest.raises(HostKeyMismatch):
        connect(port, other_host_key(), key_path, timeout=60.0)
    assert time.monotonic() - t0 < 15.0


def test_a_guest_without_this_boots_token_is_refused(own_guest):
    good = own_guest.token
    own_guest.channel.close()
    own_guest.channel = None
    own_guest.token = "not-this-boot"
    try:
        with pytest.raises(HarnessError, match="does not carry this boot's token; refusing"):
            own_guest._connect()
    finally:
        own_guest.token = good
    # The same guest with its own token is accepted: the refusal was the token's.
    own_guest._connect()
    assert own_guest.run("true", timeout=30).exit_code == 0
