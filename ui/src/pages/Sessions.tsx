import { get, type Cursored, type SessionTrace } from "../api";
import { Payload } from "../components/Messages";
import { Failure } from "../components/Status";
import { Truncated } from "../components/Truncated";
import { ago, count, duration, payloadText, time, usd } from "../format";
import { useCursorPages } from "../hooks";
import { href } from "../route";

interface SessionRow {
  id: string;
  user_ids: string[];
  trace_count: number;
  first_us: number;
  last_us: number;
  total_cost: number;
  input_tokens: number;
  output_tokens: number;
  observation_count: number;
}

export function Sessions({ project }: { project: string }) {
  const { rows, loading, error, hasMore, loadMore, retry } = useCursorPages(
    (cursor) => get<Cursored<SessionRow>>("/v1/sessions", { project_id: project, limit: 50, cursor }),
    [project],
  );
  return (
    <section>
      <div class="page-head">
        <h1>Sessions</h1>
      </div>
      {error && <Failure error={error} onRetry={retry} />}
      {rows.length === 0 ? (
        loading ? (
          <div class="muted loading">Loading…</div>
        ) : (
          !error && <div class="empty">No sessions yet: traces join a session when they carry a session id.</div>
        )
      ) : (
        <table class="grid" aria-label="Sessions">
          <thead>
            <tr>
              <th>Last activity</th>
              <th>Session</th>
              <th>User</th>
              <th class="num">Traces</th>
              <th class="num">Duration</th>
              <th class="num">Tokens</th>
              <th class="num">Cost</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((s) => (
              <tr key={s.id}>
                <td title={time(s.last_us)}>{ago(s.last_us)}</td>
                <td>
                  <a href={href(`/sessions/${encodeURIComponent(s.id)}`)}>{s.id}</a>
                </td>
                <td>{s.user_ids.join(", ")}</td>
                <td class="num">{s.trace_count}</td>
                <td class="num">{duration((s.last_us - s.first_us) / 1000)}</td>
                <td class="num">{count(s.input_tokens + s.output_tokens)}</td>
                <td class="num">{usd(s.total_cost)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {hasMore && (
        <button type="button" class="secondary more" disabled={loading} onClick={loadMore}>
          Load more
        </button>
      )}
    </section>
  );
}

/** A session's traces in order, read as a conversation: each turn's input, then its answer. */
export function SessionView({ project, id }: { project: string; id: string }) {
  const { rows: traces, loading, error, hasMore, loadMore, retry } = useCursorPages(
    (cursor) => get<Cursored<SessionTrace> & { session_id: string }>(`/v1/sessions/${encodeURIComponent(id)}`, { project_id: project, limit: 100, cursor }),
    [project, id],
  );
  if (traces.length === 0 && (loading || error)) {
    return error ? <Failure error={error} onRetry={retry} /> : <div class="muted loading">Loading…</div>;
  }
  const cost = traces.reduce((sum, t) => sum + t.total_cost, 0);
  return (
    <section class="session">
      <div class="page-head">
        <div>
          <div class="crumbs"><a href="#/sessions">Sessions</a> /</div>
          <h1>Session {id}</h1>
        </div>
        <dl class="facts">
          <div><dt>Turns</dt><dd>{traces.length}{hasMore ? "+" : ""}</dd></div>
          <div><dt>Cost</dt><dd>{usd(cost)}</dd></div>
          {traces[0]?.user_id && <div><dt>User</dt><dd>{traces[0].user_id}</dd></div>}
        </dl>
      </div>
      <ol class="conversation" aria-label="Conversation">
        {traces.map((t, i) => (
          <li key={t.id} class="turn">
            <div class="turn-head">
              <span class="muted">#{i + 1}</span> <a href={href(`/traces/${encodeURIComponent(t.id)}`)}>{t.name ?? "(unnamed)"}</a>
              <span class="muted"> · {time(t.timestamp_us)} · {duration(t.latency_ms)} · {count(t.input_tokens + t.output_tokens)} tokens · {usd(t.total_cost)}</span>
              {t.level !== "default" && <span class={`badge level-${t.level}`}>{t.level}</span>}
            </div>
            <div class="bubble user"><Said value={t.input} /></div>
            <div class="bubble agent"><Said value={t.output} /></div>
          </li>
        ))}
      </ol>
      {error && <Failure error={error} onRetry={retry} />}
      {hasMore && (
        <button type="button" class="secondary more" disabled={loading} onClick={loadMore}>
          Load later turns
        </button>
      )}
    </section>
  );
}

/** What a turn was asked or answered, read as text when it holds a prompt or a chat (agents send
 * `{prompt}`, message lists, JSON strings...); anything else as the payload it is. */
function Said({ value }: { value: unknown }) {
  const text = payloadText(value);
  return text === null ? <Payload value={value} /> : <div class="message-text"><Truncated text={text} limit={2000} /></div>;
}
