-- The dashboard's filters: executions by status, and by creation time,
-- newest first, found through an index however long the history.
CREATE INDEX {{prefix}}job_execution_status ON {{prefix}}job_execution (status, id);
CREATE INDEX {{prefix}}job_execution_created ON {{prefix}}job_execution (create_time);
