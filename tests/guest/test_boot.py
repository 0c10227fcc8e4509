"""Real guests under QEMU (TCG here): boot, SSH, pools, push, exit codes, cleanup."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

from harness import HarnessError
from harness.events import Event, PortTaken
from harness.guest.ssh import CommandTimeout
from harness.settings.values import parse_hugepages

from .helpers import guest_flags, make_guest, our_qemus, wait_gone


def test_uname_is_the_booted_kernel(guest, kernel):
    res = guest.run("uname -r", timeout=30)
    assert res.exit_code == 0
    assert res.stdout.decode().strip() == kernel.release


def test_hugepage_pools_and_hugetlbfs(guest, settings):
    want = parse_hugepages(settings["hugepages"])
    assert want.get(2048) and want.get(1024 * 1024), "this test needs both pools configured"
    res = guest.run(
        "cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages "
        "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages; grep hugetlbfs /proc/mounts",
        timeout=30,
    )
    lines = res.stdout.decode().splitlines()
    assert lines[:2] == [str(want[2048]), str(want[1024 * 1024])]
    mounts = {line.split()[1]: line.split()[3] for line in lines[2:]}
    assert "pagesize=2M" in mounts["/mnt/huge-2048kB"]
    assert "pagesize=1024M" in mounts["/mnt/huge-1048576kB"]


def test_push_5mb_verified_by_hash(guest, tmp_path):
    blob = os.urandom(5 * 1024 * 1024)
    src = tmp_path / "blob.bin"
    src.write_bytes(blob)
    digest = guest.push(src, "/tmp/blob.bin", 0o600)
    assert digest == hashlib.sha256(blob).hexdigest()
    res = guest.run(
        "sha256sum /tmp/blob.bin; stat -c %a /tmp/blob.bin; rm /tmp/blob.bin", timeout=60
    )
    out = res.stdout.decode().split()
    assert out[0] == digest and out[2] == "600"


def test_exit_code_propagated(guest):
    assert guest.run("sh -c 'exit 3'", timeout=30).exit_code == 3
    res = guest.run("echo out; echo err >&2; exit 7", timeout=30)
    assert (res.exit_code, res.stdout, res.stderr) == (7, b"out\n", b"err\n")


def test_command_timeout_is_reported_and_guest_survives(guest):
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout, match="timed out after 2 s") as e:
        guest.run("echo started; sleep 30", timeout=2)
    assert time.monotonic() - t0 < 10
    assert e.value.stdout == b"started\n"
    assert guest.run("true", timeout=30).exit_code == 0


def test_missing_network_driver_is_named(settings, kernel, tmp_path):
    from harness.image.initramfs import DEFAULT_RECIPE
    from harness.kernel.info import find_modules_tree

    if find_modules_tree(kernel) is None:
        pytest.skip(
            "this kernel has its drivers built in: leaving modules out of the image "
            "cannot take its network device away"
        )

    recipe = tmp_path / "nonet.yaml"
    text = DEFAULT_RECIPE.read_text().replace("required: [virtio_pci, virtio_net]", "required: []")
    recipe.write_text(text)
    (tmp_path / "init.sh").write_bytes((DEFAULT_RECIPE.parent / "init.sh").read_bytes())
    # Told to use SSH only: the console channel would otherwise take over (test_console_channel).
    g = make_guest(settings, recipe=recipe, channel="ssh")
    try:
        with pytest.raises(HarnessError, match="has no SSH: no network device.*virtio-net"):
            g.start()
    finally:
        g.stop()
        g.cleanup()


def _swaps(g) -> list[str]:
    """The devices of the guest's active swap areas."""
    lines = g.run("cat /proc/swaps", timeout=30).stdout.decode().splitlines()
    return [line.split()[0] for line in lines[1:]]


def test_guest_swap_is_what_the_host_planned(guest):
    expected = {"zram": ["/dev/zram0"], "disk": ["/dev/vda"], "none": []}
    assert guest.swap and guest.swap.kind in expected, guest.swap
    assert _swaps(guest) == expected[guest.swap.kind]
    want = "swap: none" if guest.swap.kind == "none" else "swap: "
    assert want in guest.console.read(0)


