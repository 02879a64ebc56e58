// Cursor paging as a state machine (useCursorPages in hooks.ts drives it): the first page, more
// pages appended, and the first page re-read in place for live views. Every answer carries the
// generation it was asked for; the generation changes when the view's project or filters do, so
// an answer meant for the old ones is dropped instead of landing in the new rows.
import type { Cursored } from "./api";

/** What a request is for: the first page, the next one, or the first page again (live). */
export type PageRequest = "first" | "more" | "refresh";

export interface PagesState<T> {
  generation: number;
  rows: T[];
  /** The next page's cursor; null once the last page is in. */
  cursor: string | null;
  /** Pages in `rows`: 0 until the first arrives. */
  pages: number;
  /** The first or next page being read (a refresh is silent and not counted). */
  pending: "first" | "more" | null;
  error: string | null;
  /** The request that failed, for retry. */
  failed: PageRequest | null;
  /** When the first page was last read (ms since the epoch). */
  updatedAt: number | null;
}

export type PagesAction<T> =
  | { type: "reset"; generation: number }
  | { type: "request"; generation: number; request: "first" | "more" }
  | { type: "page"; generation: number; request: PageRequest; page: Cursored<T>; at: number }
  | { type: "failure"; generation: number; request: PageRequest; error: string };

/** Before anything was asked: the first page is about to be. */
export function initialPages<T>(generation = 0): PagesState<T> {
  return { generation, rows: [], cursor: null, pages: 0, pending: "first", error: null, failed: null, updatedAt: null };
}

/** A refresh replaces the rows only while they are the first page alone and nothing else is being read. */
function refreshable<T>(state: PagesState<T>): boolean {
  return state.pages <= 1 && state.pending === null;
}

export function pagesReducer<T>(state: PagesState<T>, action: PagesAction<T>): PagesState<T> {
  if (action.type === "reset") return initialPages(action.generation);
  if (action.generation !== state.generation) return state;
  switch (action.type) {
    case "request":
      return { ...state, pending: action.request, error: null, failed: null };
    case "page": {
      const { page, request } = action;
      if (request === "refresh") {
        if (!refreshable(state)) return state;
        return { ...state, rows: page.data, cursor: page.next_cursor, pages: 1, error: null, failed: null, updatedAt: action.at };
      }
      if (state.pending !== request) return state;
      if (request === "first") {
        return { ...state, rows: page.data, cursor: page.next_cursor, pages: 1, pending: null, updatedAt: action.at };
      }
      return { ...state, rows: [...state.rows, ...page.data], cursor: page.next_cursor, pages: state.pages + 1, pending: null };
    }
    case "failure":
      if (action.request === "refresh") {
        return refreshable(state) ? { ...state, error: action.error, failed: "refresh" } : state;
      }
      if (state.pending !== action.request) return state;
      return { ...state, pending: null, error: action.error, failed: action.request };
  }
}
