"""The coverage report's pure parts: which lines are userfaultfd-related (the rule), and
the per-file and per-workload tables made from gcovr's JSON."""

import json

import pytest

from harness import HarnessError
from harness.coverage.related import blank, functions, related_lines
from harness.coverage.report import (
    Unreachable,
    attribution,
    counts_of,
    file_reports,
    format_table,
    load_unreachable,
    ranges,
    stale_entries,
    summary,
)
from harness.coverage.run import workload_of
from harness.kernel.gcov import make_vars

# Shaped like mm/memory.c and mm/rmap.c of 6.1: a uffd branch inside a general function,
# an else-if chain after one, a function named for uffd, comments and strings that name
# uffd but are not code, and #ifdef arms with unbalanced braces.
SOURCE = """\
// SPDX: a comment naming userfaultfd is not code
#include <linux/mm.h>

static struct ops uffd_ops = {
	.fault = handle_userfault,
};

static vm_fault_t do_wp_page(struct vm_fault *vmf)
	__releases(vmf->ptl)
{
	struct vm_area_struct *vma = vmf->vma;

	if (userfaultfd_pte_wp(vma, *vmf->pte)) {
		pte_unmap_unlock(vmf->pte, vmf->ptl);
		return handle_userfault(vmf, VM_UFFD_WP);
	}
	vmf->page = vm_normal_page(vma, vmf->address, vmf->orig_pte);
	pr_info("uffd in a string is not code\\n");
	return wp_page_copy(vmf);
}

static bool try_to_unmap_one(struct folio *folio, unsigned long address)
{
	bool ret = true;

	if (pte_dirty(pteval))
		folio_mark_dirty(folio);
	else if (pte_unused(pteval) && !userfaultfd_armed(vma)) {
		dec_mm_counter(mm, mm_counter(&folio->page));
	} else if (folio_test_anon(folio)) {
		swp_pte = swp_entry_to_pte(entry);
		if (pte_uffd_wp(pteval))
			swp_pte = pte_swp_mkuffd_wp(swp_pte);
		else
			swp_pte = pte_swp_clear_soft_dirty(swp_pte);
		set_pte_at(mm, address, pvmw.pte, swp_pte);
	} else if (is_pte_marker(pteval)) {
		pte_clear(mm, address, pvmw.pte);
	} else {
		dec_mm_counter(mm, mm_counter_file(&folio->page));
	}
	return ret;
}

static int pte_marker_clear(struct vm_fault *vmf)
{
	pte_clear(vmf->vma->vm_mm, vmf->address, vmf->pte);
	return 0;
}

static int other(int x)
{
#ifdef CONFIG_A
	if (x) {
#else
	if (!x) {
#endif
		x++;
	}
	return x;
}

SYSCALL_DEFINE1(userfaultfd, int, flags)
{
	return new_userfaultfd(flags);
}
"""


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


def lines_between(text: str, first: str, last: str) -> set[int]:
    return set(range(line_of(text, first), line_of(text, last) + 1))


def test_functions_are_found_with_their_extent():
    found = {f.name: (f.first, f.last) for f in functions(SOURCE)}
    assert set(found) == {
        "do_wp_page",
        "try_to_unmap_one",
        "pte_marker_clear",
        "other",
        "sys_userfaultfd",
    }
    assert found["do_wp_page"] == (
        line_of(SOURCE, "do_wp_page(struct"),
        line_of(SOURCE, "return wp_page_copy") + 1,
    )


def test_blank_keeps_lines_and_drops_comments_strings_and_else_arms():
    b = blank(SOURCE)
    assert len(b) == len(SOURCE) and b.count("\n") == SOURCE.count("\n")
    assert "userfaultfd is not code" not in b and "uffd in a string" not in b
    assert "if (x) {" in b and "if (!x) {" not in b


def test_related_lines_of_a_general_file():
    rel = related_lines(SOURCE)
    # The uffd branch of do_wp_page, condition and arm; not the rest of the function.
    assert lines_between(SOURCE, "if (userfaultfd_pte_wp", "return handle_userfault") | {
        line_of(SOURCE, "return handle_userfault") + 1
    } <= set(rel)
    assert line_of(SOURCE, "vm_normal_page") not in rel
    assert line_of(SOURCE, "uffd in a string") not in rel
    # An else-if testing uffd: its own arm, not the chain after it.
    assert line_of(SOURCE, "!userfaultfd_armed") in rel
    assert line_of(SOURCE, "mm_counter(&folio->page)") in rel
    assert line_of(SOURCE, "swp_entry_to_pte") not in rel
    assert line_of(SOURCE, "mm_counter_file") not in rel
    assert line_of(SOURCE, "folio_mark_dirty") not in rel
    # A nested uffd test and the statement it guards.
    assert {line_of(SOURCE, "if (pte_uffd_wp"), line_of(SOURCE, "pte_swp_mkuffd_wp")} <= set(rel)
    assert line_of(SOURCE, "pte_swp_clear_soft_dirty") in rel  # the plain else of that test
    assert line_of(SOURCE, "set_pte_at(mm, address, pvmw.pte, swp_pte)") not in rel
    # The last else-if of a chain names a marker: its arm counts, the final else does not.
    assert line_of(SOURCE, "pte_clear(mm, address") in rel
    # A function named for uffd is related whole; one that never names it is not.
    assert line_of(SOURCE, "pte_clear(vmf") in rel
    assert rel[line_of(SOURCE, "pte_clear(vmf")] == "pte_marker_clear"
    assert line_of(SOURCE, "x++") not in rel
    assert rel[line_of(SOURCE, "new_userfaultfd")] == "sys_userfaultfd"


