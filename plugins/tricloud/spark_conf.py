"""Spark settings for the short, small hourly jobs of this template (measured on 2 cores).

- C1-only JIT and the serial GC start a JVM markedly faster; these jobs live for seconds.
- WARN instead of INFO: every driver log line is streamed through the task's logger, and at
  INFO level that logging cost more CPU than the job itself on a busy 2-core machine.
- One core per job, so the two ingest jobs really run side by side on one 2-core worker
  (by default the first job takes every core and the second waits for resources).
"""

from __future__ import annotations

_FAST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"

SHORT_JOB_CONF: dict[str, str] = {
    "spark.log.level": "WARN",
    "spark.driver.extraJavaOptions": _FAST_JVM,
    "spark.executor.extraJavaOptions": _FAST_JVM,
    "spark.cores.max": "1",
    "spark.executor.cores": "1",
    "spark.executor.memory": "768m",
}
