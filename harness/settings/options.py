"""The guest and suite flags, written once for both front ends: argparse (the CLI) and
pytest's addoption (the plugin), which take the same keyword arguments.

Guest flags default to None so a --guest-config file can fill in what was not given.
"""

import argparse
from pathlib import Path

from harness.settings.spec import ACCELS, DEFAULTS, load_guest_config, merge_settings

GUEST_OPTIONS: list[tuple[str, dict]] = [
    ("--kernel", {"help": "x86 bzImage to boot (default: newest packaged kernel in /boot)"}),
    (
        "--accel",
        {
            "choices": ACCELS,
            "help": "auto (default): KVM only if /dev/kvm works and the CPU has vmx/svm",
        },
    ),
    ("--cpu", {"help": "QEMU -cpu model (default: max under TCG, host under KVM)"}),
    ("--smp", {"type": int, "help": f"guest CPUs (default {DEFAULTS['smp']})"}),
    ("--mem", {"help": f"guest RAM (default {DEFAULTS['mem']})"}),
    (
        "--hugepages",
        {
            "metavar": "SIZE:N,...",
            "help": f"guest hugepage pools (default {DEFAULTS['hugepages']})",
        },
    ),
    (
        "--host-hugepages",
        {
            "action": "store_true",
            "default": None,
            "help": "back guest RAM with host hugetlbfs pages",
        },
    ),
    (
        "--guest-config",
        {"type": Path, "metavar": "FILE.yaml", "help": "the same settings in YAML; flags win"},
    ),
]

#: Options of a suite run: `uffd-harness run` passes them on to pytest as they are.
SUITE_OPTIONS: list[tuple[str, dict]] = [
    (
        "--results",
        {"type": Path, "metavar": "DIR", "help": "results directory (default results/<run-id>)"},
    ),
    (
        "--guest-timeout",
        {
            "type": float,
            "metavar": "SECONDS",
            "help": "limit per guest command (default 300 under TCG, 120 under KVM)",
        },
    ),
    ("--fresh-guest", {"action": "store_true", "help": "a new guest for every test"}),
    (
        "--panic-on-warn",
        {"action": "store_true", "default": None, "help": "boot guests with panic_on_warn=1"},
    ),
]


def add_options(add, options: list[tuple[str, dict]]) -> None:
    """Register options with `add` (argparse's add_argument or pytest's addoption)."""
    for flag, kwargs in options:
        add(flag, **kwargs)


def as_flags(values: dict[str, object], options: list[tuple[str, dict]]) -> list[str]:
    """Flags that reproduce the given option values (None and False are left out)."""
    argv: list[str] = []
    for flag, kwargs in options:
        value = values.get(flag.lstrip("-").replace("-", "_"))
        if value is None or value is False:
            continue
        argv += [flag] if kwargs.get("action") == "store_true" else [flag, str(value)]
    return argv


def add_guest_args(p: argparse.ArgumentParser) -> None:
    add_options(p.add_argument_group("guest").add_argument, GUEST_OPTIONS)


def settings_from_args(args: argparse.Namespace) -> dict[str, object]:
    config = load_guest_config(args.guest_config) if args.guest_config else {}
    return merge_settings(vars(args), config)
