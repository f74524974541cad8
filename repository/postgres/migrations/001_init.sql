CREATE TABLE {{prefix}}job_instance (
    id          BIGSERIAL PRIMARY KEY,
    job_name    TEXT NOT NULL,
    job_key     TEXT NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    UNIQUE (job_name, job_key)
);

CREATE TABLE {{prefix}}job_execution (
    id               BIGSERIAL PRIMARY KEY,
    job_instance_id  BIGINT NOT NULL REFERENCES {{prefix}}job_instance (id),
    version          BIGINT NOT NULL,
    status           TEXT NOT NULL,
    exit_code        TEXT NOT NULL,
    exit_description TEXT NOT NULL,
    create_time      TIMESTAMPTZ NOT NULL,
    start_time       TIMESTAMPTZ,
    end_time         TIMESTAMPTZ,
    last_updated     TIMESTAMPTZ NOT NULL,
    heartbeat        TIMESTAMPTZ NOT NULL,
    parameters       TEXT NOT NULL,
    context          TEXT NOT NULL
);

CREATE INDEX {{prefix}}job_execution_instance ON {{prefix}}job_execution (job_instance_id);

-- At most one running execution per instance, whatever the application does.
CREATE UNIQUE INDEX {{prefix}}job_execution_running ON {{prefix}}job_execution (job_instance_id)
    WHERE status IN ('STARTING', 'STARTED', 'STOPPING');

CREATE TABLE {{prefix}}step_execution (
    id                 BIGSERIAL PRIMARY KEY,
    job_execution_id   BIGINT NOT NULL REFERENCES {{prefix}}job_execution (id),
    step_name          TEXT NOT NULL,
    version            BIGINT NOT NULL,
    status             TEXT NOT NULL,
    exit_code          TEXT NOT NULL,
    exit_description   TEXT NOT NULL,
    start_time         TIMESTAMPTZ,
    end_time           TIMESTAMPTZ,
    last_updated       TIMESTAMPTZ NOT NULL,
    read_count         BIGINT NOT NULL,
    write_count        BIGINT NOT NULL,
    filter_count       BIGINT NOT NULL,
    commit_count       BIGINT NOT NULL,
    rollback_count     BIGINT NOT NULL,
    read_skip_count    BIGINT NOT NULL,
    process_skip_count BIGINT NOT NULL,
    write_skip_count   BIGINT NOT NULL,
    context            TEXT NOT NULL
);

CREATE INDEX {{prefix}}step_execution_job_execution ON {{prefix}}step_execution (job_execution_id, step_name);
