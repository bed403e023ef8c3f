-- Streamed changes, second part, issued after the connector restart.
BEGIN;
UPDATE accounts SET balance = balance * 2, tier = 'restarted' WHERE id BETWEEN 18 AND 30;
DELETE FROM accounts WHERE id = 31;
INSERT INTO accounts VALUES (45, 'late', 'late@example.com', false, -45.00, DATE '2026-01-01', NULL);
COMMIT;

BEGIN;
UPDATE events SET ratio = ratio + 1, level = 7 WHERE id BETWEEN 10 AND 20;
DELETE FROM events WHERE id = 300;
COMMIT;

BEGIN;
UPDATE orders SET region = 'eu', order_no = 999 WHERE region = 'sa' AND order_no = 1;
INSERT INTO orders VALUES ('sa', 1, 1.001, 'key reused');
UPDATE metrics SET label = 'after restart' WHERE id BETWEEN 10 AND 15;
DELETE FROM docs WHERE title = 'doc 7';
UPDATE docs SET counts = NULL, tags = '{}' WHERE title = 'doc 8';
COMMIT;
