"""Benchmark: replication to S3, GCS and Azure Blob (emulators) versus raw SDK uploads, in one run.

Per cloud: a first replication (digest cache cold: the files are read, hashed and sent) against a raw
SDK upload of the same files (same 4-thread pool, no hashing, no metadata, no verification); then the
three clouds **in parallel** against the three raw uploads in parallel to the same three emulators (the
goal of issue 16: ratio raw ÷ replicate ≥ 0.9). Each figure is the median of ``--repeat`` runs,
raw and replicate interleaved so a busy neighbour hurts both alike. Also: an unchanged re-run vs the
first run; restore (download + verify + publish) vs a raw download of the same bytes.

Today's and the new figure side by side: run this file once against the code before the change with
``--label before`` (it writes ``bench/results/replication_before.json``), then against the new code;
the second run reads the first and prints both.

    flock /tmp/tricloud-heavy.lock python -m bench.replication --mib 230
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.common import RESULTS, machine, own_world, write_results
from include import lake, replication

HOUR = datetime(2026, 6, 1, 12, tzinfo=UTC)
CLOUDS = ("s3", "gcs", "azure")


def make_hour(root: Path, mib: int, files: int = 10) -> None:
    """An hour whose outputs total about ``mib`` MiB: incompressible parquet parts spread over datasets."""
    rng = np.random.default_rng(1)
    rows = mib * 2**20 // files // 16
    for i in range(files):
        ds = lake.HOURLY_OUTPUTS[i % len(lake.HOURLY_OUTPUTS)]
        part = lake.partition(root, ds, HOUR).path
        part.mkdir(parents=True, exist_ok=True)
        table = pa.table({"a": rng.random(rows), "b": rng.integers(0, 1 << 62, rows)})
        pq.write_table(table, part / f"part-{i:05d}.parquet", compression="none")


def fresh_store(cloud: str):
    from tricloud.replication.stores import make_store

    store = make_store(cloud, f"bench-{uuid.uuid4().hex[:10]}")
    store.ensure_bucket()
    return store


def raw_upload(store, files: list[tuple[Path, str]]) -> None:
    """The plain SDK call each cloud documents, with its defaults, through the client the hook built."""
    if store.name == "s3":
        client = store.client

        def put(item):
            client.upload_file(str(item[0]), store.bucket, item[1])
    elif store.name == "gcs":
        bucket = store.hook.get_conn().bucket(store.bucket)

        def put(item):
            bucket.blob(item[1]).upload_from_filename(str(item[0]))
    else:
        container = store.hook.get_conn().get_container_client(store.bucket)

        def put(item):
            with open(item[0], "rb") as f:
                container.upload_blob(item[1], f, overwrite=True, max_concurrency=4)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, files))


def raw_download(store, keys: list[str], dest: Path) -> None:
    if store.name == "s3":

        def get(key):
            store.client.download_file(store.bucket, key, str(dest / key.replace("/", "_")))
    elif store.name == "gcs":
        bucket = store.hook.get_conn().bucket(store.bucket)

        def get(key):
            bucket.blob(key).download_to_filename(str(dest / key.replace("/", "_")))
    else:
        container = store.hook.get_conn().get_container_client(store.bucket)

        def get(key):
            with open(dest / key.replace("/", "_"), "wb") as f:
                container.download_blob(key, max_concurrency=4).readinto(f)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(get, keys))


def timed(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def replicate_cold(stores: list, root: Path) -> None:
    """A first replication: digest cache removed, so every file is read (and hashed) in this run.

    With several stores: the new code sends each file to all of them from one read
    (``replicate_hour_to``); the code before the change hashed the hour once, then ran one
    ``replicate_hour`` per cloud side by side (as the DAG's three tasks do).
    """
    shutil.rmtree(root / ".cache", ignore_errors=True)
    if len(stores) == 1:
        replication.replicate_hour(stores[0], root, HOUR)
    elif hasattr(replication, "replicate_hour_to"):
        replication.replicate_hour_to(stores, root, HOUR)
    else:
        replication.hour_digests(root, HOUR)
        with ThreadPoolExecutor(len(stores)) as pool:
            list(pool.map(lambda s: replication.replicate_hour(s, root, HOUR), stores))


def raw_parallel(stores: list, files: list[tuple[Path, str]]) -> None:
    with ThreadPoolExecutor(len(stores)) as pool:
        list(pool.map(lambda s: raw_upload(s, files), stores))


def compare(clouds: tuple[str, ...], root: Path, files, repeat: int) -> dict:
    """Median seconds of raw uploads and of a cold replication to ``clouds`` (in parallel when several)."""
    raw, ours = [], []
    for _ in range(repeat):
        raw.append(timed(raw_parallel, [fresh_store(c) for c in clouds], files))
        ours.append(timed(replicate_cold, [fresh_store(c) for c in clouds], root))
    raw_s, ours_s = statistics.median(raw), statistics.median(ours)
    return {
        "raw_upload_s": round(raw_s, 2),
        "replicate_s": round(ours_s, 2),
        "throughput_ratio": round(raw_s / ours_s, 2),
        "raw_runs_s": [round(x, 2) for x in raw],
        "replicate_runs_s": [round(x, 2) for x in ours],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=230, help="size of the hour's outputs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--label", choices=("before", "after"), default="after")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md/.png from the .json files")
    args = parser.parse_args(argv)
    if args.render:
        payload = json.loads((RESULTS / "replication.json").read_text())
        before_file = RESULTS / "replication_before.json"
        payload["before"] = json.loads(before_file.read_text()) if before_file.exists() else None
        write_results("replication", payload, markdown(payload))
        plot(payload)
        return
    with own_world("replication") as env:
        run(env, args)


def run(env: dict[str, str], args: argparse.Namespace) -> None:
    from stack.emulators import emulators

    for proc in emulators(env):
        proc.start(reuse=False)

    work = Path(tempfile.mkdtemp(prefix="bench-repl-"))
    root = work / "lake"
    make_hour(root, args.mib)
    manifest = replication.build_manifest(root, HOUR)
    files = [(root / f["path"], f["path"]) for f in manifest["files"]]
    mib = manifest["bytes"] / 2**20
    print(f"hour of {len(files)} files, {mib:.0f} MiB")

    per_cloud = {}
    for cloud in CLOUDS:
        fig = compare((cloud,), root, files, args.repeat)
        store = fresh_store(cloud)
        replicate_cold([store], root)
        rerun_s = timed(replication.replicate_hour, store, root, HOUR)
        dl_dir = work / f"dl-{cloud}"
        dl_dir.mkdir()
        raw_dl_s = timed(raw_download, store, [f[1] for f in files], dl_dir)
        shutil.rmtree(dl_dir)
        target = work / f"restore-{cloud}"
        target.mkdir()
        restore_s = timed(replication.restore_hour, store, HOUR, lake_root=target)
        shutil.rmtree(target)
        per_cloud[cloud] = {
            **fig,
            "raw_upload_mib_s": round(mib / fig["raw_upload_s"], 1),
            "replicate_mib_s": round(mib / fig["replicate_s"], 1),
            "unchanged_rerun_s": round(rerun_s, 3),
            "rerun_over_first": round(rerun_s / fig["replicate_s"], 4),
            "raw_download_s": round(raw_dl_s, 2),
            "restore_s": round(restore_s, 2),
            "restore_over_raw_download": round(restore_s / raw_dl_s, 2),
        }
        print(cloud, json.dumps(per_cloud[cloud]), flush=True)
    three = compare(CLOUDS, root, files, args.repeat)
    print("three in parallel", json.dumps(three), flush=True)

    payload = {
        "benchmark": "replication of one hour to three cloud emulators vs raw SDK uploads of the same files",
        "label": args.label,
        "hour_mib": round(mib, 1),
        "files": len(files),
        "repeat": args.repeat,
        "per_cloud": per_cloud,
        "three_clouds_parallel": three,
        "targets": {"throughput_ratio": ">= 0.9", "rerun_over_first": "<= 0.05", "restore_over_raw_download": "<= 2"},
        "machine": machine(),
    }
    shutil.rmtree(work)
    if args.label == "before":
        write_results("replication_before", payload, f"```\n{json.dumps(payload, indent=2)}\n```\n")
        return
    before_file = RESULTS / "replication_before.json"
    payload["before"] = json.loads(before_file.read_text()) if before_file.exists() else None
    write_results("replication", payload, markdown(payload))
    plot(payload)


def _ratio(payload: dict | None, cloud: str) -> float | None:
    if not payload:
        return None
    fig = payload["three_clouds_parallel"] if cloud == "three" else payload["per_cloud"][cloud]
    return fig["throughput_ratio"]


def markdown(p: dict) -> str:
    b = p["before"]
    rows = []
    for cloud in (*CLOUDS, "three"):
        now = p["three_clouds_parallel"] if cloud == "three" else p["per_cloud"][cloud]
        then = (b["three_clouds_parallel"] if cloud == "three" else b["per_cloud"][cloud]) if b else None
        name = "**three in parallel**" if cloud == "three" else cloud
        rows.append(
            f"| {name} | {then['raw_upload_s'] if then else '–'} | {then['replicate_s'] if then else '–'} | "
            f"{_ratio(b, cloud) or '–'} | {now['raw_upload_s']} | {now['replicate_s']} | **{_ratio(p, cloud)}** |"
        )
    extra = "\n".join(
        f"| {c} | {v['unchanged_rerun_s']} (**{v['rerun_over_first']}**) | {v['raw_download_s']} | "
        f"{v['restore_s']} (**{v['restore_over_raw_download']}**) |"
        for c, v in p["per_cloud"].items()
    )
    return (
        f"# Replication benchmark ({p['hour_mib']:.0f} MiB hour, {p['files']} files, emulators on 127.0.0.1)\n\n"
        f"Ratio = raw SDK upload s ÷ replicate s (goal ≥ 0.9), medians of {p['repeat']} interleaved runs; "
        "“three in parallel” = the three clouds at once against raw uploads of the same files to the same "
        "three emulators at once. Today = the code before issue 16 (`replication_before.json`), "
        "measured on the same machine just before.\n\n"
        "| cloud | today: raw s | today: replicate s | today: ratio | new: raw s | new: replicate s | new: ratio |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "| cloud | unchanged re-run s (÷ first, ≤ 0.05) | raw download s | restore s (÷ raw, ≤ 2) |\n"
        "|---|---|---|---|\n" + extra + "\n\n"
        "Replicate (cold digest cache) = read each file once computing SHA-256 + MD5, send those bytes to "
        "every cloud that lacks them with the checksum metadata (the cloud checks the MD5 where it can), "
        "read back each object's metadata, manifest last. Restore = download, SHA-256 check against the "
        "manifest, atomic publish.\n"
    )


def plot(p: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*CLOUDS, "three"]
    now = [_ratio(p, c) for c in names]
    then = [_ratio(p["before"], c) or 0 for c in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(x - 0.2, then, 0.4, label="today", color="#bbbbbb")
    ax.bar(x + 0.2, now, 0.4, label="new", color="#2b7bba")
    ax.axhline(0.9, color="#c0392b", linestyle="--", linewidth=1, label="goal 0.9")
    ax.set_xticks(x, ["S3", "GCS", "Azure", "three in parallel"])
    ax.set_ylabel("raw SDK upload s ÷ replicate s")
    ax.set_title(f"Replication vs raw SDK upload ({p['hour_mib']:.0f} MiB, {p['files']} files)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "replication.png", dpi=110)


if __name__ == "__main__":
    main()