def test_swap_disk_when_the_image_has_no_zram(settings, kernel, tmp_path):
    """The kernel-without-zram path on any modular kernel: an image without the zram module
    gets the virtio-blk disk, init swaps onto it, and stop() removes its host file."""
    from harness.image.initramfs import DEFAULT_RECIPE
    from harness.kernel.info import find_modules_tree

    if find_modules_tree(kernel) is None:
        pytest.skip("drivers built in: leaving zram out of the image cannot take it away")
    recipe = tmp_path / "nozram.yaml"
    text = DEFAULT_RECIPE.read_text().replace("zram, virtio_blk]", "virtio_blk]")
    assert text != DEFAULT_RECIPE.read_text()
    recipe.write_text(text)
    (tmp_path / "init.sh").write_bytes((DEFAULT_RECIPE.parent / "init.sh").read_bytes())
    g = make_guest(settings, recipe=recipe)
    try:
        g.start()
        assert g.swap and g.swap.kind == "disk", g.swap
        disk = g.workdir / "swap.img"
        assert disk.stat().st_size == g.swap.size_mb * 2**20
        assert _swaps(g) == ["/dev/vda"]
        assert "uffd-harness: swap: virtio-blk disk /dev/vda" in g.console.read(0)
    finally:
        g.stop()
        g.cleanup()
    assert not disk.exists()


def cli(settings: dict, *args: str) -> subprocess.Popen:
    """`uffd-harness boot` with the session's guest flags, then `args`."""
    argv = [sys.executable, "-m", "harness", "boot", *guest_flags(settings), *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_cli_exit_code_and_release(settings, kernel):
    p = cli(settings, "--", "sh", "-c", "uname -r; exit 3")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 3, err.decode()
    assert out.decode().strip() == kernel.release


def test_sigkill_mid_boot_leaves_no_qemu(settings, tmp_path):
    before = set(our_qemus())
    log = tmp_path / "console.log"
    p = cli(settings, "--console-log", str(log), "--", "sleep", "600")
    try:
        deadline = time.monotonic() + 60
        mine: set[int] = set()
        # Mid-boot: QEMU is up and the kernel has started printing, SSH not yet ready.
        while time.monotonic() < deadline and not (mine and log.exists() and log.stat().st_size):
            mine = set(our_qemus()) - before
            time.sleep(0.05)
        assert mine, "the CLI never started QEMU"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        assert not wait_gone(mine), "QEMU outlived its SIGKILLed harness"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_sigterm_stops_guest_cleanly(settings):
    before = set(our_qemus())
    p = cli(settings, "--", "sleep", "600")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = p.stderr.readline().decode()
            if "run: sleep 600" in line:
                break
        mine = set(our_qemus()) - before
        assert mine
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 128 + signal.SIGTERM
        assert not wait_gone(mine, 1)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_port_taken_between_choice_and_bind_is_retried(settings, monkeypatch):
    import socket

    import harness.guest.guest as guest_mod

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    ports = [busy.getsockname()[1]]
    real = guest_mod.free_port
    monkeypatch.setattr(guest_mod, "free_port", lambda: ports.pop() if ports else real())
    seen: list[Event] = []
    g = make_guest(settings, events=seen.append)
    try:
        g.start()
        assert g.port != busy.getsockname()[1]
        assert [e.port for e in seen if isinstance(e, PortTaken)] == [busy.getsockname()[1]]
        assert g.run("true", timeout=30).exit_code == 0
    finally:
        g.stop()
        g.cleanup()
        busy.close()


def test_interactive_shell(settings):
    import pexpect

    argv = ["-m", "harness", "boot", *guest_flags(settings)]
    child = pexpect.spawn(sys.executable, argv, timeout=180)
    try:
        child.expect("interactive shell")
        child.expect(r"[#$] ")
        child.sendline("echo $((6 * 7))")
        child.expect("42")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 5


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to reserve host hugepages")
def test_host_hugepages_back_guest_ram(settings, tmp_path):
    from pathlib import Path

    from harness.host.hostmem import host_backing, hugetlbfs_mounts, read_pools

    sysfs = Path("/sys/kernel/mm/hugepages/hugepages-2048kB")
    nr = sysfs / "nr_hugepages"
    saved = nr.read_text()
    mnt = tmp_path / "huge"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", str(mnt)], check=True)
    g = None
    try:
        nr.write_text(str(int(saved) + 600))
        free_before = int((sysfs / "free_hugepages").read_text())
        mounts = {2048: mnt} | {
            k: v for k, v in hugetlbfs_mounts(Path("/proc/mounts").read_text()).items() if k != 2048
        }
        backing = host_backing(1024, read_pools(), mounts)
        assert backing == (mnt, 2048)
        g = make_guest(settings, mem="1G", hugepages="2M:16", numa=1, backing=backing).start()
        assert g.run("true", timeout=30).exit_code == 0
        used = free_before - int((sysfs / "free_hugepages").read_text())
        assert used == 512, f"guest RAM took {used} host hugepages, expected 512 (1 GiB)"
    finally:
        if g:
            g.stop()
            g.cleanup()
        subprocess.run(["umount", str(mnt)], check=False)
        nr.write_text(saved)
