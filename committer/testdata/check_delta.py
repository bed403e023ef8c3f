"""Reads a Delta table with delta-rs and prints what it sees as JSON.

Usage: check_delta.py TABLE_PATH APP_ID [APP_ID ...]

The committer's tests compare the output with what they committed, so a
table the committer writes is proven readable by an independent reader.
"""

import json
import sys

import pyarrow

from deltalake import DeltaTable


def main() -> None:
    path, app_ids = sys.argv[1], sys.argv[2:]
    dt = DeltaTable(path)
    table = dt.to_pyarrow_table()
    ids = table.column("id").to_pylist()
    names = table.column("name").to_pylist()
    adds = pyarrow.table(dt.get_add_actions(flatten=True)).to_pydict()
    protocol = dt.protocol()
    out = {
        "version": dt.version(),
        "rows": sorted([i, n] for i, n in zip(ids, names)),
        "files": sorted(adds["path"]),
        "numRecords": sum(n or 0 for n in adds.get("num_records", [])),
        "txns": {app: dt.transaction_version(app) for app in app_ids},
        "protocol": [protocol.min_reader_version, protocol.min_writer_version],
        "schema": [f.name for f in dt.schema().fields],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    # delta-rs can abort the interpreter while its runtime threads shut down
    # ("terminate called without an active exception") after the work is
    # done; leave without that teardown once the result is written.
    import os
    import sys
    import traceback

    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
