import { chatOf, parsedJson } from "../format";
import { Json } from "./Json";
import { Truncated } from "./Truncated";

export interface Message {
  role: string;
  content: unknown;
  name?: string;
}

/** The chat messages `value` holds (an array of `{role, content}`, a Claude Code transcript,
 * `{messages: [...]}`, or one message), or null. */
export function asMessages(value: unknown): Message[] | null {
  const single = value && typeof value === "object" && !Array.isArray(value) && "role" in value && "content" in value;
  const list = single
    ? [value]
    : Array.isArray(value)
    ? chatOf(value)
    : value && typeof value === "object" && Array.isArray((value as { messages?: unknown }).messages)
      ? (value as { messages: unknown[] }).messages
      : null;
  if (!list || list.length === 0) return null;
  const isMessage = (item: unknown): item is Message =>
    !!item && typeof item === "object" && typeof (item as { role?: unknown }).role === "string" && "content" in item;
  return list.every(isMessage) ? list : null;
}

/** Nothing to show: no payload, blank text, or an empty object or list. */
function isEmpty(value: unknown): boolean {
  if (value === null || value === undefined) return true;
  if (typeof value === "string") return value.trim() === "";
  return typeof value === "object" && Object.keys(value).length === 0;
}

/** Input or output: chat messages when they are messages, plain text, or folded JSON (a string
 * holding JSON counts as what it holds). */
export function Payload({ value: sent }: { value: unknown }) {
  const value = parsedJson(sent);
  if (isEmpty(value)) return <p class="muted">—</p>;
  const messages = asMessages(value);
  if (messages) {
    return (
      <div class="messages">
        {messages.map((message, index) => (
          <div key={index} class={`message role-${message.role}`}>
            <div class="message-role">{message.name ? `${message.role} · ${message.name}` : message.role}</div>
            <Content content={message.content} />
          </div>
        ))}
      </div>
    );
  }
  if (typeof value === "string") return <pre class="text"><Truncated text={value} limit={2000} /></pre>;
  return <Json value={value} />;
}

function Content({ content }: { content: unknown }) {
  if (typeof content === "string") return <div class="message-text"><Truncated text={content} limit={2000} /></div>;
  if (Array.isArray(content)) {
    return (
      <>
        {content.map((part: unknown, index) => {
          const text = part && typeof part === "object" ? (part as { text?: unknown }).text : undefined;
          return typeof text === "string" ? (
            <div key={index} class="message-text"><Truncated text={text} limit={2000} /></div>
          ) : (
            <Json key={index} value={part} depth={0} />
          );
        })}
      </>
    );
  }
  return <Json value={content} depth={0} />;
}
