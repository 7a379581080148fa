"""Time every lesson as a student meets it: quiet, then with busy processes beside it.

    .venv/bin/python -m bench.lessons                    # every lesson, quiet and with 2 busy processes
    .venv/bin/python -m bench.lessons --lessons 04,05 --busy 2
    .venv/bin/python -m bench.lessons --busy 0           # quiet only

For each lesson (``notebooks/NN_*.ipynb``), in a fresh kernel each time, as ``make series`` runs it:

- **cold**: PyTensor's compile cache is a new empty folder (``$VAE_TEACH_PYTENSOR_COMPILEDIR``), as on a
  student's first run;
- **warm**: the same folder again, now filled;
- **busy**: warm, with ``--busy`` CPU-bound processes running beside it for the whole lesson.

The PyTensor compile time of a lesson is cold minus warm (zero, give or take noise, for a lesson that
compiles nothing); the busy ratio is busy over warm. The lessons run with the thread count they
are committed with (``vae_teach.threads``: one, unless ``$VAE_TEACH_THREADS`` says otherwise). The
report (JSON and a Markdown table) goes to bench/results/ (git-ignored) and the table is printed, with
the targets of issue #11: every lesson ≤ 60 s cold on a quiet 2-core machine, the series ≤ 6 minutes,
the busy ratio ≤ 2.5, lesson 04's compile time ≤ 20 s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
TARGET_LESSON_SECONDS = 60
TARGET_SERIES_SECONDS = 360
TARGET_BUSY_RATIO = 2.5
TARGET_COMPILE_SECONDS = 20
BUSY_LIMIT_SECONDS = 1800  # a busy process stops by itself after this, whatever happens to its parent


def _busy(stop_at: float) -> None:
    """Keep one core busy with pure Python arithmetic until ``stop_at`` (time.time())."""
    x = 0
    while time.time() < stop_at:
        for i in range(100_000):
            x = (x + i * i) % 1_000_003


class BusyProcesses:
    """``n`` CPU-bound processes for the length of a ``with`` block (and never longer than an hour)."""

    def __init__(self, n: int):
        self.n = n
        self.processes: list[multiprocessing.Process] = []

    def __enter__(self):
        stop_at = time.time() + BUSY_LIMIT_SECONDS
        self.processes = [multiprocessing.Process(target=_busy, args=(stop_at,), daemon=True)
                          for _ in range(self.n)]
        for p in self.processes:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in self.processes:
            p.terminate()
        for p in self.processes:
            p.join()


def time_lesson(path: Path, compiledir: Path, busy: int = 0, timeout: int = 900) -> float:
    """Seconds to execute the lesson at ``path`` in a fresh kernel, with PyTensor's cache in ``compiledir``."""
    from vae_teach.pytensor_vae import COMPILEDIR_ENV_VAR
    from vae_teach.series import execute_notebook

    previous = os.environ.get(COMPILEDIR_ENV_VAR)
    os.environ[COMPILEDIR_ENV_VAR] = str(compiledir)
    try:
        with BusyProcesses(busy):
            start = time.perf_counter()
            execute_notebook(path, timeout=timeout)
            return time.perf_counter() - start
    finally:
        if previous is None:
            os.environ.pop(COMPILEDIR_ENV_VAR, None)
        else:
            os.environ[COMPILEDIR_ENV_VAR] = previous


def run(lessons: list[Path], busy: int, log=print) -> list[dict]:
    """Time each lesson cold, warm and (if ``busy``) busy; returns one dict per lesson."""
    rows = []
    for path in lessons:
        with tempfile.TemporaryDirectory(prefix="pytensor-cold-") as compiledir:
            log(f"{path.name}: cold ...")
            cold = time_lesson(path, Path(compiledir))
            log(f"  {cold:.0f} s; warm ...")
            warm = time_lesson(path, Path(compiledir))
            log(f"  {warm:.0f} s" + (f"; with {busy} busy processes ..." if busy else ""))
            loaded = time_lesson(path, Path(compiledir), busy=busy) if busy else None
            if loaded is not None:
                log(f"  {loaded:.0f} s")
        rows.append({"lesson": path.name, "cold_seconds": cold, "warm_seconds": warm,
                     "compile_seconds": max(cold - warm, 0.0), "busy_seconds": loaded,
                     "busy_ratio": loaded / warm if loaded is not None else None})
    return rows


