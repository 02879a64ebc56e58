// The ETL's HTTP API as the UI calls it: one fetch wrapper that sends the session token and
// turns every `{error, message}` answer into an ApiError the pages show as it is.

import type { components } from "./api-schema";

const TOKEN_KEY = "agenttrace.session";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function sessionToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function setSessionToken(token: string | null): void {
  if (token === null) localStorage.removeItem(TOKEN_KEY);
  else localStorage.setItem(TOKEN_KEY, token);
}

type Query = Record<string, string | number | boolean | null | undefined>;

export function queryString(query: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** Called when the server says the session is over, so the app shows the sign-in page. */
let onSignedOut: () => void = () => undefined;
export function whenSignedOut(callback: () => void): void {
  onSignedOut = callback;
}

export async function api<T>(method: string, path: string, query: Query = {}, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = sessionToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path + queryString(query), {
    method,
    headers,
    body: body === undefined ? null : JSON.stringify(body),
  });
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  const parsed = parseJson(text);
  if (!response.ok) {
    const error = (parsed ?? {}) as { error?: string; message?: string };
    if (response.status === 401 && token) {
      setSessionToken(null);
      onSignedOut();
    }
    throw new ApiError(response.status, error.error ?? "error", error.message ?? (text || response.statusText));
  }
  return parsed as T;
}

function parseJson(text: string): unknown {
  try {
    return text ? (JSON.parse(text) as unknown) : null;
  } catch {
    return null;
  }
}

export const get = <T>(path: string, query: Query = {}): Promise<T> => api<T>("GET", path, query);

// ---- Shapes the API answers with: from src/api-schema.ts, which openapi-typescript generates
// from etl/api/openapi.json (scripts/build-ui.sh --check fails when it is stale). ----

type Schemas = components["schemas"];

export type Session = Schemas["Session"];

/** A signed-in user's answer from `/v1/me` (keys get other variants of `Schemas["Me"]`). */
export interface Me {
  user?: Schemas["User"];
  organizations?: Schemas["MyOrganization"][];
}

export type Project = Schemas["Project"];
export type ProjectRedaction = Schemas["ProjectRedaction"];
export type RedactionRules = Schemas["Rules"];
export type Detector = Schemas["Detector"];
export type RedactedPreview = Schemas["RedactedPreview"];
export type DeletionJob = Schemas["DeletionJob"];
export type AuditEvent = Schemas["AuditEvent"];

export interface Paged<T> {
  data: T[];
  meta?: Schemas["PageMeta"];
}

export interface Cursored<T> {
  data: T[];
  next_cursor: string | null;
}

export type Level = Schemas["StoredObservation"]["level"];

/** A trace in a list, with its observations' summary. */
export type TraceRow = Schemas["TraceRow"];

/** Where a search matched: a field of a row, with a snippet and its highlights (byte ranges). */
export interface SearchMatch {
  source: string;
  id: string;
  observation_id: string;
  field: string;
  snippet: string;
  highlights: [number, number][];
}

/** A search result: the trace it found (a list row, or just its id while the trace's own
 * event has not arrived) and what matched. */
export interface SearchHit {
  matched_at_us: number;
  trace: Partial<TraceRow> & { id: string };
  matches: SearchMatch[];
}

/** A trace of a session: a list row with its input and output. */
export type SessionTrace = Schemas["SessionTrace"];

/** An observation of a trace's tree (payloads cut, `<payload>_truncated` says which). */
export type Observation = Schemas["ObservationNode"];

/** An observation whole, from `/v1/traces/{id}/observations/{observation_id}`. */
export type StoredObservation = Schemas["StoredObservation"];

export type Score = Schemas["StoredScore"];

export type FileOperation = Schemas["FileOperation"];

export type TerminalCommand = Schemas["TerminalCommand"];

export type GitLink = Schemas["GitLink"];

export type TraceDetail = Schemas["TraceDetail"];

export type MetricsAnswer = Schemas["MetricsAnswer"];

/** `/v1/metrics?view=observations`'s answer. */
export type ObservationMetricsAnswer = Omit<MetricsAnswer, "data"> & { data: Schemas["ObservationMetrics"][] };

/** `/v1/metrics?view=scores`'s answer. */
export type ScoreMetricsAnswer = Omit<MetricsAnswer, "data"> & { data: Schemas["ScoreMetrics"][] };

export type Evaluator = Schemas["Evaluator"];

export type JobRun = Schemas["JobRun"];

export type DeadLetter = Schemas["DeadLetter"];

export type Experiment = Schemas["Experiment"];

export type ScoreComparison = Schemas["ScoreComparison"];

export type ItemComparison = Schemas["ComparedItem"];

export type Comparison = Schemas["Comparison"];

export type PromptSummary = Schemas["PromptSummary"];

export type PromptVersion = Schemas["PromptVersion"];

export type Dataset = Schemas["Dataset"];

export type DatasetItem = Schemas["DatasetItem"];
/** A model connection LLM judges call (the key only as its hint). */
export type Connection = Schemas["Connection"];
/** A built-in LLM judge to start from. */
export type BuiltIn = Schemas["BuiltIn"];
/** A judge's prompt for one observation and, if it ran, the model's judgment. */
export type JudgePreview = Schemas["Preview"];
/** What an LLM judge has done: its ledger, per day, its failures. */
export type JudgeActivity = Schemas["JudgeActivity"];
/** A judge asked to judge a time range that arrived before it did. */
export type Backfill = Schemas["Backfill"];
/** How well an LLM judge agrees with people. */
export type Calibration = Schemas["Calibration"];
/** A score config: what a score of a name means. */
export type ScoreConfig = Schemas["ScoreConfigRecord"];
/** An annotation queue. */
export type Queue = Schemas["Queue"];
/** An annotation queue with its progress. */
export type QueueDetail = Schemas["QueueDetail"];
/** An item of an annotation queue. */
export type QueueItem = Schemas["QueueItem"];
/** A comment on a trace, observation, session or prompt. */
export type Comment = Schemas["Comment"];
/** Whether a trace is public. */
export type Sharing = Schemas["Sharing"];
/** An alert rule with the groups firing now and its last evaluation. */
export type AlertRule = Schemas["AlertRule"];
/** A group of an alert rule that fires now. */
export type FiringGroup = Schemas["FiringGroup"];
/** An alert rule as it is created. */
export type NewAlertRule = Schemas["NewAlertRule"];
/** A change of an alert rule's state: a group fired, resolved, or the rule could not be evaluated. */
export type AlertEvent = Schemas["AlertEvent"];
/** One notification of one alert event to one channel. */
export type AlertDelivery = Schemas["AlertDelivery"];
/** A channel alerts notify (its URL's scheme and host only). */
export type AlertChannel = Schemas["AlertChannel"];
/** A channel just made, with its signing secret, shown this once. */
export type CreatedAlertChannel = Schemas["CreatedAlertChannel"];
