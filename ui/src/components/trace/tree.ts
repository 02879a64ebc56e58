// The trace view's pure parts: the observation tree as rows, which rows show, the time the trace
// spans, each row's waterfall bar, and what a key does in the tree. Unit-tested in tree.test.ts.
//
// The API nests observations already (etl/src/analytics/traces.rs, `tree`): one whose parent is
// missing, or that sits in a parent cycle, comes as a root. What arrives is JSON, so it is a tree:
// no cycle can reach the walk below.
import type { Observation, Score } from "../../api";
import { num } from "../../format";

/** One observation as a row of the tree, in display (depth-first) order. */
export interface Row {
  observation: Observation;
  depth: number;
  /** The id of the observation it is nested under here (null for a root, orphans included). */
  parent: string | null;
  hasChildren: boolean;
}

export interface Span {
  start: number;
  end: number;
}

export const ROW_HEIGHT = 28;
export const TREE_HEIGHT = 520;
const OVERSCAN = 12;
const PAGE_ROWS = 15;
/** The narrowest waterfall bar, in percent, so that an instant still shows. */
const MIN_BAR = 0.4;

/** Every observation of the tree, depth first, children in the order the API gave them. */
export function flatten(roots: Observation[]): Row[] {
  const rows: Row[] = [];
  const stack: [Observation, number, string | null][] = roots.map((o) => [o, 0, null] as [Observation, number, string | null]).reverse();
  while (stack.length > 0) {
    const [observation, depth, parent] = stack.pop() as [Observation, number, string | null];
    rows.push({ observation, depth, parent, hasChildren: observation.children.length > 0 });
    for (let i = observation.children.length - 1; i >= 0; i--) {
      stack.push([observation.children[i] as Observation, depth + 1, observation.id]);
    }
  }
  return rows;
}

/** The rows not hidden under a collapsed ancestor (`collapsed` holds observation ids). */
export function visibleRows(all: Row[], collapsed: Set<string>): Row[] {
  const rows: Row[] = [];
  let hiddenBelow: number | null = null;
  for (const row of all) {
    if (hiddenBelow !== null) {
      if (row.depth > hiddenBelow) continue;
      hiddenBelow = null;
    }
    rows.push(row);
    if (row.hasChildren && collapsed.has(row.observation.id)) hiddenBelow = row.depth;
  }
  return rows;
}

/** From the earliest start to the latest end (an observation without an end counts as ending when it starts); 0–0 when empty. */
export function timeSpan(observations: Observation[]): Span {
  let start = Infinity;
  let end = -Infinity;
  for (const o of observations) {
    start = Math.min(start, o.start_time_us);
    end = Math.max(end, o.end_time_us ?? o.start_time_us);
  }
  return Number.isFinite(start) ? { start, end } : { start: 0, end: 0 };
}

/** The trace's latency in ms, or null when its span is empty. */
export function spanMs(span: Span): number | null {
  return span.end > span.start ? (span.end - span.start) / 1000 : null;
}

/** An observation's duration in ms, or null while it has no end. */
export function observationMs(o: Pick<Observation, "start_time_us" | "end_time_us">): number | null {
  return o.end_time_us === null ? null : (o.end_time_us - o.start_time_us) / 1000;
}

/** A generation that names its model but has no cost: the agent sent none and the price table
 * has no price for the model (`cost_source` empty), so its cost is unknown, not zero. */
export function unpriced(o: Pick<Observation, "type" | "model" | "cost_source">): boolean {
  return o.type === "generation" && !!o.model && !o.cost_source;
}

/** Cost (USD) and tokens (input + output) summed over the rows. */
export function totals(rows: Row[]): { cost: number; tokens: number } {
  let cost = 0;
  let tokens = 0;
  for (const { observation } of rows) {
    cost += num(observation.total_cost);
    tokens += observation.input_tokens + observation.output_tokens;
  }
  return { cost, tokens };
}

