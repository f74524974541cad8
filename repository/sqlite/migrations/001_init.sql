CREATE TABLE {{prefix}}job_instance (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_name    TEXT NOT NULL,
    job_key     TEXT NOT NULL,
    create_time TIMESTAMP NOT NULL,
    UNIQUE (job_name, job_key)
);

CREATE TABLE {{prefix}}job_execution (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    job_instance_id  INTEGER NOT NULL REFERENCES {{prefix}}job_instance (id),
    version          INTEGER NOT NULL,
    status           TEXT NOT NULL,
    exit_code        TEXT NOT NULL,
    exit_description TEXT NOT NULL,
    create_time      TIMESTAMP NOT NULL,
    start_time       TIMESTAMP,
    end_time         TIMESTAMP,
    last_updated     TIMESTAMP NOT NULL,
    heartbeat        TIMESTAMP NOT NULL,
    parameters       TEXT NOT NULL,
    context          TEXT NOT NULL
);

CREATE INDEX {{prefix}}job_execution_instance ON {{prefix}}job_execution (job_instance_id);

-- At most one running execution per instance, whatever the application does.
CREATE UNIQUE INDEX {{prefix}}job_execution_running ON {{prefix}}job_execution (job_instance_id)
    WHERE status IN ('STARTING', 'STARTED', 'STOPPING');

CREATE TABLE {{prefix}}step_execution (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    job_execution_id   INTEGER NOT NULL REFERENCES {{prefix}}job_execution (id),
    step_name          TEXT NOT NULL,
    version            INTEGER NOT NULL,
    status             TEXT NOT NULL,
    exit_code          TEXT NOT NULL,
    exit_description   TEXT NOT NULL,
    start_time         TIMESTAMP,
    end_time           TIMESTAMP,
    last_updated       TIMESTAMP NOT NULL,
    read_count         INTEGER NOT NULL,
    write_count        INTEGER NOT NULL,
    filter_count       INTEGER NOT NULL,
    commit_count       INTEGER NOT NULL,
    rollback_count     INTEGER NOT NULL,
    read_skip_count    INTEGER NOT NULL,
    process_skip_count INTEGER NOT NULL,
    write_skip_count   INTEGER NOT NULL,
    context            TEXT NOT NULL
);

CREATE INDEX {{prefix}}step_execution_job_execution ON {{prefix}}step_execution (job_execution_id, step_name);
