"""Value-by-value comparison of the sink's tables and the peer's.

Reads every table under both roots with delta-rs (deltalake), each side on
its own, and compares them: the tables present, each table's rows (matched
by _lsn, which is unique per change), its columns and their types, and every
value of every column both sides have. Doubles are compared bit for bit
(a difference reports its distance in ULPs), timestamps as microseconds,
nulls as nulls (JSON null written as the text "null" is a difference).
Nothing is normalised beyond reading.

Prints one JSON object: {"ok", "tables", "rows", "values", "differences":
[...], "differences_total", "kinds": [...]}; at most LIMIT differences are
listed. "kinds" counts every difference by kind (a table's column and what
differs: a null written as the text "null", doubles some ULPs apart, a type,
...), each with its first few examples, so a difference that repeats
across a table is one line with its count, never hidden behind the first
LIMIT.

Usage: compare.py SINK_ROOT PEER_ROOT [LIMIT]
"""

import json
import os
import struct
import sys

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable


def tables_under(root):
    out = []
    for dirpath, dirnames, _ in os.walk(root):
        if "_delta_log" in dirnames:
            out.append(os.path.relpath(dirpath, root))
            dirnames[:] = []
    return sorted(out)


def ulps(a, b):
    def key(x):
        i = struct.unpack("<q", struct.pack("<d", x))[0]
        return i if i >= 0 else -(2**63) - i

    return abs(key(a) - key(b))


def show(v):
    if v is None:
        return None
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (int, str, bool)):
        return v
    return str(v)


def kind_of(d):
    """The kind of a difference: what differs and where."""
    where = d["table"] + ("." + d["column"] if "column" in d else "")
    if "_lsn" not in d:
        what = d["what"]
        if what == "type differs":
            what += ": sink %s, peer %s" % (d["sink"], d["peer"])
        return where + ": " + what
    s, p = d["sink"], d["peer"]
    if s is None and p == "null":
        what = 'sink null, peer the text "null"'
    elif s is None:
        what = "sink null, peer a value"
    elif p is None:
        what = "sink a value, peer null"
    elif "ulps" in d:
        u = d["ulps"]
        what = "doubles %s apart" % ("1 ULP" if u == 1 else "2-16 ULPs" if u <= 16 else "more than 16 ULPs")
    else:
        what = "values differ"
    return where + ": " + what


def main():
    sink_root, peer_root = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    diffs, total, kinds = [], 0, {}
    rows = values = 0

    def differ(d):
        nonlocal total
        total += 1
        if len(diffs) < limit:
            diffs.append(d)
        k = kinds.setdefault(kind_of(d), {"kind": kind_of(d), "count": 0, "examples": []})
        k["count"] += 1
        if len(k["examples"]) < 3:
            k["examples"].append(d)

    st, pt = tables_under(sink_root), tables_under(peer_root)
    for name in sorted(set(st) ^ set(pt)):
        differ({"table": name, "what": "table only in " + ("sink" if name in st else "peer")})
    for name in sorted(set(st) & set(pt)):
        s = DeltaTable(os.path.join(sink_root, name)).to_pyarrow_table()
        p = DeltaTable(os.path.join(peer_root, name)).to_pyarrow_table()
        s = s.sort_by("_lsn")
        p = p.sort_by("_lsn")
        sl, pl = s.column("_lsn").to_pylist(), p.column("_lsn").to_pylist()
        if len(set(sl)) != len(sl) or len(set(pl)) != len(pl):
            differ({"table": name, "what": "duplicate _lsn", "sink_rows": len(sl), "peer_rows": len(pl)})
        if sl != pl:
            ss, ps = set(sl), set(pl)
            only_s, only_p = sorted(ss - ps), sorted(ps - ss)
            differ({"table": name, "what": "rows differ", "sink_rows": len(sl), "peer_rows": len(pl),
                    "only_in_sink": len(only_s), "only_in_peer": len(only_p),
                    "examples": {"sink": only_s[:5], "peer": only_p[:5]}})
            common = sorted(ss & ps)
            s = s.filter(pc.is_in(s.column("_lsn"), pa.array(common, pa.int64())))
            p = p.filter(pc.is_in(p.column("_lsn"), pa.array(common, pa.int64())))
        rows += s.num_rows
        scols = {f.name: f.type for f in s.schema}
        pcols = {f.name: f.type for f in p.schema}
        for c in sorted(set(scols) ^ set(pcols)):
            side = "sink" if c in scols else "peer"
            other = s if side == "sink" else p
            differ({"table": name, "column": c, "what": "column only in " + side,
                    "non_null": other.num_rows - other.column(c).null_count})
        lsns = s.column("_lsn").to_pylist()
        for c in sorted(set(scols) & set(pcols)):
            if scols[c] != pcols[c]:
                differ({"table": name, "column": c, "what": "type differs",
                        "sink": str(scols[c]), "peer": str(pcols[c])})
            a, b = s.column(c).combine_chunks(), p.column(c).combine_chunks()
            values += len(a)
            if pa.types.is_floating(a.type) and a.type == b.type:
                a, b = a.view(pa.int64()), b.view(pa.int64())
                fa, fb = s.column(c).combine_chunks(), p.column(c).combine_chunks()
            else:
                fa, fb = a, b
            if a.type == b.type and a.equals(b):
                continue
            if a.type != b.type:
                try:
                    b = b.cast(a.type)
                    fb = b
                except pa.ArrowInvalid:
                    pass
            la, lb, va, vb = a.to_pylist(), b.to_pylist(), fa.to_pylist(), fb.to_pylist()
            for i, (x, y) in enumerate(zip(la, lb)):
                if x == y and (x is None) == (y is None):
                    continue
                d = {"table": name, "column": c, "_lsn": lsns[i], "sink": show(va[i]), "peer": show(vb[i])}
                if isinstance(va[i], float) and isinstance(vb[i], float):
                    d["ulps"] = ulps(va[i], vb[i])
                differ(d)
    print(json.dumps({"ok": total == 0, "tables": len(set(st) | set(pt)), "rows": rows, "values": values,
                      "differences_total": total, "differences": diffs,
                      "kinds": sorted(kinds.values(), key=lambda k: (-k["count"], k["kind"]))}))


if __name__ == "__main__":
    main()
    # Skip the interpreter teardown, where delta-rs can abort.
    sys.stdout.flush()
    os._exit(0)
