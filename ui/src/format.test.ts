import { describe, expect, it } from "vitest";
import { httpUrl } from "./format";

describe("httpUrl", () => {
  it("keeps http and https URLs", () => {
    expect(httpUrl("https://github.com/acme/app/pull/1")).toBe("https://github.com/acme/app/pull/1");
    expect(httpUrl("HTTP://git.example.test/pr")).toBe("HTTP://git.example.test/pr");
  });
  it("refuses every other scheme and anything relative", () => {
    for (const url of ["javascript:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)", "data:text/html,x", "//evil.test", "/x", "", null, undefined]) {
      expect(httpUrl(url)).toBeNull();
    }
  });
});
