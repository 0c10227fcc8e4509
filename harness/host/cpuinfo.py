"""The host CPU as /proc/cpuinfo describes it: its model name and feature flags."""

from dataclasses import dataclass


@dataclass(frozen=True)
class HostCpu:
    model: str
    flags: tuple[str, ...]


def parse_cpuinfo(text: str) -> HostCpu:
    """The first processor's model name and flags (every processor lists the same ones)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return HostCpu(fields.get("model name", ""), tuple(fields.get("flags", "").split()))
