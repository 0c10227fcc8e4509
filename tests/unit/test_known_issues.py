"""Known kernel bugs: the reviewed list loads, matches what it should, and nothing else."""

from pathlib import Path

import pytest

from harness.verdict.known_issues import (
    DEFAULT_PATH,
    KnownIssue,
    KnownIssuesError,
    load_known_issues,
    match,
    release_version,
    spec_matches,
)

HUGETLB_FORK_CHECKS = ["noevent-child-wp-bit-clear", "noevent-child-write-completes"]


@pytest.fixture(scope="module")
def issues() -> list[KnownIssue]:
    return load_known_issues()


def test_the_repo_list_loads_with_sources(issues: list[KnownIssue]):
    assert issues
    for issue in issues:
        assert issue.source.startswith(f"{DEFAULT_PATH}:")
        assert issue.fix and issue.looks_like and issue.kernels


def test_debian_61_hugetlb_private_fork_bug_is_known(issues: list[KnownIssue]):
    found = match(issues, "wp-fork-cow", "hugetlb-private", "6.1.0-56-amd64", HUGETLB_FORK_CHECKS)
    assert found is not None
    assert found.fix == "mm/hugetlb: fix uffd-wp during fork()"


@pytest.mark.parametrize(
    ("workload", "mem", "release"),
    [
        ("wp-fork-cow", "hugetlb-private", "6.4.0-1-amd64"),  # fixed upstream in 6.4
        ("wp-fork-cow", "hugetlb-private", "6.18.44-fc-v669"),
        ("wp-fork-cow", "hugetlb", "6.1.0-56-amd64"),  # shared hugetlb is not affected
        ("wp-basic", "hugetlb-private", "6.1.0-56-amd64"),
    ],
)
def test_other_cases_and_kernels_do_not_match(
    issues: list[KnownIssue], workload: str, mem: str, release: str
):
    assert match(issues, workload, mem, release) is None


def test_an_unrelated_failure_of_a_listed_case_is_not_excused(issues: list[KnownIssue]):
    failed = [*HUGETLB_FORK_CHECKS, "event-child-wp-bit-set"]
    assert match(issues, "wp-fork-cow", "hugetlb-private", "6.1.0-56-amd64", failed) is None


def test_a_listed_case_that_passes_still_matches_so_it_can_be_reported_xpassed(
    issues: list[KnownIssue],
):
    assert match(issues, "wp-fork-cow", "hugetlb-private", "6.1.0-56-amd64", []) is not None


@pytest.mark.parametrize(
    ("release", "version"),
    [("6.1.0-56-amd64", (6, 1, 0)), ("6.10", (6, 10)), ("5.19.0-rc1+", (5, 19, 0)), ("x", ())],
)
def test_release_version(release: str, version: tuple[int, ...]):
    assert release_version(release) == version


@pytest.mark.parametrize(
    ("spec", "release", "expected"),
    [
        ("6.1", "6.1.0-56-amd64", True),
        ("6.1", "6.1.15", True),
        ("6.1", "6.10.2", False),
        ("6.1", "6.11.0", False),
        ("<6.4", "6.3.13", True),
        ("<6.4", "6.4.0-rc1", False),
        ("<6.4", "6.4", False),
        ("<6.4", "6.4.2", False),
        (">=5.19 <6.4", "5.19.0", True),
        (">=5.19 <6.4", "5.18.19", False),
        (">=5.19 <6.4", "6.1.0-56-amd64", True),
        ("<=6.1", "6.1.99", True),
        ("==6.1", "6.1.0", True),
        ("<6.4", "not-a-release", False),
    ],
)
def test_kernel_specs(spec: str, release: str, expected: bool):
    assert spec_matches(spec, release) is expected


VALID_ENTRY = """\
- workload: wp-fork-cow
  mem: hugetlb-private
  kernels: ["<6.4"]
  fix: "mm/hugetlb: fix uffd-wp during fork()"
  looks_like: stale bit
"""


def test_a_minimal_file_loads(tmp_path: Path):
    path = tmp_path / "k.yaml"
    path.write_text(VALID_ENTRY)
    (issue,) = load_known_issues(path)
    assert issue.source == f"{path}:1"
    assert issue.checks == () and issue.fix_commit is None
    assert load_known_issues(_write(tmp_path, "# nothing known\n")) == []


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("- workload: [wp-basic\n  mem: anon\n", 2, "invalid YAML"),
        ("workload: wp-basic\n", 1, "must be a list"),
        ("- just a string\n", 1, "must be a mapping"),
        (VALID_ENTRY + "- workload: wp-basic\n  mem: anon\n  kernels: ['6.1']\n", 6, "lacks fix"),
        (VALID_ENTRY.replace("  mem:", "  memory:"), 2, "unknown field 'memory'"),
        (VALID_ENTRY.replace('["<6.4"]', '["<6.4", "~6.1"]'), 3, "kernel spec '~6.1'"),
        (VALID_ENTRY.replace('["<6.4"]', "[]"), 3, "non-empty list"),
        (VALID_ENTRY + "  checks: [a, [b]]\n", 6, "must be a non-empty string"),
        (VALID_ENTRY + "  fix: again\n", 6, "given twice"),
        (VALID_ENTRY.replace("stale bit", "''"), 5, "must be a non-empty string"),
    ],
)
def test_malformed_files_are_reported_at_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
):
    path = _write(tmp_path, text)
    with pytest.raises(KnownIssuesError) as err:
        load_known_issues(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert fragment in message


def test_a_missing_file_names_the_path(tmp_path: Path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(KnownIssuesError, match=str(path)):
        load_known_issues(path)
