-- A step execution handed to a worker elsewhere (a remote partition) is
-- held under a lease: who holds it, until when by the database's clock,
-- and how many times it was claimed.
ALTER TABLE {{prefix}}step_execution ADD COLUMN lease_owner TEXT;
ALTER TABLE {{prefix}}step_execution ADD COLUMN lease_until TIMESTAMPTZ;
ALTER TABLE {{prefix}}step_execution ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;
