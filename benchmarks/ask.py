"""Ask-nerve benchmark: accuracy and honesty over the realistic question set.

Builds a demo workspace (``nerve demo --no-serve``; default 21 days, 300 shoppers, the
test suite's size) or reuses one (``--dir`` of an earlier run), asks every question of
tests/agent/questions.py (CASES, and the HELD_OUT paraphrases) with the offline planner,
and grades each answer against SQL written by hand on the warehouse file (not through the
agent or the semantic layer).

Prints one line per wrong or dishonest answer, then accuracy, dishonest answers (numbers
in the text that no query produced: must be 0), intents covered, and seconds per question.

    python benchmarks/ask.py                       # builds /tmp/nerve-ask-bench (~30 s)
    python benchmarks/ask.py --dir nerve-demo      # any demo workspace, e.g. the default
    python benchmarks/ask.py --json                # the figures as JSON
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.agent.questions: the question set lives with the tests

from tests.agent.questions import CASES, HELD_OUT, Truth, grade, honest  # noqa: E402

from nerve.agent import Context, ask  # noqa: E402
from nerve.warehouse import Warehouse  # noqa: E402
from nerve.workspace import Workspace  # noqa: E402


def _build(root: Path, days: int, users: int) -> datetime:
    ready = root / ".ask-ready"
    if not ready.exists():
        subprocess.run([sys.executable, "-m", "nerve", "demo", "--dir", str(root), "--days",
                        str(days), "--users", str(users), "--no-serve"], check=True,
                       stdout=subprocess.DEVNULL)
        ready.write_text(datetime.now(UTC).isoformat())
    return datetime.fromisoformat(ready.read_text().strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/nerve-ask-bench"))
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    root = args.dir.resolve()
    if (root / "ground_truth.json").exists() and not (root / ".ask-ready").exists():
        # an existing demo: "now" is when it finished (its data ends then)
        mtime = (root / "ground_truth.json").stat().st_mtime
        (root / ".ask-ready").write_text(datetime.fromtimestamp(mtime, UTC).isoformat())
    now = _build(root, args.days, args.users)
    ws = Workspace.load(root)
    con = duckdb.connect(str(root / ".nerve" / "warehouse.duckdb"), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    wrong, dishonest, seconds, held_wrong = 0, 0, [], 0
    cases = [*CASES, *HELD_OUT]
    intents: Counter[str] = Counter()
    with Warehouse.for_workspace(ws, read_only=True) as wh:
        ctx = Context.open(ws, wh, now=now)
        truth = Truth(con, ctx.today())
        ctx.dimension_values()  # once per context: not part of any question's time
        for case in cases:
            start = time.perf_counter()
            answer = ask(case.question, ctx)
            seconds.append(time.perf_counter() - start)
            intents[case.intent] += 1
            problem, extra = grade(case, answer, truth), honest(answer)
            if problem:
                wrong += 1
                held_wrong += case in HELD_OUT
                print(f"WRONG  {case.question!r}: {problem}", file=sys.stderr)
            if extra:
                dishonest += 1
                print(f"DISHONEST {case.question!r}: {extra}", file=sys.stderr)
    figures = {
        "questions": len(cases), "correct": len(cases) - wrong,
        "accuracy": round((len(cases) - wrong) / len(cases), 4),
        "held_out": len(HELD_OUT), "held_out_correct": len(HELD_OUT) - held_wrong,
        "dishonest_answers": dishonest, "intents": dict(sorted(intents.items())),
        "seconds_per_question_median": round(sorted(seconds)[len(seconds) // 2], 3),
        "seconds_per_question_max": round(max(seconds), 3), "workspace": str(root),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"questions            {figures['questions']}")
    print(f"correct              {figures['correct']} ({figures['accuracy']:.1%})")
    print(f"held-out paraphrases {figures['held_out_correct']} of {len(HELD_OUT)} correct")
    print(f"dishonest answers    {dishonest} (numbers no query produced)")
    print(f"intents              {', '.join(f'{k} {v}' for k, v in figures['intents'].items())}")
    print(f"seconds per question median {figures['seconds_per_question_median']}, "
          f"max {figures['seconds_per_question_max']}")


if __name__ == "__main__":
    main()
