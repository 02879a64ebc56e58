import { describe, expect, it } from "vitest";
import {
  checkChannel,
  checkRule,
  describeRule,
  EMPTY_RULE,
  formatMetric,
  hourBuckets,
  hourLabel,
  isSilenced,
  metricsQuery,
  metricValue,
  ruleState,
  seriesOf,
  type RuleForm,
} from "./alerts";

const form = (change: Partial<RuleForm>): RuleForm => ({ ...EMPTY_RULE, name: "spend", threshold: "5", ...change });

describe("checkRule", () => {
  it("builds the API's body, leaving out empty filters and those of the other view", () => {
    const checked = checkRule(form({ window: "2", unit: "hours", groupBy: "model", filters: { model: " gpt-4o ", tool: "", evaluator: "judge" }, channels: ["c1"] }));
    expect(checked.errors).toBeNull();
    expect(checked.body).toEqual({
      name: "spend",
      metric: "cost",
      filters: { model: "gpt-4o" },
      comparison: ">",
      threshold: 5,
      windowMinutes: 120,
      groupBy: "model",
      channels: ["c1"],
    });
    expect(checkRule(form({ groupBy: "" })).body?.groupBy).toBeNull();
  });
  it("says what is wrong field by field, in the API's words", () => {
    const checked = checkRule(form({ name: "  ", threshold: "", window: "0", comparison: "=", metric: "cost" }));
    expect(checked.body).toBeNull();
    expect(checked.errors).toMatchObject({ name: "1 to 200 characters", threshold: "a finite number", comparison: "use >, >=, < or <=" });
    expect(checked.errors?.windowMinutes).toMatch(/^1 to 43200/);
    expect(checkRule(form({ name: "x".repeat(201) })).errors?.name).toBe("1 to 200 characters");
    expect(checkRule(form({ metric: "p99" })).errors?.metric).toMatch(/use one of cost, tokens/);
  });
  it("keeps the window within 1 minute and 30 days, in whole minutes", () => {
    expect(checkRule(form({ window: "30", unit: "days" })).body?.windowMinutes).toBe(43200);
    expect(checkRule(form({ window: "31", unit: "days" })).errors?.windowMinutes).toBeDefined();
    expect(checkRule(form({ window: "1.5", unit: "minutes" })).errors?.windowMinutes).toBeDefined();
    expect(checkRule(form({ window: "1.5", unit: "hours" })).body?.windowMinutes).toBe(90);
  });
  it("needs a score's name for a score metric, and its view's groups", () => {
    expect(checkRule(form({ metric: "score_mean" })).errors?.filters).toBe("a score metric needs the score's `name`");
    expect(checkRule(form({ metric: "score_mean", filters: { name: "helpfulness" } })).body?.filters).toEqual({ name: "helpfulness" });
    expect(checkRule(form({ metric: "score_pass_rate", filters: { name: "ok" }, groupBy: "user" })).errors?.groupBy).toBe(
      "score_pass_rate groups by name, evaluator, source",
    );
    expect(checkRule(form({ metric: "latency_p95", groupBy: "evaluator" })).errors?.groupBy).toMatch(/^latency_p95 groups by user/);
  });
});

describe("checkChannel", () => {
  it("takes an https webhook and a Slack incoming webhook", () => {
    expect(checkChannel("ops", "webhook", "https://example.com/hook")).toEqual({});
    expect(checkChannel("ops", "slack", "https://hooks.slack.com/services/T/B/x")).toEqual({});
  });
  it("refuses what the API refuses", () => {
    expect(checkChannel("", "email", "nope")).toEqual({ name: "1 to 200 characters", kind: "use webhook or slack", url: "not a URL" });
    expect(checkChannel("ops", "webhook", "ftp://example.com").url).toBe("must be https://");
    expect(checkChannel("ops", "webhook", "https://user:pw@example.com").url).toBe("needs a host and no user or password");
    expect(checkChannel("ops", "slack", "https://example.com/hook").url).toMatch(/hooks\.slack\.com/);
  });
});

describe("metricsQuery", () => {
  const from = "2026-01-01T00:00:00Z";
  const to = "2026-01-02T00:00:00Z";
  it("asks for the rule's metric per hour, with its filters and group-by", () => {
    expect(metricsQuery("p", { metric: "cost", filters: { model: "gpt-4o" }, groupBy: "user" }, from, to)).toEqual({
      project_id: "p",
      view: "observations",
      from,
      to,
      bucket: "hour",
      model: "gpt-4o",
      dimensions: "user",
    });
  });
  it("counts generations for requests, unless the filters name another type", () => {
    expect(metricsQuery("p", { metric: "requests", filters: {} }, from, to).type).toBe("generation");
    expect(metricsQuery("p", { metric: "requests", filters: { type: "tool_call" } }, from, to).type).toBe("tool_call");
  });
  it("reads scores from the scores view", () => {
    const query = metricsQuery("p", { metric: "score_pass_rate", filters: { name: "correct", evaluator: "judge", bogus: 1 }, groupBy: null }, from, to);
    expect(query).toMatchObject({ view: "scores", name: "correct", evaluator: "judge" });
    expect(query).not.toHaveProperty("dimensions");
    expect(query).not.toHaveProperty("bogus");
  });
});

