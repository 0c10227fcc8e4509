"""Every bad value is one line on stderr and exit 2, whether it came from a flag or from a
--guest-config file; nothing boots, nothing is built."""

import signal
from pathlib import Path

import pytest

from harness.cli.main import main

BZIMAGE = Path("/boot")  # any real one will do for the truncated-kernel case


@pytest.fixture(autouse=True)
def keep_signal_handlers():
    """main() turns SIGTERM/SIGHUP into exits; give this process its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.fixture
def not_a_kernel(tmp_path) -> Path:
    """Given to every command, so that even with a check broken nothing boots."""
    path = tmp_path / "not-a-kernel"
    path.write_text("not a kernel\n")
    return path


def one_error_line(argv: list[str], capsys, kernel: Path | None = None) -> str:
    if kernel:
        argv = [argv[0], "--kernel", str(kernel), *argv[1:]]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("uffd-harness: error: "), err
    return err.strip()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["boot", "--hugepages", "2M:\u00b2"], "--hugepages '2M:\u00b2': entry"),
        (["boot", "--hugepages", "3M:1"], "2M and 1G"),
        (["boot", "--accel", "kvmm"], "--accel 'kvmm': expected one of auto, kvm, tcg"),
        (["boot", "--smp", "0"], "--smp '0': expected a whole number >= 1"),
        (["boot", "--smp", "\u0663"], "--smp '\u0663': expected a whole number"),
        (["agent", "--mem", "lots", "--", "features"], "--mem 'lots': not a size"),
        (["boot", "--cpu", ""], "--cpu '': expected a non-empty value"),
        (["boot", "--timeout", "nan"], "argument --timeout: 'nan': expected a finite number"),
        (["agent", "--timeout", "0", "--", "features"], "argument --timeout: '0'"),
        (["boot", "--timeout", "inf"], "argument --timeout: 'inf'"),
        (["run", "--guest-timeout", "0"], "--guest-timeout '0': expected a finite number"),
        (["run", "--guest-timeout", "-5"], "--guest-timeout '-5': expected"),
        (["run", "--guest-timeout", "nan"], "--guest-timeout 'nan': expected"),
        (["run", "--results", "/dev/null/x"], "is under /dev/null, which is not a directory"),
        (["boot", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["bench", "--results", "/dev/null/x"], "argument --results: '/dev/null/x': is under"),
        (["bench", "--runs", "0"], "argument --runs: '0': expected a whole number >= 1"),
        (["bench", "--guest-timeout", "nan"], "--guest-timeout 'nan': expected"),
        (["boot", "--guest-config", "/bin/true"], "/bin/true: not UTF-8 text; expected a YAML"),
    ],
)
def test_bad_flag(argv, message, capsys, not_a_kernel):
    assert message in one_error_line(argv, capsys, not_a_kernel)


def test_results_on_a_regular_file(tmp_path, capsys, not_a_kernel):
    f = tmp_path / "taken"
    f.write_text("")
    err = one_error_line(["run", "--results", str(f)], capsys, not_a_kernel)
    assert f"--results '{f}': is not a directory" in err


@pytest.mark.parametrize(
    "text, message",
    [
        ("accel: kvmm\n", ":1: accel 'kvmm': expected one of auto, kvm, tcg"),
        ("smp: 2\nhugepages: '2M:\u00b2'\n", ":2: hugepages '2M:\u00b2': entry"),
        ("guest_timeout: 0\n", ":1: guest_timeout 0: expected a finite number"),
        ("guest_timeout: -1\n", ":1: guest_timeout -1: expected"),
        ("guest_timeout: .nan\n", ":1: guest_timeout nan: expected"),
        ("smp: 0\n", ":1: smp 0: expected a whole number >= 1"),
        ("mem: lots\n", ":1: mem 'lots': not a size"),
        ("mem: [1, 2]\n", ":1: mem [1, 2]: expected a single value"),
        ("fresh_guest: true\n", ":1: unknown setting 'fresh_guest'"),
    ],
)
@pytest.mark.parametrize("command", [["boot"], ["agent", "--", "features"], ["run"]])
def test_bad_guest_config(tmp_path, capsys, not_a_kernel, command, text, message):
    cfg = tmp_path / "g.yaml"
    cfg.write_text(text)
    argv = [command[0], "--guest-config", str(cfg), *command[1:]]
    err = one_error_line(argv, capsys, not_a_kernel)
    assert f"{cfg}{message}" in err


def test_truncated_bzimage_refused_before_any_work(tmp_path, capsys):
    real = max(BZIMAGE.glob("vmlinuz-*"), default=None)
    if real is None:
        pytest.skip("no /boot/vmlinuz-* to cut")
    cut = tmp_path / "bzImage"
    cut.write_bytes(real.read_bytes()[:0x10000])  # header and setup intact
    err = one_error_line(["boot", "--kernel", str(cut), "--", "true"], capsys)
    assert f"{cut}: truncated bzImage: 65536 bytes, but its header declares" in err


@pytest.mark.parametrize("command", ["run", "bench"])
def test_a_refused_command_leaves_no_results_directory(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    one_error_line([command, "--guest-timeout", "nan"], capsys, Path("not-a-kernel"))
    assert not (tmp_path / "results").exists()
