"""Settings from where they are given: flags win over a --guest-config file, which wins over
the defaults; every value is checked by the schema, and a bad one names where it was."""

from collections.abc import Callable
from pathlib import Path

from harness import UsageError
from harness.settings.schema import BY_NAME, DEFAULTS, GUEST, GUEST_CONFIG, Front, Setting

FILE_KEYS = {s.name: s for s in GUEST if s.in_file}


def checked(setting: Setting, value: object, where: str) -> object:
    try:
        return setting.coerce(value)
    except ValueError as e:
        raise UsageError(f"{where} {value!r}: {e}") from None


def load_guest_config(path: Path) -> dict[str, object]:
    """A --guest-config YAML file: a mapping of GUEST setting names. Errors name file:line."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(
            f"--guest-config {path}: not UTF-8 text; expected a YAML file, e.g. `mem: 3G`"
        ) from None
    except OSError as e:
        raise UsageError(f"--guest-config {path}: cannot read ({e.strerror})") from e
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UsageError(f"{where}: malformed YAML: {getattr(e, 'problem', e)}") from e
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise UsageError(f"{path}:1: expected a mapping of settings, e.g. `mem: 3G`")
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value}
    out: dict[str, object] = {}
    for key, value in data.items():
        where = f"{path}:{lines.get(key, 1)}:"
        if key not in FILE_KEYS:
            known = ", ".join(FILE_KEYS)
            raise UsageError(f"{where} unknown setting {key!r}; known: {known}")
        out[key] = checked(FILE_KEYS[key], value, f"{where} {key}")
    return out


def merge_settings(
    flags: dict[str, object], config: dict[str, object], front: Front = "cli"
) -> dict[str, object]:
    """Flags (by setting name; None: not given) over the file over the defaults."""
    merged = dict(DEFAULTS)
    merged.update(config)
    for name, value in flags.items():
        if value is not None and name in DEFAULTS:
            setting = BY_NAME[name]
            merged[name] = checked(setting, value, setting.flag(front))
    return merged


def resolve(get: Callable[[str], object], front: Front) -> dict[str, object]:
    """The settings of a parsed command line, `get` reading an option by its dest."""
    flags = {name: get(BY_NAME[name].dest(front)) for name in DEFAULTS}
    given = get(GUEST_CONFIG.dest(front))
    path = checked(GUEST_CONFIG, given, GUEST_CONFIG.flag(front)) if given else None
    config = load_guest_config(path) if isinstance(path, Path) else {}
    return merge_settings(flags, config, front)
