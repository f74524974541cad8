-- A schedule fires a job on a cron spec. Every replica of a scheduler reads
-- the same row; the one whose compare-and-set moves next_fire_at from the
-- due time to the next fires it.
CREATE TABLE {{prefix}}schedule (
	name              TEXT PRIMARY KEY,
	job_name          TEXT NOT NULL,
	spec              TEXT NOT NULL,
	seconds           INTEGER NOT NULL,
	time_zone         TEXT NOT NULL,
	parameters        TEXT NOT NULL,
	misfire           TEXT NOT NULL,
	overlap           TEXT NOT NULL,
	paused            INTEGER NOT NULL,
	next_fire_at      TIMESTAMP NOT NULL,
	last_fire_at      TIMESTAMP,
	last_execution_id INTEGER,
	updated_at        TIMESTAMP NOT NULL
);
