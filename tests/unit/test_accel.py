from pathlib import Path

import pytest

from harness.host.accel import choose_accel, cpu_virt_flags
from harness.host.cpuinfo import HostCpu, parse_cpuinfo

INTEL = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx ept\n"
AMD = "processor\t: 0\nflags\t\t: fpu svm npt\n"
NONE = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr hypervisor\n"


@pytest.fixture
def kvm(tmp_path: Path) -> Path:
    dev = tmp_path / "kvm"
    dev.write_bytes(b"")
    return dev


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cpuinfo"
    p.write_text(text)
    return p


def test_flags_parsed_from_flags_line_only():
    assert cpu_virt_flags(INTEL) == {"vmx"}
    assert cpu_virt_flags(AMD) == {"svm"}
    assert cpu_virt_flags(NONE) == set()
    assert cpu_virt_flags("model name\t: vmx svm lookalike\n") == set()


@pytest.mark.parametrize("cpuinfo", [INTEL, AMD])
def test_auto_takes_kvm_with_device_and_flags(tmp_path, kvm, cpuinfo):
    choice = choose_accel("auto", write(tmp_path, cpuinfo), kvm)
    assert choice.accel == "kvm"
    assert not choice.forced


def test_auto_refuses_kvm_without_vmx_or_svm(tmp_path, kvm):
    # This is our machines' case: /dev/kvm exists, but no hardware virtualization.
    choice = choose_accel("auto", write(tmp_path, NONE), kvm)
    assert choice.accel == "tcg"
    assert "neither vmx nor svm" in choice.reason


def test_auto_refuses_missing_device(tmp_path):
    choice = choose_accel("auto", write(tmp_path, INTEL), tmp_path / "nokvm")
    assert choice.accel == "tcg"
    assert "does not exist" in choice.reason


def test_auto_refuses_device_that_cannot_be_opened(tmp_path):
    choice = choose_accel("auto", write(tmp_path, INTEL), tmp_path)  # a directory
    assert choice.accel == "tcg"
    assert "cannot be opened read-write" in choice.reason


def test_forced_choices_are_honoured(tmp_path):
    assert choose_accel("kvm", write(tmp_path, NONE), tmp_path / "nokvm").accel == "kvm"
    assert choose_accel("tcg", write(tmp_path, INTEL), tmp_path).accel == "tcg"


def test_unknown_accel_rejected(tmp_path):
    with pytest.raises(ValueError):
        choose_accel("hvf", write(tmp_path, INTEL), tmp_path)


# Recorded on a development host: a hypervisor's EPYC vCPU without svm (flags shortened).
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme de pse tsc msr hypervisor avx2 avx512f
bugs\t\t: sysret_ss_attrs

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme de pse tsc msr hypervisor avx2 avx512f
"""


def test_cpuinfo_gives_the_first_processors_model_and_flags():
    cpu = parse_cpuinfo(EPYC)
    assert cpu.model == "AMD EPYC"
    assert cpu.flags == ("fpu", "vme", "de", "pse", "tsc", "msr", "hypervisor", "avx2", "avx512f")
    assert cpu_virt_flags(EPYC) == set()
    assert parse_cpuinfo("") == HostCpu("", ())
