"""The peer of `sink bench -peer python`: what a user would write instead of
the sink, on the same records and broker.

A confluent-kafka consumer in a group reads the evodb CDC entries
({"op","table","data","lsn","ts","before"}) from the start of the topic,
routes each to its table and buffers it; a table's rows are written with
deltalake.write_deltalake (append, schema merge) when the table holds the
sink's flush threshold of rows or its oldest row is older than the flush
interval, and after each write the group's offsets are committed
(synchronously) up to the first record some table still buffers on each
partition. The rows carry the columns the sink writes: _op, _lsn, _ts,
_topic, _partition, _offset, then the data columns, typed from the batch's
values as the sink infers them (integers long, numbers with a fraction
double, nested JSON as compact text), a column appearing once it has a
non-null value. A write passes the open table, so it does not reload the
table's log each time.

Protocol on stdout, one line each, flushed: "ready" once the group has
assigned every partition, then "written N" after each write and commit,
N being the rows written so far.

Usage: peer.py BROKERS TOPIC GROUP OUT_DIR FLUSH_ROWS FLUSH_SECONDS PARTITIONS
"""

import json
import os
import sys
import time

import pyarrow as pa
from confluent_kafka import Consumer, KafkaException, TopicPartition
from deltalake import DeltaTable, write_deltalake

META = [
    ("_op", pa.string()),
    ("_lsn", pa.int64()),
    ("_ts", pa.timestamp("us", tz="UTC")),
    ("_topic", pa.string()),
    ("_partition", pa.int32()),
    ("_offset", pa.int64()),
]
META_NAMES = {m for m, _ in META}


def column_type(types, known):
    """The Arrow type of a column from the Python types of its values in a
    batch and its type so far, as the sink infers it: integers are longs,
    longs and doubles make doubles, nested objects and arrays are JSON text,
    and a column that mixes anything else is text."""
    types.discard(type(None))
    if not types:
        return known
    if types == {bool}:
        t = pa.bool_()
    elif types <= {int, float}:
        t = pa.float64() if float in types else pa.int64()
    else:
        t = pa.string()
    if known is None or known == t:
        return t
    if {known, t} == {pa.int64(), pa.float64()}:
        return pa.float64()
    return pa.string()


class Table:
    def __init__(self, path):
        self.path = path
        self.dt = None  # the open table after its first write, so later writes do not reload its log
        self.cols = {}  # data column -> Arrow type, in order of appearance
        self.keys = set()
        self.rows = []
        self.first = 0.0  # monotonic time of the oldest buffered row
        self.low = {}  # partition -> first buffered offset

    def add(self, row, partition, offset):
        if not self.rows:
            self.first = time.monotonic()
        self.keys.update(row)
        self.rows.append(row)
        self.low.setdefault(partition, offset)

    def flush(self):
        rows = self.rows
        data = {}
        for name in sorted(self.keys - META_NAMES):
            vals = [r.get(name) for r in rows]
            t = column_type(set(map(type, vals)), self.cols.get(name))
            if t is None:
                continue  # only nulls so far: the column does not exist yet
            if t == pa.string():
                vals = [v if v is None or type(v) is str else text(v) for v in vals]
            try:
                arr = pa.array(vals, type=t)
            except OverflowError:  # an integer beyond int64: a double, as the sink makes it
                t = pa.float64()
                arr = pa.array(vals, type=t)
            self.cols[name] = t
            data[name] = arr
        fields = META + [(k, t) for k, t in self.cols.items()]
        arrays = [pa.array([r[m] for r in rows], type=t) for m, t in META]
        arrays += [data[k] if k in data else pa.nulls(len(rows), t) for k, t in self.cols.items()]
        batch = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
        write_deltalake(self.dt or self.path, batch, mode="append", schema_mode="merge")
        if self.dt is None:
            self.dt = DeltaTable(self.path)
        n = len(rows)
        self.rows, self.keys, self.low = [], set(), {}
        return n


def text(v):
    """Nested JSON (and any other value in a text column) as compact JSON text."""
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def main():
    brokers, topic, group, out = sys.argv[1:5]
    flush_rows, flush_secs, partitions = int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
    assigned = set()

    def on_assign(consumer, parts):
        assigned.update(p.partition for p in parts)
        if len(assigned) == partitions:
            print("ready", flush=True)

    c = Consumer({
        "bootstrap.servers": brokers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    c.subscribe([topic], on_assign=on_assign)
    tables = {}
    pos = {}  # partition -> next offset to consume
    written = 0

    def commit():
        offsets = []
        for p, nxt in pos.items():
            low = min((t.low[p] for t in tables.values() if p in t.low), default=nxt)
            offsets.append(TopicPartition(topic, p, low))
        c.commit(offsets=offsets, asynchronous=False)

    while True:
        msgs = c.consume(num_messages=5000, timeout=0.1)
        for m in msgs:
            if m.error():
                raise KafkaException(m.error())
            e = json.loads(m.value())
            op = e["op"].upper()
            row = e.get("before") if op == "DELETE" and e.get("before") is not None else e["data"]
            ts = e.get("ts")
            if ts is None:
                ts = m.timestamp()[1]
            row["_op"], row["_lsn"], row["_ts"] = op, int(e["lsn"]), ts * 1000
            row["_topic"], row["_partition"], row["_offset"] = m.topic(), m.partition(), m.offset()
            name = e["table"]
            t = tables.get(name)
            if t is None:
                t = tables[name] = Table(os.path.join(out, name))
            t.add(row, m.partition(), m.offset())
            pos[m.partition()] = m.offset() + 1
            if len(t.rows) >= flush_rows:
                written += t.flush()
                commit()
                print(f"written {written}", flush=True)
        now = time.monotonic()
        for t in tables.values():
            if t.rows and now - t.first >= flush_secs:
                written += t.flush()
                commit()
                print(f"written {written}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
    # Skip the interpreter teardown, where delta-rs can abort.
    sys.stdout.flush()
    os._exit(0)
