"""What any detector can do from pass/fail evidence alone: the limits behind the runner-health targets.

The design asks for two things at once: catch 95 % of bad runners (failing 30 % or
more of their jobs) within 10 of their jobs, and quarantine at most one healthy
runner per 10,000 pool jobs at 5-8 % flaky failures. When a bad laptop's failures
look like flaky ones (no INFRA sign: a test that failed, re-run and passed on
another runner), the only evidence is how many of its jobs fail. Then the
Neyman-Pearson lemma bounds every detector, whatever its design:

* Take a healthy runner and cut its jobs into windows of 10. Had it turned bad at a
  window's start, the detector (which has seen the same history) must alarm within
  that window with probability >= 0.95 under the bad rate. Among all ways of doing
  so, alarming on the most failures is the one least likely to fire on a healthy
  runner (the likelihood ratio grows with the failure count); its false-alarm
  probability per window is therefore a floor for every detector (averaging over
  histories keeps it a floor: the trade-off curve is convex).
* Conversely, one false quarantine per 10,000 pool jobs allows at most 1e-3 false
  alarms per 10-job window of a runner; the best detector within that budget
  catches a bad runner within 10 jobs with at most the probability printed.

    .venv/bin/python bench/detection_bound.py
"""

from __future__ import annotations

from math import comb

WINDOW = 10
TARGET_DETECTION = 0.95
TARGET_FALSE_PER_JOB = 1 / 10_000


def tail(n: int, p: float, k: int) -> float:
    """P(at least k failures in n jobs)."""
    return sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def exactly(n: int, p: float, k: int) -> float:
    return comb(n, k) * p**k * (1 - p) ** (n - k)


def least_false_alarm(healthy: float, bad: float, detect: float, n: int = WINDOW) -> float:
    """The smallest per-window false-alarm probability of any test that catches ``detect`` of bad runners."""
    for k in range(n, -1, -1):  # alarm on >= k failures, and on k-1 with some probability
        if tail(n, bad, k) >= detect:
            return tail(n, healthy, k)
        if tail(n, bad, k - 1) >= detect:
            share = (detect - tail(n, bad, k)) / exactly(n, bad, k - 1)
            return tail(n, healthy, k) + share * exactly(n, healthy, k - 1)
    return 1.0


def best_detection(healthy: float, bad: float, false_budget: float, n: int = WINDOW) -> float:
    """The largest share of bad runners any test can catch within n jobs, spending ``false_budget`` per window."""
    for k in range(0, n + 2):
        if tail(n, healthy, k) <= false_budget:
            if k == 0:
                return 1.0
            share = min(1.0, (false_budget - tail(n, healthy, k)) / exactly(n, healthy, k - 1))
            return tail(n, bad, k) + share * exactly(n, bad, k - 1)
    return 0.0


def main() -> None:
    budget = TARGET_FALSE_PER_JOB * WINDOW
    print(f"Catching {TARGET_DETECTION:.0%} of bad runners within {WINDOW} jobs costs at least, per healthy runner:")
    print(f"{'flaky':>7} {'bad rate':>9} {'false alarms / window':>22} {'false quarantines / 10k jobs':>29}")
    for healthy in (0.05, 0.08):
        for bad in (0.3, 0.5):
            floor = least_false_alarm(healthy, bad, TARGET_DETECTION)
            print(f"{healthy:>7.0%} {bad:>9.0%} {floor:>22.3f} {floor / WINDOW * 10_000:>29,.0f}")
    print()
    print(f"With at most 1 false quarantine per 10,000 jobs ({budget:g} per window), no detector catches more than:")
    print(f"{'flaky':>7} {'bad rate':>9} {'caught within 10 jobs':>22}")
    for healthy in (0.05, 0.08):
        for bad in (0.3, 0.5):
            print(f"{healthy:>7.0%} {bad:>9.0%} {best_detection(healthy, bad, budget):>22.0%}")


if __name__ == "__main__":
    main()
