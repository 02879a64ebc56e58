import { describe, expect, it } from "vitest";
import type { Observation, Score } from "../../api";
import {
  bar,
  diffLineClass,
  flatten,
  observationMs,
  ROW_HEIGHT,
  rowWindow,
  scoreValue,
  scrollToShow,
  spanMs,
  timeSpan,
  toggled,
  totals,
  treeKey,
  visibleRows,
  unpriced,
  type Row,
} from "./tree";

/** An observation as the API sends it; `children` nested already. */
function obs(id: string, fields: Partial<Observation> = {}, children: Observation[] = []): Observation {
  return {
    id,
    trace_id: "t",
    parent_observation_id: null,
    type: "span",
    name: id,
    start_time_us: 0,
    end_time_us: 0,
    level: "default",
    status_message: null,
    input: null,
    output: null,
    metadata: {},
    model: null,
    model_parameters: null,
    input_tokens: 0,
    output_tokens: 0,
    cache_read_tokens: 0,
    cache_write_tokens: 0,
    input_cost: null,
    output_cost: null,
    cache_read_cost: null,
    cache_write_cost: null,
    total_cost: null,
    cost_source: "",
    tool_name: null,
    tool_call_id: null,
    completion_start_time_us: null,
    prompt_name: null,
    prompt_version: null,
    api_key: "",
    ingested_at: "2026-01-01 00:00:00",
    input_truncated: false,
    output_truncated: false,
    model_parameters_truncated: false,
    metadata_truncated: false,
    ...fields,
    children,
  };
}

const ids = (rows: Row[]) => rows.map((row) => row.observation.id);
const shape = (rows: Row[]) => rows.map((row) => `${"  ".repeat(row.depth)}${row.observation.id}<${row.parent ?? "-"}>${row.hasChildren ? "+" : ""}`);

/** root(a(a1, a2(a2x)), b), c */
const forest = () => [
  obs("root", {}, [obs("a", { parent_observation_id: "root" }, [obs("a1"), obs("a2", {}, [obs("a2x")])]), obs("b")]),
  obs("c"),
];

describe("flatten", () => {
  it("is empty for a trace without observations", () => {
    expect(flatten([])).toEqual([]);
  });

  it("walks depth first, children in the API's order, with depth, parent and whether a row has children", () => {
    expect(shape(flatten(forest()))).toEqual([
      "root<->+",
      "  a<root>+",
      "    a1<a>",
      "    a2<a>+",
      "      a2x<a2>",
      "  b<root>",
      "c<->",
    ]);
  });

  it("keeps an orphan (its parent missing) as a root: depth 0, no parent", () => {
    const rows = flatten([obs("root"), obs("orphan", { parent_observation_id: "missing" }, [obs("kid")])]);
    expect(shape(rows)).toEqual(["root<->", "orphan<->+", "  kid<orphan>"]);
  });

  it("nests by `children`, not by parent_observation_id (a cycle the API broke into a root stays one)", () => {
    // The API served x→y→x as x(y): x is a root although its parent_observation_id names y.
    const rows = flatten([obs("x", { parent_observation_id: "y" }, [obs("y", { parent_observation_id: "x" })])]);
    expect(shape(rows)).toEqual(["x<->+", "  y<x>"]);
  });

  it("handles a deep chain without recursion", () => {
    let node = obs("n0");
    for (let i = 1; i < 20_000; i++) node = obs(`n${i}`, {}, [node]);
    const rows = flatten([node]);
    expect(rows).toHaveLength(20_000);
    expect(rows.at(-1)?.depth).toBe(19_999);
  });
});

describe("visibleRows", () => {
  const all = flatten(forest());

  it("shows every row when nothing is collapsed", () => {
    expect(visibleRows(all, new Set())).toEqual(all);
  });

  it("is empty for an empty tree", () => {
    expect(visibleRows([], new Set(["a"]))).toEqual([]);
  });

  it("hides a collapsed row's whole subtree and nothing after it", () => {
    expect(ids(visibleRows(all, new Set(["a"])))).toEqual(["root", "a", "b", "c"]);
  });

  it("hides everything under a collapsed root, down to the next root", () => {
    expect(ids(visibleRows(all, new Set(["root"])))).toEqual(["root", "c"]);
  });

  it("keeps a collapsed row inside a collapsed one hidden, and its own fold when the outer opens", () => {
    expect(ids(visibleRows(all, new Set(["root", "a2"])))).toEqual(["root", "c"]);
    expect(ids(visibleRows(all, new Set(["a2"])))).toEqual(["root", "a", "a1", "a2", "b", "c"]);
  });

  it("ignores a collapsed leaf and ids that are not in the tree", () => {
    expect(visibleRows(all, new Set(["a1", "c", "nowhere"]))).toEqual(all);
  });
});

