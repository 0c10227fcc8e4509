"""The HTML report: self-contained, the grid, failures with their checks and console, and
fault latencies; loaded by a real browser (Debian's chromium, headless)."""

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.results.html import Section, report_html
from harness.results.record import TestRecord


def agent(workload, mem, checks=(), latency=None):
    a = {
        "workload": workload,
        "mem": mem,
        "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in checks],
    }
    if latency:
        a["latency_us"] = {"samples": 10, "p50": latency[0], "p99": latency[1]}
    return a


def sections(tmp_path: Path) -> list[Section]:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "zp.console.log").write_text(
        "[ 1.0] line one\r\n[ 2.0] WARNING: <x> & y\r\n"
    )
    records = [
        TestRecord(
            "test_agent[wp-basic-anon]",
            "passed",
            1,
            agent=agent("wp-basic", "anon", latency=(80, 3000)),
        ),
        TestRecord(
            "test_agent[missing-zeropage-anon]",
            "failed",
            1,
            reason="1 check failed",
            agent=agent(
                "missing-zeropage", "anon", [("fill-covers-whole-page", False, "got 64, want 0")]
            ),
            log_slice="logs/zp.console.log",
            reproduce="uffd-harness agent -- run missing-zeropage --mem anon",
            crashes=[{"kind": "warning", "title": "WARNING in mfill_zeropage", "text": ""}],
        ),
        TestRecord("test_agent[wp-swap-shmem~1]", "passed", 1, agent=agent("wp-swap", "shmem")),
        TestRecord("test_agent[wp-swap-shmem~2]", "failed", 1, agent=agent("wp-swap", "shmem")),
        TestRecord(
            "test_agent[wp-thp-anon-thp]",
            "skipped",
            0,
            reason="no THP",
            agent=agent("wp-thp", "anon-thp"),
        ),
        TestRecord("test_boot_smoke", "passed", 1),
    ]
    meta = {
        "kernel": {"release": "6.1.0-57-amd64"},
        "session_crashes": [{"title": "BUG: soft lockup", "phase": "between tests"}],
    }
    return [Section("cell-a", records, meta, tmp_path)]


class Checker(HTMLParser):
    """Tag balance, ids and links: a report whose links point nowhere is a broken report."""

    VOID = {"meta", "br", "img", "input", "link", "hr"}

    def __init__(self):
        super().__init__()
        self.stack, self.ids, self.links, self.tags = [], set(), [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if a.get("id"):
            self.ids.add(a["id"])
        if a.get("href"):
            self.links.append(a["href"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def test_the_report_is_well_formed_self_contained_and_links_its_failures(tmp_path):
    text = report_html("run x", sections(tmp_path), comparison="REGRESSION: 1 new failure")
    p = Checker()
    p.feed(text)
    assert p.stack == []  # every element closed
    assert all(link.startswith("#") and link[1:] in p.ids for link in p.links)
    assert len(p.links) == 2  # the FAIL cell and the FLAKY cell
    assert "<script" not in text and "http" not in text  # nothing to fetch: opens offline
    cells = [a.get("class") for t, a in p.tags if t == "td"]
    assert cells.count("fail") == 1 and cells.count("flaky") == 1 and cells.count("skip") == 1
    assert "FLAKY 1/2" in text
    assert "fill-covers-whole-page" in text and "got 64, want 0" in text
    assert "WARNING: &lt;x&gt; &amp; y" in text  # console excerpt, escaped
    assert "WARNING in mfill_zeropage" in text and "BUG: soft lockup" in text
    assert "REGRESSION: 1 new failure" in text and '<p class="verdict-bad">FAILED</p>' in text
    assert "p50 80.0 us" in text and "p99 3000.0 us" in text
    all_good = [Section("ok", [TestRecord("t", "passed", 1)], {}, None)]
    assert '<p class="verdict-good">PASSED</p>' in report_html("ok", all_good)


def chromium() -> str:
    found = shutil.which("chromium")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("CI must test the report in a browser: apt-get install chromium")
        pytest.skip("no chromium: `apt-get install chromium` to load the report in a browser")
    return found


def test_headless_chromium_renders_the_report(tmp_path):
    browser = chromium()
    page = tmp_path / "report.html"
    page.write_text(report_html("run x", sections(tmp_path)))
    base = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr"]
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [*base, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", proc.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    assert "CONSOLE" not in proc.stderr and "Uncaught" not in proc.stderr
    dom = subprocess.run(
        [*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert '<table class="grid">' in dom and "missing-zeropage" in dom
