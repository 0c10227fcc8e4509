"""`uffd-harness kernel build` and `kernel info`: argparse glue over harness.kernel."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.progress import Clock
from harness.host.cache import cache_root
from harness.image.initramfs import load_recipe
from harness.kernel.build import BASES, BuildRequest, build_kernel
from harness.kernel.image import KernelImage, default_kernel, inspect_kernel
from harness.kernel.info import config_sources, find_modules_tree, format_info, module_lookup


def cmd_kernel_build(args: argparse.Namespace) -> int:
    clock = Clock()
    req = BuildRequest(
        src=args.src,
        out=args.out or Path("build") / args.src.resolve().name,
        base=args.base,
        fragments=args.config,
        patches=args.patches,
        jobs=args.jobs,
        allow_dropped=args.allow_dropped,
    )
    bzimage = build_kernel(req, clock.say)
    size = bzimage.stat().st_size / 2**20
    clock.say("done", f"{inspect_kernel(bzimage).release}, {size:.1f} MiB")
    print(bzimage, flush=True)
    return 0


def _resolve_kernel(arg: str | None) -> KernelImage:
    if arg is None:
        return default_kernel()
    path = Path(arg)
    if not path.exists() and (Path("/boot") / f"vmlinuz-{arg}").exists():
        path = Path("/boot") / f"vmlinuz-{arg}"  # a release name
    return inspect_kernel(path)


def cmd_kernel_info(args: argparse.Namespace) -> int:
    kernel = _resolve_kernel(args.kernel)
    sources = config_sources(kernel, cache_root())
    modules = find_modules_tree(kernel)
    # The guest swap line: what a guest of the default image would get.
    recipe = load_recipe()
    in_tree = module_lookup(modules)
    wanted = {*recipe.required_modules, *recipe.optional_modules}
    print(
        format_info(
            kernel,
            sources,
            modules,
            recipe.swap_mb,
            lambda name: name in wanted and in_tree(name),
        )
    )
    return 0


def add_kernel_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `kernel build` and `kernel info` on the top-level subcommands."""
    k = subparsers.add_parser(
        "kernel",
        help="build a kernel from source (with patch series); show what a kernel offers",
        description="Build kernels for the suite, and inspect kernel images.",
    )
    sub = k.add_subparsers(dest="kernel_command", required=True, metavar="ACTION")
    b = sub.add_parser(
        "build",
        help="patch, configure and build a kernel tree out of tree",
        description="Apply patch series, merge config fragments onto a base config, verify "
        "every requested option survived, build bzImage (and modules), print its path last.",
    )
    b.add_argument("--src", type=Path, required=True, metavar="DIR", help="Linux source tree")
    b.add_argument(
        "--base",
        default="defconfig",
        metavar="BASE",
        help=f"base config: {' or '.join(BASES)} (default defconfig), or a config file",
    )
    b.add_argument(
        "--config",
        type=Path,
        action="append",
        default=[],
        metavar="FRAG",
        help="Kconfig fragment merged onto the base, in order (repeatable)",
    )
    b.add_argument(
        "--patches",
        type=Path,
        action="append",
        default=[],
        metavar="MBOX_OR_DIR",
        help="patch series (mbox, or a directory of patches) applied in order (repeatable); "
        "git am for git trees, patch -p1 otherwise",
    )
    b.add_argument("--out", type=Path, metavar="DIR", help="build directory (default build/<src>)")
    b.add_argument(
        "-j", "--jobs", type=int, default=0, metavar="N", help="parallel jobs (default: CPUs)"
    )
    b.add_argument(
        "--allow-dropped",
        action="store_true",
        help="build even when requested options did not survive (they are listed)",
    )
    b.set_defaults(func=cmd_kernel_build)
    i = sub.add_parser(
        "info",
        help="release, build string, config source and uffd-relevant options of a kernel",
    )
    i.add_argument(
        "kernel", nargs="?", metavar="KERNEL", help="bzImage path or release (default: packaged)"
    )
    i.set_defaults(func=cmd_kernel_info)