def test_every_line_of_every_function_of_a_whole_file():
    rel = related_lines(SOURCE, whole=True)
    assert line_of(SOURCE, "x++") in rel and line_of(SOURCE, "vm_normal_page") in rel
    assert line_of(SOURCE, ".fault = handle_userfault") not in rel  # not a function


def gcovr_json(counts: dict[str, dict[int, int]]) -> dict:
    return {
        "files": [
            {
                "file": path,
                "lines": [
                    {
                        "line_number": n,
                        "count": c,
                        "branches": [{"count": c}, {"count": 0}],
                    }
                    for n, c in lines.items()
                ],
            }
            for path, lines in counts.items()
        ]
    }


def test_file_report_counts_related_executable_lines_only():
    path = "mm/memory.c"
    rel = {path: related_lines(SOURCE)}
    cond, arm = line_of(SOURCE, "if (userfaultfd_pte_wp"), line_of(SOURCE, "handle_userfault(vmf")
    marker = line_of(SOURCE, "pte_clear(vmf")
    other = line_of(SOURCE, "vm_normal_page")
    counts, branches = counts_of(gcovr_json({path: {cond: 5, arm: 0, marker: 0, other: 9}}))
    listed = [Unreachable(path, "pte_marker_clear", "needs a marker nobody installs")]
    (r,) = file_reports(counts, branches, rel, lambda p: SOURCE, listed)
    assert (r.lines, r.covered) == (3, 1)  # `other` is executable but not related
    assert r.branches == 6 and r.branches_taken == 1
    assert [(u.line, u.function, u.why) for u in r.uncovered] == [
        (arm, "do_wp_page", ""),
        (marker, "pte_marker_clear", "needs a marker nobody installs"),
    ]
    assert [u.line for u in r.unexplained] == [arm]
    assert r.functions == {"do_wp_page": [2, 1], "pte_marker_clear": [1, 0]}
    table = format_table([r])
    assert "MISSED" in table and f"do_wp_page: {arm}  (return handle_userfault" in table
    assert "needs a marker nobody installs" in table
    json.dumps(summary([r], None))


def test_ranges():
    assert ranges([9, 3, 4, 5]) == "3-5, 9" and ranges([]) == ""


def test_a_line_gcovr_lists_twice_sums_its_counts():
    data = {"files": [{"file": "f.c", "lines": [{"line_number": 3, "count": 0}] * 2}]}
    data["files"][0]["lines"] = [
        {"line_number": 3, "count": 0},
        {"line_number": 3, "count": 2},
        {"line_number": 4, "count": 1, "gcovr/noncode": True},
    ]
    counts, _ = counts_of(data)
    assert counts == {"f.c": {3: 2}}


def test_attribution_names_lines_only_one_workload_reaches():
    rel = {"mm/x.c": {1: "f", 2: "f", 3: "g"}}
    rows = attribution(
        {"wp-basic": {"mm/x.c": {1: 1, 2: 1, 9: 4}}, "wp-swap": {"mm/x.c": {2: 3, 3: 1}}}, rel
    )
    by = {r.workload: r for r in rows}
    assert by["wp-basic"].covered == 2 and by["wp-basic"].only_here == [("mm/x.c", 1, "f")]
    assert by["wp-swap"].only_here == [("mm/x.c", 3, "g")]


def test_unreachable_list_is_checked_and_stale_entries_found():
    assert load_unreachable() is not None  # the shipped list parses
    good = "- {file: mm/x.c, function: f, why: needs memory failure injection}\n"
    (u,) = load_unreachable(good)
    assert stale_entries([u], {"mm/x.c": {1: "f"}}) == []
    assert stale_entries([u], {"mm/x.c": {1: "g"}}) == [u]
    for bad in ("- {file: mm/x.c, function: f}\n", "- {file: x, function: f, why: ''}\n", "3\n"):
        with pytest.raises(HarnessError, match="unreachable.yaml entry 1"):
            load_unreachable(bad)


def test_workload_of_a_suite_test():
    mems = ["anon", "anon-thp", "hugetlb", "hugetlb-1g", "hugetlb-private"]
    assert workload_of("test_agent[wp-basic-hugetlb-1g]", mems) == "wp-basic"
    assert workload_of("test_agent[wp-thp-anon-thp]", mems) == "wp-thp"
    assert workload_of("test_other", mems) == "test_other"


def test_make_vars_profile_each_object_once():
    # Per directory: arch/x86/boot/memory.o must not be profiled (it cannot link gcov).
    v = make_vars()
    assert v["GCOV_PROFILE_userfaultfd.o"] == "$(if $(filter fs mm,$(obj)),y)"
    assert v["GCOV_PROFILE_memory.o"] == "$(if $(filter mm,$(obj)),y)"
    assert v["GCOV_PROFILE_task_mmu.o"] == "$(if $(filter fs/proc,$(obj)),y)"
    assert len(v) == 14


def test_coverage_usage_errors_name_what_to_give(tmp_path, capsys):
    from harness.cli.main import main

    plain = tmp_path / "build"
    (plain / "arch/x86/boot").mkdir(parents=True)
    (plain / "arch/x86/boot/bzImage").write_bytes(b"x")
    (plain / ".config").write_text("CONFIG_USERFAULTFD=y\n")
    (plain / "Makefile").write_text("include /src/linux/Makefile\n")
    cases = [
        ([], "give --src LINUX"),
        (["--kernel-build", str(tmp_path / "none")], "not a finished kernel build directory"),
        (["--kernel-build", str(plain)], "built without CONFIG_GCOV_KERNEL"),
        (["--src", str(tmp_path)], "not a Linux source tree"),
        (["--kernel", "/boot/x", "--src", str(tmp_path)], "boots the kernel it builds"),
    ]
    for args, message in cases:
        assert main(["coverage", *args]) == 2, args
        assert message in capsys.readouterr().err, args
