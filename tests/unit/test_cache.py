"""The cache's atomic publication: a reader never sees half a file or half an entry, and two
builders of one entry both end with a whole one."""

import os
import stat
import threading

import pytest

from harness.host.cache import MANIFEST, damage, publish, seal, sound_entry, staged, staged_dir


def test_a_concurrent_reader_sees_only_whole_files(tmp_path):
    target = tmp_path / "entry"
    versions = [bytes([n]) * (2 << 20) for n in range(1, 4)]
    publish(target, versions[0])
    done = threading.Event()
    torn: list[int] = []

    def read() -> None:
        while not done.is_set():
            data = target.read_bytes()
            if data not in versions:
                torn.append(len(data))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(60):
            publish(target, versions[i % len(versions)])
    finally:
        done.set()
        reader.join()
    assert torn == []
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]  # no temporary left behind


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = publish(tmp_path / "sub" / "agent", b"old")
    with pytest.raises(RuntimeError), staged(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("compiler failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["agent"]


def test_publish_mode_holds_from_creation(tmp_path):
    secret = publish(tmp_path / "id_ed25519", "key", 0o600)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    script = publish(tmp_path / "reproduce.sh", "#!/bin/sh\n", 0o777)
    assert stat.S_IMODE(script.stat().st_mode) == 0o777 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_same_entry_built_twice_keeps_one_whole_entry(tmp_path):
    entry = tmp_path / "images" / "key"
    # A second builder publishes while the first is still building: the first's rename
    # then finds a complete entry, keeps it, and does not fail.
    with staged_dir(entry) as first:
        (first / "initramfs.cpio").write_text("first")
        with staged_dir(entry) as second:
            (second / "initramfs.cpio").write_text("second")
        assert (entry / "initramfs.cpio").read_text() == "second"
    assert (entry / "initramfs.cpio").read_text() == "second"
    assert [p.name for p in entry.parent.iterdir()] == ["key"]


def test_a_failed_entry_build_publishes_nothing(tmp_path):
    entry = tmp_path / "images" / "key"
    with pytest.raises(RuntimeError), staged_dir(entry) as tmp:
        (tmp / "initramfs.cpio").write_text("half")
        raise RuntimeError("dropbearkey failed")
    assert list(entry.parent.iterdir()) == []


def test_the_client_key_pair_is_made_once_and_matches(tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization

    from harness.image.sshkeys import client_key

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    private, public = client_key()
    assert client_key() == (private, public)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = serialization.load_ssh_private_key(private.read_bytes(), None)
    line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert public == line.decode() + " uffd-harness"
    assert sorted(p.name for p in private.parent.parent.iterdir()) == ["ssh"]


def test_an_incomplete_key_pair_is_named_not_used(tmp_path, monkeypatch):
    from harness import HarnessError
    from harness.image.sshkeys import client_key

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    private, _ = client_key()
    (private.parent / "id_ed25519.pub").unlink()
    with pytest.raises(HarnessError, match="incomplete SSH key pair; remove that directory"):
        client_key()


def _entry(tmp_path, content: bytes = b"vmlinux bytes"):
    entry = tmp_path / "kernels" / "abc"
    with staged_dir(entry) as tmp:
        (tmp / "vmlinux").write_bytes(content)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "config").write_text("CONFIG_USERFAULTFD=y\n")
        seal(tmp)
    return entry


def test_a_sealed_entry_is_sound(tmp_path, capsys):
    entry = _entry(tmp_path)
    assert damage(entry) is None
    assert sound_entry(entry, "unpacked kernel")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "harm, problem",
    [
        (lambda e: (e / "vmlinux").write_bytes(b"vmlinux byteZ"), "vmlinux does not match"),
        (lambda e: (e / "sub" / "config").unlink(), "sub/config is missing"),
        (lambda e: (e / MANIFEST).unlink(), "no SHA256SUMS"),
    ],
)
def test_a_damaged_entry_is_named_and_never_used(tmp_path, capsys, harm, problem):
    entry = _entry(tmp_path)
    harm(entry)
    assert problem in (damage(entry) or "")
    assert not sound_entry(entry, "unpacked kernel")
    assert not entry.exists()  # moved aside, so that a rebuilt one can be published
    err = capsys.readouterr().err
    assert "damaged" in err and problem in err and "rebuilding" in err
    assert not list(entry.parent.iterdir())  # and removed


def test_a_sound_entry_is_hashed_once_until_written_again(tmp_path, monkeypatch):
    entry = _entry(tmp_path)
    assert sound_entry(entry, "unpacked kernel")

    def no_hashing(path):
        raise AssertionError("hashed again")

    with monkeypatch.context() as m:
        m.setattr("harness.host.cache.file_sha256", no_hashing)
        assert sound_entry(entry, "unpacked kernel")  # same files, same stamps: no hashing
    (entry / "vmlinux").write_bytes(b"vmlinux bytez")  # same size, new mtime
    assert not sound_entry(entry, "unpacked kernel")
