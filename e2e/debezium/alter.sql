-- Schema changes mid-stream: new nullable columns, then changes that use
-- them and changes that leave them unset.
ALTER TABLE accounts ADD COLUMN tier text;
ALTER TABLE events ADD COLUMN level integer;
ALTER TABLE docs ADD COLUMN published timestamptz;

BEGIN;
UPDATE accounts SET tier = CASE WHEN balance > 0 THEN 'gold' ELSE 'basic' END WHERE id BETWEEN 1 AND 20;
INSERT INTO accounts VALUES (44, 'after alter', NULL, true, 44.44, DATE '2025-05-05', 'platinum');
UPDATE events SET level = id::integer WHERE id < 10;
INSERT INTO events VALUES (400, NULL, now(), NULL, '{}', 0, 0, -1);
UPDATE docs SET published = TIMESTAMPTZ '2025-01-01 00:00:00.123+00' WHERE title = 'doc 6';
DELETE FROM accounts WHERE id = 17;
COMMIT;
