"""Reads a compacted Delta table with delta-rs and prints what it sees.

Usage: read_delta.py TABLE_PATH

Prints JSON: the table version, its number of active files, and the sorted
_offset and _lsn values of its rows, which the compaction tests compare
with the rows they wrote.
"""

import json
import sys

from deltalake import DeltaTable


def main() -> None:
    dt = DeltaTable(sys.argv[1])
    table = dt.to_pyarrow_table()
    out = {
        "version": dt.version(),
        "files": len(dt.file_uris()),
        "offsets": sorted(table.column("_offset").to_pylist()),
        "lsns": sorted(table.column("_lsn").to_pylist()),
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
