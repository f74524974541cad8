-- What a step's writes did to their target, as its writers reported it.
ALTER TABLE {{prefix}}step_execution ADD COLUMN insert_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE {{prefix}}step_execution ADD COLUMN update_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE {{prefix}}step_execution ADD COLUMN unchanged_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE {{prefix}}step_execution ADD COLUMN delete_count BIGINT NOT NULL DEFAULT 0;
