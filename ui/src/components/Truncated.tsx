import { useState } from "preact/hooks";

/** Long text shows its start, with a button for the rest. */
export function Truncated({ text, limit = 600, className = "" }: { text: string; limit?: number; className?: string }) {
  const [open, setOpen] = useState(false);
  if (text.length <= limit) return <span class={className}>{text}</span>;
  return (
    <span class={className}>
      {open ? text : `${text.slice(0, limit)}…`}
      <button type="button" class="link" onClick={() => setOpen(!open)}>
        {open ? "show less" : `show all ${text.length.toLocaleString("en-US")} characters`}
      </button>
    </span>
  );
}
