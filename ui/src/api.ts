// The ETL's HTTP API as the UI calls it: one fetch wrapper that sends the session token and
// turns every `{error, message}` answer into an ApiError the pages show as it is.

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

// ---- Shapes the API answers with (only the fields the UI reads). ----

export interface Session {
  token: string;
  expires_at: string;
}

export interface Me {
  user?: { id: string; email: string; name?: string | null };
  organizations?: { id: string; name: string; role: string }[];
}

export interface Project {
  id: string;
  name: string;
  organization_id?: string;
}

export interface Paged<T> {
  data: T[];
  meta?: { page: number; limit: number; totalItems: number; totalPages: number };
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

export interface Evaluator {
  id: string;
  name: string;
  kind: string;
  enabled?: boolean;
  score_name?: string;
}

export interface JobRun {
  id: number;
  job: string;
  started_at: string;
  finished_at: string | null;
  status: "running" | "succeeded" | "failed";
  rows_in: number;
  rows_out: number;
  error: string | null;
}

export interface DeadLetter {
  batch_id: string;
  event_index: number;
  event_id: string | null;
  event_type: string | null;
  received_at_us: number;
  reason: string;
  raw: string;
}

export interface Experiment {
  id: string;
  name: string;
  dataset_id: string;
  description?: string | null;
  created_at: string;
}

export interface ScoreComparison {
  score_name: string;
  a_mean: number | null;
  b_mean: number | null;
  a_scores: number;
  b_scores: number;
  paired_items: number;
  mean_difference: number | null;
  ci_low: number | null;
  ci_high: number | null;
}

export interface ItemComparison {
  dataset_item_id: string;
  input: unknown;
  expected_output: unknown;
  a_trace_id: string | null;
  b_trace_id: string | null;
  a_scores: Record<string, number>;
  b_scores: Record<string, number>;
}

export interface Comparison {
  a: Experiment;
  b: Experiment;
  scores: ScoreComparison[];
  items: ItemComparison[];
}

export interface PromptSummary {
  name: string;
  type: string;
  versions: number[];
  labels: string[];
  tags: string[];
  last_updated_at: string;
}

export interface PromptVersion {
  name: string;
  type: string;
  version: number;
  prompt: unknown;
  config: unknown;
  labels: string[];
  tags: string[];
  commit_message: string | null;
  created_at: string;
}

export interface Dataset {
  id: string;
  name: string;
  description: string | null;
  created_at: string;
}

export interface DatasetItem {
  id: string;
  input: unknown;
  expected_output: unknown;
  metadata: unknown;
  status: string;
  created_at: string;
}
