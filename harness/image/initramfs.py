"""The guest initramfs: a recipe turned into files, built once per content and cached."""

import gzip
import hashlib
import lzma
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness import HarnessError
from harness.host.cache import cache_root, seal, sound_entry, staged_dir
from harness.image import cpio
from harness.kernel.modules import ModuleTree, module_name

#: Bump when the image layout changes, so old cache entries are not reused.
IMAGE_FORMAT = "1"
#: guest-images/ of the checkout, shipped in the package as harness/image/recipes.
DEFAULT_RECIPE = Path(__file__).resolve().parent / "recipes" / "default.yaml"


@dataclass(frozen=True)
class Recipe:
    path: Path
    name: str
    init: Path
    binaries: list[Path]
    required_modules: list[str]
    optional_modules: list[str]
    swap_mb: int  # the guest's swap (zram or a virtio-blk disk); 0: none


@dataclass(frozen=True)
class GuestImage:
    initrd: Path
    host_key: str  # "ssh-ed25519 AAAA..." pinned for this image
    missing_optional: list[str]  # optional drivers the kernel lacks (reported, not fatal)
    cached: bool
    swap_mb: int = 0  # the recipe's guest swap size
    modules: frozenset[str] = frozenset()  # names of the driver modules the image loads


def find_recipe(image: str) -> Path:
    """The recipe file of an `image` setting: a packaged recipe's name, or a path."""
    if "/" in image or image.endswith((".yaml", ".yml")):
        return Path(image)
    path = DEFAULT_RECIPE.parent / f"{image}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in DEFAULT_RECIPE.parent.glob("*.yaml"))
        raise HarnessError(
            f"--image {image}: no such packaged recipe; packaged: {', '.join(names)}, "
            "or give a recipe file (RECIPE.yaml)"
        )
    return path


