-- The project's name, written into every event row at load from the ETL's project cache
-- (ADR-002: ClickHouse denormalizes what queries need), so analysts' queries and exports need
-- no join with PostgreSQL. A renamed project's older rows keep the name they were loaded with.
ALTER TABLE traces ADD COLUMN project_name String DEFAULT '';
ALTER TABLE observations ADD COLUMN project_name String DEFAULT '';
ALTER TABLE scores ADD COLUMN project_name String DEFAULT '';
ALTER TABLE file_operations ADD COLUMN project_name String DEFAULT '';
ALTER TABLE terminal_commands ADD COLUMN project_name String DEFAULT '';
ALTER TABLE git_links ADD COLUMN project_name String DEFAULT '';
ALTER TABLE metrics ADD COLUMN project_name String DEFAULT '';
