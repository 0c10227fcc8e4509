"""The events a Guest emits, driven with a fake QEMU and a fake SSH server, and the lines
the CLI's printer makes of them."""

import dataclasses
import hashlib
from pathlib import Path

import pytest

from harness import HarnessError, events
from harness.cli.progress import Clock, describe
from harness.events import (
    AccelChosen,
    BootEnd,
    BootLine,
    BootStart,
    CommandEnd,
    CommandStart,
    DriversMissing,
    Event,
    GuestReady,
    GuestStarting,
    GuestStop,
    ImageReady,
    KernelChosen,
    KernelWarning,
    PortTaken,
    Push,
    PvhKernel,
    QmpReady,
    SwapPlanned,
    SwapReported,
)
from harness.guest import guest as guest_mod
from harness.guest.qemu import TOKEN_PARAM, QemuExited
from harness.guest.ssh import CommandTimeout, RunResult
from harness.image.initramfs import GuestImage
from harness.kernel.image import KernelImage
from harness.settings.spec import GuestSpec

BOOT_LOG = (
    b"[    0.000000] Linux version 6.1.0-56-amd64\r\n"
    b"\r\n"
    b"uffd-harness: init started\n"
    b"uffd-harness: swap: virtio-blk disk /dev/vda 64 MiB on\n"
    b"uffd-harness: READY\n"
)


class FakeQemu:
    """Stands in for QemuProcess; `refuse_ports` of them exit as if their port was taken."""

    refuse_ports = 0
    spawned = 0
    argv: list[str] = []

    def __init__(self, argv: list[str], stderr_path: Path, qmp_socket: Path):
        FakeQemu.spawned += 1
        FakeQemu.argv = argv
        self.pid = 4240 + FakeQemu.spawned
        self.running = True

    def connect_qmp(self) -> None:
        if FakeQemu.refuse_ports:
            FakeQemu.refuse_ports -= 1
            self.running = False
            raise QemuExited(1, "Could not set up host forwarding rule 'tcp:127.0.0.1:1-:22'")

    def alive(self) -> bool:
        return self.running

    def stop(self) -> int:
        self.running = False
        return 0


class FakeSsh:
    """Answers the boot probe with the guest's token and full pools; `sleep` times out."""

    def __init__(self, token: str):
        self.token = token

    def run(self, cmd: str, timeout: float, **kw: object) -> RunResult:
        if cmd == "cat /proc/cmdline":
            return RunResult(0, f"{TOKEN_PARAM}={self.token} quiet\n".encode(), b"", 0.1)
        if cmd.startswith("dmesg -n"):
            return RunResult(0, b"64\n", b"", 0.1)
        if cmd.startswith("sleep"):
            raise CommandTimeout(cmd, timeout, b"", b"")
        return RunResult(0, b"6.1.0-56-amd64\n", b"", 0.1)

    def push(self, local: Path, remote: str, mode: int, staged: dict[str, str]) -> str:
        return hashlib.sha256(local.read_bytes()).hexdigest()

    def close(self) -> None:
        pass


