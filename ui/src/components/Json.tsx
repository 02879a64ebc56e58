import { useState } from "preact/hooks";
import { Truncated } from "./Truncated";

/** Folded JSON: objects and arrays open to `depth`, the rest one click away. */
export function Json({ value, depth = 1 }: { value: unknown; depth?: number }) {
  return (
    <div class="json">
      <Node value={value} depth={depth} />
    </div>
  );
}

function Node({ value, depth, name }: { value: unknown; depth: number; name?: string }) {
  const label = name === undefined ? null : <span class="json-key">{name}: </span>;
  if (value === null || typeof value !== "object") {
    return (
      <div class="json-line">
        {label}
        <Scalar value={value} />
      </div>
    );
  }
  return <Folder value={value as Record<string, unknown> | unknown[]} depth={depth} label={label} />;
}

function Folder({ value, depth, label }: { value: Record<string, unknown> | unknown[]; depth: number; label: preact.ComponentChildren }) {
  const [open, setOpen] = useState(depth > 0);
  const entries: [string, unknown][] = Array.isArray(value)
    ? value.map((item, index) => [String(index), item])
    : Object.entries(value);
  const [openBracket, closeBracket] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  const summary = Array.isArray(value) ? `${entries.length} items` : `${entries.length} keys`;
  return (
    <div class="json-line">
      <button type="button" class="json-toggle" aria-expanded={open} onClick={() => setOpen(!open)}>
        {open ? "▾" : "▸"}
      </button>
      {label}
      {openBracket}
      {open ? (
        <div class="json-children">
          {entries.map(([key, item]) => (
            <Node key={key} name={key} value={item} depth={depth - 1} />
          ))}
        </div>
      ) : (
        <span class="muted"> {summary} </span>
      )}
      {closeBracket}
    </div>
  );
}

function Scalar({ value }: { value: unknown }) {
  if (typeof value === "string") return <Truncated className="json-string" text={JSON.stringify(value)} />;
  if (typeof value === "number") return <span class="json-number">{value}</span>;
  if (typeof value === "boolean") return <span class="json-bool">{String(value)}</span>;
  if (value === undefined) return <span class="muted">undefined</span>;
  return <span class="json-null">null</span>;
}
