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
