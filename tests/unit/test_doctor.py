import sys
from pathlib import Path

from harness.cli.doctor import Finding, install_command, is_static_elf


def test_install_command_lists_missing_packages_once():
    findings = [
        Finding("qemu", False, "not found", ("qemu-system-x86",)),
        Finding("libc", False, "no libc.a", ("gcc", "libc6-dev")),
        Finding("cc", False, "no cc", ("gcc",)),
        Finding("busybox", True, "ok"),
    ]
    assert install_command(findings) == [
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        "gcc",
        "libc6-dev",
        "qemu-system-x86",
    ]
    assert install_command([Finding("x", True, "ok")]) == []


def test_static_elf_detection(tmp_path):
    assert not is_static_elf(Path(sys.executable).resolve())  # CPython is dynamic
    text = tmp_path / "f"
    text.write_text("#!/bin/sh\n")
    assert not is_static_elf(text)
    if Path("/bin/busybox").exists():
        assert is_static_elf(Path("/bin/busybox"))