describe("timeSpan", () => {
  it("is 0–0 for no observations", () => {
    expect(timeSpan([])).toEqual({ start: 0, end: 0 });
  });

  it("runs from the earliest start to the latest end", () => {
    expect(timeSpan([obs("a", { start_time_us: 50, end_time_us: 80 }), obs("b", { start_time_us: 10, end_time_us: 200 })])).toEqual({ start: 10, end: 200 });
  });

  it("counts an observation without an end as ending when it starts", () => {
    expect(timeSpan([obs("a", { start_time_us: 100, end_time_us: null })])).toEqual({ start: 100, end: 100 });
    expect(timeSpan([obs("a", { start_time_us: 10, end_time_us: 20 }), obs("b", { start_time_us: 500, end_time_us: null })])).toEqual({ start: 10, end: 500 });
  });

  it("gives a latency only when the span is not empty", () => {
    expect(spanMs({ start: 1_000, end: 251_000 })).toBe(250);
    expect(spanMs({ start: 5, end: 5 })).toBeNull();
    expect(spanMs(timeSpan([]))).toBeNull();
  });
});

describe("observationMs", () => {
  it("is the duration in ms, or null without an end", () => {
    expect(observationMs(obs("a", { start_time_us: 1_000, end_time_us: 3_500 }))).toBe(2.5);
    expect(observationMs(obs("a", { start_time_us: 1_000, end_time_us: null }))).toBeNull();
  });
});

describe("totals", () => {
  it("sums cost (numbers, null) and input + output tokens", () => {
    const rows = flatten([
      obs("a", { total_cost: 0.5, input_tokens: 10, output_tokens: 5 }, [obs("b", { total_cost: 0.25, input_tokens: 1, output_tokens: 2 })]),
      obs("c", { total_cost: null, cache_read_tokens: 1000 }),
    ]);
    expect(totals(rows)).toEqual({ cost: 0.75, tokens: 18 });
    expect(totals([])).toEqual({ cost: 0, tokens: 0 });
  });
});

describe("unpriced", () => {
  it("is a generation with a model and no cost source", () => {
    expect(unpriced({ type: "generation", model: "gpt-9", cost_source: "" })).toBe(true);
    expect(unpriced({ type: "generation", model: "gpt-5", cost_source: "price_table" })).toBe(false);
    expect(unpriced({ type: "generation", model: "claude-opus-4-6", cost_source: "agent" })).toBe(false);
    expect(unpriced({ type: "generation", model: null, cost_source: "" })).toBe(false);
    expect(unpriced({ type: "span", model: "gpt-9", cost_source: "" })).toBe(false);
  });
});

describe("bar", () => {
  const span = { start: 1_000, end: 2_000 };

  it("places the bar in percent of the span", () => {
    expect(bar(obs("a", { start_time_us: 1_250, end_time_us: 1_750 }), span)).toEqual({ left: 25, width: 50 });
  });

  it("gives an instant, or an observation without an end, the narrowest bar", () => {
    expect(bar(obs("a", { start_time_us: 1_500, end_time_us: null }), span)).toEqual({ left: 50, width: 0.4 });
  });

  it("never runs past the span's end", () => {
    expect(bar(obs("a", { start_time_us: 2_000, end_time_us: null }), span)).toEqual({ left: 100, width: 0 });
  });

  it("does not divide by zero on an empty span", () => {
    expect(bar(obs("a", { start_time_us: 7, end_time_us: 7 }), { start: 7, end: 7 })).toEqual({ left: 0, width: 0.4 });
  });
});

describe("rowWindow and scrollToShow", () => {
  it("renders the rows in view with some overscan, within the list", () => {
    expect(rowWindow(0, 0)).toEqual({ first: 0, last: 0 });
    expect(rowWindow(0, 1_000)).toEqual({ first: 0, last: 31 });
    expect(rowWindow(100 * ROW_HEIGHT, 1_000)).toEqual({ first: 88, last: 131 });
    expect(rowWindow(995 * ROW_HEIGHT, 1_000).last).toBe(1_000);
  });

  it("scrolls only as far as needed to show a row", () => {
    expect(scrollToShow(10, 0, 10 * ROW_HEIGHT)).toBe(ROW_HEIGHT);
    expect(scrollToShow(3, 5 * ROW_HEIGHT, 200)).toBe(3 * ROW_HEIGHT);
    expect(scrollToShow(6, 5 * ROW_HEIGHT, 200)).toBe(5 * ROW_HEIGHT);
  });
});

