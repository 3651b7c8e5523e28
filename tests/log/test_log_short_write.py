"""A write that fails halfway (disk full, file size limit) leaves no torn frame behind.

The kernel enforces a real limit here: RLIMIT_FSIZE in a child process makes writes past
it fail with EFBIG after writing what fits, exactly like a full disk's short write.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from conftest import envelope
from nerve.envelope import to_record_batch
from nerve.log import LogWriter

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
log_dir = Path(sys.argv[1])
writer = LogWriter(log_dir, "w0")
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
written, failed = [], 0
batch = lambda start: to_record_batch([envelope(start + i) for i in range(50)])
resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, hard))
for k in range(100):
    try:
        writer.append(batch(100 * k))
        written.append(k)
    except OSError:
        failed += 1
        break
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
writer.append(batch(100_000))  # the disk has room again
written.append(1000)
writer.sync()
writer.close()
print(json.dumps({"written": written, "failed": failed}))
"""


def test_a_short_write_is_cut_and_later_appends_are_readable(tmp_path: Path) -> None:
    from nerve.log import list_segments, read_segment

    here = Path(__file__).parent
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(here)],
                          capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    assert result["failed"] == 1  # the limit was hit mid-frame
    rows = []
    for segment in list_segments(tmp_path, "w0"):
        read = read_segment(segment.path)
        rows.extend(r for _, b in read.batches for r in b.to_pylist())
    users = [r["user_id"] for r in rows]
    expected = [f"u{100 * k + i}" for k in result["written"][:-1] for i in range(50)]
    expected += [f"u{100_000 + i}" for i in range(50)]
    assert users == expected  # everything appended before and after the failure, in order


NEW_SEGMENT_FAILS = r"""
import json, os, resource, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from conftest import envelope
from nerve.envelope import to_record_batch
from nerve.log import LogWriter

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
log_dir = Path(sys.argv[1])
batch = lambda start: to_record_batch([envelope(start + i) for i in range(50)])
with LogWriter(log_dir, "w0") as writer:
    writer.append(batch(0))
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
fds = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_FSIZE, (100, hard))  # no room for a segment's header
failed = 0
for _ in range(5):  # what nerve serve does on a full disk: reopen, fail, close, per request
    writer = LogWriter(log_dir, "w0")
    try:
        writer.append(batch(1000))
    except OSError:
        failed += 1
    writer.close()
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
leaked = len(os.listdir("/proc/self/fd")) - fds
with LogWriter(log_dir, "w0") as writer:  # the disk has room again
    writer.append(batch(2000))
print(json.dumps({"failed": failed, "leaked": leaked}))
"""


def test_a_new_segment_that_cannot_be_written_leaves_no_file_and_no_descriptor(
        tmp_path: Path) -> None:
    """On a full disk each refused request reopened the writer, whose new segment's header
    did not fit: every one left an open descriptor and an empty segment, which the loader
    then set aside as ``.corrupt`` (thousands of files and descriptors over an outage)."""
    from nerve.loader import Loader
    from nerve.warehouse import Warehouse

    here = Path(__file__).parent
    done = subprocess.run([sys.executable, "-c", NEW_SEGMENT_FAILS, str(tmp_path / "log"),
                           str(here)], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    assert result == {"failed": 5, "leaked": 0}
    assert len(list((tmp_path / "log" / "w0").glob("*.seg"))) == 2  # before and after
    with Warehouse.open(f"duckdb://{tmp_path / 'wh.duckdb'}") as wh:
        Loader(tmp_path / "log", wh).load_once()
        users = wh.query("SELECT user_id FROM events ORDER BY user_id").column(0).to_pylist()
    assert users == sorted([f"u{i}" for i in range(50)] + [f"u{2000 + i}" for i in range(50)])
    assert [p.name for p in (tmp_path / "log" / "w0").iterdir()
            if p.name not in (".lock", "ACK")] == []  # loaded and deleted; none set aside


def test_an_empty_segment_left_by_a_crash_is_removed_at_start(tmp_path: Path) -> None:
    """A writer killed between creating a segment and writing its header leaves an empty
    file: the next writer removes it (it was set aside as corrupt by the loader)."""
    from nerve.log import LogWriter, list_segments
    from nerve.log._segments import new_segment_name

    folder = tmp_path / "log" / "w0"
    folder.mkdir(parents=True)
    empty = folder / new_segment_name(folder)
    empty.touch()
    with LogWriter(tmp_path / "log", "w0"):
        pass
    assert not empty.exists()
    assert list_segments(tmp_path / "log", "w0") == []
