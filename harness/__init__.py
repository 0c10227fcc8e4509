"""uffd-harness: boot x86_64 QEMU guests and validate the kernel's userfaultfd support."""

__version__ = "0.1.0"


class HarnessError(Exception):
    """An error the user can act on; the CLI prints it in one line (plus hints) and exits."""

    exit_code = 1


class UsageError(HarnessError):
    """Bad input from the user (a missing file, a non-kernel, a malformed flag)."""

    exit_code = 2