describe("treeKey", () => {
  const all = flatten(forest()); // root, a, a1, a2, a2x, b, c
  const at = (id: string, rows: Row[] = all) => rows.findIndex((row) => row.observation.id === id);
  const none = new Set<string>();

  it("moves the selection, clamped to the rows", () => {
    expect(treeKey("ArrowDown", all, 0, none)).toEqual({ kind: "focus", index: 1 });
    expect(treeKey("ArrowDown", all, 6, none)).toEqual({ kind: "focus", index: 6 });
    expect(treeKey("ArrowUp", all, 0, none)).toEqual({ kind: "focus", index: 0 });
    expect(treeKey("Home", all, 4, none)).toEqual({ kind: "focus", index: 0 });
    expect(treeKey("End", all, 0, none)).toEqual({ kind: "focus", index: 6 });
    expect(treeKey("PageDown", all, 0, none)).toEqual({ kind: "focus", index: 6 });
    expect(treeKey("PageUp", all, 6, none)).toEqual({ kind: "focus", index: 0 });
  });

  it("starts at the first row when nothing is selected", () => {
    expect(treeKey("ArrowDown", all, -1, none)).toEqual({ kind: "focus", index: 0 });
    expect(treeKey("ArrowUp", all, -1, none)).toEqual({ kind: "focus", index: 0 });
    expect(treeKey("ArrowRight", all, -1, none)).toEqual({ kind: "none" });
    expect(treeKey("ArrowLeft", all, -1, none)).toEqual({ kind: "none" });
  });

  it("does nothing in an empty tree", () => {
    expect(treeKey("ArrowDown", [], -1, none)).toEqual({ kind: "none" });
    expect(treeKey("End", [], -1, none)).toEqual({ kind: "none" });
  });

  it("ArrowRight opens a collapsed row, else moves into its first child; nothing on a leaf", () => {
    expect(treeKey("ArrowRight", all, at("a"), new Set(["a"]))).toEqual({ kind: "toggle", id: "a", open: true });
    expect(treeKey("ArrowRight", all, at("a"), none)).toEqual({ kind: "focus", index: at("a1") });
    expect(treeKey("ArrowRight", all, at("a1"), none)).toEqual({ kind: "none" });
  });

  it("ArrowLeft closes an open row, else goes to its parent among the visible rows", () => {
    expect(treeKey("ArrowLeft", all, at("a"), none)).toEqual({ kind: "toggle", id: "a", open: false });
    expect(treeKey("ArrowLeft", all, at("a2x"), none)).toEqual({ kind: "focus", index: at("a2") });
    const folded = new Set(["a"]);
    const rows = visibleRows(all, folded);
    expect(treeKey("ArrowLeft", rows, at("a", rows), folded)).toEqual({ kind: "focus", index: at("root", rows) });
    expect(treeKey("ArrowLeft", all, at("c"), none)).toEqual({ kind: "none" });
  });

  it("ArrowLeft on an orphan stays put: it is a root", () => {
    const rows = flatten([obs("orphan", { parent_observation_id: "missing" })]);
    expect(treeKey("ArrowLeft", rows, 0, none)).toEqual({ kind: "none" });
  });

  it("Enter and Space flip a row with children", () => {
    expect(treeKey("Enter", all, at("a"), none)).toEqual({ kind: "toggle", id: "a" });
    expect(treeKey(" ", all, at("a"), new Set(["a"]))).toEqual({ kind: "toggle", id: "a" });
    expect(treeKey("Enter", all, at("b"), none)).toEqual({ kind: "none" });
  });

  it("leaves other keys to the browser", () => {
    expect(treeKey("Tab", all, 0, none)).toEqual({ kind: "ignore" });
    expect(treeKey("a", all, 0, none)).toEqual({ kind: "ignore" });
  });
});

describe("toggled", () => {
  it("flips, forces open or forces closed, without changing the set it was given", () => {
    const start = new Set(["a"]);
    expect([...toggled(start, "a")]).toEqual([]);
    expect([...toggled(start, "b")]).toEqual(["a", "b"]);
    expect([...toggled(start, "a", true)]).toEqual([]);
    expect([...toggled(start, "a", false)]).toEqual(["a"]);
    expect([...toggled(start, "b", true)]).toEqual(["a"]);
    expect([...start]).toEqual(["a"]);
  });
});

describe("scoreValue", () => {
  const score = (fields: Partial<Score>): Score => ({
    id: "s",
    trace_id: "t",
    observation_id: null,
    timestamp_us: 0,
    name: "n",
    data_type: "numeric",
    value: 0,
    string_value: null,
    source: "api",
    evaluator_id: null,
    comment: null,
    metadata: {},
    ...fields,
  });

  it("shows numbers to three places, booleans as pass or fail, categories by name", () => {
    expect(scoreValue(score({ value: 0.12345 }))).toEqual({ text: "0.123", className: "" });
    expect(scoreValue(score({ data_type: "boolean", value: 1 }))).toEqual({ text: "pass", className: "pass" });
    expect(scoreValue(score({ data_type: "boolean", value: 0 }))).toEqual({ text: "fail", className: "fail" });
    expect(scoreValue(score({ data_type: "categorical", string_value: "good" }))).toEqual({ text: "good", className: "" });
  });
});

describe("diffLineClass", () => {
  it("tells added, removed and hunk lines from file headers and context", () => {
    expect(["+x", "-x", "@@ -1 +1 @@", "+++ b/f", "--- a/f", " x", ""].map(diffLineClass)).toEqual(["added", "removed", "hunk", "", "", "", ""]);
  });
});
