import { describe, expect, it } from "vitest";
import { chatOf, gist, httpUrl, payloadText, usd } from "./format";

describe("usd", () => {
  it("shows cents from a cent up, and zero as $0", () => {
    expect(usd(0)).toBe("$0");
    expect(usd(0.01)).toBe("$0.01");
    expect(usd(12.345)).toBe("$12.35");
    expect(usd("1234.5")).toBe("$1234.50");
  });
  it("shows two significant digits below a cent, never an exponent", () => {
    expect(usd(0.0000312)).toBe("$0.000031");
    expect(usd(0.0042)).toBe("$0.0042");
    expect(usd(0.0003)).toBe("$0.0003");
    expect(usd(1.5e-7)).toBe("$0.00000015");
    expect(usd(1e-9)).toBe("$0.000000001");
    expect(usd(-0.0042)).toBe("$-0.0042");
  });
  it("rounds up to a cent when two digits reach it", () => {
    expect(usd(0.00999)).toBe("$0.01");
  });
  it("says how small an amount below a billionth of a dollar is", () => {
    expect(usd(3e-12)).toBe("<$0.000000001");
    expect(usd(Number.MIN_VALUE)).toBe("<$0.000000001");
  });
});

describe("payloadText", () => {
  it("reads a prompt's text out of the shapes agents send", () => {
    expect(payloadText("fix the bug")).toBe("fix the bug");
    expect(payloadText({ prompt: "fix the bug" })).toBe("fix the bug");
    expect(payloadText('{"prompt": "fix the bug"}')).toBe("fix the bug");
    expect(payloadText({ user_prompt: "fix the bug", cwd: "/repo" })).toBe("fix the bug");
    expect(payloadText({ content: "fix the bug" })).toBe("fix the bug");
    expect(payloadText({ input: [{ type: "message", role: "user", content: [{ type: "input_text", text: "fix the bug" }] }] })).toBe("fix the bug");
  });
  it("takes a chat's last message with text, not its history nor its tool results", () => {
    const chat = [
      { role: "system", content: "You are a coding agent." },
      { role: "user", content: "fix the bug" },
      { role: "assistant", content: null, tool_calls: [{ id: "1" }] },
      { role: "tool", content: "exit 0" },
    ];
    expect(payloadText(chat)).toBe("fix the bug");
    expect(payloadText({ messages: chat })).toBe("fix the bug");
    expect(payloadText(JSON.stringify({ messages: chat }))).toBe("fix the bug");
    expect(payloadText([{ role: "user", content: [{ type: "tool_result", tool_use_id: "t", content: "ok" }] }])).toBeNull();
  });
  it("joins an answer's text parts and leaves its tool calls out", () => {
    const answer = { role: "assistant", content: [{ type: "text", text: "Done." }, { type: "tool_use", name: "Bash", input: { command: "ls" } }, { type: "text", text: "Tests pass." }] };
    expect(payloadText(answer)).toBe("Done.\n\nTests pass.");
    expect(payloadText({ choices: [{ index: 0, message: { role: "assistant", content: "Done." } }] })).toBe("Done.");
  });
  it("reads a Claude Code transcript as its chat: the last answer with text", () => {
    const transcript = [
      { type: "system", subtype: "init", session_id: "s", tools: ["Bash"] },
      { type: "user", message: { role: "user", content: "fix the failing test" } },
      { type: "assistant", message: { role: "assistant", content: [{ type: "tool_use", id: "t1", name: "Bash", input: { command: "cargo test" } }] } },
      { type: "user", message: { role: "user", content: [{ type: "tool_result", tool_use_id: "t1", content: "1 failed" }] } },
      { type: "assistant", message: { role: "assistant", content: [{ type: "text", text: "Fixed the off-by-one; tests pass." }] } },
      { type: "result", subtype: "success", result: "Fixed the off-by-one; tests pass.", total_cost_usd: 0.01 },
    ];
    expect(payloadText(transcript)).toBe("Fixed the off-by-one; tests pass.");
    expect(payloadText(JSON.stringify(transcript.slice(0, 2)))).toBe("fix the failing test");
    expect(chatOf(transcript).map((m) => (m as { role: string }).role)).toEqual(["user", "assistant", "user", "assistant"]);
    expect(chatOf([{ type: "text", text: "a" }])).toEqual([{ type: "text", text: "a" }]);
  });
  it("is null when there is no text", () => {
    for (const value of [null, undefined, "", "  ", 42, {}, [], { command: "ls" }, { prompt: "" }]) {
      expect(payloadText(value)).toBeNull();
    }
  });
  it("keeps a string that only looks like JSON", () => {
    expect(payloadText("[draft] fix the bug")).toBe("[draft] fix the bug");
  });
});

describe("gist", () => {
  it("is a payload's text in one line, cut", () => {
    expect(gist({ question: "What is\n the capital of France?" })).toBe("What is the capital of France?");
    const long = gist({ question: "word ".repeat(40) });
    expect(long).toHaveLength(60);
    expect(long?.endsWith("…")).toBe(true);
  });
  it("falls back to compact JSON, and is null for nothing", () => {
    expect(gist({ a: 1, b: [2, 3] })).toBe('{"a":1,"b":[2,3]}');
    expect(gist(null)).toBeNull();
    expect(gist("  ")).toBeNull();
  });
});

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
