"""Every guest and suite setting, written once: name, type, default, unit, help, check.

The CLI's flags, the pytest options, the --guest-config keys, the defaults and the flags
that reproduce a settings dict are all derived from the table below.

pytest loads the options into every session in the environment, where another plugin
may own `--mem` or `--cpu`: there every option but `--kernel` (the contract) is spelled
with a `--uffd-` prefix, and so is its dest. The CLI is ours alone and keeps plain names.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.settings.values import (
    ACCELS,
    CHANNELS,
    parse_choice,
    parse_cmdline,
    parse_count,
    parse_directory,
    parse_hugepages,
    parse_seconds,
    parse_size_mb,
    parse_word,
)

#: Where options are spelled: "cli" (`uffd-harness`) or "pytest" (any pytest session).
Front = Literal["cli", "pytest"]

#: The prefix of every pytest option and dest but --kernel.
PYTEST_PREFIX = "uffd-"


@dataclass(frozen=True)
class Setting:
    name: str  # the settings-dict key and --guest-config key; the flag is derived from it
    help: str
    #: Text -> value, raising ValueError that says what was expected; None for a switch.
    parse: Callable[[str], object] | None = None
    default: object = None
    metavar: str | None = None  # the unit or shape of the value
    in_file: bool = True  # a --guest-config key

    @property
    def switch(self) -> bool:
        return self.parse is None

    def flag(self, front: Front = "cli") -> str:
        name = self.name.replace("_", "-")
        if front == "pytest" and self.name != "kernel":
            name = PYTEST_PREFIX + name
        return f"--{name}"

    def dest(self, front: Front = "cli") -> str:
        return self.flag(front)[2:].replace("-", "_")

    def coerce(self, value: object) -> object:
        """A flag's text or a YAML scalar -> the setting's value; ValueError if bad."""
        if self.switch:
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int, float, Path)):
            raise ValueError(f"expected a single value ({self.metavar or 'text'})")
        assert self.parse
        return self.parse(str(value))

    def option(self, front: Front) -> tuple[str, dict]:
        """(flag, keyword arguments) for argparse's add_argument and pytest's addoption.
        Values stay text here: they are checked when merged, the same way as a file's."""
        default = f" (default {self.default})" if self.default not in (None, False) else ""
        kwargs: dict = {"dest": self.dest(front), "help": self.help + default, "default": None}
        if self.switch:
            kwargs["action"] = "store_true"
        else:
            kwargs["metavar"] = self.metavar
        return self.flag(front), kwargs


def _kept(parse: Callable[[str], object]) -> Callable[[str], str]:
    """Check with `parse` but keep the text: it is what the user wrote and flags repeat."""

    def check(text: str) -> str:
        parse(text)
        return text.strip()

    return check


def _absolute(text: str) -> str:
    # Subprocesses, reproduce lines and xdist workers in other directories mean the same file.
    return str(Path(parse_word(text)).absolute())


def _recipe(text: str) -> str:
    # A name stays a name (a packaged recipe, wherever the run is); a file becomes absolute.
    word = parse_word(text)
    return _absolute(word) if "/" in word or word.endswith((".yaml", ".yml")) else word


#: The guest and how long a command in it may take: every command that boots one takes
#: these, and so do --guest-config files.
GUEST: tuple[Setting, ...] = (
    Setting(
        "kernel",
        "x86 bzImage to boot (default: newest packaged kernel in /boot)",
        _absolute,
        metavar="PATH",
    ),
    Setting(
        "accel",
        "auto: KVM only if /dev/kvm works and the CPU has vmx/svm",
        parse_choice(ACCELS),
        "auto",
        "{" + ",".join(ACCELS) + "}",
    ),
    Setting(
        "cpu", "QEMU -cpu model (default: max under TCG, host under KVM)", parse_word, None, "MODEL"
    ),
    Setting("smp", "guest CPUs", parse_count, 2, "N"),
    Setting("mem", "guest RAM, in MiB unless suffixed", _kept(parse_size_mb), "3G", "SIZE"),
    Setting(
        "hugepages",
        "guest hugepage pools",
        _kept(parse_hugepages),
        # Pools for every hugetlb memory type the agent knows, 1G included.
        "2M:128,1G:1",
        "SIZE:N,...",
    ),
    Setting("host_hugepages", "back guest RAM with host hugetlbfs pages", default=False),
    Setting(
        "numa",
        "guest NUMA nodes: node 0 has every CPU, each other node 512 MiB of RAM that pages "
        "can migrate to (the wp-numa-migrate workload)",
        parse_count,
        2,
        "N",
    ),
    Setting("panic_on_warn", "boot guests with panic_on_warn=1", default=False),
    Setting(
        "cmdline",
        "kernel command-line additions, after the harness's own (a later one wins)",
        parse_cmdline,
        metavar="'ARG ...'",
    ),
    Setting(
        "channel",
        "how commands reach the guest: ssh; console (its second serial port, driven with "
        "pexpect: no network needed); auto: SSH, and the console when SSH does not come up",
        parse_choice(CHANNELS),
        "auto",
        "{" + ",".join(CHANNELS) + "}",
    ),
    Setting(
        "image",
        "guest image: a packaged recipe by name (default, console-only) or a recipe file",
        _recipe,
        "default",
        metavar="NAME|RECIPE.yaml",
    ),
    Setting(
        "guest_timeout",
        "limit per command in the guest (default: per test 300 under TCG, 120 under KVM; "
        "boot and agent: their --timeout)",
        parse_seconds,
        metavar="SECONDS",
    ),
)

#: The YAML file holding GUEST settings; given flags win over it.
GUEST_CONFIG = Setting(
    "guest_config",
    "the guest settings in YAML; flags win",
    lambda text: Path(parse_word(text)),
    metavar="FILE.yaml",
    in_file=False,
)

#: Options of a suite run only (`uffd-harness run`, pytest).
SUITE: tuple[Setting, ...] = (
    Setting(
        "results",
        "results directory (default results/<run-id>)",
        parse_directory,
        metavar="DIR",
        in_file=False,
    ),
    Setting("fresh_guest", "a new guest for every test", default=False, in_file=False),
    Setting(
        "repeat",
        "run each agent case N times; the summary counts outcomes per case, and a case "
        "with mixed outcomes is FLAKY, never a pass",
        parse_count,
        1,
        "N",
        in_file=False,
    ),
    Setting(
        "gcov",
        "after each test, save the guest kernel's gcov counters (a kernel built with "
        "CONFIG_GCOV_KERNEL, as `uffd-harness coverage` builds it) to DIR/<test>.tar",
        parse_directory,
        metavar="DIR",
        in_file=False,
    ),
)

SETTINGS: tuple[Setting, ...] = (*GUEST, GUEST_CONFIG, *SUITE)
BY_NAME = {s.name: s for s in SETTINGS}

#: Every value a settings dict holds when nothing was given.
DEFAULTS: dict[str, object] = {s.name: s.default for s in (*GUEST, *SUITE)}


def add_options(add: Callable[..., object], front: Front, settings: tuple[Setting, ...]) -> None:
    """Register settings with `add`: argparse's add_argument or pytest's addoption."""
    for s in settings:
        flag, kwargs = s.option(front)
        add(flag, **kwargs)


def as_flags(
    values: dict[str, object], front: Front, settings: tuple[Setting, ...] = GUEST
) -> list[str]:
    """Flags that reproduce these values (None and False are left out)."""
    argv: list[str] = []
    for s in settings:
        value = values.get(s.name)
        if value is None or value is False:
            continue
        argv += [s.flag(front)] if s.switch else [s.flag(front), str(value)]
    return argv
