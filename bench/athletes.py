"""Benchmark: mean Age per Year over athlete_events with every engine, at 271,116 / 5M / 20M rows.

271,116 rows is the real shipped file (include/athletes/data); 5M and 20M rows are generated with the
same schema and format (include/athletes/generate.py).

Load (read Year + Age from the CSV) and compute (group by Year, mean Age) are timed separately,
median of ``--repeats``. PySpark runs on the local standalone cluster (started if needed); its session
start-up is reported on its own, since it is paid once per job. Writes ``bench/results/athlete_engines``
(.json, .md) and a PNG plot (engines x sizes, log scale).

    python -m bench.athletes [--sizes 271116 5000000 20000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import psutil

from bench.common import RESULTS, machine, median, own_world, write_results
from include.athletes import data, engines, generate

CACHE = Path(__file__).resolve().parent / ".cache"


def dataset(rows: int) -> Path:
    """The real file at its own size (271,116 rows); a generated one of the same format above it."""
    if rows == generate.REAL_ROWS:
        return data.extract(CACHE / "athlete_events.real.csv")
    path = CACHE / f"athlete_events_{rows}.csv"
    if not path.exists():
        t0 = time.perf_counter()
        generate.generate(path, rows)
        print(f"generated {rows:,} rows in {time.perf_counter() - t0:.0f}s", flush=True)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[generate.REAL_ROWS, 5_000_000, 20_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    with own_world("athletes") as env:
        run(env, args)


def run(env: dict[str, str], args: argparse.Namespace) -> None:
    from stack.__main__ import spark_backend

    cluster = spark_backend(env)
    info = cluster.start()
    t0 = time.perf_counter()
    spark = engines.spark_session(info.master_url, "bench-athletes")
    spark.sparkContext.setLogLevel("ERROR")
    spark_startup = time.perf_counter() - t0

    results: dict[str, dict] = {}
    skipped = {}
    for rows in args.sizes:
        path = dataset(rows)
        # Needs: the two columns in memory a few times over (pandas + copies to the workers).
        need = path.stat().st_size * 0.5
        if need > psutil.virtual_memory().available * 0.5:
            skipped[rows] = f"needs ~{need / 2**30:.1f} GiB, more than half the free memory"
            print(f"skip {rows:,}: {skipped[rows]}")
            continue
        for name, engine in engines.ENGINES.items():
            loads, computes = [], []
            ref = None
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                data = engine.load(path, spark=spark) if name == "pyspark" else engine.load(path)
                t1 = time.perf_counter()
                out = engine.compute(data)
                t2 = time.perf_counter()
                loads.append(t1 - t0)
                computes.append(t2 - t1)
                if name == "pyspark":
                    data.unpersist()
                ref = out
                del data
            results.setdefault(name, {})[rows] = {
                "load_s": round(median(loads), 3),
                "compute_s": round(median(computes), 3),
                "total_s": round(median([a + b for a, b in zip(loads, computes, strict=True)]), 3),
                "years": len(ref),
            }
            print(f"{rows:>10,} {name:<16} {results[name][rows]}", flush=True)
    spark.stop()
    cluster.stop()  # the world's own

    sizes = [s for s in args.sizes if s not in skipped]
    payload = {
        "benchmark": "mean Age per Year over athlete_events, by engine and size",
        "repeats": args.repeats,
        "spark_session_startup_s": round(spark_startup, 2),
        "results": results,
        "skipped": skipped,
        "machine": machine(),
    }
    header = "| engine | " + " | ".join(f"{s:,} rows: load + compute = total (s)" for s in sizes) + " |"
    lines = [header, "|---" * (len(sizes) + 1) + "|"]
    for name, by_size in results.items():
        cells = [f"{v['load_s']:.2f} + {v['compute_s']:.2f} = **{v['total_s']:.2f}**" for v in by_size.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    md = (
        "# athlete_events: mean Age per Year by engine\n\n"
        f"Median of {args.repeats}; {machine()['cpus']} cores. PySpark on the local standalone cluster "
        f"(one 2-core worker); its session start-up ({spark_startup:.1f} s) is not in the table.\n\n"
        + "\n".join(lines)
        + "\n"
        + "".join(f"\nSkipped {s:,} rows: {why}." for s, why in skipped.items())
        + "\n"
    )
    write_results("athlete_engines", payload, md)
    plot(results, sizes)


def plot(results: dict, sizes: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, by_size in results.items():
        xs = [s for s in sizes if s in by_size]
        ax.plot(xs, [by_size[s]["total_s"] for s in xs], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows")
    ax.set_ylabel("load + compute, seconds (median)")
    ax.set_title("Mean Age per Year over athlete_events")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "athlete_engines.png", dpi=110)


if __name__ == "__main__":
    main()
