"""Reads exported files with pyarrow, Polars and DuckDB, as analysts would, for the Rust tests.

usage: read_exports.py ARROW_FILE PARQUET_FILE
stdout: one JSON object with what each reader saw.
"""
import json
import sys

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq


def main() -> None:
    arrow_path, parquet_path = sys.argv[1], sys.argv[2]
    with pa.memory_map(arrow_path) as source:
        reader = ipc.open_file(source)
        arrow_table = reader.read_all()
        arrow_footer = {k.decode(): v.decode() for k, v in (reader.metadata or {}).items()}
    parquet_file = pq.ParquetFile(parquet_path)
    parquet_table = parquet_file.read()
    parquet_meta = {k.decode(): v.decode() for k, v in (parquet_file.metadata.metadata or {}).items()}
    polars_frame = pl.read_parquet(parquet_path)
    polars_ipc = pl.read_ipc(arrow_path)
    duck = duckdb.connect()
    duck_rows = duck.execute(f"SELECT count(*) FROM read_parquet('{parquet_path}')").fetchone()[0]
    duck_arrow_rows = duck.execute("SELECT count(*) FROM arrow_table").fetchone()[0]
    rows = sorted(arrow_table.to_pylist(), key=lambda r: r["id"])
    out = {
        "arrow_rows": arrow_table.num_rows,
        "arrow_footer": arrow_footer,
        "arrow_schema": {f.name: str(f.type) for f in arrow_table.schema},
        "parquet_rows": parquet_table.num_rows,
        "parquet_footer_rows": parquet_file.metadata.num_rows,
        "parquet_metadata": {k: v for k, v in parquet_meta.items() if k.startswith("agenttrace")},
        "parquet_compression": parquet_file.metadata.row_group(0).column(0).compression,
        "parquet_equals_arrow": parquet_table.sort_by("id").equals(arrow_table.sort_by("id")),
        "polars_rows": polars_frame.height,
        "polars_ipc_rows": polars_ipc.height,
        "polars_start_time_dtype": str(polars_frame.schema["start_time"]),
        "duckdb_parquet_rows": duck_rows,
        "duckdb_arrow_rows": duck_arrow_rows,
        "rows": [
            {
                "id": r["id"],
                "name": r["name"],
                "start_time_us": int(r["start_time"].timestamp() * 1_000_000) if r["start_time"] else None,
                "start_time_exact": r["start_time"].isoformat(timespec="microseconds"),
                "end_time_is_null": r["end_time"] is None,
                "parent_observation_id": r["parent_observation_id"],
                "input": r["input"],
                "model": r["model"],
            }
            for r in rows
        ],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
