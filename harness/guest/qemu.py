"""QEMU: the pure argv builder, a small QMP client, and the process that is always stopped."""

import contextlib
import ctypes
import functools
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness import HarnessError
from harness.settings.spec import GuestSpec
from harness.settings.values import format_pagesize

QEMU = "qemu-system-x86_64"
TOKEN_PARAM = "uffd_harness.token"
#: On the kernel command line when a swap disk is attached: the guest's init waits for it.
SWAP_PARAM = "uffd_harness.swap=disk"
#: The swap disk's virtio serial (/sys/block/vdX/serial): init swaps only onto this disk.
SWAP_DISK_SERIAL = "uffd-swap"


def qemu_version(exe: str = QEMU) -> str | None:
    """The first line of `qemu-system-x86_64 --version`, or None when it does not run."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return None
    return out.splitlines()[0] if out.strip() else None


@dataclass(frozen=True)
class LaunchFiles:
    kernel: Path  # what QEMU loads: the bzImage, or its vmlinux for a PVH boot
    initrd: Path
    console_log: Path
    qmp_socket: Path
    swap_disk: Path | None = None  # a raw file the guest swaps to (when it has no zram)
    channel_socket: Path | None = None  # the console channel: the guest's ttyS1


def kernel_cmdline(spec: GuestSpec, token: str, swap_disk: bool = False) -> str:
    args = [
        "console=ttyS0",
        # Level 5 shows KERN_WARNING and worse on the console (so WARNINGs and oopses are
        # captured even when SSH is gone) and keeps the slow serial port quiet otherwise.
        "loglevel=5",
        "rdinit=/init",
        "panic=-1",  # reboot at once on panic: with -no-reboot, QEMU then exits
        "sysrq_always_enabled",
        "random.trust_cpu=on",
        f"{TOKEN_PARAM}={token}",
    ]
    if swap_disk:
        args.append(SWAP_PARAM)
    for kb, count in sorted(spec.hugepages.items()):
        args += [f"hugepagesz={format_pagesize(kb)}", f"hugepages={count}"]
    return " ".join(args + spec.extra_cmdline)


def _escape(path: Path) -> str:
    """A path as a QEMU option value: a comma is written twice."""
    return str(path).replace(",", ",,")


def build_argv(
    spec: GuestSpec,
    files: LaunchFiles,
    ssh_port: int,
    token: str,
    backing: tuple[Path, int] | None = None,
) -> list[str]:
    """The full QEMU command line. `backing` is (hugetlbfs mount, page KiB) for guest RAM."""
    machine = f"q35,accel={spec.accel}"
    if spec.hugepages.get(1024 * 1024):
        # The kernel takes 1G pages at boot from 1G-aligned free ranges, but early boot
        # allocations land at the top of RAM and the initrd sits high below 4G. Keeping
        # low RAM at 1G puts the rest above 4G in whole, aligned gigabytes.
        machine += ",max-ram-below-4g=1G"
    argv = [QEMU, "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none"]
    argv += ["-cpu", spec.cpu_model, "-smp", str(spec.smp), "-m", f"{spec.mem_mb}M"]
    nodes = spec.node_sizes_mb()
    for i, size in enumerate(nodes if backing or len(nodes) > 1 else []):
        if backing:
            path, _ = backing
            backend = f"memory-backend-file,id=ram{i},size={size}M,mem-path={_escape(path)},"
            backend += "share=on,prealloc=on"
        else:
            backend = f"memory-backend-ram,id=ram{i},size={size}M"
        argv += ["-object", backend]
    if len(nodes) > 1:
        # Every CPU on node 0; the other nodes are memory that pages can migrate to.
        argv += ["-numa", f"node,nodeid=0,cpus=0-{spec.smp - 1},memdev=ram0"]
        for i in range(1, len(nodes)):
            argv += ["-numa", f"node,nodeid={i},memdev=ram{i}"]
    elif backing:
        machine += ",memory-backend=ram0"
    argv += ["-machine", machine]
    argv += ["-kernel", str(files.kernel), "-initrd", str(files.initrd)]
    argv += ["-append", kernel_cmdline(spec, token, files.swap_disk is not None)]
    # A file chardev is written by QEMU itself from the first byte, so the log survives
    # whatever happens to the harness or the guest.
    argv += ["-chardev", f"file,id=con0,path={_escape(files.console_log)}"]
    argv += ["-serial", "chardev:con0"]
    if files.channel_socket:
        # The second serial port (ttyS1) carries the console channel, a shell the harness
        # drives when SSH cannot come up; its own port keeps the kernel's log clean.
        argv += [
            "-chardev",
            f"socket,id=chan0,path={_escape(files.channel_socket)},server=on,wait=off",
            "-serial",
            "chardev:chan0",
        ]
    argv += ["-qmp", f"unix:{_escape(files.qmp_socket)},server=on,wait=off"]
    argv += [
        "-netdev",
        f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
        "-device",
        "virtio-net-pci,netdev=net0",
        "-device",
        "virtio-rng-pci",
    ]
    if files.swap_disk:
        # Swap contents need not survive the guest: no flushes to the host's disk.
        argv += [
            "-drive",
            f"file={_escape(files.swap_disk)},if=none,id=swap0,format=raw,cache=unsafe",
            "-device",
            f"virtio-blk-pci,drive=swap0,serial={SWAP_DISK_SERIAL}",
        ]
    argv += ["-no-reboot"]
    return argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Qmp:
    """Just enough QMP: capabilities negotiation and synchronous commands."""

    def __init__(self, path: Path, timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.reader = self.sock.makefile("rb")
        self._read()  # greeting
        self.command("qmp_capabilities")

    def _read(self) -> dict:
        while True:
            line = self.reader.readline()
            if not line:
                raise ConnectionError("QMP connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def command(self, name: str, **arguments: object) -> object:
        msg: dict = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        reply = self._read()
        if "error" in reply:
            raise HarnessError(f"QMP {name}: {reply['error'].get('desc')}")
        return reply.get("return")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


_PR_SET_PDEATHSIG = 1


def _child_setup(parent: int) -> None:
    # Own process group: a Ctrl-C at the terminal reaches the harness, which then stops
    # QEMU in order; and the death signal kills QEMU even if the harness is SIGKILLed.
    os.setpgid(0, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The harness died before prctl took effect: we were reparented. Compared with the
    # harness's own pid, not with 1: the harness may itself be PID 1 (a container without
    # init), and a subreaper adopts orphans under another pid.
    if os.getppid() != parent:
        os._exit(1)


class QemuProcess:
    """A running QEMU. Use as a context manager, or call stop(); it never outlives us."""

    def __init__(self, argv: list[str], stderr_path: Path, qmp_socket: Path):
        self.argv = argv
        self.stderr_path = stderr_path
        self.qmp_socket = qmp_socket
        self.qmp: Qmp | None = None
        with stderr_path.open("wb") as err:
            try:
                self.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    # The death signal must be set in the child.
                    preexec_fn=functools.partial(_child_setup, os.getpid()),
                    close_fds=True,
                )
            except FileNotFoundError:
                raise HarnessError(
                    f"{argv[0]} not found; install it with `apt-get install qemu-system-x86`"
                ) from None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace").strip()
        except OSError:
            return ""

    def connect_qmp(self, timeout: float = 30.0) -> Qmp:
        """Connect once QEMU has finished its setup (the QMP greeting comes from its main
        loop); raise if QEMU exits first, with its stderr."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise QemuExited(self.proc.returncode, self.stderr_text())
            try:
                self.qmp = Qmp(self.qmp_socket)
                return self.qmp
            # BlockingIOError: the listen backlog is full of our earlier attempts while
            # QEMU, still preallocating guest RAM, has not reached its main loop.
            except (FileNotFoundError, ConnectionError, TimeoutError, BlockingIOError):
                if time.monotonic() > deadline:
                    raise HarnessError(
                        f"QEMU did not open its QMP socket within {timeout:.0f} s"
                    ) from None
                time.sleep(0.02)

    def stop(self, grace: float = 3.0) -> int | None:
        """QMP quit, then SIGKILL to the whole group after `grace` seconds."""
        if self.alive():
            try:
                qmp = self.qmp or Qmp(self.qmp_socket, timeout=1.0)
                qmp.command("quit")
            except (OSError, ConnectionError, HarnessError, ValueError):
                pass
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait()
        if self.qmp:
            self.qmp.close()
            self.qmp = None
        return code

    def __enter__(self) -> "QemuProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class QemuExited(HarnessError):
    def __init__(self, code: int | None, stderr: str):
        self.code = code
        self.stderr = stderr
        super().__init__(f"QEMU exited with code {code} during startup: {stderr or '(no stderr)'}")

    @property
    def port_taken(self) -> bool:
        return "host forwarding rule" in self.stderr or "Address already in use" in self.stderr
