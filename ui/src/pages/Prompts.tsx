import { useState } from "preact/hooks";
import { diffLines } from "diff";
import { api, get, type Paged, type PromptSummary, type PromptVersion } from "../api";
import { Json } from "../components/Json";
import { Status } from "../components/Status";
import { message, useLoad } from "../hooks";
import { href, navigate, type Route } from "../route";

export function Prompts({ project, route }: { project: string; route: Route }) {
  const list = useLoad(() => get<Paged<PromptSummary>>(`/v1/projects/${project}/prompts`, { limit: 100 }), [project]);
  const name = route.path[1] ?? null;
  return (
    <section class="split">
      <div class="panel list">
        <h2>Prompts</h2>
        {!list.data ? (
          <Status state={list} />
        ) : list.data.data.length === 0 ? (
          <p class="muted">No prompts yet: create one with <code>agenttrace prompt create</code> or the Langfuse SDK.</p>
        ) : (
          <ul class="nav-list">
            {list.data.data.map((p) => (
              <li key={p.name} class={p.name === name ? "active" : ""}>
                <a href={href(`/prompts/${encodeURIComponent(p.name)}`)}>{p.name}</a>
                <div class="muted">
                  {p.versions.length} versions · {p.labels.join(", ")}
                </div>
              </li>
            ))}
          </ul>
        )}
      </div>
      <div class="grow">{name ? <Prompt key={name} project={project} name={name} route={route} onChange={list.reload} /> : <div class="empty">Choose a prompt.</div>}</div>
    </section>
  );
}

function Prompt({ project, name, route, onChange }: { project: string; name: string; route: Route; onChange: () => void }) {
  const base = `/v1/projects/${project}/prompts/${encodeURIComponent(name)}`;
  const state = useLoad(async () => {
    const latest = await get<PromptVersion>(base);
    const summary = await get<Paged<PromptSummary>>(`/v1/projects/${project}/prompts`, { name, limit: 1 });
    const numbers = summary.data[0]?.versions ?? [latest.version];
    return Promise.all(numbers.map((version) => get<PromptVersion>(base, { version })));
  }, [project, name]);
  const [error, setError] = useState<string | null>(null);
  if (!state.data) return <Status state={state} />;
  const versions = [...state.data].sort((x, y) => y.version - x.version);
  const labels = [...new Set(versions.flatMap((v) => v.labels))].filter((l) => l !== "latest").sort();
  const from = Number(route.query.get("from") ?? versions[1]?.version ?? versions[0]?.version);
  const to = Number(route.query.get("to") ?? versions[0]?.version);
  const left = versions.find((v) => v.version === from);
  const right = versions.find((v) => v.version === to);

  const moveLabel = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const entered = form.get("label");
    const label = typeof entered === "string" ? entered.trim() : "";
    const version = Number(form.get("version"));
    const target = versions.find((v) => v.version === version);
    if (!label || !target) return;
    setError(null);
    try {
      await api("PATCH", `${base}/versions/${version}`, {}, { labels: [...new Set([...target.labels.filter((l) => l !== "latest"), label])] });
      state.reload();
      onChange();
    } catch (e) {
      setError(message(e));
    }
  };

  return (
    <div class="panel">
      <h1>{name}</h1>
      <table class="grid" aria-label="Versions">
        <thead>
          <tr>
            <th>Version</th>
            <th>Labels</th>
            <th>Commit message</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {versions.map((v) => (
            <tr key={v.version} data-version={v.version}>
              <td>v{v.version}</td>
              <td class="labels">{v.labels.map((l) => <span key={l} class={`tag label-${l}`}>{l}</span>)}</td>
              <td>{v.commit_message ?? ""}</td>
              <td>{v.created_at}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="filters" aria-label="Move a label" onSubmit={(e) => void moveLabel(e)}>
        <label>
          Label
          <input name="label" list="prompt-labels" placeholder="production" required />
          <datalist id="prompt-labels">
            {labels.map((l) => <option key={l} value={l} />)}
          </datalist>
        </label>
        <label>
          To version
          <select name="version">
            {versions.map((v) => <option key={v.version} value={String(v.version)}>v{v.version}</option>)}
          </select>
        </label>
        <div class="filter-actions">
          <button type="submit">Move label</button>
        </div>
      </form>
      {error && <div class="error" role="alert">{error}</div>}
      <h2>Diff</h2>
      <form class="filters" aria-label="Versions to compare" onSubmit={(e) => e.preventDefault()}>
        <label>
          From
          <select name="from" value={String(from)} onChange={(e) => navigate(`/prompts/${name}`, { from: e.currentTarget.value, to: String(to) }, true)}>
            {versions.map((v) => <option key={v.version} value={String(v.version)}>v{v.version}</option>)}
          </select>
        </label>
        <label>
          To
          <select name="to" value={String(to)} onChange={(e) => navigate(`/prompts/${name}`, { from: String(from), to: e.currentTarget.value }, true)}>
            {versions.map((v) => <option key={v.version} value={String(v.version)}>v{v.version}</option>)}
          </select>
        </label>
      </form>
      {left && right && <PromptDiff left={left} right={right} />}
      {right && (
        <>
          <h2>Config of v{right.version}</h2>
          <Json value={right.config} />
        </>
      )}
    </div>
  );
}

function promptText(version: PromptVersion): string {
  if (typeof version.prompt === "string") return version.prompt;
  if (Array.isArray(version.prompt)) {
    return version.prompt
      .map((m: unknown) => {
        const message = m as { role?: string; content?: unknown };
        return `[${message.role ?? "?"}]\n${typeof message.content === "string" ? message.content : JSON.stringify(message.content, null, 2)}`;
      })
      .join("\n\n");
  }
  return JSON.stringify(version.prompt, null, 2);
}

function PromptDiff({ left, right }: { left: PromptVersion; right: PromptVersion }) {
  const parts = diffLines(promptText(left), promptText(right));
  return (
    <pre class="diff" aria-label={`Diff from v${left.version} to v${right.version}`}>
      {parts.map((part, i) => (
        <span key={i} class={part.added ? "added" : part.removed ? "removed" : ""}>
          {part.value
            .replace(/\n$/, "")
            .split("\n")
            .map((line) => `${part.added ? "+ " : part.removed ? "- " : "  "}${line}`)
            .join("\n") + "\n"}
        </span>
      ))}
    </pre>
  );
}
