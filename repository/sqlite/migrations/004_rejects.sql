-- The skipped items of each step execution, kept with the chunk that
-- counted the skip: what the rejects command lists.
CREATE TABLE {{prefix}}step_reject (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_execution_id  BIGINT NOT NULL REFERENCES {{prefix}}job_execution (id),
    step_execution_id BIGINT NOT NULL REFERENCES {{prefix}}step_execution (id),
    step_name         TEXT NOT NULL,
    phase             TEXT NOT NULL,
    item              BIGINT NOT NULL,
    error             TEXT NOT NULL,
    input             TEXT,
    output            TEXT,
    create_time       TIMESTAMP NOT NULL
);

CREATE INDEX {{prefix}}step_reject_job_execution ON {{prefix}}step_reject (job_execution_id, id);
CREATE INDEX {{prefix}}step_reject_step_execution ON {{prefix}}step_reject (step_execution_id);
