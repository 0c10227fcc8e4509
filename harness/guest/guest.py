"""A guest: QEMU + its console + SSH, started in named phases and always stopped."""

import hashlib
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness import HarnessError
from harness.events import (
    AccelChosen,
    BootEnd,
    BootLine,
    BootStart,
    CommandEnd,
    CommandStart,
    DriversMissing,
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
    Sink,
    SwapPlanned,
    SwapReported,
    ignore,
)
from harness.guest.console import ANY_OUTPUT, GUEST_ERROR, NO_SSH, READY, ConsoleLog
from harness.guest.qemu import (
    TOKEN_PARAM,
    LaunchFiles,
    QemuExited,
    QemuProcess,
    build_argv,
    free_port,
)
from harness.guest.serial import SerialChannel
from harness.guest.ssh import HostKeyMismatch, RunResult, SshSession, connect
from harness.host.accel import choose_accel
from harness.host.cache import cache_root
from harness.host.hostmem import host_backing, hugetlbfs_mounts, read_pools
from harness.image import cpio
from harness.image.initramfs import DEFAULT_RECIPE, GuestImage, build_image, find_recipe
from harness.image.sshkeys import client_key
from harness.kernel.image import KernelImage, default_kernel, inspect_kernel, pvh_vmlinux
from harness.kernel.info import (
    GuestSwap,
    choose_swap,
    config_warnings,
    find_modules_tree,
    kernel_config,
)
from harness.settings.spec import GuestSpec
from harness.settings.values import format_pagesize

#: Seconds from QEMU start to the guest's READY line, per accelerator.
BOOT_TIMEOUT = {"kvm": 60.0, "tcg": 180.0}
#: A forced KVM that prints nothing in this long is stalled, not slow.
KVM_SILENCE_LIMIT = 20.0
PORT_ATTEMPTS = 5
#: The guest's swap prints this in its init line (SWAP_LINE), or a WARNING about swap.
SWAP_LINE = "uffd-harness: swap: "
SWAP_WARNING = "uffd-harness: WARNING: swap"
RUN_LOGLEVEL = 7
#: Where preloaded files land in the guest (not /tmp: init mounts a tmpfs over it).
STAGED = "uffd-harness/staged"


class PhaseTimeout(HarnessError):
    pass


class GuestHang(HarnessError):
    """A guest command did not finish in time; `dump` holds the guest's SysRq w/l output."""

    def __init__(self, command: str, timeout: float, dump: str, partial: str):
        self.command, self.timeout, self.dump, self.partial = command, timeout, dump, partial
        super().__init__(f"hang: `{command}` did not finish within {timeout:g} s")