@pytest.fixture
def make_guest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A Guest whose image, QEMU and SSH are fakes; the console log is written beforehand."""
    image = GuestImage(
        tmp_path / "initramfs.cpio", "ssh-ed25519 AAAA", ["virtio_rng"], True, 64, frozenset()
    )
    monkeypatch.setattr(guest_mod, "find_modules_tree", lambda kernel: None)
    # A kernel with swap and virtio-blk built in but no zram: the guest gets a swap disk.
    config = {"SWAP": "y", "VIRTIO_BLK": "y"}
    monkeypatch.setattr(guest_mod, "kernel_config", lambda kernel: config)
    monkeypatch.setattr(guest_mod, "build_image", lambda tree, recipe: image)
    monkeypatch.setattr(guest_mod, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(guest_mod, "pvh_vmlinux", lambda kernel, cache: None)
    monkeypatch.setattr(guest_mod, "QemuProcess", FakeQemu)
    monkeypatch.setattr(guest_mod, "client_key", lambda: (tmp_path / "id", "ssh-ed25519 BBBB"))
    monkeypatch.setattr(FakeQemu, "refuse_ports", 0)

    def make(console: bytes = BOOT_LOG) -> tuple[guest_mod.Guest, list[Event]]:
        seen: list[Event] = []
        kernel = KernelImage(tmp_path / "bzImage", "6.1.0-56-amd64 #1 SMP")
        log = tmp_path / "console.log"
        log.write_bytes(console)
        # 2048 MiB and one pool of 64 pages (what FakeSsh's probe answers), spelled out:
        # GuestSpec's defaults are the settings' defaults, which may change.
        spec = GuestSpec(kernel.path, mem_mb=2048, hugepages={2048: 64})
        g = guest_mod.Guest(spec, kernel, log, events=seen.append)
        monkeypatch.setattr(guest_mod, "connect", lambda *a, **kw: FakeSsh(g.token))
        return g, seen

    return make


def kinds(seen: list[Event]) -> list[str]:
    return [type(e).__name__ for e in seen]


def test_a_guest_reports_its_start_commands_push_and_stop(make_guest, tmp_path: Path):
    g, seen = make_guest()
    g.start()
    assert kinds(seen) == [
        "GuestStarting",
        "ImageReady",
        "DriversMissing",
        "SwapPlanned",
        "BootStart",
        "QmpReady",
        "BootLine",
        "BootLine",
        "BootLine",
        "BootLine",
        "SwapReported",
        "BootLine",
        "BootEnd",
        "GuestReady",
    ]
    boot = next(e for e in seen if isinstance(e, BootStart))
    assert (boot.accel, boot.cpu, boot.smp, boot.mem_mb, boot.port) == (
        "tcg",
        "max",
        2,
        2048,
        g.port,
    )
    assert next(e for e in seen if isinstance(e, QmpReady)).pid == boot.pid
    assert [e.text for e in seen if isinstance(e, BootLine)] == [
        "[    0.000000] Linux version 6.1.0-56-amd64",
        "",
        "uffd-harness: init started",
        "uffd-harness: swap: virtio-blk disk /dev/vda 64 MiB on",
        "uffd-harness: READY",
    ]
    planned = next(e for e in seen if isinstance(e, SwapPlanned))
    assert (planned.kind, planned.size_mb) == ("disk", 64)
    assert planned.text == "virtio-blk disk (64 MiB): no zram (CONFIG_ZRAM is not set)"
    reported = next(e for e in seen if isinstance(e, SwapReported))
    assert reported.text == "virtio-blk disk /dev/vda 64 MiB on"
    # The disk is a sparse 64 MiB file in the guest's work dir, gone when the guest stops.
    disk = g.workdir / "swap.img"
    assert disk.stat().st_size == 64 * 2**20 and disk.stat().st_blocks == 0
    assert f"file={disk},if=none,id=swap0,format=raw,cache=unsafe" in FakeQemu.argv
    # The probe at connect time is the guest's own business, not a command event.
    assert not any(isinstance(e, CommandStart) for e in seen)
    times = [e.t for e in seen]
    assert times == sorted(times)

    del seen[:]
    assert g.run("uname -r", 30).exit_code == 0
    with pytest.raises(CommandTimeout):
        g.run("sleep 99", 1)
    agent = tmp_path / "agent"
    agent.write_bytes(b"\x7fELF")
    digest = g.push(agent, "/tmp/uffd-agent", 0o755)
    g.stop()
    g.stop()
    assert kinds(seen) == [
        "CommandStart",
        "CommandEnd",
        "CommandStart",
        "CommandEnd",
        "Push",
        "GuestStop",
    ]
    assert seen[1] == CommandEnd("uname -r", 0.1, 0, t=seen[1].t)
    assert seen[3].exit_code is None and "timed out after 1 s" in seen[3].error
    assert seen[4] == Push(agent, "/tmp/uffd-agent", digest, seen[4].seconds, t=seen[4].t)
    assert seen[5].exit_code == 0 and not seen[5].died
    assert not disk.exists()
    # Its console log lives elsewhere, so nothing of the guest's work dir is left in /tmp.
    assert not g.workdir.exists()


def test_a_taken_port_is_reported_and_the_boot_goes_on(make_guest):
    g, seen = make_guest()
    FakeQemu.refuse_ports = 1
    g.start()
    started = [e for e in seen if isinstance(e, BootStart)]
    assert len(started) == 2 and started[0].pid != started[1].pid
    taken = next(e for e in seen if isinstance(e, PortTaken))
    assert seen.index(started[0]) < seen.index(taken) < seen.index(started[1])
    assert taken.port == started[0].port
    g.stop()


def test_a_failed_start_ends_in_one_stop_and_no_ready(make_guest):
    g, seen = make_guest(b"uffd-harness: ERROR: no network device\n")
    with pytest.raises(HarnessError, match="no network device"):
        g.start()
    g.stop()
    assert kinds(seen)[-2:] == ["BootLine", "GuestStop"]
    assert not any(isinstance(e, (BootEnd, GuestReady)) for e in seen)


def test_a_guest_that_died_says_so_when_stopped(make_guest):
    g, seen = make_guest()
    g.start()
    g.qemu.running = False
    g.stop()
    assert seen[-1].died is True


# -- the CLI's printer ---------------------------------------------------------------------

#: A boot as `uffd-harness boot -- uname -r` printed it before events (the times are the
#: events' own, from the command's start at 1000.0).
RECORDED = [
    KernelChosen(Path("/boot/vmlinuz-6.1.0-56-amd64"), "6.1.0-56-amd64", t=1000.05),
    KernelWarning("CONFIG_PTE_MARKER_UFFD_WP is not set", t=1000.06),
    AccelChosen("tcg", "/dev/kvm cannot run a guest here; using TCG", t=1000.07),
    GuestStarting(t=1000.08),
    ImageReady(Path("/c/initramfs-1f2e.cpio"), True, 0.1234, t=1000.21),
    PvhKernel(Path("/c/vmlinux-6.1"), 0.0051, t=1000.22),
    DriversMissing(("virtio_rng",), t=1000.23),
    SwapPlanned(
        "disk", 256, "virtio-blk disk (256 MiB): no zram (CONFIG_ZRAM is not set)", t=1000.24
    ),
    BootStart(4242, 34567, "tcg", "max", 2, 3072, t=1000.30),
    PortTaken(34567, t=1000.40),
    BootStart(4243, 34568, "tcg", "max", 2, 3072, t=1000.50),
    QmpReady(4243, t=1001.10),
    SwapReported("virtio-blk disk /dev/vda 256 MiB on", t=1017.90),
    BootLine("uffd-harness: READY", t=1017.99),
    BootEnd(17.7, t=1018.00),
    GuestReady("ssh", 34568, 1.9, t=1019.90),
    Push(Path("/tmp/tool"), "/tmp/tool", "ab" * 32, 0.9, t=1020.80),
    CommandStart("uname -r", t=1021.00),
    CommandEnd("uname -r", 0.2, 0, t=1021.20),
    CommandStart("sleep 99", t=1021.30),
    CommandEnd("sleep 99", 5.0, None, "command timed out after 5 s", t=1026.30),
    GuestStop(0.5, 0, False, t=1026.90),
    GuestStop(0.01, -9, True, t=1027.00),
]
PRINTED = """\
[  0.05s] kernel: /boot/vmlinuz-6.1.0-56-amd64: 6.1.0-56-amd64
[  0.06s] kernel: WARNING: CONFIG_PTE_MARKER_UFFD_WP is not set
[  0.07s] accel: /dev/kvm cannot run a guest here; using TCG
[  0.21s] image: cached /c/initramfs-1f2e.cpio in 0.12 s
[  0.22s] image: PVH boot from /c/vmlinux-6.1 (0.01 s)
[  0.23s] image: kernel lacks optional drivers: virtio_rng
[  0.24s] swap: virtio-blk disk (256 MiB): no zram (CONFIG_ZRAM is not set)
[  0.30s] boot: QEMU pid 4242 (tcg, -cpu max, 2 CPUs, 3072 MiB), ssh port 34567
[  0.40s] boot: port 34567 was taken, retrying
[  0.50s] boot: QEMU pid 4243 (tcg, -cpu max, 2 CPUs, 3072 MiB), ssh port 34568
[ 17.90s] swap: guest: virtio-blk disk /dev/vda 256 MiB on
[ 18.00s] boot: guest ready in 17.70 s
[ 19.90s] ssh: connected, boot token verified in 1.90 s
[ 20.80s] push: /tmp/tool -> /tmp/tool (sha256 abababababab verified)
[ 21.00s] run: uname -r
[ 21.20s] run: exit code 0 after 0.20 s
[ 21.30s] run: sleep 99
[ 26.30s] run: no exit code after 5.00 s: command timed out after 5 s
[ 26.90s] stop: guest stopped
[ 27.00s] guest: QEMU exited (code -9): the guest died
[ 27.00s] stop: guest stopped
[ 27.50s] agent: built
"""


def test_the_printer_prints_a_recorded_boot_as_before(capsys, monkeypatch):
    clock = Clock()
    clock.t0 = 1000.0
    for e in RECORDED:
        clock(e)
    monkeypatch.setattr("time.monotonic", lambda: 1027.5)
    clock.say("agent", "built")
    assert capsys.readouterr().err == PRINTED


def test_every_event_type_is_printed_or_deliberately_silent():
    silent = {GuestStarting, QmpReady, BootLine}
    types = {
        cls
        for cls in vars(events).values()
        if isinstance(cls, type) and issubclass(cls, Event) and cls is not Event
    }
    printed = {type(e) for e in RECORDED if describe(e)}
    assert types == printed | silent
    assert not any(describe(e) for e in RECORDED if type(e) in silent)


def test_events_are_frozen_and_stamped_when_made():
    e = CommandStart("true")
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.cmd = "false"  # type: ignore[misc]
    assert CommandStart("true").t >= e.t


def test_the_token_is_checked_before_anything_else_runs(make_guest, monkeypatch):
    ran: list[str] = []

    class Impostor(FakeSsh):
        def run(self, cmd: str, timeout: float, **kw: object) -> RunResult:
            ran.append(cmd)
            return RunResult(0, b"console=ttyS0 uffd_harness.token=stale\n", b"", 0.1)

    guest, _ = make_guest()
    monkeypatch.setattr(guest_mod, "connect", lambda *a, **kw: Impostor("other"))
    with pytest.raises(HarnessError, match="does not carry this boot's token"):
        guest.start()
    assert ran == ["cat /proc/cmdline"]
