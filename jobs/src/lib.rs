//! AgentTrace's scheduled jobs. Every job runs through [`runs`]: one runner at a time per job,
//! every run recorded, and a watermark that only a successful run advances.

pub mod runs;
