"""Patch series: mbox files and directories, applied with git am or patch -p1.

Patch series are made by `git format-patch` on a scratch repository, as a developer's
would be.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import HarnessError, UsageError
from harness.kernel.patches import apply_series, load_series, series_from_text, split_mbox

# -- patch series -----------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_DATE="2024-01-01T00:00:00Z")
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@example.org", *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.strip()


ORIGINAL = {
    "mm/userfaultfd.c": "".join(f"line {i}\n" for i in range(1, 41)),
    "fs/userfaultfd.c": "".join(f"fs line {i}\n" for i in range(1, 41)),
}


def _edit(repo: Path, path: str, old: str, new: str) -> None:
    f = repo / path
    f.write_text(f.read_text().replace(old, new, 1))


@pytest.fixture
def upstream(tmp_path) -> Path:
    """A tree with two patch series made from it: good.mbox and bad.mbox (patch 2 of 2
    expects text the tree does not have), plus the clean base commit checked out."""
    if not shutil.which("git") or not shutil.which("patch"):
        pytest.skip("git and patch are needed")
    repo = tmp_path / "upstream"
    for path, text in ORIGINAL.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "good")
    _edit(repo, "mm/userfaultfd.c", "line 10\n", "line 10 wp\n")
    git(repo, "commit", "-q", "-am", "userfaultfd: add UFFDIO_CONTINUE ioctl")
    _edit(repo, "fs/userfaultfd.c", "fs line 20\n", "fs line 20 minor\n")
    (repo / "mm" / "new.c").write_text("new file\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "mm: add a new file")
    (tmp_path / "good.mbox").write_text(
        git(repo, "format-patch", "--stdout", "-2", "--cover-letter") + "\n"
    )
    git(repo, "checkout", "-q", "-b", "bad", "main")
    _edit(repo, "mm/userfaultfd.c", "line 30\n", "line 30 ok\n")
    git(repo, "commit", "-q", "-am", "userfaultfd: first patch applies")
    _edit(repo, "fs/userfaultfd.c", "fs line 5\n", "something else\n")
    git(repo, "commit", "-q", "-am", "scratch: not in the series")
    _edit(repo, "fs/userfaultfd.c", "something else\n", "something else, changed\n")
    git(repo, "commit", "-q", "-am", "userfaultfd: second patch conflicts")
    series = git(repo, "format-patch", "--stdout", "HEAD~3..HEAD")
    # Drop the middle commit, so patch 2 expects text the tree never had.
    msgs = split_mbox(series + "\n")
    (tmp_path / "bad.mbox").write_text(msgs[0] + msgs[2])
    git(repo, "checkout", "-q", "main")
    return repo


def _tree_files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.parts
    }


def _progress_log() -> tuple[list[str], object]:
    seen: list[str] = []
    return seen, lambda phase, msg: seen.append(f"{phase}: {msg}")


def test_format_patch_mbox_is_split_with_subjects(upstream, tmp_path):
    patches, notes = load_series(tmp_path / "good.mbox")
    assert [p.subject for p in patches] == [
        "[PATCH 1/2] userfaultfd: add UFFDIO_CONTINUE ioctl",
        "[PATCH 2/2] mm: add a new file",
    ]
    assert len(notes) == 1 and "[PATCH 0/2]" in notes[0] and "no diff" in notes[0]


def test_lore_thread_order_and_encoded_subjects():
    def mail(n: int, subject: str, body: str) -> str:
        return (
            f"From mboxrd@z Thu Jan  1 00:00:00 1970\nFrom: A <a@example.org>\n"
            f"Subject: {subject}\nMessage-Id: <{n}@x>\n\n{body}\n"
        )

    diff = "---\n a | 1 +\ndiff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1 +1 @@\n-x\n+y\n"
    text = (
        mail(1, "[PATCH v2 2/2] mm: second", diff)
        + mail(2, "Re: [PATCH v2 1/2] first", "Looks good.\n")
        + mail(3, "=?utf-8?q?=5BPATCH_v2_1/2=5D_userfaultfd=3A_caf=C3=A9?=", diff)
    )
    patches, notes = series_from_text(text, "thread.mbox")
    assert [p.subject for p in patches] == [
        "[PATCH v2 1/2] userfaultfd: café",
        "[PATCH v2 2/2] mm: second",
    ]
    assert notes == [
        "skipped thread.mbox message 2: 'Re: [PATCH v2 1/2] first': no diff in it "
        "(cover letter or reply)"
    ]


def _clone(upstream: Path, tmp_path: Path) -> Path:
    tree = tmp_path / "linux"
    subprocess.run(["git", "clone", "-q", str(upstream), str(tree)], check=True)
    return tree


def test_git_tree_gets_the_series_with_git_am(upstream, tmp_path):
    tree = _clone(upstream, tmp_path)
    before = git(tree, "rev-parse", "HEAD")
    seen, progress = _progress_log()
    apply_series(tree, [tmp_path / "good.mbox"], progress)
    log = git(tree, "log", "--format=%s", f"{before}..HEAD").splitlines()
    assert log == ["mm: add a new file", "userfaultfd: add UFFDIO_CONTINUE ioctl"]
    assert git(tree, "status", "--porcelain") == ""
    assert "line 10 wp" in (tree / "mm/userfaultfd.c").read_text()
    assert "patch: 2/2 applied: [PATCH 2/2] mm: add a new file" in seen

    # A rebuild with the same --patches finds them in the tree and skips them.
    seen.clear()
    apply_series(tree, [tmp_path / "good.mbox"], progress)
    assert git(tree, "rev-list", "--count", f"{before}..HEAD") == "2"
    assert sum("already in the tree" in s for s in seen) == 2


def test_git_tree_conflict_names_patch_and_restores_tree(upstream, tmp_path):
    tree = _clone(upstream, tmp_path)
    before = git(tree, "rev-parse", "HEAD")
    files = _tree_files(tree)
    _, progress = _progress_log()
    with pytest.raises(HarnessError) as e:
        # The good series applies first; the bad one fails at its second patch.
        apply_series(tree, [tmp_path / "good.mbox", tmp_path / "bad.mbox"], progress)
    msg = str(e.value)
    assert msg.startswith("patch 4/4 does not apply (git am): ")
    assert "bad.mbox message 2: '[PATCH 3/3] userfaultfd: second patch conflicts'" in msg
    assert "git reset --hard" in msg
    assert git(tree, "rev-parse", "HEAD") == before
    assert git(tree, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (tree / ".git" / "rebase-apply").exists()
    assert _tree_files(tree) == files


def test_dirty_git_tree_is_refused(upstream, tmp_path):
    tree = _clone(upstream, tmp_path)
    _edit(tree, "mm/userfaultfd.c", "line 1\n", "local edit\n")
    with pytest.raises(UsageError, match="uncommitted changes"):
        apply_series(tree, [tmp_path / "good.mbox"], _progress_log()[1])


def test_plain_tree_uses_patch_and_is_restored_on_conflict(upstream, tmp_path):
    tree = tmp_path / "linux-source-6.1"
    shutil.copytree(upstream, tree, ignore=shutil.ignore_patterns(".git"))
    files = _tree_files(tree)
    seen, progress = _progress_log()
    with pytest.raises(HarnessError) as e:
        apply_series(tree, [tmp_path / "good.mbox", tmp_path / "bad.mbox"], progress)
    assert str(e.value).startswith("patch 4/4 does not apply (patch -p1): ")
    assert "the 3 patches this run applied reversed with patch -R" in str(e.value)
    assert "checking file fs/userfaultfd.c" in str(e.value)
    assert sum("applied:" in s for s in seen) == 3
    assert _tree_files(tree) == files  # no new file left, no .orig, no .rej

    apply_series(tree, [tmp_path / "good.mbox"], progress)
    assert (tree / "mm/new.c").read_text() == "new file\n"
    assert "fs line 20 minor" in (tree / "fs/userfaultfd.c").read_text()


def test_patch_directory_and_missing_series(upstream, tmp_path):
    d = tmp_path / "series"
    d.mkdir()
    git(upstream, "format-patch", "-q", "-o", str(d), "main..good")
    patches, _ = load_series(d)
    assert [p.source.rsplit("/", 1)[-1] for p in patches] == [
        "0001-userfaultfd-add-UFFDIO_CONTINUE-ioctl.patch",
        "0002-mm-add-a-new-file.patch",
    ]
    with pytest.raises(UsageError, match="no such file"):
        load_series(tmp_path / "nope.mbox")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no .*patch.* files"):
        load_series(tmp_path / "empty")
