// Alerts' pure parts: what a rule may be (mirroring the API's checks, so the form says what is
// wrong before asking), how a rule reads, and the metrics query and series that chart a rule's
// metric against its threshold.

import { count, duration, num, percent, usd } from "./format";

/** What a rule may watch: the API's metrics, with what each is. */
export const METRICS: [string, string][] = [
  ["cost", "USD spent by the observations"],
  ["tokens", "input and output tokens"],
  ["requests", "model calls (generations)"],
  ["error_rate", "the share of observations at level error"],
  ["latency_p50", "median observation latency, ms"],
  ["latency_p95", "95th percentile observation latency, ms"],
  ["latency_p99", "99th percentile observation latency, ms"],
  ["score_mean", "the mean of a score's values"],
  ["score_pass_rate", "the share of a boolean score's values that are true"],
];

export const COMPARISONS = [">", ">=", "<", "<="];

/** Filters and groups of the observation metrics and of the score metrics. */
export const OBSERVATION_FILTERS = ["type", "model", "name", "tool", "api_key"];
export const SCORE_FILTERS = ["name", "evaluator", "source"];
export const OBSERVATION_GROUPS = ["user", "model", "name", "tool", "type", "environment", "tag", "api_key"];
export const SCORE_GROUPS = ["name", "evaluator", "source"];

export const MAX_WINDOW_MINUTES = 30 * 24 * 60;
export const MAX_CHANNELS = 20;

export function isScoreMetric(metric: string): boolean {
  return metric.startsWith("score_");
}

export function filtersOf(metric: string): string[] {
  return isScoreMetric(metric) ? SCORE_FILTERS : OBSERVATION_FILTERS;
}

export function groupsOf(metric: string): string[] {
  return isScoreMetric(metric) ? SCORE_GROUPS : OBSERVATION_GROUPS;
}

/** A rule's filters as strings (the API keeps them as a JSON object). */
export function ruleFilters(filters: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!filters || typeof filters !== "object") return out;
  for (const [key, value] of Object.entries(filters)) if (typeof value === "string") out[key] = value;
  return out;
}

// ---- The new-rule form ----

export const WINDOW_UNITS: [string, number][] = [
  ["minutes", 1],
  ["hours", 60],
  ["days", 24 * 60],
];

export interface RuleForm {
  name: string;
  metric: string;
  comparison: string;
  threshold: string;
  window: string;
  /** One of WINDOW_UNITS' names. */
  unit: string;
  /** "" for none. */
  groupBy: string;
  filters: Record<string, string>;
  channels: string[];
}

export type RuleField = "name" | "metric" | "comparison" | "threshold" | "windowMinutes" | "groupBy" | "filters" | "channels";

/** What `POST …/alerts/rules` is sent. */
export interface RuleBody {
  name: string;
  metric: string;
  filters: Record<string, string>;
  comparison: string;
  threshold: number;
  windowMinutes: number;
  groupBy: string | null;
  channels: string[];
}

export const EMPTY_RULE: RuleForm = {
  name: "",
  metric: "cost",
  comparison: ">",
  threshold: "",
  window: "60",
  unit: "minutes",
  groupBy: "",
  filters: {},
  channels: [],
};

/** The form as the API's body, or what is wrong with it field by field, in the API's words. The
 * filters that do not apply to the metric's view, and empty ones, are left out. */
export function checkRule(form: RuleForm): { body: RuleBody; errors: null } | { body: null; errors: Partial<Record<RuleField, string>> } {
  const errors: Partial<Record<RuleField, string>> = {};
  const name = form.name.trim();
  if (name === "" || Array.from(name).length > 200) errors.name = "1 to 200 characters";
  if (!METRICS.some(([id]) => id === form.metric)) errors.metric = `use one of ${METRICS.map(([id]) => id).join(", ")}`;
  if (!COMPARISONS.includes(form.comparison)) errors.comparison = "use >, >=, < or <=";
  const threshold = form.threshold.trim() === "" ? NaN : Number(form.threshold);
  if (!Number.isFinite(threshold)) errors.threshold = "a finite number";
  const factor = WINDOW_UNITS.find(([unit]) => unit === form.unit)?.[1] ?? NaN;
  const windowMinutes = form.window.trim() === "" ? NaN : Number(form.window) * factor;
  if (!Number.isInteger(windowMinutes) || windowMinutes < 1 || windowMinutes > MAX_WINDOW_MINUTES) {
    errors.windowMinutes = `1 to ${MAX_WINDOW_MINUTES} minutes (30 days), in whole minutes`;
  }
  const filters: Record<string, string> = {};
  for (const key of filtersOf(form.metric)) {
    const value = form.filters[key]?.trim() ?? "";
    if (value !== "") filters[key] = value;
  }
  if (isScoreMetric(form.metric) && !filters.name) errors.filters = "a score metric needs the score's `name`";
  const groupBy = form.groupBy === "" ? null : form.groupBy;
  if (groupBy !== null && !groupsOf(form.metric).includes(groupBy)) {
    errors.groupBy = `${form.metric} groups by ${groupsOf(form.metric).join(", ")}`;
  }
  if (form.channels.length > MAX_CHANNELS) errors.channels = `at most ${MAX_CHANNELS}`;
  if (Object.keys(errors).length > 0) return { body: null, errors };
  return { body: { name, metric: form.metric, filters, comparison: form.comparison, threshold, windowMinutes, groupBy, channels: form.channels }, errors: null };
}

