import { useState } from "preact/hooks";
import { api, get, type Comment, type Me, type Paged } from "../api";
import { Status } from "./Status";
import { time } from "../format";
import { message, useLoad } from "../hooks";

/** The comments on one trace, observation or session: read by everyone, written as you, edited
 * and deleted by their author. */
export function Comments({ project, objectType, objectId }: { project: string; objectType: string; objectId: string }) {
  const base = `/v1/projects/${project}/comments`;
  const list = useLoad(() => get<Paged<Comment>>(base, { objectType, objectId, limit: 200 }), [base, objectType, objectId]);
  const me = useLoad(() => get<Me>("/v1/me"), []);
  const [draft, setDraft] = useState("");
  const [editing, setEditing] = useState<{ id: string; text: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const run = async (work: () => Promise<unknown>) => {
    try {
      await work();
      setError(null);
      list.reload();
    } catch (e) {
      setError(message(e));
    }
  };
  return (
    <div class="comments" aria-label="Comments">
      <h3>Comments</h3>
      {!list.data ? (
        <Status state={list} />
      ) : (
        <ul>
          {list.data.data.map((c) => (
            <li key={c.id}>
              <div class="muted">
                {c.authorName ?? "an API key"} · {time(Date.parse(c.createdAt) * 1000)}
                {c.updatedAt !== c.createdAt && " · edited"}
              </div>
              {editing?.id === c.id ? (
                <form
                  onSubmit={(e) => {
                    e.preventDefault();
                    void run(() => api("PATCH", `${base}/${c.id}`, {}, { content: editing.text })).then(() => setEditing(null));
                  }}
                >
                  <textarea aria-label="Edit comment" value={editing.text} onInput={(e) => setEditing({ id: c.id, text: e.currentTarget.value })} />
                  <button type="submit">Save</button>
                  <button type="button" class="secondary" onClick={() => setEditing(null)}>Cancel</button>
                </form>
              ) : (
                <div class="comment-text">{c.content}</div>
              )}
              {c.authorUserId && c.authorUserId === me.data?.user?.id && editing?.id !== c.id && (
                <span class="comment-actions">
                  <button type="button" class="link" onClick={() => setEditing({ id: c.id, text: c.content })}>edit</button>{" "}
                  <button type="button" class="link" onClick={() => void run(() => api("DELETE", `${base}/${c.id}`))}>delete</button>
                </span>
              )}
            </li>
          ))}
        </ul>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (!draft.trim()) return;
          void run(() => api("POST", base, {}, { objectType, objectId, content: draft })).then(() => setDraft(""));
        }}
      >
        <textarea aria-label="New comment" placeholder="Add a comment (Markdown)" value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
        <button type="submit" class="secondary">Comment</button>
      </form>
      {error && <div class="error" role="alert">{error}</div>}
    </div>
  );
}