def load_recipe(path: Path = DEFAULT_RECIPE) -> Recipe:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise HarnessError(f"{where}: malformed image recipe: {e}") from e
    except OSError as e:
        raise HarnessError(f"{path}: cannot read image recipe ({e.strerror})") from e
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: image recipe must be a mapping")
    try:
        mods = data.get("modules") or {}
        return Recipe(
            path=path,
            name=str(data["name"]),
            init=path.parent / data["init"],
            binaries=[Path(b) for b in data["binaries"]],
            required_modules=list(mods.get("required", [])),
            optional_modules=list(mods.get("optional", [])),
            swap_mb=int(data.get("swap_mb", 0)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise HarnessError(f"{path}: image recipe lacks or mistypes {e}") from e


_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def parse_ldd(output: str) -> list[str]:
    """Absolute library paths from `ldd` output (the vdso has none and is skipped)."""
    return [m.group(1) for line in output.splitlines() if (m := _LDD_LINE.search(line))]


def shared_libraries(binary: Path) -> list[str]:
    proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if proc.returncode != 0:  # "not a dynamic executable": a static binary needs nothing
        return []
    return parse_ldd(proc.stdout)


def busybox_applets(busybox: Path) -> list[str]:
    proc = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise HarnessError(f"{busybox} --list-full failed; is it busybox-static?")
    return proc.stdout.split()


def read_module(path: Path) -> bytes:
    """Module bytes, decompressed: busybox insmod loads only plain .ko files."""
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return data


def _parent_dirs(paths: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for p in paths:
        parts = p.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            seen.setdefault("/".join(parts[:i]))
    return list(seen)


def plan(
    recipe: Recipe,
    client_pubkey: str,
    host_key: bytes,
    modules: list[tuple[str, Path]],
    applets: list[str],
    libraries: list[str],
) -> list[cpio.Entry]:
    """Everything the initramfs holds, parents first. `modules` pairs each module's path
    under /lib/modules (plain .ko) with its source, in load order."""
    files: list[cpio.Entry] = [
        cpio.file("init", recipe.init.read_bytes(), 0o755),
        cpio.file(
            "etc/uffd-harness.conf",
            # init sources this file: every value is quoted for sh.
            f"SWAP_MB={recipe.swap_mb}\nIMAGE_NAME={shlex.quote(recipe.name)}\n".encode(),
        ),
        cpio.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
        cpio.file("etc/group", b"root:x:0:\ntty:x:5:\n"),
        cpio.file("etc/shells", b"/bin/sh\n"),
        cpio.file("etc/inittab", b"::ctrlaltdel:/bin/reboot -f\n"),
        cpio.file("etc/dropbear/host_key", host_key, 0o600),
        cpio.file("root/.ssh/authorized_keys", client_pubkey.encode() + b"\n", 0o600),
        cpio.file("etc/modules.order", "".join(f"module {d}\n" for d, _ in modules).encode()),
    ]
    files += [cpio.file(str(b).lstrip("/"), b.read_bytes(), 0o755) for b in recipe.binaries]
    files += [cpio.file(lib.lstrip("/"), Path(lib).read_bytes(), 0o755) for lib in libraries]
    files += [cpio.file(f"lib/modules/{dest}", read_module(src)) for dest, src in modules]
    busybox = next(("/" + str(b).lstrip("/") for b in recipe.binaries if b.name == "busybox"), "")
    links = [cpio.symlink(a, busybox) for a in applets if busybox and "/" + a != busybox]
    fixed = ["dev", "proc", "sys", "tmp", "mnt", "run", "root", "root/.ssh"]
    dirs = dict.fromkeys(fixed + _parent_dirs([e.name for e in files + links]))
    return (
        [cpio.directory(d, 0o700 if d.startswith("root") else 0o755) for d in dirs]
        + [cpio.chardev("dev/console", 5, 1), cpio.chardev("dev/null", 1, 3, 0o666)]
        + files
        + links
    )


def module_plan(
    recipe: Recipe, modules_root: Path | None
) -> tuple[list[tuple[str, Path]], list[str]]:
    """(dest, source) pairs in load order, and the optional drivers this kernel lacks.

    Without a modules tree the kernel must have its drivers built in; the guest's init
    names the missing driver if it does not.
    """
    if modules_root is None:
        return [], []
    tree = ModuleTree(modules_root)
    rels, missing = tree.resolve(recipe.required_modules, recipe.optional_modules)
    pairs = [(re.sub(r"\.ko(\.\w+)?$", ".ko", rel), modules_root / rel) for rel in rels]
    return pairs, missing


def _digest(parts: list[bytes], paths: list[Path]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little") + part)
    for path in paths:
        h.update(str(path).encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def build_image(modules_root: Path | None, recipe_path: Path = DEFAULT_RECIPE) -> GuestImage:
    """The initramfs for a kernel whose modules (if any) are in `modules_root`.

    The cache key covers every input's content (recipe, init, binaries, libraries,
    modules, the client key), so a changed package or kernel gives a new image and an
    unchanged one is reused without rebuilding.
    """
    from harness.image.sshkeys import client_key, make_dropbear_host_key

    recipe = load_recipe(recipe_path)
    for binary in recipe.binaries:
        if not binary.exists():
            raise HarnessError(
                f"{binary} not found; the guest image needs it: run `uffd-harness doctor --install`"
            )
    _, pubkey = client_key()
    modules, missing = module_plan(recipe, modules_root)
    libraries = sorted({lib for b in recipe.binaries for lib in shared_libraries(b)})
    inputs = [recipe.path, recipe.init, *recipe.binaries, *map(Path, libraries)]
    inputs += [src for _, src in modules]
    key = _digest(
        [IMAGE_FORMAT.encode(), pubkey.encode(), *(d.encode() for d, _ in modules)], inputs
    )
    entry = cache_root() / "images" / key[:32]
    initrd, host_pub = entry / "initramfs.cpio", entry / "host_key.pub"
    extra = (recipe.swap_mb, frozenset(module_name(dest) for dest, _ in modules))
    if sound_entry(entry, "guest image"):
        return GuestImage(initrd, host_pub.read_text().strip(), missing, True, *extra)

    with staged_dir(entry) as tmp:
        host_pubkey = make_dropbear_host_key(tmp / "host_key")
        applets = [a for b in recipe.binaries if b.name == "busybox" for a in busybox_applets(b)]
        entries = plan(recipe, pubkey, (tmp / "host_key").read_bytes(), modules, applets, libraries)
        with (tmp / "initramfs.cpio").open("wb") as out:
            cpio.write(out, entries)
        (tmp / "host_key").unlink()
        (tmp / "host_key.pub").write_text(host_pubkey + "\n")
        seal(tmp)
    return GuestImage(initrd, host_pub.read_text().strip(), missing, False, *extra)
