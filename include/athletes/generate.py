"""Write a synthetic ``athlete_events.csv`` with exactly the schema and format of the Kaggle file
"120 years of Olympic history" (271,116 rows; ``NA`` for missing values; strings quoted, numbers not).

Deterministic from a seed, any row count, realistic shapes: Games 1896–2016 (Summer and Winter,
none in 1916/1940/1944), more athletes in later Games, women's share rising, ages mostly 15–40,
missing ages/heights/weights more common in early Games.

    python -m include.athletes.generate --rows 271116 --out lake/raw/athletes/athlete_events.csv
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

COLUMNS = [
    "ID",
    "Name",
    "Sex",
    "Age",
    "Height",
    "Weight",
    "Team",
    "NOC",
    "Games",
    "Year",
    "Season",
    "City",
    "Sport",
    "Event",
    "Medal",
]
REAL_ROWS = 271_116

SUMMER = {
    1896: "Athina",
    1900: "Paris",
    1904: "St. Louis",
    1906: "Athina",
    1908: "London",
    1912: "Stockholm",
    1920: "Antwerpen",
    1924: "Paris",
    1928: "Amsterdam",
    1932: "Los Angeles",
    1936: "Berlin",
    1948: "London",
    1952: "Helsinki",
    1956: "Melbourne",
    1960: "Roma",
    1964: "Tokyo",
    1968: "Mexico City",
    1972: "Munich",
    1976: "Montreal",
    1980: "Moskva",
    1984: "Los Angeles",
    1988: "Seoul",
    1992: "Barcelona",
    1996: "Atlanta",
    2000: "Sydney",
    2004: "Athina",
    2008: "Beijing",
    2012: "London",
    2016: "Rio de Janeiro",
}
WINTER = {
    1924: "Chamonix",
    1928: "Sankt Moritz",
    1932: "Lake Placid",
    1936: "Garmisch-Partenkirchen",
    1948: "Sankt Moritz",
    1952: "Oslo",
    1956: "Cortina d'Ampezzo",
    1960: "Squaw Valley",
    1964: "Innsbruck",
    1968: "Grenoble",
    1972: "Sapporo",
    1976: "Innsbruck",
    1980: "Lake Placid",
    1984: "Sarajevo",
    1988: "Calgary",
    1992: "Albertville",
    1994: "Lillehammer",
    1998: "Nagano",
    2002: "Salt Lake City",
    2006: "Torino",
    2010: "Vancouver",
    2014: "Sochi",
}
NOCS = [
    ("United States", "USA"),
    ("France", "FRA"),
    ("Great Britain", "GBR"),
    ("Italy", "ITA"),
    ("Germany", "GER"),
    ("Canada", "CAN"),
    ("Japan", "JPN"),
    ("Sweden", "SWE"),
    ("Australia", "AUS"),
    ("Hungary", "HUN"),
    ("Netherlands", "NED"),
    ("Switzerland", "SUI"),
    ("Soviet Union", "URS"),
    ("China", "CHN"),
    ("Norway", "NOR"),
    ("Finland", "FIN"),
    ("Spain", "ESP"),
    ("Brazil", "BRA"),
    ("Poland", "POL"),
    ("Kenya", "KEN"),
    ("Korea, South", "KOR"),
    ("Mexico", "MEX"),
]
SUMMER_EVENTS = [
    ("Athletics", "Athletics Men's 100 metres"),
    ("Athletics", "Athletics Women's Marathon"),
    ("Swimming", "Swimming Men's 200 metres Freestyle"),
    ("Gymnastics", "Gymnastics Women's Individual All-Around"),
    ("Rowing", "Rowing Men's Coxed Eights"),
    ("Basketball", "Basketball Men's Basketball"),
    ("Fencing", "Fencing Men's Foil, Individual"),
    ("Cycling", "Cycling Women's Road Race, Individual"),
    ("Football", "Football Men's Football"),
    ("Shooting", "Shooting Men's Trap"),
    ("Equestrianism", "Equestrianism Mixed Jumping, Individual"),
    ("Sailing", "Sailing Mixed Two Person Dinghy"),
]
WINTER_EVENTS = [
    ("Alpine Skiing", "Alpine Skiing Men's Downhill"),
    ("Ice Hockey", "Ice Hockey Men's Ice Hockey"),
    ("Speed Skating", "Speed Skating Women's 500 metres"),
    ("Figure Skating", "Figure Skating Women's Singles"),
    ("Biathlon", "Biathlon Men's 20 kilometres"),
    ("Curling", "Curling Women's Curling"),
]
FIRST_M = ["John", "Pierre", "Hans", "Giovanni", "Erik", "Takashi", "Carlos", "Ivan", "Li", "David", "Arnaud", "Lars"]
FIRST_F = ["Mary", "Anna", "Sofia", "Ingrid", "Yuki", "Maria", "Elena", "Wei", "Sarah", "Chantal", "Greta", "Ewa"]
LAST = [
    "Smith",
    "Dubois",
    "Müller",
    "Rossi",
    "Andersson",
    "Tanaka",
    "García",
    "Petrov",
    "Wang",
    "Johnson",
    "Lindqvist",
    "Kowalski",
    "Nagy",
    "O'Connor",
    "van der Berg",
]


def _games() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    years, season, city = [], [], []
    for table, name in ((SUMMER, "Summer"), (WINTER, "Winter")):
        for y, c in table.items():
            years.append(y)
            season.append(name)
            city.append(c)
    return np.array(years), np.array(season), np.array(city)


def _quote(values: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add('"', np.char.replace(values.astype(str), '"', '""')), '"')


def _num(values: np.ndarray, missing: np.ndarray, fmt: str = "{:d}") -> np.ndarray:
    out = np.array([fmt.format(v) for v in values.tolist()], dtype=object)
    out[missing] = "NA"
    return out


def chunk_lines(rng: np.random.Generator, first_id: int, rows: int, athletes: int) -> list[str]:
    years, seasons, cities = _games()
    weight = np.where(seasons == "Summer", 1.0, 0.3) * np.clip(years - 1880.0, 1, None) ** 1.6
    g = rng.choice(len(years), rows, p=weight / weight.sum())
    year, season, city = years[g], seasons[g], cities[g]
    female = rng.random(rows) < np.clip(0.02 + (year - 1896) / 120 * 0.45, 0, 0.46)
    early = np.clip((1960 - year) / 64, 0, 1)  # 1 in 1896, 0 from 1960
    age = np.clip(np.round(rng.normal(25.5 - 1.5 * female, 5.2, rows)), 10, 72).astype(int)
    age_na = rng.random(rows) < 0.01 + 0.25 * early
    height = np.round(rng.normal(np.where(female, 168, 180), 9, rows)).astype(int)
    height_na = rng.random(rows) < 0.05 + 0.75 * early
    weight_kg = np.round(rng.normal(np.where(female, 60, 76), 11, rows) * 2) / 2
    weight_na = height_na | (rng.random(rows) < 0.02)
    noc = rng.integers(0, len(NOCS), rows)
    ids = np.sort(rng.integers(first_id, first_id + athletes, rows))
    first = np.where(female, np.array(FIRST_F)[ids % len(FIRST_F)], np.array(FIRST_M)[ids % len(FIRST_M)])
    names = np.char.add(np.char.add(first, " "), np.array(LAST)[(ids // 13) % len(LAST)])
    s_ev = rng.integers(0, len(SUMMER_EVENTS), rows)
    w_ev = rng.integers(0, len(WINTER_EVENTS), rows)
    is_summer = season == "Summer"
    sport = np.where(
        is_summer, np.array([e[0] for e in SUMMER_EVENTS])[s_ev], np.array([e[0] for e in WINTER_EVENTS])[w_ev]
    )
    event = np.where(
        is_summer, np.array([e[1] for e in SUMMER_EVENTS])[s_ev], np.array([e[1] for e in WINTER_EVENTS])[w_ev]
    )
    medal_draw = rng.random(rows)
    medal = np.where(
        medal_draw < 0.05,
        '"Gold"',
        np.where(medal_draw < 0.10, '"Silver"', np.where(medal_draw < 0.147, '"Bronze"', "NA")),
    )
    cols = [
        _quote(ids),
        _quote(names),
        _quote(np.where(female, "F", "M")),
        _num(age, age_na),
        _num(height, height_na),
        _num(weight_kg, weight_na, "{:g}"),
        _quote(np.array([NOCS[i][0] for i in noc])),
        _quote(np.array([NOCS[i][1] for i in noc])),
        _quote(np.char.add(np.char.add(year.astype(str), " "), season)),
        year.astype(str),
        _quote(season),
        _quote(city),
        _quote(sport),
        _quote(event),
        medal,
    ]
    table = np.stack([np.asarray(c, dtype=object) for c in cols], axis=1)
    return [",".join(r) for r in table.tolist()]


def generate(out: str | Path, rows: int = REAL_ROWS, seed: int = 2016, chunk: int = 500_000) -> Path:
    """Write the file (atomically); the same rows and seed give byte-identical output."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    athletes = max(1, rows // 2)
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(",".join(f'"{c}"' for c in COLUMNS) + "\n")
        done = 0
        while done < rows:
            n = min(chunk, rows - done)
            rng = np.random.default_rng([seed, done])
            first_id = 1 + done * athletes // rows
            f.write("\n".join(chunk_lines(rng, first_id, n, max(1, n // 2))) + "\n")
            done += n
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=REAL_ROWS)
    parser.add_argument("--seed", type=int, default=2016)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    print(generate(args.out, args.rows, args.seed))


if __name__ == "__main__":
    main()
