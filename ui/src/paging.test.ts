import { describe, expect, it } from "vitest";
import { initialPages, pagesReducer, type PagesAction, type PagesState } from "./paging";

type S = PagesState<string>;
const run = (actions: PagesAction<string>[], state: S = initialPages<string>(1)): S => actions.reduce(pagesReducer<string>, state);
const page = (generation: number, request: "first" | "more" | "refresh", data: string[], next: string | null, at = 1): PagesAction<string> => ({
  type: "page",
  generation,
  request,
  page: { data, next_cursor: next },
  at,
});
const failure = (generation: number, request: "first" | "more" | "refresh", error = "boom"): PagesAction<string> => ({ type: "failure", generation, request, error });
const request = (generation: number, what: "first" | "more"): PagesAction<string> => ({ type: "request", generation, request: what });

describe("pagesReducer", () => {
  it("starts loading the first page, then shows it", () => {
    expect(initialPages(1)).toMatchObject({ rows: [], pending: "first", pages: 0 });
    const state = run([page(1, "first", ["a", "b"], "c1", 42)]);
    expect(state).toMatchObject({ rows: ["a", "b"], cursor: "c1", pages: 1, pending: null, error: null, updatedAt: 42 });
  });

  it("appends the next pages until the cursor runs out", () => {
    const state = run([page(1, "first", ["a"], "c1"), request(1, "more"), page(1, "more", ["b"], "c2"), request(1, "more"), page(1, "more", ["c"], null)]);
    expect(state).toMatchObject({ rows: ["a", "b", "c"], cursor: null, pages: 3, pending: null });
  });

  it("drops an answer asked for before the deps changed", () => {
    const afterReset = run([page(1, "first", ["old"], "c1"), request(1, "more"), { type: "reset", generation: 2 }]);
    expect(afterReset).toMatchObject({ rows: [], pending: "first", pages: 0 });
    const state = run([page(1, "more", ["stale"], "x"), failure(1, "more"), page(1, "refresh", ["stale"], null), page(2, "first", ["new"], null)], afterReset);
    expect(state).toMatchObject({ generation: 2, rows: ["new"], cursor: null, error: null, pending: null });
  });

  it("drops an old first page arriving after the new one", () => {
    const state = run([{ type: "reset", generation: 2 }, page(2, "first", ["new"], null), page(1, "first", ["old"], "c")]);
    expect(state.rows).toEqual(["new"]);
  });

  it("keeps the rows when the next page fails, and the retry appends once", () => {
    let state = run([page(1, "first", ["a"], "c1"), request(1, "more"), failure(1, "more", "503")]);
    expect(state).toMatchObject({ rows: ["a"], cursor: "c1", pending: null, error: "503", failed: "more" });
    state = run([request(1, "more")], state);
    expect(state).toMatchObject({ error: null, failed: null, pending: "more" });
    state = run([page(1, "more", ["b"], null)], state);
    expect(state).toMatchObject({ rows: ["a", "b"], pages: 2 });
  });

  it("reports a failed first page for retry", () => {
    const state = run([failure(1, "first", "401")]);
    expect(state).toMatchObject({ rows: [], pending: null, error: "401", failed: "first" });
    expect(run([request(1, "first"), page(1, "first", ["a"], null)], state)).toMatchObject({ rows: ["a"], error: null, failed: null });
  });

  it("ignores a second answer for a page already in (a double click)", () => {
    const state = run([page(1, "first", ["a"], "c1"), request(1, "more"), request(1, "more"), page(1, "more", ["b"], "c2"), page(1, "more", ["b"], "c2")]);
    expect(state.rows).toEqual(["a", "b"]);
  });

  describe("refresh (live)", () => {
    it("replaces the first page in place", () => {
      const state = run([page(1, "first", ["a"], "c1", 1), page(1, "refresh", ["new", "a"], "c9", 2)]);
      expect(state).toMatchObject({ rows: ["new", "a"], cursor: "c9", pages: 1, updatedAt: 2 });
    });

    it("leaves the rows alone once more pages were loaded, or while one is being read", () => {
      const more = run([page(1, "first", ["a"], "c1"), request(1, "more"), page(1, "more", ["b"], null)]);
      expect(run([page(1, "refresh", ["x"], "c"), failure(1, "refresh")], more)).toBe(more);
      const reading = run([page(1, "first", ["a"], "c1"), request(1, "more")]);
      expect(run([page(1, "refresh", ["x"], "c")], reading)).toBe(reading);
    });

    it("shows its failure, and its next success clears it", () => {
      let state = run([page(1, "first", ["a"], null), failure(1, "refresh", "down")]);
      expect(state).toMatchObject({ rows: ["a"], error: "down", failed: "refresh" });
      state = run([page(1, "refresh", ["a"], null)], state);
      expect(state).toMatchObject({ error: null, failed: null });
    });

    it("fills in a first page that failed", () => {
      const state = run([failure(1, "first"), page(1, "refresh", ["a"], "c1")]);
      expect(state).toMatchObject({ rows: ["a"], cursor: "c1", pages: 1, error: null });
    });
  });
});