describe("metricValue", () => {
  const row = { count: 4, total_cost: 0.5, input_tokens: 100, output_tokens: 20, error_rate: 0.25, latency_p50_ms: 80, latency_p95_ms: null, latency_p99_ms: 900, mean: 0.75 };
  it("reads each metric's field", () => {
    expect(metricValue("cost", row)).toBe(0.5);
    expect(metricValue("tokens", row)).toBe(120);
    expect(metricValue("requests", row)).toBe(4);
    expect(metricValue("error_rate", row)).toBe(0.25);
    expect(metricValue("latency_p50", row)).toBe(80);
    expect(metricValue("latency_p99", row)).toBe(900);
    expect(metricValue("score_mean", row)).toBe(0.75);
    expect(metricValue("score_pass_rate", row)).toBe(0.75);
  });
  it("is null when nothing was measured, or for no metric", () => {
    expect(metricValue("latency_p95", row)).toBeNull();
    expect(metricValue("score_mean", { count: 0, mean: null })).toBeNull();
    expect(metricValue("nope", row)).toBeNull();
  });
});

describe("the chart's hours and series", () => {
  const now = Date.parse("2026-03-01T10:42:00Z");
  it("covers the 24 whole UTC hours up to now", () => {
    const buckets = hourBuckets(now);
    expect(buckets).toHaveLength(24);
    expect(new Date(buckets[0] ?? 0).toISOString()).toBe("2026-02-28T11:00:00.000Z");
    expect(new Date(buckets[23] ?? 0).toISOString()).toBe("2026-03-01T10:00:00.000Z");
    expect(hourLabel(buckets[23] ?? 0)).toBe("10:00");
  });
  it("places rows in their hours: an hour without rows is zero for a sum, a gap otherwise", () => {
    const buckets = hourBuckets(now, 3);
    const rows = [{ bucket: "2026-03-01T09:00:00Z", total_cost: 2, latency_p95_ms: 300 }];
    expect(seriesOf("cost", rows, buckets, null, ">").series).toEqual([{ group: "", values: [0, 2, 0] }]);
    expect(seriesOf("latency_p95", rows, buckets, null, ">").series).toEqual([{ group: "", values: [null, 300, null] }]);
    expect(seriesOf("latency_p95", [], buckets, null, ">").series).toEqual([{ group: "", values: [null, null, null] }]);
  });
  it("draws the groups nearest to crossing first, at most `max`", () => {
    const buckets = hourBuckets(now, 2);
    const rows = [
      { bucket: "2026-03-01T09:00:00Z", user: "a", total_cost: 1 },
      { bucket: "2026-03-01T10:00:00Z", user: "b", total_cost: 5 },
      { bucket: "2026-03-01T10:00:00Z", user: "c", total_cost: 3 },
      { bucket: "2026-03-01T10:00:00Z", total_cost: 9 },
    ];
    const above = seriesOf("cost", rows, buckets, "user", ">", 2);
    expect(above.series).toEqual([
      { group: "", values: [0, 9] },
      { group: "b", values: [0, 5] },
    ]);
    expect(above.hidden).toBe(2);
    const latencies = [
      { bucket: "2026-03-01T09:00:00Z", user: "a", latency_p95_ms: 100 },
      { bucket: "2026-03-01T10:00:00Z", user: "a", latency_p95_ms: 400 },
      { bucket: "2026-03-01T10:00:00Z", user: "b", latency_p95_ms: 50 },
      { bucket: "2026-03-01T10:00:00Z", user: "c", latency_p95_ms: null },
    ];
    const below = seriesOf("latency_p95", latencies, buckets, "user", "<", 2);
    expect(below.series).toEqual([
      { group: "b", values: [null, 50] },
      { group: "a", values: [100, 400] },
    ]);
    expect(below.hidden).toBe(1);
  });
});

describe("how a rule reads", () => {
  it("formats each metric's values", () => {
    expect(formatMetric("cost", 5)).toBe("$5.00");
    expect(formatMetric("error_rate", 0.05)).toBe("5.0%");
    expect(formatMetric("latency_p95", 1500)).toBe("1.50 s");
    expect(formatMetric("tokens", 12_000)).toBe("12.0k");
    expect(formatMetric("score_mean", 0.123456)).toBe("0.1235");
    expect(formatMetric("cost", null)).toBe("—");
  });
  it("describes the condition", () => {
    expect(describeRule({ metric: "cost", comparison: ">", threshold: 5, windowMinutes: 60, groupBy: "model", filters: { type: "generation" } })).toBe(
      "cost > $5.00 over 1 h, per model, where type = generation",
    );
    expect(describeRule({ metric: "error_rate", comparison: ">=", threshold: 0.1, windowMinutes: 90, filters: {} })).toBe("error_rate >= 10.0% over 90 min");
  });
  it("tells its state, most pressing first", () => {
    const base = { enabled: true, lastError: null, firing: [], lastEvaluatedAt: "2026-03-01T10:00:00Z" };
    expect(ruleState(base)).toBe("ok");
    expect(ruleState({ ...base, lastEvaluatedAt: null })).toBe("waiting");
    expect(ruleState({ ...base, firing: [{}] })).toBe("firing");
    expect(ruleState({ ...base, firing: [{}], lastError: "boom" })).toBe("error");
    expect(ruleState({ ...base, enabled: false, lastError: "boom" })).toBe("disabled");
  });
  it("is silenced until a time in the future only", () => {
    const now = Date.parse("2026-03-01T10:00:00Z");
    expect(isSilenced("2026-03-01T11:00:00Z", now)).toBe(true);
    expect(isSilenced("2026-03-01T09:00:00Z", now)).toBe(false);
    expect(isSilenced(null, now)).toBe(false);
    expect(isSilenced("", now)).toBe(false);
  });
});
