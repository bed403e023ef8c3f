-- The tables of the CDC chain test and the rows that exist before the
-- connector starts, so they reach Kafka through Debezium's initial
-- snapshot (op r). Every type the type mapping documents appears here.
DROP TABLE IF EXISTS accounts, events, docs, orders, metrics, fence;

-- REPLICA IDENTITY FULL gives deletes and updates a complete before-image.
CREATE TABLE accounts (
    id       integer PRIMARY KEY,
    name     text NOT NULL,
    email    varchar(100),
    active   boolean NOT NULL,
    balance  numeric(12, 2),
    opened   date
);
ALTER TABLE accounts REPLICA IDENTITY FULL;

CREATE TABLE events (
    id          bigint PRIMARY KEY,
    happened_at timestamp,
    recorded_at timestamptz,
    at_time     time,
    payload     jsonb,
    ratio       real,
    score       double precision
);

CREATE TABLE docs (
    doc_id uuid PRIMARY KEY,
    title  varchar(200) NOT NULL,
    body   bytea,
    tags   text[],
    counts integer[]
);
ALTER TABLE docs REPLICA IDENTITY FULL;

-- A composite key whose parts are updated: Debezium turns a key update
-- into a delete of the old key and a create of the new one.
CREATE TABLE orders (
    region   text,
    order_no integer,
    amount   numeric(10, 3) NOT NULL,
    note     text,
    PRIMARY KEY (region, order_no)
);
ALTER TABLE orders REPLICA IDENTITY FULL;

-- Default replica identity: a delete carries only the key.
CREATE TABLE metrics (
    id    smallint PRIMARY KEY,
    big   numeric(20, 5),
    value double precision,
    label text
);

-- One row per phase, written last: seeing it in Kafka means the phase's
-- changes were all emitted.
CREATE TABLE fence (
    id integer PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO accounts
SELECT i, 'name ' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'user' || i || '@example.com' END,
       i % 2 = 0, (i * 1234.5 - 20000)::numeric(12, 2), DATE '2020-01-01' + i * 17
FROM generate_series(1, 40) AS i;
INSERT INTO accounts VALUES
    (41, 'Zoë ünïcødé "quoted" \ back', '', true, -0.01, DATE '1969-12-31'),
    (42, '', NULL, false, 9999999999.99, DATE '0001-01-01');

INSERT INTO events
SELECT i,
       TIMESTAMP '2024-02-29 23:59:59.123456' + i * INTERVAL '1 hour 1.000001 second',
       TIMESTAMPTZ '2024-06-01 12:00:00.5+02' + i * INTERVAL '37 minutes',
       TIME '00:00:00' + i * INTERVAL '13 minutes 0.000007 second',
       jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i), 'nested', jsonb_build_object('ok', i % 2 = 0)),
       i / 7.0, i * 3.141592653589793
FROM generate_series(1, 30) AS i;
INSERT INTO events VALUES
    (100, '1969-12-31 23:59:59.999999', '1969-12-31 23:59:59.999999+00', '23:59:59.999999',
     '{"unicode": "Zoë", "num": 1.5e300, "null": null}', 0.1, -0.0),
    (101, NULL, NULL, NULL, NULL, NULL, NULL);

INSERT INTO docs
SELECT md5('doc' || i)::uuid, 'doc ' || i,
       CASE WHEN i % 4 = 0 THEN NULL ELSE decode(md5('body' || i), 'hex') END,
       ARRAY['t' || i, 'shared'], CASE WHEN i % 5 = 0 THEN NULL ELSE ARRAY[i, i * 2, -i] END
FROM generate_series(1, 20) AS i;
INSERT INTO docs VALUES
    ('00000000-0000-0000-0000-000000000000', 'edge', '\x00ff10'::bytea, ARRAY['a b', NULL, '"q"'], ARRAY[]::integer[]);

INSERT INTO orders
SELECT (ARRAY['eu', 'us', 'ap'])[1 + i % 3], i, i * 10.125, CASE WHEN i % 2 = 0 THEN 'note ' || i END
FROM generate_series(1, 30) AS i;

INSERT INTO metrics
SELECT i, (i::numeric * 123456789.12345) % 1e15, i * 0.25, 'm' || i
FROM generate_series(1, 25) AS i;
