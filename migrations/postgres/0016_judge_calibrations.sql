-- How well each LLM judge agrees with people, on the targets (trace, or observation of a trace)
-- that both the judge and a person scored under the judge's score name: one pair per human
-- score, so a target three people scored counts three times. Written by the
-- `judge_calibration` job, which recomputes a judge's row from all of its pairs whenever the
-- judge or a person gave a new score of that name.
--
-- Metrics that do not apply to the score's data type are NULL: accuracy, kappa and the
-- confusion matrix for boolean and categorical scores; mean absolute error and Spearman's
-- correlation for numeric ones. Kappa is NULL when chance agreement is 1 (both sides gave the
-- one same label every time); Spearman's when fewer than two pairs or one side never varies.
CREATE TABLE judge_calibrations (
    evaluator_id        uuid PRIMARY KEY REFERENCES evaluators(id) ON DELETE CASCADE,
    project_id          uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    -- The judge's score name and the data type compared (the judge's newest score's).
    score_name          text,
    data_type           text,
    pairs               integer,
    accuracy            double precision,
    kappa               double precision,
    mean_absolute_error double precision,
    spearman            double precision,
    -- {"labels": [...], "counts": [[...]]}: rows are the people's labels, columns the judge's.
    confusion           jsonb,
    -- At most 100: [{trace_id, observation_id, judge, human, author, link}] (link: the target's
    -- web UI page, #/traces/<trace>?observation=<observation>), the largest differences first
    -- for numeric scores, by target otherwise.
    disagreements       jsonb,
    computed_at         timestamptz
);
CREATE INDEX judge_calibrations_project ON judge_calibrations (project_id);