export type ChannelField = "name" | "kind" | "url";

/** A new channel's name, kind and URL checked as the API does. The API refuses `http://` unless
 * the server may reach private addresses (a receiver on the same machine), which only it knows. */
export function checkChannel(name: string, kind: string, url: string): Partial<Record<ChannelField, string>> {
  const errors: Partial<Record<ChannelField, string>> = {};
  if (name.trim() === "" || Array.from(name.trim()).length > 200) errors.name = "1 to 200 characters";
  if (kind !== "webhook" && kind !== "slack") errors.kind = "use webhook or slack";
  let parsed: URL | null = null;
  try {
    parsed = new URL(url.trim());
  } catch {
    errors.url = "not a URL";
  }
  if (parsed) {
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") errors.url = "must be https://";
    else if (parsed.hostname === "" || parsed.username !== "" || parsed.password !== "") errors.url = "needs a host and no user or password";
    else if (url.length > 2048) errors.url = "at most 2048 characters";
    else if (kind === "slack" && parsed.protocol === "https:" && parsed.hostname !== "hooks.slack.com") {
      errors.url = "a Slack incoming-webhook URL is https://hooks.slack.com/services/…; use kind webhook for others";
    }
  }
  return errors;
}

// ---- How a rule reads ----

/** A metric's value as it reads: dollars, tokens, shares as percents, milliseconds as durations. */
export function formatMetric(metric: string, value: unknown): string {
  if (value === null || value === undefined || value === "") return "—";
  const n = num(value);
  if (Number.isNaN(n)) return "—";
  switch (metric) {
    case "cost":
      return usd(n);
    case "tokens":
    case "requests":
      return count(n);
    case "error_rate":
    case "score_pass_rate":
      return percent(n);
    case "latency_p50":
    case "latency_p95":
    case "latency_p99":
      return duration(n);
    default:
      return String(Number(n.toPrecision(4)));
  }
}

/** 90 → "90 min", 120 → "2 h", 2880 → "2 d". */
export function windowText(minutes: number): string {
  if (minutes >= 1440 && minutes % 1440 === 0) return `${minutes / 1440} d`;
  if (minutes >= 60 && minutes % 60 === 0) return `${minutes / 60} h`;
  return `${minutes} min`;
}

/** "cost > $5.00 over 1 h, per model, where model = gpt-4o". */
export function describeRule(rule: { metric: string; comparison: string; threshold: number; windowMinutes: number; groupBy?: string | null; filters: unknown }): string {
  const filters = Object.entries(ruleFilters(rule.filters)).map(([key, value]) => `${key} = ${value}`);
  return [
    `${rule.metric} ${rule.comparison} ${formatMetric(rule.metric, rule.threshold)} over ${windowText(rule.windowMinutes)}`,
    rule.groupBy ? `per ${rule.groupBy}` : null,
    filters.length > 0 ? `where ${filters.join(", ")}` : null,
  ]
    .filter((part) => part !== null)
    .join(", ");
}

export function isSilenced(silencedUntil: string | null | undefined, now: number): boolean {
  if (!silencedUntil) return false;
  const until = Date.parse(silencedUntil);
  return Number.isFinite(until) && until > now;
}

export type RuleState = "disabled" | "error" | "firing" | "ok" | "waiting";

/** What a rule's state is, most pressing first: paused, failing to evaluate, firing, quiet, or
 * not evaluated yet. */
export function ruleState(rule: { enabled: boolean; lastError?: string | null; firing: unknown[]; lastEvaluatedAt?: string | null }): RuleState {
  if (!rule.enabled) return "disabled";
  if (rule.lastError) return "error";
  if (rule.firing.length > 0) return "firing";
  return rule.lastEvaluatedAt ? "ok" : "waiting";
}

