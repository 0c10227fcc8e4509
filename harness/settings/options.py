"""The settings as `uffd-harness` flags: registered on a subcommand, read back merged."""

import argparse
from collections.abc import Callable

from harness.settings.merge import resolve
from harness.settings.schema import GUEST, GUEST_CONFIG, SUITE, add_options


def arg_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """argparse's `type=` for a command's own option checked by a settings parser: a bad
    value is then argparse's error, which the CLI prints in one line."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None

    return convert


def add_guest_args(p: argparse.ArgumentParser) -> None:
    add_options(p.add_argument_group("guest").add_argument, "cli", (*GUEST, GUEST_CONFIG))


def add_suite_args(p: argparse.ArgumentParser) -> None:
    add_options(p.add_argument_group("suite").add_argument, "cli", SUITE)


def settings_from_args(args: argparse.Namespace) -> dict[str, object]:
    """Merged and checked settings (flags > --guest-config > defaults); UsageError if bad."""
    return resolve(lambda dest: getattr(args, dest, None), "cli")
