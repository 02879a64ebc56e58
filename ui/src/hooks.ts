import { useCallback, useEffect, useReducer, useRef, useState } from "preact/hooks";
import { ApiError, type Cursored } from "./api";
import { initialPages, pagesReducer, type PageRequest, type PagesAction, type PagesState } from "./paging";

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
}

/** Runs `load` whenever `deps` change and keeps its answer; a stale answer never overwrites a newer one. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> & { reload: () => void } {
  const [state, setState] = useState<Loaded<T>>({ data: null, error: null, loading: true });
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    let current = true;
    setState((previous) => ({ ...previous, loading: true }));
    load().then(
      (data) => current && setState({ data, error: null, loading: false }),
      (error: unknown) => current && setState({ data: null, error: message(error), loading: false }),
    );
    return () => {
      current = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, generation]);
  // Stable, so a callback that reloads can be a hook's dependency without re-running it.
  const reload = useCallback(() => setGeneration((n) => n + 1), []);
  return { ...state, reload };
}

export interface CursorPages<T> {
  /** Every page read so far, in order. */
  rows: T[];
  /** The first or the next page is being read. */
  loading: boolean;
  /** Why the last request failed (cleared when one succeeds); `retry` asks again. */
  error: string | null;
  hasMore: boolean;
  /** Appends the next page (nothing while a page is being read or after the last one). */
  loadMore: () => void;
  /** Repeats the request that failed. */
  retry: () => void;
  /** Re-reads the first page in place, without "loading", while only that page is shown (live views). */
  refresh: () => void;
  /** When the first page was last read (ms since the epoch). */
  updatedAt: number | null;
}

/**
 * A cursor-paged list: reads the first page, appends the next ones on `loadMore`, and starts over
 * (rows emptied) whenever `deps` change. `fetchPage(null)` reads the first page, `fetchPage(cursor)`
 * the one after; it is called as of the latest render. An answer asked for before `deps` changed
 * is dropped (see paging.ts).
 */
export function useCursorPages<T>(fetchPage: (cursor: string | null) => Promise<Cursored<T>>, deps: unknown[]): CursorPages<T> {
  const [state, dispatch] = useReducer<PagesState<T>, PagesAction<T>>(pagesReducer, initialPages<T>());
  const latestRef = useRef({ fetchPage, state });
  const generationRef = useRef(0);
  // Declared before the effect below so that it sees this render's fetchPage.
  useEffect(() => {
    latestRef.current = { fetchPage, state };
  });

  const read = useCallback((request: PageRequest, cursor: string | null) => {
    const asked = generationRef.current;
    if (request !== "refresh") dispatch({ type: "request", generation: asked, request });
    latestRef.current.fetchPage(cursor).then(
      (page) => dispatch({ type: "page", generation: asked, request, page, at: Date.now() }),
      (error: unknown) => dispatch({ type: "failure", generation: asked, request, error: message(error) }),
    );
  }, []);

  useEffect(() => {
    generationRef.current += 1;
    dispatch({ type: "reset", generation: generationRef.current });
    read("first", null);
    return () => {
      generationRef.current += 1;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);

  const loadMore = useCallback(() => {
    const { cursor, pending } = latestRef.current.state;
    if (cursor !== null && pending === null) read("more", cursor);
  }, [read]);
  const refresh = useCallback(() => {
    if (latestRef.current.state.pages <= 1 && latestRef.current.state.pending === null) read("refresh", null);
  }, [read]);
  const retry = useCallback(() => {
    const { failed } = latestRef.current.state;
    if (failed === "first") read("first", null);
    else if (failed === "more") loadMore();
    else if (failed === "refresh") refresh();
  }, [read, loadMore, refresh]);

  return {
    rows: state.rows,
    loading: state.pending !== null,
    error: state.error,
    hasMore: state.cursor !== null,
    loadMore,
    retry,
    refresh,
    updatedAt: state.updatedAt,
  };
}

export function message(error: unknown): string {
  if (error instanceof ApiError) return `${error.message} (${error.status} ${error.code})`;
  if (error instanceof Error) return error.message;
  return String(error);
}
