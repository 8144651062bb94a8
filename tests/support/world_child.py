"""A benchmark's world, cut small, for the signal tests: ``python -m tests.support.world_child PROGRESS``.

Enters :func:`bench.common.own_world` as every benchmark does, then starts the world's three storage
emulators (moto, gcp-storage-emulator, Azurite: each a server in a session of its own, like Spark and
Airflow) side by side in threads, as ``stack.__main__.up`` starts the stack, and waits for a signal.
Progress goes to the file ``PROGRESS``, one line each: the world's state directory, ``starting`` once
the starts are submitted, ``ready`` once all three answer.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def main(progress: Path) -> None:
    from bench.common import own_world
    from stack.emulators import emulators

    with own_world("signals") as env:
        progress.write_text(env["TRICLOUD_STATE_DIR"] + "\n")
        with ThreadPoolExecutor(3) as pool:
            started = [pool.submit(proc.start, reuse=False) for proc in emulators(env)]
            with progress.open("a") as out:
                out.write("starting\n")
            for future in started:
                future.result()
        with progress.open("a") as out:
            out.write("ready\n")
        time.sleep(600)  # ended by the test's signal


if __name__ == "__main__":
    main(Path(sys.argv[1]))
