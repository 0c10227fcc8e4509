"""The bench's build figures: the guest image, the agent and the PVH vmlinux, each built
into an empty cache and looked up in a warm one (the warm lookup also under cProfile)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.bench.report import fmt_seconds, median
from harness.bench.run import Bench, profiled, timed


@contextlib.contextmanager
def cache_home(path: Path) -> Iterator[Path]:
    """XDG_CACHE_HOME pointed at `path` for the duration (an empty cache for cold builds)."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = old


def measure_builds(b: Bench) -> None:
    from harness.agent.build import build_agent
    from harness.image.initramfs import build_image
    from harness.kernel.image import pvh_vmlinux
    from harness.kernel.info import find_modules_tree

    kernel = b.template.kernel
    modules = find_modules_tree(kernel)
    b.say("builds", f"{b.runs} cold and cached builds of the image, the agent and the vmlinux")

    def cold(fn: Callable[[Path], object]) -> Callable[[], float]:
        def one() -> float:
            empty = Path(tempfile.mkdtemp(prefix="cold-", dir=b.workdir))
            try:
                with cache_home(empty):
                    return timed(lambda: fn(empty))
            finally:
                shutil.rmtree(empty, ignore_errors=True)

        return one

    warm = b.workdir / "warm-cache"
    jobs: list[tuple[str, str, Callable[[Path], object]]] = [
        ("image", "image build", lambda _: build_image(modules)),
        ("agent", "agent build", lambda d: build_agent(cache_dir=d / "agent")),
        ("vmlinux", "PVH vmlinux extract", lambda d: pvh_vmlinux(kernel, d)),
    ]
    for key, label, fn in jobs:
        f_cold = b.figure(f"{key}.cold", f"{label}, cold (empty cache)")
        for _ in range(b.runs):
            b.sample(f_cold, cold(fn))
        f_hot = b.figure(f"{key}.cached", f"{label}, cached")
        with cache_home(warm):
            b.sample(f_hot, lambda fn=fn: timed(lambda: fn(warm)))  # fills the warm cache
            f_hot.samples.clear()
            for _ in range(b.runs):
                b.sample(f_hot, lambda fn=fn: timed(lambda: fn(warm)))
            if not f_hot.error:
                b.profiles[f"{key}.cached"] = profiled(lambda fn=fn: fn(warm))
        b.say(
            "builds",
            f"{key}: cold {fmt_seconds(median(f_cold.samples))}, "
            f"cached {fmt_seconds(median(f_hot.samples))} (medians)",
        )
    shutil.rmtree(warm, ignore_errors=True)
