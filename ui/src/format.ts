// How numbers, times and durations read on screen.

export function num(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "string") return Number(value);
  return 0;
}

/** Dollars: cents from $0.01 up; below, two significant digits, trailing zeros dropped (one
 * generation often costs a fraction of a cent, which `$0.0000` hid), never in exponent notation. */
export function usd(value: unknown): string {
  const amount = num(value);
  if (amount === 0) return "$0";
  const size = Math.abs(amount);
  if (size < 1e-9) return amount > 0 ? "<$0.000000001" : ">$-0.000000001";
  // Rounded first, so 0.00999 reads $0.01 and not $0.0100.
  const rounded = Number(size.toPrecision(2));
  if (rounded >= 0.01) return `$${amount.toFixed(2)}`;
  return `$${amount.toFixed(1 - Math.floor(Math.log10(rounded))).replace(/0+$/, "")}`;
}

export function count(value: unknown): string {
  const n = num(value);
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return n.toLocaleString("en-US");
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1) return "<1 ms";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function percent(value: number | null | undefined, digits = 1): string {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return `${(value * 100).toFixed(digits)}%`;
}

export function time(us: number): string {
  return new Date(us / 1000).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "medium", timeZone: "UTC" }) + " UTC";
}

export function ago(us: number): string {
  const seconds = (Date.now() - us / 1000) / 1000;
  if (seconds < 60) return `${Math.max(0, Math.round(seconds))} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86_400)} d ago`;
}

export function shortId(id: string): string {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

/** Midnight UTC `days` ago, as RFC 3339. */
export function daysAgo(days: number): string {
  const now = new Date();
  const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return new Date(midnight - (days - 1) * 86_400_000).toISOString();
}

/** `url` when it is an http(s) URL, safe to link; `null` for anything else (`javascript:`,
 * `data:`, relative paths), which is shown as text, never as a link. The server refuses other
 * schemes, but links stored before it did, or by another writer, are not trusted. */
export function httpUrl(url: string | null | undefined): string | null {
  if (!url) return null;
  try {
    const parsed = new URL(url);
    return (parsed.protocol === "http:" || parsed.protocol === "https:") && /^https?:\/\//i.test(url) ? url : null;
  } catch {
    return null;
  }
}

/** `value` parsed when it is a string holding a JSON object or array: SDKs often send payloads
 * JSON-encoded, and such a string reads better as what it holds. */
export function parsedJson(value: unknown): unknown {
  if (typeof value !== "string" || !/^\s*[[{]/.test(value)) return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

/** The fields that hold what a payload asks or answers, most telling first: dataset items'
 * `question`, prompts (Claude Code's `prompt`/`user_prompt`, Codex's `input`), chat messages
 * (OpenAI's `messages`/`choices`, Gemini's `contents`/`parts`) and answers. */
const TEXT_FIELDS = [
  "question", "prompt", "user_prompt", "input", "query", "text", "content", "message", "messages",
  "contents", "parts", "choices", "output", "answer", "response", "completion", "result",
];

/** Items of a chat or its content that are text, as OpenAI (Chat and Responses) and Anthropic type
 * them; the rest (tool calls and their results, images, reasoning) is not what was said. */
const TEXT_TYPES = new Set(["text", "input_text", "output_text", "message"]);

function said(item: unknown): string | null {
  if (item && typeof item === "object") {
    const { type, role } = item as { type?: unknown; role?: unknown };
    if ((typeof type === "string" && !TEXT_TYPES.has(type)) || role === "tool" || role === "function") return null;
  }
  return payloadText(item);
}

/** A Claude Code transcript (`claude -p --output-format stream-json`, or a session's JSONL) as
 * the chat it holds: its `{type: "user" | "assistant", message: {role, content}}` entries as
 * their messages; `system` and `result` entries (the set-up and a copy of the last answer) left
 * out. Any other list as it is. */
export function chatOf(list: unknown[]): unknown[] {
  const entry = (item: unknown) => item as { type?: unknown; message?: unknown };
  const carriesMessage = (item: unknown) => {
    const { type, message } = entry(item);
    return (type === "user" || type === "assistant") && !!message && typeof message === "object" && "role" in message;
  };
  const isEntry = (item: unknown) => !!item && typeof item === "object" && !("role" in item) && typeof entry(item).type === "string";
  if (!list.some(carriesMessage) || !list.every(isEntry)) return list;
  return list.filter(carriesMessage).map((item) => entry(item).message);
}

/** The text a payload reads as, or null when it holds none: a string as it is; of a chat (OpenAI
 * or Anthropic messages, alone or as `{messages}`), the last message with text; of content
 * parts, their texts; of another object, its first field of `TEXT_FIELDS` with text. */
export function payloadText(value: unknown): string | null {
  const parsed = parsedJson(value);
  if (typeof parsed === "string") return parsed.trim() === "" ? null : parsed;
  if (Array.isArray(parsed)) {
    const chat = chatOf(parsed);
    const texts = chat.map(said).filter((text) => text !== null);
    // A chat's last message is the turn's prompt (or answer); the ones before are its history.
    if (chat.some((item) => item && typeof item === "object" && "role" in item)) return texts[texts.length - 1] ?? null;
    return texts.length > 0 ? texts.join("\n\n") : null;
  }
  if (!parsed || typeof parsed !== "object") return null;
  const record = parsed as Record<string, unknown>;
  for (const field of TEXT_FIELDS) {
    const text = field in record ? payloadText(record[field]) : null;
    if (text !== null) return text;
  }
  return null;
}

/** A payload in a line of at most `max` characters: its text, else its compact JSON; null when
 * there is none. */
export function gist(value: unknown, max = 60): string | null {
  const parsed = parsedJson(value);
  const text = payloadText(parsed) ?? (parsed === null || parsed === undefined || typeof parsed === "string" ? null : JSON.stringify(parsed));
  if (text === null) return null;
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1).trimEnd()}…` : line;
}
