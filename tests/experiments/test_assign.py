import subprocess
import sys
from collections import Counter

from scipy import stats

from nerve.experiments.assign import bucket, choose_variant


def test_uniform_buckets() -> None:
    counts = Counter(int(bucket("exp", f"u{i}") * 20) for i in range(40_000))
    assert set(counts) == set(range(20))
    assert stats.chisquare(list(counts.values())).pvalue > 0.001


def test_weights_are_respected() -> None:
    counts = Counter(choose_variant("checkout", f"u{i}", ["control", "simple"], [0.7, 0.3])
                     for i in range(30_000))
    assert stats.chisquare([counts["control"], counts["simple"]],
                           [21_000, 9_000]).pvalue > 0.001


def test_stable_across_processes() -> None:
    here = [choose_variant("k", f"user-{i}", ["a", "b", "c"], [1, 1, 1]) for i in range(50)]
    code = ("from nerve.experiments.assign import choose_variant;"
            "print([choose_variant('k', f'user-{i}', ['a','b','c'], [1,1,1]) for i in range(50)])")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert there == repr(here)


def test_known_value_pins_the_algorithm() -> None:
    # sha256("exp:user-1")[:8] / 2**64: any SDK must compute the same
    import hashlib

    digest = hashlib.sha256(b"exp:user-1").digest()
    assert bucket("exp", "user-1") == int.from_bytes(digest[:8], "big") / 2**64


def test_layers_are_mutually_exclusive_and_holdout_excluded() -> None:
    both = 0
    for i in range(5000):
        a = choose_variant("a", f"u{i}", ["x", "y"], [1, 1], layer="L", layer_range=(0, 0.5))
        b = choose_variant("b", f"u{i}", ["x", "y"], [1, 1], layer="L", layer_range=(0.5, 1))
        both += a is not None and b is not None
        assert a is not None or b is not None
    assert both == 0
    held = sum(choose_variant("a", f"u{i}", ["x"], [1], holdout=0.1) is None for i in range(10_000))
    assert 850 < held < 1150


def test_coverage() -> None:
    entered = sum(choose_variant("c", f"u{i}", ["x", "y"], [1, 1], coverage=0.25) is not None
                  for i in range(10_000))
    assert 2300 < entered < 2700
