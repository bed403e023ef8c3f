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
_topic, _partition, _offset, then the data columns, nested JSON as compact
text, a column appearing once it has a non-null value.

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
from deltalake import write_deltalake

META = [
    ("_op", pa.string()),
    ("_lsn", pa.int64()),
    ("_ts", pa.timestamp("us", tz="UTC")),
    ("_topic", pa.string()),
    ("_partition", pa.int32()),
    ("_offset", pa.int64()),
]


def value_type(v):
    """The Arrow type of a decoded JSON value, as the sink infers it."""
    if isinstance(v, bool):
        return pa.bool_()
    if isinstance(v, int):
        return pa.int64() if -(2**63) <= v < 2**63 else pa.float64()
    if isinstance(v, float):
        return pa.float64()
    return pa.string()


def widen(a, b):
    if a == b:
        return a
    if {a, b} == {pa.int64(), pa.float64()}:
        return pa.float64()
    return pa.string()


class Table:
    def __init__(self, path):
        self.path = path
        self.cols = {}  # data column -> Arrow type, in order of appearance
        self.rows = []
        self.first = 0.0  # monotonic time of the oldest buffered row
        self.low = {}  # partition -> first buffered offset

    def add(self, row, partition, offset):
        for k, v in row.items():
            if v is None or k.startswith("_"):
                continue
            t = value_type(v)
            cur = self.cols.get(k)
            if cur is None:
                self.cols[k] = t
            elif cur != t:
                self.cols[k] = widen(cur, t)
        if not self.rows:
            self.first = time.monotonic()
        self.rows.append(row)
        self.low.setdefault(partition, offset)

    def flush(self):
        schema = pa.schema(META + [(k, t) for k, t in self.cols.items()])
        cols = {}
        for name, t in self.cols.items():
            vals = [r.get(name) for r in self.rows]
            if t == pa.string():
                vals = [v if v is None or isinstance(v, str) else text(v) for v in vals]
            elif t == pa.float64():
                vals = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in vals]
            cols[name] = vals
        arrays = [pa.array([r[m] for r in self.rows], type=t) for m, t in META]
        arrays += [pa.array(cols[k], type=t) for k, t in self.cols.items()]
        write_deltalake(self.path, pa.Table.from_arrays(arrays, schema=schema), mode="append", schema_mode="merge")
        n = len(self.rows)
        self.rows, self.low = [], {}
        return n


def text(v):
    """Nested JSON (and any value in a text column) as compact JSON text."""
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
            row = dict(row)
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