def markdown_table(rows: list[dict], busy: int) -> str:
    lines = ["| lesson | cold (s) | warm (s) | PyTensor compile, cold − warm (s) | "
             f"with {busy} busy (s) | busy / warm |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        loaded = "" if r["busy_seconds"] is None else f"{r['busy_seconds']:.0f}"
        ratio = "" if r["busy_ratio"] is None else f"{r['busy_ratio']:.2f}"
        lines.append(f"| {r['lesson']} | {r['cold_seconds']:.0f} | {r['warm_seconds']:.0f} | "
                     f"{r['compile_seconds']:.0f} | {loaded} | {ratio} |")
    total = sum(r["cold_seconds"] for r in rows)
    lines.append(f"| **all, cold** | {total:.0f} | {sum(r['warm_seconds'] for r in rows):.0f} | | | |")
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    """Each issue-#11 target, met or missed, with the number."""
    out = []
    slow = [r for r in rows if r["cold_seconds"] > TARGET_LESSON_SECONDS]
    out.append(f"every lesson ≤ {TARGET_LESSON_SECONDS} s cold: "
               + ("met" if not slow else "missed by " + ", ".join(
                   f"{r['lesson']} ({r['cold_seconds']:.0f} s)" for r in slow)))
    total = sum(r["cold_seconds"] for r in rows)
    out.append(f"series ≤ {TARGET_SERIES_SECONDS} s cold: {'met' if total <= TARGET_SERIES_SECONDS else 'missed'} "
               f"({total:.0f} s)")
    ratios = [r for r in rows if r["busy_ratio"] is not None]
    if ratios:
        worst = max(ratios, key=lambda r: r["busy_ratio"])
        out.append(f"busy / warm ≤ {TARGET_BUSY_RATIO}: {'met' if worst['busy_ratio'] <= TARGET_BUSY_RATIO else 'missed'}"
                   f" (worst {worst['lesson']}, {worst['busy_ratio']:.2f})")
    for r in rows:
        if r["lesson"].startswith("04_"):
            ok = r["compile_seconds"] <= TARGET_COMPILE_SECONDS
            out.append(f"lesson 04 compiles ≤ {TARGET_COMPILE_SECONDS} s: {'met' if ok else 'missed'} "
                       f"({r['compile_seconds']:.0f} s)")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lessons", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", default=None, help="comma-separated lesson numbers, e.g. 04,05 (default: all)")
    parser.add_argument("--busy", type=int, default=2, help="CPU-bound processes beside the lesson (0: quiet only)")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the JSON and Markdown report")
    args = parser.parse_args(argv)
    if args.busy < 0:
        parser.error(f"--busy must be 0 or more, got {args.busy}")

    from vae_teach.series import lesson_paths
    from vae_teach.threads import default_threads

    lessons = lesson_paths(ROOT / "notebooks")
    if args.lessons:
        wanted = [n.strip() for n in args.lessons.split(",") if n.strip()]
        lessons = [p for p in lessons if any(p.name.startswith(n) for n in wanted)]
        if not lessons:
            parser.error(f"no lesson matches --lessons {args.lessons!r}")
    rows = run(lessons, args.busy)
    meta = {"date": datetime.now().isoformat(timespec="seconds"), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "threads": default_threads(), "busy": args.busy,
            "load_before": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    table = markdown_table(rows, args.busy)
    report = table + "\n\n" + "\n".join(f"- {v}" for v in verdicts(rows))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"lessons-{stamp}.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    (out / f"lessons-{stamp}.md").write_text(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
