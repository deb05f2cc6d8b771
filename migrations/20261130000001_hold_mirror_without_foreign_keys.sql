-- The hold mirror (holds, hold_seats) loses its foreign keys and its unused by-user index.
--
-- The worker's stream sink writes one holds row (and a hold_seats row per seat) for every hold
-- the gateways grant, so these tables take the on-sale's full write rate. Each foreign key
-- check is an index probe plus a KEY SHARE lock on the referenced row (the same schedule and
-- section row for every hold of an on-sale): inserting 100,000 holds in one statement took
-- 3.0 s with the three keys and 0.9 s without them on the 2-core machine, and the seat-hold
-- benchmark's Postgres CPU per hold went from 68 to 31 us.
--
-- What the keys guarded cannot happen through the code: users, schedules, sections and seats
-- are never deleted, and every id a hold carries was read from Postgres (the schedule, its
-- sections and seats) or from a signed token (the user) before Redis granted the hold. The
-- audit (worker/src/audit.rs) checks that every mirrored hold names rows that exist. Sales
-- keep every key and unique constraint: reservations, reservation_items and payments are the
-- last line against a double sale, not this mirror.
ALTER TABLE holds
    DROP CONSTRAINT IF EXISTS holds_user_id_fkey,
    DROP CONSTRAINT IF EXISTS holds_schedule_id_fkey,
    DROP CONSTRAINT IF EXISTS holds_section_id_fkey;
ALTER TABLE hold_seats
    DROP CONSTRAINT IF EXISTS hold_seats_hold_id_fkey,
    DROP CONSTRAINT IF EXISTS hold_seats_seat_id_fkey;
-- Nothing reads holds by user (a user's hold is found by its id, which carries the user check).
DROP INDEX IF EXISTS holds_user;
