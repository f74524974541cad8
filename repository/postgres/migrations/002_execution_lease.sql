-- Each execution keeps the lease it was started with, in milliseconds: it is
-- judged by its own lease, never by that of whoever launches next.
ALTER TABLE {{prefix}}job_execution ADD COLUMN lease_ms BIGINT NOT NULL DEFAULT 30000;
