"""Rebuild the project's own sample of real TLC trips from the shared samples.

    python data/make_sample.py [--shared ../shared/data/nyc-taxi] [--out data/nyc-taxi]

Rows are taken, not changed: a fixed-seed random choice of row indices per month, kept in
file order, written with the source file's own Arrow schema (Parquet, zstd). The month the
demo replays (``FULL_MONTH``) is kept whole, so a replay of its length needs no repeats.
Run twice, it writes the same rows; a test checks the shipped files against a rebuild.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

__all__ = ["FULL_MONTH", "ROWS_PER_MONTH", "SEED", "make_sample"]

ROWS_PER_MONTH = 2_000
FULL_MONTH = "2019-10"  # the demo's replay month: all of its rows
SEED = 20_181_001
TABLES = ("taxi_zone_lookup.csv", "taxi_zone_centroids.csv")


def make_sample(shared: Path, out: Path) -> list[Path]:
    """Write the sample into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for source in sorted(shared.glob("yellow_tripdata_sample_*.parquet")):
        table = pq.read_table(source)
        month = source.stem.rsplit("_", 1)[-1]
        if month != FULL_MONTH and table.num_rows > ROWS_PER_MONTH:
            # one generator per month, seeded by its name: a month's rows never depend on
            # which other months are present
            rng = np.random.default_rng([SEED, int(month.replace("-", ""))])
            rows = np.sort(rng.choice(table.num_rows, ROWS_PER_MONTH, replace=False))
            table = table.take(rows)
        target = out / source.name
        pq.write_table(table, target, compression="zstd")
        written.append(target)
    for name in TABLES:
        shutil.copyfile(shared / name, out / name)
        written.append(out / name)
    return written


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=here.parents[1] / "shared" / "data"
                        / "nyc-taxi", help="the shared TLC samples (10,000 trips a month)")
    parser.add_argument("--out", type=Path, default=here / "nyc-taxi")
    args = parser.parse_args()
    files = make_sample(args.shared, args.out)
    size = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files, {size / 1e6:.1f} MB, into {args.out}")


if __name__ == "__main__":
    main()
