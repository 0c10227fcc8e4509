import threading
import time
from pathlib import Path

from harness.guest.console import GUEST_ERROR, READY, ConsoleLog, ConsoleTail


def test_offsets_and_slices(tmp_path):
    log = ConsoleLog(tmp_path / "c.log")
    assert log.offset() == 0 and log.read() == ""
    (tmp_path / "c.log").write_bytes(b"boot\nline two\n")
    assert log.offset() == 14
    assert log.read(5) == "line two\n"
    assert log.read(0, 4) == "boot"


def test_a_tail_reads_each_byte_once_from_where_it_starts(tmp_path):
    path = tmp_path / "c.log"
    tail = ConsoleTail(path, 5)
    assert tail.read_new() == b"" and tail.pos == 5  # QEMU has not created it yet
    with path.open("wb", buffering=0) as f:
        f.write(b"boot\nline")
        assert tail.read_new() == b"line"
        assert tail.read_new() == b""
        f.write(b" two\r\nthree")
        assert tail.read_new() == b" two\r\nthree"
    assert tail.pos == 20


def test_a_tail_hands_out_whole_lines_only():
    tail = ConsoleTail(Path("unused"))
    assert tail.complete_lines(b"[    0.05] tsc: first\r\nuffd-harness: ini") == [
        "[    0.05] tsc: first"
    ]
    assert tail.complete_lines(b"") == []
    assert tail.complete_lines(b"t started\r\n\n") == ["uffd-harness: init started", ""]


def test_marker_split_across_writes_is_found(tmp_path):
    path = tmp_path / "c.log"
    path.write_bytes(b"")
    log = ConsoleLog(path)

    def writer():
        with path.open("ab") as f:
            for piece in (b"[ 1.0] noise\nuffd-harn", b"ess: REA", b"DY\n"):
                time.sleep(0.05)
                f.write(piece)
                f.flush()

    threading.Thread(target=writer).start()
    m = log.wait_for([READY, GUEST_ERROR], timeout=5)
    assert m is not None and m.pattern is READY
    assert log.read(0, m.offset).endswith("uffd-harness: READY")


def test_guest_error_line_is_returned_whole(tmp_path):
    path = tmp_path / "c.log"
    path.write_bytes(b"uffd-harness: ERROR: no network device: no eth0\r\nmore\n")
    m = ConsoleLog(path).wait_for([READY, GUEST_ERROR], timeout=1)
    assert m is not None and m.text == "uffd-harness: ERROR: no network device: no eth0"


def test_timeout_and_dead_guest(tmp_path):
    path = tmp_path / "c.log"
    path.write_bytes(b"nothing here\n")
    log = ConsoleLog(path)
    t0 = time.monotonic()
    assert log.wait_for([READY], timeout=0.3) is None
    assert 0.25 < time.monotonic() - t0 < 2
    t0 = time.monotonic()
    assert log.wait_for([READY], timeout=30, keep_going=lambda: False) is None
    assert time.monotonic() - t0 < 1


def test_last_words_of_a_dead_guest_are_read(tmp_path):
    path = tmp_path / "c.log"
    path.write_bytes(b"uffd-harness: READY\n")
    assert ConsoleLog(path).wait_for([READY], timeout=30, keep_going=lambda: False)


def test_whole_lines_are_handed_on_once_as_they_are_read(tmp_path):
    path = tmp_path / "c.log"
    path.write_bytes(b"")
    seen: list[tuple[float, str]] = []

    def writer():
        with path.open("ab") as f:
            for piece in (b"[ 0.0] Linux\r\n\r\nuffd-harness: ini", b"t started\n", b"uffd-h"):
                time.sleep(0.1)
                f.write(piece)
                f.flush()
            time.sleep(0.1)
            f.write(b"arness: READY\npartial")

    threading.Thread(target=writer).start()
    m = ConsoleLog(path).wait_for(
        [READY], timeout=5, on_line=lambda text: seen.append((time.monotonic(), text))
    )
    assert m is not None
    assert [text for _, text in seen] == [
        "[ 0.0] Linux",
        "",
        "uffd-harness: init started",
        "uffd-harness: READY",
    ]
    # Each line is stamped when its end was read, not when the wait ended.
    assert seen[2][0] - seen[0][0] >= 0.08