/** An observation's waterfall bar within the trace's span, in percent of its width. */
export function bar(o: Observation, span: Span): { left: number; width: number } {
  const total = Math.max(span.end - span.start, 1);
  const left = ((o.start_time_us - span.start) / total) * 100;
  const width = Math.max((((o.end_time_us ?? o.start_time_us) - o.start_time_us) / total) * 100, MIN_BAR);
  return { left, width: Math.min(width, 100 - left) };
}

/** The rows to render when the tree is scrolled to `scrollTop` (the tree is virtualized): [first, last). */
export function rowWindow(scrollTop: number, count: number): { first: number; last: number } {
  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(count, Math.ceil((scrollTop + TREE_HEIGHT) / ROW_HEIGHT) + OVERSCAN);
  return { first, last };
}

/** Where to scroll so that row `index` is in view: `scrollTop` itself when it already is. */
export function scrollToShow(index: number, scrollTop: number, clientHeight: number): number {
  const position = index * ROW_HEIGHT;
  if (position < scrollTop) return position;
  if (position + ROW_HEIGHT > scrollTop + clientHeight) return position + ROW_HEIGHT - clientHeight;
  return scrollTop;
}

/**
 * What a key does in the tree (the WAI-ARIA tree pattern), the selected row being `rows[index]`
 * (-1: none): `ignore` is not the tree's key (the browser keeps it), `none` is the tree's but
 * does nothing here, `focus` selects a row (its index within `rows`), `toggle` folds or unfolds a
 * row (`open` when it must end up open or closed rather than flip).
 */
export type TreeKeyAction =
  | { kind: "ignore" }
  | { kind: "none" }
  | { kind: "focus"; index: number }
  | { kind: "toggle"; id: string; open?: boolean };

export function treeKey(key: string, rows: Row[], index: number, collapsed: Set<string>): TreeKeyAction {
  const row = rows[index];
  const focus = (next: number): TreeKeyAction =>
    rows.length === 0 ? { kind: "none" } : { kind: "focus", index: Math.max(0, Math.min(rows.length - 1, next)) };
  switch (key) {
    case "ArrowDown":
      return focus(index + 1);
    case "ArrowUp":
      return focus(index - 1);
    case "Home":
      return focus(0);
    case "End":
      return focus(rows.length - 1);
    case "PageDown":
      return focus(index + PAGE_ROWS);
    case "PageUp":
      return focus(index - PAGE_ROWS);
    case "ArrowRight":
      if (!row?.hasChildren) return { kind: "none" };
      return collapsed.has(row.observation.id) ? { kind: "toggle", id: row.observation.id, open: true } : focus(index + 1);
    case "ArrowLeft": {
      if (row?.hasChildren && !collapsed.has(row.observation.id)) return { kind: "toggle", id: row.observation.id, open: false };
      const parentIndex = row?.parent ? rows.findIndex((r) => r.observation.id === row.parent) : -1;
      return parentIndex >= 0 ? focus(parentIndex) : { kind: "none" };
    }
    case "Enter":
    case " ":
      return row?.hasChildren ? { kind: "toggle", id: row.observation.id } : { kind: "none" };
    default:
      return { kind: "ignore" };
  }
}

/** `collapsed` after folding (`open` false), unfolding (true) or flipping (undefined) `id`. */
export function toggled(collapsed: Set<string>, id: string, open?: boolean): Set<string> {
  const next = new Set(collapsed);
  const isOpen = !next.has(id);
  if (open ?? !isOpen) next.delete(id);
  else next.add(id);
  return next;
}

/** A score's value as shown, and its class (pass or fail for a boolean). */
export function scoreValue(s: Score): { text: string | null; className: string } {
  if (s.data_type === "boolean") {
    const verdict = s.value >= 1 ? "pass" : "fail";
    return { text: verdict, className: verdict };
  }
  return { text: s.data_type === "categorical" ? s.string_value : s.value.toFixed(3), className: "" };
}

/** A unified diff line's class: added, removed, a hunk header, or none. */
export function diffLineClass(line: string): string {
  if (line.startsWith("+") && !line.startsWith("+++")) return "added";
  if (line.startsWith("-") && !line.startsWith("---")) return "removed";
  if (line.startsWith("@@")) return "hunk";
  return "";
}
