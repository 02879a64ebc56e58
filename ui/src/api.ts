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
// from etl/api/openapi.json (scripts/build-ui.sh --check fails when it is stale); written here
// only where the document does not describe them yet (the read API's ClickHouse rows). ----

type Schemas = components["schemas"];

export type Session = Schemas["Session"];

/** A signed-in user's answer from `/v1/me` (keys get other variants of `Schemas["Me"]`). */
export interface Me {
  user?: Schemas["User"];
  organizations?: Schemas["MyOrganization"][];
}

export type Project = Schemas["Project"];

export interface Paged<T> {
  data: T[];
  meta?: Schemas["PageMeta"];
}

export interface Cursored<T> {
  data: T[];
  next_cursor: string | null;
}

export type Level = "default" | "debug" | "warning" | "error";

export interface TraceRow {
  id: string;
  name: string | null;
  timestamp_us: number;
  user_id: string | null;
  session_id: string | null;
  tags: string[];
  environment: string;
  release: string | null;
  observation_count: number;
  total_cost: number;
  input_tokens: number;
  output_tokens: number;
  latency_ms: number | null;
  level: Level;
  input?: unknown;
  output?: unknown;
}

export interface Observation {
  id: string;
  trace_id: string;
  parent_observation_id: string | null;
  type: string;
  name: string;
  start_time_us: number;
  end_time_us: number | null;
  completion_start_time_us?: number | null;
  level: Level;
  status_message: string | null;
  input: unknown;
  output: unknown;
  metadata?: Record<string, unknown>;
  model: string | null;
  model_parameters?: unknown;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  total_cost: number | string | null;
  tool_name: string | null;
  /** In a trace's detail, payloads are cut to their first 1,000 characters; these say which were. */
  input_truncated?: boolean;
  output_truncated?: boolean;
  model_parameters_truncated?: boolean;
  metadata_truncated?: boolean;
  children: Observation[];
}

export interface Score {
  id: string;
  trace_id: string;
  observation_id: string | null;
  timestamp_us: number;
  name: string;
  data_type: string;
  value: number;
  string_value: string | null;
  source: string;
  evaluator_id: string | null;
  comment: string | null;
}

export interface FileOperation {
  id: string;
  observation_id: string | null;
  timestamp_us: number;
  operation: string;
  path: string;
  new_path: string | null;
  language: string | null;
  lines_added: number;
  lines_removed: number;
  diff: string | null;
}

export interface TerminalCommand {
  id: string;
  observation_id: string | null;
  timestamp_us: number;
  command: string;
  cwd: string | null;
  exit_code: number | null;
  duration_ms: number | null;
  stdout: string | null;
  stderr: string | null;
}

export interface GitLink {
  id: string;
  observation_id: string | null;
  timestamp_us: number;
  repository: string;
  branch: string | null;
  commit_sha: string;
  message: string | null;
  author: string | null;
  files_changed: number;
  insertions: number;
  deletions: number;
  pull_request_url: string | null;
}

export interface TraceDetail {
  id: string;
  trace: (TraceRow & { input: unknown; output: unknown; metadata?: Record<string, unknown> }) | null;
  observation_count: number;
  observations_truncated: boolean;
  observations: Observation[];
  scores: Score[];
  file_operations: FileOperation[];
  terminal_commands: TerminalCommand[];
  git_links: GitLink[];
}

export interface MetricsAnswer {
  view: string;
  dimensions: string[];
  data: Record<string, unknown>[];
}

export type Evaluator = Schemas["Evaluator"];

export type JobRun = Schemas["JobRun"];

export interface DeadLetter {
  batch_id: string;
  event_index: number;
  event_id: string | null;
  event_type: string | null;
  received_at_us: number;
  reason: string;
  raw: string;
}

export type Experiment = Schemas["Experiment"];

export type ScoreComparison = Schemas["ScoreComparison"];

export type ItemComparison = Schemas["ComparedItem"];

export type Comparison = Schemas["Comparison"];

export type PromptSummary = Schemas["PromptSummary"];

export type PromptVersion = Schemas["PromptVersion"];

export type Dataset = Schemas["Dataset"];

export type DatasetItem = Schemas["DatasetItem"];
