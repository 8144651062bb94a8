"""Mean Age per Year of ``athlete_events`` — one function per engine, same signature, same result.

Every engine loads only ``Year`` and ``Age`` (what the question needs), treats ``NA`` as missing, and
excludes missing ages from the mean. Each result is a ``pandas.Series`` named ``mean_age``, indexed by
``Year`` (int64), sorted. ``load`` and ``compute`` are separate so benchmarks can time them apart.

The multiprocessing version is the classic teaching approach — ``Pool(4).map(take_mean_age, groups)``
over a pandas groupby — written with numpy arrays, not DataFrames, crossing the process boundary.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

USECOLS = ["Year", "Age"]


def _series(years, means) -> pd.Series:
    s = pd.Series(
        np.asarray(means, dtype="float64"),
        index=pd.Index(np.asarray(years, dtype="int64"), name="Year"),
        name="mean_age",
    )
    return s.sort_index()


# -- pandas (reference) ----------------------------------------------------------------------------
def load_pandas(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(
        path, usecols=USECOLS, na_values=["NA"], keep_default_na=False, dtype={"Year": "int64", "Age": "float64"}
    )


def compute_pandas(df: pd.DataFrame) -> pd.Series:
    means = df.groupby("Year")["Age"].mean().dropna()
    return _series(means.index, means.values)


# -- multiprocessing.Pool over a pandas groupby -----------------------------------------------------
def take_mean_age(year_and_ages: tuple[int, np.ndarray]) -> tuple[int, float]:
    """The classic worker: one Year's ages in, (Year, mean Age) out. NaN ages are excluded."""
    year, ages = year_and_ages
    ages = ages[~np.isnan(ages)]
    return year, float(ages.mean()) if ages.size else float("nan")


def compute_multiprocessing(df: pd.DataFrame, processes: int = 4) -> pd.Series:
    groups = [(int(year), grp.to_numpy()) for year, grp in df.groupby("Year")["Age"]]
    # Not "fork": forking a process that runs threads (dask, a JVM gateway, …) can deadlock the child.
    # The forkserver starts clean workers; they only need this module's function.
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(processes) as pool:
        results = pool.map(take_mean_age, groups)
    results = [(y, m) for y, m in results if not np.isnan(m)]
    return _series([y for y, _ in results], [m for _, m in results])


# -- dask.dataframe, 4 partitions -------------------------------------------------------------------
def load_dask(path: str | Path, partitions: int = 4):
    import dask.dataframe as dd

    df = dd.read_csv(
        str(path), usecols=USECOLS, na_values=["NA"], keep_default_na=False, dtype={"Year": "int64", "Age": "float64"}
    )
    return df.repartition(npartitions=partitions).persist()


def compute_dask(df) -> pd.Series:
    means = df.groupby("Year")["Age"].mean().compute().dropna()
    return _series(means.index, means.values)


# -- DuckDB -----------------------------------------------------------------------------------------
def load_duckdb(path: str | Path):
    import duckdb

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE athletes AS SELECT Year::BIGINT AS Year, Age::DOUBLE AS Age "
        "FROM read_csv(?, header = true, nullstr = 'NA')",
        [str(path)],
    )
    return con


def compute_duckdb(con) -> pd.Series:
    rows = con.execute(
        "SELECT Year, avg(Age) FROM athletes GROUP BY Year HAVING count(Age) > 0 ORDER BY Year"
    ).fetchall()
    return _series([r[0] for r in rows], [r[1] for r in rows])


# -- Polars -----------------------------------------------------------------------------------------
def load_polars(path: str | Path):
    import polars as pl

    return pl.read_csv(path, columns=USECOLS, null_values="NA", schema_overrides={"Year": pl.Int64, "Age": pl.Float64})


def compute_polars(df) -> pd.Series:
    import polars as pl

    out = df.group_by("Year").agg(pl.col("Age").mean()).drop_nulls().sort("Year")
    return _series(out["Year"].to_numpy(), out["Age"].to_numpy())


#: The columns where the athlete file writes ``NA`` for "missing" (numbers, and Medal for "no medal").
SENTINEL_COLUMNS = frozenset({"Age", "Height", "Weight", "Medal"})


# -- PySpark ----------------------------------------------------------------------------------------
def spark_session(master: str | None = None, app_name: str = "athlete_age_by_year"):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name).config("spark.sql.session.timeZone", "UTC")
    if master:
        builder = builder.master(master)
    return builder.getOrCreate()


def read_athletes_spark(spark, path: str | Path):
    """The whole file with a typed schema, as the classic example reads it (FAILFAST on a bad value).

    RFC 4180 quoting (``""`` inside a quoted name is a quote). ``NA`` means missing only in the columns
    where the dataset uses it (``SENTINEL_COLUMNS``); a name, team or code ``NA`` stays a value.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from include.athletes.generate import COLUMNS

    ints = {"ID", "Age", "Height", "Year"}
    raw = spark.read.csv(
        str(path),
        header=True,
        schema=T.StructType([T.StructField(c, T.StringType()) for c in COLUMNS]),
        mode="FAILFAST",
        quote='"',
        escape='"',
    )
    typed = []
    for c in COLUMNS:
        col = F.when(F.col(c) != "NA", F.col(c)) if c in SENTINEL_COLUMNS else F.col(c)
        typed.append(col.cast("int" if c in ints else "double" if c == "Weight" else "string").alias(c))
    return raw.select(*typed)


def mean_age_spark_df(df):
    """``groupBy('Year').mean('Age')``, ordered by Year (a Spark DataFrame)."""
    return df.groupBy("Year").mean("Age").withColumnRenamed("avg(Age)", "mean_age").dropna().orderBy("Year")


def load_spark(path: str | Path, spark=None):
    spark = spark or spark_session()
    df = read_athletes_spark(spark, path).select("Year", "Age").cache()
    df.count()
    return df


def compute_spark(df) -> pd.Series:
    rows = mean_age_spark_df(df).collect()
    return _series([r["Year"] for r in rows], [r["mean_age"] for r in rows])


@dataclass(frozen=True)
class Engine:
    name: str
    load: Callable[..., Any]
    compute: Callable[[Any], pd.Series]

    def run(self, path: str | Path, **load_kwargs: Any) -> pd.Series:
        return self.compute(self.load(path, **load_kwargs))


ENGINES = {
    "pandas": Engine("pandas", load_pandas, compute_pandas),
    "multiprocessing": Engine("multiprocessing", load_pandas, compute_multiprocessing),
    "dask": Engine("dask", load_dask, compute_dask),
    "duckdb": Engine("duckdb", load_duckdb, compute_duckdb),
    "polars": Engine("polars", load_polars, compute_polars),
    "pyspark": Engine("pyspark", load_spark, compute_spark),
}


def mean_age_by_year(engine: str, path: str | Path, **load_kwargs: Any) -> pd.Series:
    """Year -> mean Age with the named engine."""
    try:
        return ENGINES[engine].run(path, **load_kwargs)
    except KeyError:
        raise ValueError(f"unknown engine {engine!r}: choose one of {sorted(ENGINES)}") from None
