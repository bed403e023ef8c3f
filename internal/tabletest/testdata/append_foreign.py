"""Appends rows to a Delta table as another writer would, with delta-rs.

Usage: append_foreign.py TABLE_PATH ROWS OFFSET_BASE

Reads the first ROWS rows of the table, gives them _offset values from
OFFSET_BASE up so they stay distinguishable, and appends them with
write_deltalake(mode="append"): a data file the sink did not write, named
and laid out the way delta-rs lays out files, without the sink's tags or
Parquet metadata.
"""

import os
import sys

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake


def main() -> None:
    path, rows, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    table = DeltaTable(path).to_pyarrow_table().slice(0, rows)
    i = table.schema.get_field_index("_offset")
    offsets = pa.array(range(base, base + table.num_rows), type=table.schema.field(i).type)
    table = table.set_column(i, table.schema.field(i), offsets)
    write_deltalake(path, table, mode="append")


if __name__ == "__main__":
    main()
    # Done: skip the interpreter teardown, where delta-rs can abort.
    sys.stdout.flush()
    os._exit(0)
