"""Detection power on the default demo: for each seed, is every injected incident found?

For each seed, runs ``nerve demo`` (default size unless ``--users``) into a folder, then
asks the two detectors a user would:

- ``nerve anomalies --evaluate 7d``: an anomaly on the incident's event (or its rate
  metric) and segment, in the incident's direction, overlapping its window;
- ``nerve check --now <incident end + 1 h>``: a failing or warning volume or rate check
  on the incident's segment.

It prints one line per seed and incident, every anomaly outside the incidents (a false
alarm unless it is a downstream effect), and, with ``--clean``, the same for simulations
with no incidents and no faults (which must raise nothing). Slow by design (a full demo
per seed, about 30 s each on a quiet 2-core machine): a benchmark, not a test.

    python benchmarks/detection.py --seeds 1 2 3 [--users 10000] [--clean]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

#: incident key -> (what anomalies judge, its segment, direction)
TARGETS = {
    "android_add_to_cart_drop": ("add_to_cart", "platform", "android", "down"),
    "adyen_payment_outage": ("payment_failure_rate", "payment_provider", "adyen", "up"),
}


def nerve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nerve", *args], capture_output=True,
                          text=True, check=False)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def overlaps(item: dict[str, Any], start: datetime, end: datetime) -> bool:
    return moment(item["start"]) < end and moment(item["end"]) > start


def demo(folder: Path, seed: int, users: int | None, clean: bool) -> float:
    args = ["demo", "--dir", str(folder), "--no-serve", "--seed", str(seed)]
    if users is not None:
        args += ["--users", str(users)]
    if clean:
        args += ["--no-incidents", "--no-faults"]
    started = time.perf_counter()
    result = nerve(*args)
    if result.returncode != 0:
        raise SystemExit(f"nerve demo failed (seed {seed}):\n{result.stderr[-2000:]}")
    return time.perf_counter() - started


def judge_seed(folder: Path) -> tuple[list[str], list[str]]:
    """(one line per incident and detector, anomalies outside every incident)."""
    truth = json.loads((folder / "ground_truth.json").read_text())
    anomalies = json.loads(nerve("-w", str(folder), "anomalies", "--evaluate", "7d",
                                 "--format", "json").stdout or "[]")
    lines = []
    windows = []
    for incident in truth["incidents"]:
        target, dim, value, direction = TARGETS[incident["key"]]
        start, end = moment(incident["start"]), moment(incident["end"])
        # a 24 h sum that ends in the incident starts up to a day before it
        windows.append((start - timedelta(hours=24), end + timedelta(hours=24)))
        found = any(a["target"] == target and a["dimension"] == dim and a["value"] == value
                    and a["direction"] == direction and overlaps(a, start, end)
                    for a in anomalies)
        now = (end + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
        checks = json.loads(nerve("-w", str(folder), "check", "--now", now,
                                  "--format", "json").stdout or "[]")
        checked = any(c["status"] in ("warn", "fail") and c["check"] in ("volume", "rate")
                      and (c.get("dimensions") or {}).get(dim) == value for c in checks)
        lines.append(f"{incident['key']:<26} anomalies: {'found' if found else 'MISSED'}"
                     f"   checks: {'found' if checked else 'MISSED'}")
    others = [a["message"] for a in anomalies
              if not any(overlaps(a, w0, w1) for w0, w1 in windows)]
    return lines, others


def judge_clean(folder: Path) -> list[str]:
    anomalies = json.loads(nerve("-w", str(folder), "anomalies", "--evaluate", "7d",
                                 "--format", "json").stdout or "[]")
    checks = json.loads(nerve("-w", str(folder), "check", "--format", "json").stdout or "[]")
    return ([a["message"] for a in anomalies]
            + [c["message"] for c in checks if c["status"] != "pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--users", type=int, default=None, help="default: the demo's")
    parser.add_argument("--clean", action="store_true",
                        help="also run each seed with no incidents and no faults")
    args = parser.parse_args()
    missed = alarms = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            folder = Path(tmp) / f"seed{seed}"
            took = demo(folder, seed, args.users, clean=False)
            lines, others = judge_seed(folder)
            print(f"seed {seed} (demo {took:.0f} s)")
            for line in lines:
                print(f"  {line}")
                missed += line.count("MISSED")
            for message in others:
                print(f"  outside the incidents: {message}")
            if args.clean:
                folder = Path(tmp) / f"clean{seed}"
                demo(folder, seed, args.users, clean=True)
                raised = judge_clean(folder)
                alarms += len(raised)
                print(f"  clean run: {len(raised)} alarm(s)")
                for message in raised:
                    print(f"    {message}")
    print(f"missed detections: {missed}; alarms on clean runs: {alarms}")


if __name__ == "__main__":
    main()