// ---- The chart: a rule's metric per hour against its threshold ----

const HOUR_MS = 3_600_000;

/** `GET /v1/metrics`' parameters for a rule's metric in hourly buckets from `from` to `to`, with
 * the rule's filters and, when it has one, its group-by as the dimension: what the scheduler
 * asks (`requests` counts generations unless the filters name another type). */
export function metricsQuery(
  project: string,
  rule: { metric: string; filters: unknown; groupBy?: string | null },
  from: string,
  to: string,
): Record<string, string> {
  const query: Record<string, string> = { project_id: project, view: isScoreMetric(rule.metric) ? "scores" : "observations", from, to, bucket: "hour" };
  if (rule.metric === "requests") query.type = "generation";
  for (const [key, value] of Object.entries(ruleFilters(rule.filters))) if (filtersOf(rule.metric).includes(key)) query[key] = value;
  if (rule.groupBy) query.dimensions = rule.groupBy;
  return query;
}

/** The fields of a metrics answer's row a metric is read from (`tokens` adds two). */
export function metricFields(metric: string): string[] {
  switch (metric) {
    case "cost":
      return ["total_cost"];
    case "tokens":
      return ["input_tokens", "output_tokens"];
    case "requests":
      return ["count"];
    case "error_rate":
      return ["error_rate"];
    case "latency_p50":
    case "latency_p95":
    case "latency_p99":
      return [`${metric}_ms`];
    case "score_mean":
    case "score_pass_rate":
      return ["mean"];
    default:
      return [];
  }
}

/** A metric's value in a row: null when the row measured nothing (no latency, no score). */
export function metricValue(metric: string, row: Record<string, unknown>): number | null {
  const fields = metricFields(metric);
  if (fields.length === 0) return null;
  let sum = 0;
  for (const field of fields) {
    const value = row[field];
    if (value === null || value === undefined) return null;
    const n = num(value);
    if (Number.isNaN(n)) return null;
    sum += n;
  }
  return sum;
}

/** Whether an hour without rows is a zero (a sum: nothing spent, nothing sent) rather than a gap. */
export function countsFromZero(metric: string): boolean {
  return metric === "cost" || metric === "tokens" || metric === "requests";
}

/** The starts (ms) of the `hours` whole UTC hours up to the one `now` is in. */
export function hourBuckets(now: number, hours = 24): number[] {
  const last = Math.floor(now / HOUR_MS) * HOUR_MS;
  return Array.from({ length: hours }, (_, i) => last - (hours - 1 - i) * HOUR_MS);
}

/** "14:00", in UTC. */
export function hourLabel(ms: number): string {
  return new Date(ms).toISOString().slice(11, 16);
}

export interface Series {
  /** The group's value ("" for a rule without a group-by). */
  group: string;
  values: (number | null)[];
}

/** The value per bucket of each group, the groups nearest to crossing first (the highest peak for
 * `>`/`>=`, the lowest trough for `<`/`<=`), at most `max` of them; `hidden` counts the rest. */
export function seriesOf(
  metric: string,
  rows: Record<string, unknown>[],
  buckets: number[],
  groupBy: string | null | undefined,
  comparison: string,
  max = 8,
): { series: Series[]; hidden: number } {
  const index = new Map(buckets.map((at, i) => [at, i]));
  const byGroup = new Map<string, (number | null)[]>();
  const empty = countsFromZero(metric) ? 0 : null;
  if (!groupBy) byGroup.set("", buckets.map(() => empty));
  for (const row of rows) {
    const at = typeof row.bucket === "string" ? Date.parse(row.bucket) : NaN;
    const i = index.get(at);
    if (i === undefined) continue;
    const group = groupBy ? (typeof row[groupBy] === "string" ? row[groupBy] : "") : "";
    let values = byGroup.get(group);
    if (!values) {
      values = buckets.map(() => empty);
      byGroup.set(group, values);
    }
    values[i] = metricValue(metric, row);
  }
  const below = comparison === "<" || comparison === "<=";
  const extreme = (values: (number | null)[]) => {
    const measured = values.filter((v) => v !== null);
    if (measured.length === 0) return below ? Infinity : -Infinity;
    return below ? Math.min(...measured) : Math.max(...measured);
  };
  const all = [...byGroup.entries()].map(([group, values]) => ({ group, values, extreme: extreme(values) }));
  all.sort((a, b) => (below ? a.extreme - b.extreme : b.extreme - a.extreme) || a.group.localeCompare(b.group));
  return { series: all.slice(0, max).map(({ group, values }) => ({ group, values })), hidden: Math.max(0, all.length - max) };
}
