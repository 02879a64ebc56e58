import { useEffect, useState } from "preact/hooks";
import { get, type Cursored, type SearchHit, type SearchMatch, type TraceRow } from "../api";
import { hitRow, snippetPieces, type ListedTrace } from "../search";
import { Failure } from "../components/Status";
import { ago, count, duration, shortId, time, usd } from "../format";
import { useCursorPages } from "../hooks";
import { href, navigate, type Route } from "../route";

/** The read API's filters, as they appear in the page's URL. */
const FILTERS: { key: string; label: string; placeholder: string; type?: string }[] = [
  { key: "name", label: "Name", placeholder: "exact name" },
  { key: "user_id", label: "User", placeholder: "user id" },
  { key: "session_id", label: "Session", placeholder: "session id" },
  { key: "tags", label: "Tags", placeholder: "tag1,tag2" },
  { key: "environment", label: "Environment", placeholder: "production" },
  { key: "release", label: "Release", placeholder: "release" },
  { key: "score_name", label: "Has score", placeholder: "score name" },
  { key: "min_cost", label: "Min cost (USD)", placeholder: "0.01", type: "number" },
  { key: "min_latency_ms", label: "Min latency (ms)", placeholder: "1000", type: "number" },
];

const RANGES: [string, string, number | null][] = [
  ["1h", "Last hour", 3_600_000],
  ["24h", "Last 24 hours", 86_400_000],
  ["7d", "Last 7 days", 7 * 86_400_000],
  ["30d", "Last 30 days", 30 * 86_400_000],
  ["all", "All time", null],
];

const LIVE_EVERY_MS = 5000;

function Matches({ matches }: { matches: SearchMatch[] }) {
  return (
    <ul class="matches">
      {matches.map((match) => (
        <li key={`${match.source}/${match.id}/${match.field}`}>
          <span class="match-field">{match.field}</span>{" "}
          <span class="snippet">
            {snippetPieces(match.snippet, match.highlights).map(([text, marked], i) => (marked ? <mark key={i}>{text}</mark> : text))}
          </span>
        </li>
      ))}
    </ul>
  );
}

export function Traces({ project, route }: { project: string; route: Route }) {
  const filters: Record<string, string> = {};
  for (const [key, value] of route.query) filters[key] = value;
  const range = filters.range ?? "7d";
  const searching = Boolean(filters.q);
  const [live, setLive] = useState(true);
  const query = JSON.stringify(filters);

  const pages = useCursorPages<ListedTrace>((cursor) => {
    const span = RANGES.find(([id]) => id === range)?.[2] ?? null;
    const rest = Object.fromEntries(Object.entries(filters).filter(([key]) => key !== "range"));
    const from = span === null ? null : new Date(Date.now() - span).toISOString();
    if (searching) {
      return get<Cursored<SearchHit>>("/v1/search", { project_id: project, from, ...rest, limit: "50", cursor }).then((page) => ({
        ...page,
        data: page.data.map(hitRow),
      }));
    }
    return get<Cursored<TraceRow>>("/v1/traces", { project_id: project, from, ...rest, limit: "50", cursor });
  }, [project, query]);
  const { rows, loading, error, updatedAt: updated, refresh } = pages;

  // The first page again every few seconds while live (and nothing more was loaded).
  useEffect(() => {
    // A search is asked for again only when its words or filters change.
    if (!live || searching) return;
    refresh();
    const timer = window.setInterval(refresh, LIVE_EVERY_MS);
    return () => window.clearInterval(timer);
  }, [live, searching, refresh]);

  const apply = (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const next: Record<string, string> = {};
    for (const [key, value] of form) if (typeof value === "string" && value.trim()) next[key] = value.trim();
    navigate("/traces", next);
  };

  return (
    <section>
      <div class="page-head">
        <h1>Traces</h1>
        <label class="live">
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.currentTarget.checked)} /> Live
          {updated && <span class="muted"> · updated {new Date(updated).toLocaleTimeString("en-GB")}</span>}
        </label>
      </div>
      <form class="filters" onSubmit={apply} aria-label="Trace filters" key={query}>
        <label class="search">
          Search
          <input
            name="q"
            type="search"
            placeholder='words, "a phrase", input:…, path:…, -exclude'
            defaultValue={filters.q ?? ""}
            aria-label="Search text"
          />
        </label>
        <label>
          Time
          <select name="range" defaultValue={range}>
            {RANGES.map(([id, label]) => (
              <option key={id} value={id}>{label}</option>
            ))}
          </select>
        </label>
        <label>
          Level
          <select name="level" defaultValue={filters.level ?? ""}>
            <option value="">any</option>
            <option value="warning">warning or worse</option>
            <option value="error">error</option>
          </select>
        </label>
        {FILTERS.map((filter) => (
          <label key={filter.key}>
            {filter.label}
            <input name={filter.key} type={filter.type ?? "text"} step="any" placeholder={filter.placeholder} defaultValue={filters[filter.key] ?? ""} />
          </label>
        ))}
        <div class="filter-actions">
          <button type="submit">Apply</button>
          <a class="button secondary" href="#/traces">Clear</a>
        </div>
      </form>
      {error && <Failure error={error} onRetry={pages.retry} />}
      {loading && rows.length === 0 ? (
        <div class="muted loading">Loading…</div>
      ) : rows.length === 0 ? (
        !error && (
          <div class="empty">
            {searching ? "Nothing found. Try fewer words, a wider time range, or fewer filters." : "No traces match. Widen the time range or clear a filter."}
          </div>
        )
      ) : (
        <table class="grid traces" aria-label="Traces">
          <thead>
            <tr>
              <th>Started</th>
              <th>Name</th>
              <th>Trace</th>
              <th>User</th>
              <th>Session</th>
              <th>Tags</th>
              <th class="num">Latency</th>
              <th class="num">Tokens</th>
              <th class="num">Cost</th>
              <th class="num">Observations</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr key={row.id} class={`level-${row.level}`} data-trace-id={row.id}>
                <td title={time(row.timestamp_us)}>{ago(row.timestamp_us)}</td>
                <td>
                  <a href={href(`/traces/${encodeURIComponent(row.id)}`)}>{row.name ?? "(unnamed)"}</a>
                  {row.level !== "default" && <span class={`badge level-${row.level}`}>{row.level}</span>}
                  {row.matches && <Matches matches={row.matches} />}
                </td>
                <td class="mono" title={row.id}>{shortId(row.id)}</td>
                <td>{row.user_id ?? ""}</td>
                <td>
                  {row.session_id && <a href={href(`/sessions/${encodeURIComponent(row.session_id)}`)} title={row.session_id}>{shortId(row.session_id)}</a>}
                </td>
                <td>{row.tags.map((tag) => <span key={tag} class="tag">{tag}</span>)}</td>
                <td class="num">{duration(row.latency_ms)}</td>
                <td class="num">{count(row.input_tokens + row.output_tokens)}</td>
                <td class="num">{usd(row.total_cost)}</td>
                <td class="num">{row.observation_count}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {pages.hasMore && (
        <button type="button" class="secondary more" disabled={loading} onClick={pages.loadMore}>
          Load more
        </button>
      )}
    </section>
  );
}
