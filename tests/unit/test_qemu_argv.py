import dataclasses
from pathlib import Path

from harness.guest.qemu import LaunchFiles, QemuExited, build_argv, kernel_cmdline, qemu_version
from harness.settings.spec import GuestSpec

FILES = LaunchFiles(Path("/k/vmlinux"), Path("/c/initrd"), Path("/r/console.log"), Path("/r/qmp"))


def opt(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def spec(**kw) -> GuestSpec:
    return GuestSpec(kernel=Path("/boot/vmlinuz"), **kw)


def test_basic_argv():
    argv = build_argv(
        spec(accel="tcg", smp=2, mem_mb=2048, hugepages={2048: 64}), FILES, 10022, "tok"
    )
    assert argv[0] == "qemu-system-x86_64"
    assert opt(argv, "-machine") == ["q35,accel=tcg"]
    assert opt(argv, "-cpu") == ["max"]
    assert opt(argv, "-smp") == ["2"]
    assert opt(argv, "-m") == ["2048M"]
    assert opt(argv, "-kernel") == ["/k/vmlinux"]
    assert opt(argv, "-initrd") == ["/c/initrd"]
    assert "-no-reboot" in argv
    assert opt(argv, "-chardev") == ["file,id=con0,path=/r/console.log"]
    assert opt(argv, "-serial") == ["chardev:con0"]
    assert opt(argv, "-qmp") == ["unix:/r/qmp,server=on,wait=off"]
    assert "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:10022-:22" in opt(argv, "-netdev")
    assert "virtio-rng-pci" in opt(argv, "-device")


def test_kvm_uses_host_cpu():
    argv = build_argv(spec(accel="kvm", hugepages={2048: 64}), FILES, 1, "t")
    assert opt(argv, "-cpu") == ["host"]
    assert opt(argv, "-machine") == ["q35,accel=kvm"]


def test_cmdline_has_token_pools_and_panic_behaviour():
    line = kernel_cmdline(spec(hugepages={2048: 64, 1024 * 1024: 1}), "abc123").split()
    assert "uffd_harness.token=abc123" in line
    assert "panic=-1" in line
    assert "console=ttyS0" in line
    assert "sysrq_always_enabled" in line
    i = line.index("hugepagesz=2M")
    assert line[i + 1] == "hugepages=64"
    j = line.index("hugepagesz=1G")
    assert line[j + 1] == "hugepages=1"


def test_gigantic_pages_move_ram_above_4g():
    plain = build_argv(spec(hugepages={2048: 8}), FILES, 1, "t")
    giant = build_argv(spec(hugepages={2048: 8, 1024 * 1024: 1}), FILES, 1, "t")
    assert "max-ram-below-4g" not in opt(plain, "-machine")[0]
    assert "max-ram-below-4g=1G" in opt(giant, "-machine")[0]


def test_host_hugepage_backing():
    argv = build_argv(
        spec(mem_mb=1024, numa_nodes=1), FILES, 1, "t", backing=(Path("/dev/hugepages"), 2048)
    )
    assert opt(argv, "-object") == [
        "memory-backend-file,id=ram0,size=1024M,mem-path=/dev/hugepages,share=on,prealloc=on"
    ]
    assert opt(argv, "-machine")[0].endswith(",memory-backend=ram0")


def test_port_clash_is_recognised():
    err = "qemu-system-x86_64: -netdev user,...: Could not set up host forwarding rule 'tcp:...'"
    assert QemuExited(1, err).port_taken
    assert not QemuExited(1, "qemu: could not load kernel").port_taken


def test_qemu_version_is_the_first_line_or_none(tmp_path):
    fake = tmp_path / "qemu"
    fake.write_text(
        "#!/bin/sh\necho 'QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)'\n"
        "echo 'Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers'\n"
    )
    fake.chmod(0o755)
    assert qemu_version(str(fake)) == "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)"
    silent = tmp_path / "silent"
    silent.write_text("#!/bin/sh\n")
    silent.chmod(0o755)
    assert qemu_version(str(silent)) is None
    assert qemu_version(str(tmp_path / "absent")) is None


def test_a_child_whose_harness_is_gone_does_not_start():
    # Compared with the harness's own pid, so a harness that is PID 1 can still boot.
    import functools
    import os
    import subprocess

    from harness.guest.qemu import _child_setup

    ok = subprocess.run(["true"], preexec_fn=functools.partial(_child_setup, os.getpid()))
    assert ok.returncode == 0
    orphan = subprocess.run(["true"], preexec_fn=functools.partial(_child_setup, 1))
    assert orphan.returncode == 1


def test_no_swap_disk_unless_asked():
    argv = build_argv(spec(hugepages={2048: 8}), FILES, 1, "t")
    assert "-drive" not in argv
    assert not any(d.startswith("virtio-blk") for d in opt(argv, "-device"))
    assert "uffd_harness.swap=disk" not in opt(argv, "-append")[0].split()


def test_swap_disk_is_a_virtio_blk_drive_init_can_recognise():
    files = dataclasses.replace(FILES, swap_disk=Path("/tmp/uffd-harness-x/swap.img"))
    argv = build_argv(spec(hugepages={2048: 8}), files, 1, "t")
    assert opt(argv, "-drive") == [
        "file=/tmp/uffd-harness-x/swap.img,if=none,id=swap0,format=raw,cache=unsafe"
    ]
    assert "virtio-blk-pci,drive=swap0,serial=uffd-swap" in opt(argv, "-device")
    # init waits for the disk only when told one is attached.
    assert "uffd_harness.swap=disk" in opt(argv, "-append")[0].split()


def test_a_comma_in_the_swap_disk_path_is_escaped():
    files = dataclasses.replace(FILES, swap_disk=Path("/tmp/a,b/swap.img"))
    argv = build_argv(spec(hugepages={2048: 8}), files, 1, "t")
    assert opt(argv, "-drive")[0].startswith("file=/tmp/a,,b/swap.img,if=none")


def test_commas_in_every_path_inside_an_option_are_escaped(tmp_path):
    # QEMU splits option values at commas; a doubled comma is a literal one.
    files = LaunchFiles(
        Path("/k/vmlinux"), Path("/c/initrd"), Path("/r,1/console.log"), Path("/r,1/qmp")
    )
    argv = build_argv(spec(), files, 1, "t", (Path("/dev/huge,pages/x"), 2048))
    assert opt(argv, "-chardev") == ["file,id=con0,path=/r,,1/console.log"]
    assert opt(argv, "-qmp") == ["unix:/r,,1/qmp,server=on,wait=off"]
    assert "mem-path=/dev/huge,,pages/x," in opt(argv, "-object")[0]


def test_the_console_channel_is_the_second_serial_port_on_its_own_socket():
    files = dataclasses.replace(FILES, channel_socket=Path("/w,1/chan.sock"))
    argv = build_argv(spec(), files, 1, "t")
    assert opt(argv, "-chardev") == [
        "file,id=con0,path=/r/console.log",
        "socket,id=chan0,path=/w,,1/chan.sock,server=on,wait=off",
    ]
    # Order is the guest's numbering: the console stays ttyS0, the channel is ttyS1.
    assert opt(argv, "-serial") == ["chardev:con0", "chardev:chan0"]
    assert "console=ttyS0" in opt(argv, "-append")[0].split()


def test_a_numa_guest_has_every_cpu_on_node_0_and_small_memory_only_nodes():
    argv = build_argv(spec(smp=2, mem_mb=3072, numa_nodes=2), FILES, 1, "t")
    assert opt(argv, "-object") == [
        "memory-backend-ram,id=ram0,size=2560M",
        "memory-backend-ram,id=ram1,size=512M",
    ]
    assert opt(argv, "-numa") == [
        "node,nodeid=0,cpus=0-1,memdev=ram0",
        "node,nodeid=1,memdev=ram1",
    ]
    assert "memory-backend" not in opt(argv, "-machine")[0]
    # Host hugepages back every node.
    argv = build_argv(
        spec(mem_mb=2048, numa_nodes=2), FILES, 1, "t", backing=(Path("/dev/hugepages"), 2048)
    )
    assert [o.split(",")[0] for o in opt(argv, "-object")] == ["memory-backend-file"] * 2
    assert all("mem-path=/dev/hugepages" in o for o in opt(argv, "-object"))


def test_one_node_is_plain_guest_ram():
    argv = build_argv(spec(numa_nodes=1), FILES, 1, "t")
    assert "-numa" not in argv and "-object" not in argv
