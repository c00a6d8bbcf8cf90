"""Lint benchmark: every corpus file in-process (median and p99 ms a file), then the CLI over the corpus.

    .venv/bin/python bench/lint.py

Each file's time is its best of 3 runs (scheduler noise removed), then the
median and p99 over files. In-process figures are given three ways: warm (the file was linted
before: every push to a pull request lints its workflows again), history (every version of the
corpus once, oldest first, with what earlier versions left in the caches: a worker's first
sight of a new version) and cold (every cache cleared before each file).
"""

from __future__ import annotations

import gc
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.lint.engine import lint_text  # noqa: E402
from bot.lint.source import load_workflow  # noqa: E402

CORPUS = ROOT / "tests" / "fixtures" / "corpus"
REPEAT = 3  # each file's best of 3, so that the machine's other work does not count


def quantiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=100)
    return statistics.median(values), q[98]


def main() -> None:
    files = [(p.name, p.read_bytes()) for p in sorted(CORPUS.iterdir()) if p.suffix in {".yml", ".yaml"}]
    modules = [m for name, m in sys.modules.items() if name.startswith("bot.lint")]
    caches = {id(f): f for m in modules for f in vars(m).values() if hasattr(f, "cache_clear")}.values()
    for name, data in files:  # warm up imports and regex compilation
        lint_text(data, name)
    rows = []
    for mode in ("warm", "cold"):
        times = []
        for name, data in files:
            best = float("inf")
            for _ in range(REPEAT):
                if mode == "cold":
                    for f in caches:
                        f.cache_clear()
                started = time.perf_counter()
                lint_text(data, name)
                best = min(best, (time.perf_counter() - started) * 1000)
            times.append(best)
        rows.append((mode, *quantiles(times), sum(times)))
    # In history order, each version seen once, caches kept from earlier versions: a worker linting
    # pull request after pull request (each file's figure is its best over 3 passes of the history).
    dates = {}
    for row in (CORPUS / "MANIFEST.tsv").read_text().splitlines()[1:]:
        cells = row.split("\t")
        dates[cells[0]] = cells[4]
    ordered = sorted(files, key=lambda f: (dates.get(f[0], ""), f[0]))
    first_sight = {name: float("inf") for name, _ in ordered}
    for _ in range(REPEAT):
        for f in caches:
            f.cache_clear()
        for name, data in ordered:
            started = time.perf_counter()
            lint_text(data, name)
            first_sight[name] = min(first_sight[name], (time.perf_counter() - started) * 1000)
    history = list(first_sight.values())
    rows.append(("history", *quantiles(history), sum(history)))
    parse = []
    for name, data in files:
        best = float("inf")
        for _ in range(REPEAT):
            started = time.perf_counter()
            load_workflow(data, name)
            best = min(best, (time.perf_counter() - started) * 1000)
        parse.append(best)
    for f in caches:  # what the caches keep after a worker has linted the whole corpus once
        f.cache_clear()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for name, data in ordered:
        lint_text(data, name)
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    sizes = sorted(data.count(b"\n") for _, data in files)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bot", "lint", str(CORPUS)], capture_output=True, cwd=ROOT)
    cli = time.perf_counter() - started
    print(f"{len(files)} corpus files, median {statistics.median(sizes):.0f} lines (max {sizes[-1]})")
    print(f"{'in-process':<22} {'median ms':>10} {'p99 ms':>8} {'total ms':>9}")
    for mode, median, p99, total in rows:
        print(f"{'lint_text, ' + mode:<22} {median:>10.2f} {p99:>8.2f} {total:>9.0f}")
    median, p99 = quantiles(parse)
    print(f"{'of which YAML parse':<22} {median:>10.2f} {p99:>8.2f} {sum(parse):>9.0f}")
    print(f"caches kept after linting the corpus once: {retained / 1e6:.1f} MB (bounded by their sizes)")
    print(f"CLI over the corpus (one process, all files): {cli:.2f} s")


if __name__ == "__main__":
    main()
