-- A queue's standing rule: what keeps being added to it as it arrives (the traces a filter
-- finds, or the targets an LLM judge failed, a deterministic sample of them), applied by the
-- `annotation_rules` job from where it last stopped (`rule_watermark_us`, µs).
ALTER TABLE annotation_queues ADD COLUMN rule jsonb;
ALTER TABLE annotation_queues ADD COLUMN rule_watermark_us bigint;
