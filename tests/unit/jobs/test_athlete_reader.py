"""The athlete_age_by_year job's reader (``read_athletes_spark``): sentinels and quoting of the athlete file."""

from __future__ import annotations

from include.athletes.engines import read_athletes_spark
from include.athletes.generate import COLUMNS

HEADER = ",".join(f'"{c}"' for c in COLUMNS)


def test_na_is_missing_only_where_the_dataset_means_missing(spark, tmp_path):
    path = tmp_path / "athlete_events.csv"
    path.write_bytes(
        (
            HEADER + "\r\n"
            '"1","NA","M",NA,NA,NA,"NA","NA","1992 Summer",1992,"Summer","NA","Judo","Judo Men\'s Lightweight",NA\r\n'
            '"2","Cornelia ""Cor"" Aalten","F",18,168,57.5,"Namibia","NAM","1992 Summer",1992,"Summer","Barcelona",'
            '"Athletics","Athletics Women\'s 100 metres","Gold"\r\n'
        ).encode()
    )
    rows = [r.asDict() for r in read_athletes_spark(spark, path).orderBy("ID").collect()]
    assert rows[0] | {"Games": None, "Event": None} == {
        "ID": 1, "Name": "NA", "Sex": "M", "Age": None, "Height": None, "Weight": None, "Team": "NA", "NOC": "NA",
        "Games": None, "Year": 1992, "Season": "Summer", "City": "NA", "Sport": "Judo", "Event": None, "Medal": None,
    }  # fmt: skip
    assert (rows[1]["Name"], rows[1]["Age"], rows[1]["Weight"], rows[1]["Medal"]) == (
        'Cornelia "Cor" Aalten',
        18,
        57.5,
        "Gold",
    )
