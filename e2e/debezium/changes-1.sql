-- Streamed changes, first part: multi-statement transactions of inserts,
-- updates (key updates included) and deletes.
BEGIN;
INSERT INTO accounts VALUES (43, 'new 43', 'n43@example.com', true, 10.50, DATE '2024-01-02');
UPDATE accounts SET balance = balance + 1.01, active = NOT active WHERE id BETWEEN 1 AND 10;
DELETE FROM accounts WHERE id IN (11, 12);
UPDATE accounts SET email = NULL WHERE id = 13;
COMMIT;

BEGIN;
UPDATE accounts SET id = 1000 + id WHERE id IN (14, 15);
UPDATE accounts SET name = name || ' again' WHERE id = 1014;
INSERT INTO accounts VALUES (14, 'reused key 14', NULL, false, NULL, NULL);
DELETE FROM accounts WHERE id = 16;
INSERT INTO accounts VALUES (16, 'reinserted 16', 'r16@example.com', true, 0, DATE '2000-02-29');
COMMIT;

BEGIN;
UPDATE events SET payload = payload || '{"updated": true}', score = score * 2 WHERE id % 3 = 0;
UPDATE events SET recorded_at = TIMESTAMPTZ '2038-01-19 03:14:08.000001+00', at_time = TIME '12:34:56.789012' WHERE id = 2;
DELETE FROM events WHERE id IN (4, 5);
INSERT INTO events VALUES (200, '2099-12-31 23:59:59.999', '2000-01-01 00:00:00+14', '00:00:00.000001', '[1, "two", {"three": 3}]', -1.25e-3, 1e-300);
UPDATE events SET id = 300 WHERE id = 7;
COMMIT;

BEGIN;
UPDATE docs SET body = '\x'::bytea, tags = array_append(tags, 'more') WHERE title IN ('doc 1', 'doc 2');
UPDATE docs SET doc_id = '11111111-2222-3333-4444-555555555555' WHERE title = 'doc 3';
DELETE FROM docs WHERE title IN ('doc 4', 'doc 5');
INSERT INTO docs VALUES ('ffffffff-ffff-ffff-ffff-ffffffffffff', 'max', NULL, NULL, ARRAY[2147483647, -2147483648]);
COMMIT;

BEGIN;
UPDATE orders SET region = 'sa' WHERE order_no IN (1, 2, 3);
UPDATE orders SET order_no = order_no + 100, amount = amount + 0.001 WHERE region = 'us' AND order_no < 20;
DELETE FROM orders WHERE order_no = 5;
UPDATE orders SET note = NULL WHERE order_no = 6;
COMMIT;

BEGIN;
UPDATE metrics SET value = value * -1, big = -big WHERE id <= 5;
DELETE FROM metrics WHERE id IN (6, 7, 8);
INSERT INTO metrics VALUES (-32768, 123456789012345.12345, 1.7976931348623157e308, NULL);
UPDATE metrics SET id = 32767 WHERE id = 9;
COMMIT;
