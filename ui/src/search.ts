// Search results as the traces page shows them: hits as list rows, snippets cut at their
// highlights (which the API gives as UTF-8 byte ranges, not JavaScript string indexes).

import type { SearchHit, SearchMatch, TraceRow } from "./api";

/** A trace-list row, with what a search found in it. */
export type ListedTrace = TraceRow & { matches?: SearchMatch[] };

/** A search hit as a list row (a trace whose own event has not arrived yet shows its id). */
export function hitRow(hit: SearchHit): ListedTrace {
  return {
    name: null,
    user_id: null,
    session_id: null,
    tags: [],
    environment: "",
    release: null,
    timestamp_us: hit.matched_at_us,
    observation_count: 0,
    total_cost: 0,
    input_tokens: 0,
    output_tokens: 0,
    latency_ms: 0,
    level: "default",
    ...hit.trace,
    matches: hit.matches,
  };
}

/** Splits a snippet at its highlights, given as UTF-8 byte ranges, into [text, highlighted]. */
export function snippetPieces(snippet: string, highlights: [number, number][]): [string, boolean][] {
  const bytes = new TextEncoder().encode(snippet);
  const decode = (from: number, to: number) => new TextDecoder().decode(bytes.slice(from, to));
  const pieces: [string, boolean][] = [];
  let at = 0;
  for (const [start, end] of [...highlights].sort((a, b) => a[0] - b[0])) {
    if (start < at || end > bytes.length || start >= end) continue;
    if (start > at) pieces.push([decode(at, start), false]);
    pieces.push([decode(start, end), true]);
    at = end;
  }
  if (at < bytes.length) pieces.push([decode(at, bytes.length), false]);
  return pieces;
}