class Guest:
    """Start with start() (or `with Guest(...) as g`); stop() is idempotent and always runs."""

    def __init__(
        self,
        spec: GuestSpec,
        kernel: KernelImage,
        console_log: Path | None = None,
        backing: tuple[Path, int] | None = None,
        events: Sink = ignore,
        boot_timeout: float | None = None,
        recipe: Path = DEFAULT_RECIPE,
        channel: str = "auto",
        preload: tuple[Path, ...] = (),
    ):
        self.spec = spec
        self.kernel = kernel
        self.backing = backing
        self.recipe = recipe
        #: "ssh", "console" (the second serial port) or "auto" (SSH, else the console).
        self.channel_mode = channel
        #: Files put into the initramfs, so that pushing them costs no transfer: over the
        #: console channel the agent alone would take more than a minute.
        self.preload = preload
        #: sha256 -> path in the guest of each preloaded file.
        self.staged: dict[str, str] = {}
        self.events = events
        self.boot_timeout = boot_timeout or BOOT_TIMEOUT[spec.accel]
        self.token = secrets.token_hex(16)
        # Socket paths must stay short (108 bytes), hence a private dir under /tmp.
        self.workdir = Path(tempfile.mkdtemp(prefix="uffd-harness-"))
        self.console = ConsoleLog(console_log or self.workdir / "console.log")
        self.qemu: QemuProcess | None = None
        #: How commands reach the guest, once start() has returned.
        self.channel: SshSession | SerialChannel | None = None
        #: Why the guest is driven over the console channel ("" when over SSH).
        self.console_why = ""
        self._no_ssh = ""  # the guest's own reason why it has no SSH, from its READY line
        self.image: GuestImage | None = None
        self.swap: GuestSwap | None = None  # decided with the image
        self.boot_kernel = kernel.path
        self.accel_reason = ""
        self.crashes: list = []  # set by whoever parsed the console after a run
        self.port = 0
        self._stop_due = False  # started and not yet stopped: stop() reports GuestStop

    # -- phases --------------------------------------------------------------------------

    def start(self) -> "Guest":
        self._stop_due = True
        self.events(GuestStarting())
        try:
            self._image()
            self._boot()
            self._connect()
        except BaseException:
            self.stop()
            raise
        return self

    def _image(self) -> None:
        t0 = time.monotonic()
        self.image = build_image(find_modules_tree(self.kernel), self.recipe)
        self.events(ImageReady(self.image.initrd, self.image.cached, time.monotonic() - t0))
        t0 = time.monotonic()
        vmlinux = pvh_vmlinux(self.kernel, cache_root())
        if vmlinux:
            self.boot_kernel = vmlinux
            self.events(PvhKernel(vmlinux, time.monotonic() - t0))
        if self.image.missing_optional:
            self.events(DriversMissing(tuple(self.image.missing_optional)))
        image = self.image
        self.swap = choose_swap(
            kernel_config(self.kernel), image.swap_mb, lambda name: name in image.modules
        )
        self.events(SwapPlanned(self.swap.kind, self.swap.size_mb, self.swap.explain()))
        if self.preload:
            self._stage()

    @property
    def initrd(self) -> Path:
        """The initramfs QEMU loads: the image's, or a copy with the preloaded files."""
        assert self.image
        return self.workdir / "initrd.cpio" if self.preload else self.image.initrd

    def _stage(self) -> None:
        assert self.image
        entries = [cpio.directory(STAGED.split("/")[0]), cpio.directory(STAGED)]
        for local in self.preload:
            data = local.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            entries.append(cpio.file(f"{STAGED}/{digest[:16]}-{local.name}", data, 0o755))
            self.staged[digest] = f"/{entries[-1].name}"
        # A second archive after the image's: the kernel unpacks both, one over the other.
        with self.initrd.open("wb") as out:
            with self.image.initrd.open("rb") as image:
                shutil.copyfileobj(image, out)
            cpio.write(out, entries)

    @property
    def swap_disk(self) -> Path:
        """The sparse file behind the guest's swap disk, in its private work dir."""
        return self.workdir / "swap.img"

    def _make_swap_disk(self) -> Path | None:
        if not (self.swap and self.swap.attach_disk):
            return None
        # Fresh and sparse for every launch: init runs mkswap on it, and only what the
        # guest swaps out takes space on the host. stop() removes it.
        with self.swap_disk.open("wb") as f:
            f.truncate(self.swap.size_mb * 2**20)
        return self.swap_disk

    def _launch(self) -> QemuProcess:
        assert self.image
        files = LaunchFiles(
            self.boot_kernel,
            self.initrd,
            self.console.path,
            self.workdir / "qmp.sock",
            self._make_swap_disk(),
            self.workdir / "chan.sock",
        )
        self.console.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            # The port is free when chosen but another process may take it before QEMU
            # binds it; QEMU then exits at once and we try another.
            self.port = free_port()
            argv = build_argv(self.spec, files, self.port, self.token, self.backing)
            # Stamped before the spawn, as the bench's bare boots are, so the two compare.
            spawn = time.monotonic()
            qemu = QemuProcess(argv, self.workdir / "qemu.stderr", files.qmp_socket)
            self.qemu = qemu
            spec = self.spec
            self.events(
                BootStart(
                    qemu.pid, self.port, spec.accel, spec.cpu_model, spec.smp, spec.mem_mb, t=spawn
                )
            )
            try:
                qemu.connect_qmp()
                self.events(QmpReady(qemu.pid))
                return qemu
            except QemuExited as e:
                if not e.port_taken or attempt == PORT_ATTEMPTS:
                    raise
                self.events(PortTaken(self.port))
        raise AssertionError("unreachable")

    def _boot(self) -> None:
        t0 = time.monotonic()
        qemu = self._launch()
        if self.spec.accel == "kvm":
            silent = not self.console.wait_for(
                [ANY_OUTPUT],
                KVM_SILENCE_LIMIT,
                keep_going=qemu.alive,
            )
            if silent and qemu.alive():
                raise PhaseTimeout(
                    f"KVM forced but the guest printed nothing on its console in "
                    f"{KVM_SILENCE_LIMIT:.0f} s: /dev/kvm is probably not usable hardware "
                    "virtualization here (the CPU must advertise vmx or svm, and nested "
                    "virtualization must be enabled); drop --accel kvm to use TCG"
                )
        remaining = self.boot_timeout - (time.monotonic() - t0)
        # From offset 0 even after the KVM check: every line of the boot is reported.
        found = self.console.wait_for(
            [READY, GUEST_ERROR],
            remaining,
            keep_going=qemu.alive,
            on_line=self._boot_line,
        )
        if found is None:
            if not qemu.alive():
                raise HarnessError(
                    f"the guest stopped during boot (QEMU exit code {qemu.proc.returncode}); "
                    f"last console lines:\n{self.console.tail()}"
                    + (f"\nQEMU stderr: {qemu.stderr_text()}" if qemu.stderr_text() else "")
                )
            raise PhaseTimeout(
                f"guest not ready after {self.boot_timeout:.0f} s under {self.spec.accel.upper()}; "
                f"last console lines:\n{self.console.tail()}"
            )
        if found.pattern is GUEST_ERROR:
            raise HarnessError(f"guest reported: {found.text.removeprefix('uffd-harness: ')}")
        self._no_ssh = found.text.removeprefix(NO_SSH) if found.text.startswith(NO_SSH) else ""
        self.events(BootEnd(time.monotonic() - t0))

    def _boot_line(self, text: str) -> None:
        self.events(BootLine(text))
        if text.startswith((SWAP_LINE, SWAP_WARNING)):
            self.events(SwapReported(text.removeprefix(SWAP_LINE).removeprefix("uffd-harness: ")))

    def _connect(self) -> None:
        assert self.qemu and self.image
        t0 = time.monotonic()
        mode = self.channel_mode
        if self._no_ssh and mode == "ssh":
            raise HarnessError(
                f"the guest has no SSH: {self._no_ssh}; with --channel auto the harness "
                "drives such a guest over its console channel"
            )
        if mode == "console":
            self.console_why = "asked for (channel: console)"
        elif self._no_ssh:
            self.console_why = f"the guest has no SSH: {self._no_ssh}"
        else:
            key_path, _ = client_key()
            try:
                self.channel = connect(
                    self.port,
                    self.image.host_key,
                    key_path,
                    timeout=60.0,
                    keep_going=self.qemu.alive,
                )
            except HostKeyMismatch:
                raise  # something else answers: never fall back from that
            except HarnessError as e:
                if mode == "ssh" or not self.qemu.alive():
                    raise
                self.console_why = f"SSH did not come up: {e}"
        if self.channel is None:
            self.channel = SerialChannel(self.workdir / "chan.sock")
        # The token first, in a command of its own: nothing else runs in a guest that may
        # not be this boot's.
        cmdline = self.channel.run("cat /proc/cmdline", timeout=30).stdout.decode(errors="replace")
        if f"{TOKEN_PARAM}={self.token}" not in cmdline.split():
            raise HarnessError(
                f"the guest on port {self.port} does not carry this boot's token; refusing to "
                f"use it (its command line: {cmdline.strip()!r})"
            )
        sizes = sorted(self.spec.hugepages)
        # Boot stays at loglevel 5 (a quiet serial port boots faster under TCG); from now
        # on the console also gets KERN_INFO, where hung-task and lockup reports print
        # their stacks, so the console alone explains a guest that died.
        probe = f"dmesg -n {RUN_LOGLEVEL}" + "".join(
            f"; cat /sys/kernel/mm/hugepages/hugepages-{kb}kB/nr_hugepages 2>/dev/null || echo 0"
            for kb in sizes
        )
        lines = self.channel.run(probe, timeout=30).stdout.decode(errors="replace").splitlines()
        short = [
            f"{got}/{self.spec.hugepages[kb]} {format_pagesize(kb)} pages"
            for kb, got in zip(sizes, (int(x) for x in lines), strict=False)
            if got < self.spec.hugepages[kb]
        ]
        if short:
            raise HarnessError(
                f"the guest kernel allocated only {', '.join(short)} at boot; give the guest "
                "more --mem or ask for fewer --hugepages"
            )
        self.events(GuestReady(self.driven_by, self.port, time.monotonic() - t0, self.console_why))

    # -- use -----------------------------------------------------------------------------

    @property
    def driven_by(self) -> str:
        """ "console" or "ssh": how commands reach the guest."""
        return "console" if isinstance(self.channel, SerialChannel) else "ssh"

    def reachable(self) -> bool:
        """QEMU runs and the channel to the guest still takes commands."""
        return bool(self.alive() and self.channel and self.channel.alive())

    def run(self, cmd: str, timeout: float, **kw: object) -> RunResult:
        if not self.channel:
            raise HarnessError("guest is not connected")
        self.events(CommandStart(cmd))
        t0 = time.monotonic()
        try:
            res = self.channel.run(cmd, timeout, **kw)  # type: ignore[arg-type]
        except HarnessError as e:
            self.events(CommandEnd(cmd, time.monotonic() - t0, None, str(e)))
            raise
        self.events(CommandEnd(cmd, res.duration, res.exit_code))
        return res

    def push(self, local: Path, remote: str, mode: int = 0o644) -> str:
        if not self.channel:
            raise HarnessError("guest is not connected")
        t0 = time.monotonic()
        digest = self.channel.push(local, remote, mode, staged=self.staged)
        self.events(Push(local, remote, digest, time.monotonic() - t0))
        return digest

    def alive(self) -> bool:
        return bool(self.qemu and self.qemu.alive())

    def wait_exit(self, timeout: float) -> bool:
        """Wait for QEMU to exit by itself (a panicking guest does); True if it has."""
        if not self.qemu:
            return True
        try:
            self.qemu.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def sysrq(self, keys: str) -> None:
        """Press Alt-SysRq-<key> for each key on the guest's keyboard, through QMP.

        Works when userspace and SSH are stuck (distro kernels restrict SysRq; the kernel
        command line has sysrq_always_enabled)."""
        if not (self.qemu and self.qemu.qmp and self.alive()):
            raise HarnessError("cannot send SysRq: QEMU is not running")
        for key in keys:
            combo = [{"type": "qcode", "data": k} for k in ("alt", "sysrq", key)]
            self.qemu.qmp.command("send-key", keys=combo, **{"hold-time": 50})
            time.sleep(0.2)

    def hang_dump(self, settle: float = 1.0, limit: float = 15.0) -> str:
        """Blocked tasks (SysRq w) and all CPUs' backtraces (SysRq l) from the console.

        SysRq 8 first: the dumps print at KERN_INFO, below the boot's console loglevel.
        """
        start = self.console.offset()
        try:
            self.sysrq("8wl")
        except (HarnessError, OSError) as e:
            return f"(no dump: {e})"
        deadline, last, quiet_since = time.monotonic() + limit, -1, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < settle:
            now = self.console.offset()
            if now != last:
                last, quiet_since = now, time.monotonic()
            time.sleep(0.1)
        return self.console.read(start)

    def stop(self) -> None:
        t0 = time.monotonic()
        died = bool(self.qemu and not self.qemu.alive())
        if self.channel:
            self.channel.close()
            self.channel = None
        code = self.qemu.stop() if self.qemu else None
        # What the guest swapped out is of no use once it is gone, nor its initramfs copy.
        self.swap_disk.unlink(missing_ok=True)
        if self.preload:
            self.initrd.unlink(missing_ok=True)
        if not self.console.path.is_relative_to(self.workdir):
            # The console log lives elsewhere: nothing in the work dir is worth keeping.
            self.cleanup()
        if self._stop_due:
            self._stop_due = False
            self.events(GuestStop(time.monotonic() - t0, code, died))

    def cleanup(self) -> None:
        """Remove the private work dir (the console log too, unless it was given a path)."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Guest":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def guest_from_settings(
    settings: dict[str, object],
    console_log: Path | None = None,
    events: Sink = ignore,
    **guest_kw: object,
) -> Guest:
    """Validate merged settings (kernel, accelerator, sizes, pools) into a Guest, not started.

    Every check that needs no QEMU happens here, so bad input fails in milliseconds.
    """
    kernel_arg = settings.get("kernel")
    kernel = inspect_kernel(Path(str(kernel_arg))) if kernel_arg else default_kernel()
    events(KernelChosen(kernel.path, kernel.release))
    for warning in config_warnings(kernel):
        events(KernelWarning(warning))
    accel = choose_accel(str(settings["accel"]))
    events(AccelChosen(accel.accel, accel.reason))
    spec = GuestSpec.from_settings(settings, kernel.path, accel.accel)
    spec.validate()
    backing = guest_kw.pop("backing", None)
    if spec.host_hugepages and backing is None:
        backing = host_backing(
            spec.mem_mb, read_pools(), hugetlbfs_mounts(Path("/proc/mounts").read_text())
        )
    guest_kw.setdefault("channel", str(settings.get("channel") or "auto"))
    guest_kw.setdefault("recipe", find_recipe(str(settings.get("image") or "default")))
    guest = Guest(spec, kernel, console_log=console_log, backing=backing, events=events, **guest_kw)
    guest.accel_reason = accel.reason
    return guest
