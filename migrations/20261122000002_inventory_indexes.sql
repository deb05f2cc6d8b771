-- Indexes for loading a schedule's inventory into Redis (domain/src/holds/pg.rs), which runs
-- the first time a schedule sells after Redis starts and for every schedule a sale touches.
-- Without them both queries scanned whole tables that grow with every hold and purchase: on a
-- stack with 250k holds the live-holds query took 20 ms alone and ~280 ms under a journey load,
-- which made a first hold on any concert slow.

-- Live holds of one schedule: only HELD rows are ever looked up this way, and they are a small
-- fraction of the table (released, expired and paid holds stay for the record).
CREATE INDEX holds_live_by_schedule ON holds (schedule_id) WHERE status = 'HELD';

-- Tickets bought per user for one schedule (the per-user ticket limit).
CREATE INDEX reservations_by_schedule ON reservations (schedule_id, user_id);
