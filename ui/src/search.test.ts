import { describe, expect, it } from "vitest";
import { hitRow, snippetPieces } from "./search";

describe("snippetPieces", () => {
  it("cuts at byte ranges, whatever the script", () => {
    // "数" is 3 bytes in UTF-8 and 1 JavaScript character.
    expect(snippetPieces("连接数据库失败 error", [[6, 12], [22, 27]])).toEqual([
      ["连接", false],
      ["数据", true],
      ["库失败 ", false],
      ["error", true],
    ]);
  });

  it("ignores overlapping and out-of-range highlights", () => {
    expect(snippetPieces("abc", [[0, 1], [0, 2], [2, 9]])).toEqual([
      ["a", true],
      ["bc", false],
    ]);
  });
});

describe("hitRow", () => {
  it("gives a trace whose event has not arrived the list's defaults", () => {
    const row = hitRow({ matched_at_us: 5, trace: { id: "t1" }, matches: [] });
    expect(row.id).toBe("t1");
    expect(row.tags).toEqual([]);
    expect(row.timestamp_us).toBe(5);
  });
});
