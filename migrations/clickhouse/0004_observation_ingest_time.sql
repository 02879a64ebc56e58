-- When ClickHouse received each observation row (its own clock). Jobs read new rows by this
-- rather than by event time: agents report late (buffered at the edge, offline laptops), and
-- an event-time watermark would skip every event older than the last one processed.
ALTER TABLE observations ADD COLUMN ingested_at DateTime DEFAULT now();
