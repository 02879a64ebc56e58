// LLM judges on the Evaluations page: each judge's activity (judged, waiting, failed, spend,
// why it is stopped), a form to add one from a built-in judge and a model connection, and a
// form to try a judge on one of its targets (an observation, a trace or a session): its rendered
// prompt, then one call to the model.

import { useState } from "preact/hooks";
import {
  api,
  get,
  type Backfill,
  type BuiltIn,
  type Connection,
  type Evaluator,
  type JudgeActivity,
  type JudgePreview,
  type Paged,
} from "../api";
import { Status } from "../components/Status";
import { message, useLoad } from "../hooks";
import { href } from "../route";

/** A text field of a submitted form, trimmed ("" when absent). */
function fieldText(form: FormData, name: string): string {
  const value = form.get(name);
  return typeof value === "string" ? value.trim() : "";
}

export function Judges({ project, evaluators, onAdded }: { project: string; evaluators: Evaluator[]; onAdded: () => void }) {
  const judges = evaluators.filter((e) => e.kind === "llm_judge");
  return (
    <div class="panel">
      <h2>LLM judges</h2>
      {judges.length === 0 ? (
        <p class="muted">No judge yet: add one below.</p>
      ) : (
        <table class="grid" aria-label="LLM judges">
          <thead>
            <tr>
              <th>Judge</th>
              <th>Judges each</th>
              <th>See</th>
              <th>Connection</th>
              <th class="num">Judged</th>
              <th class="num">Waiting</th>
              <th class="num">Failed</th>
              <th class="num">Spend</th>
              <th>Stopped because</th>
            </tr>
          </thead>
          <tbody>
            {judges.map((judge) => (
              <JudgeRow key={judge.id} project={project} judge={judge} />
            ))}
          </tbody>
        </table>
      )}
      <NewJudge project={project} onAdded={onAdded} />
      {judges.length > 0 && <TryJudge project={project} judges={judges} />}
      {judges.length > 0 && <EditJudge project={project} judges={judges} onSaved={onAdded} />}
    </div>
  );
}

function JudgeRow({ project, judge }: { project: string; judge: Evaluator }) {
  const state = useLoad(() => get<JudgeActivity>(`/v1/projects/${project}/evaluators/${judge.id}/judgments`, { days: 30 }), [project, judge.id]);
  const config = judge.config as { connection?: string; template?: string; target?: string; score_name?: string };
  const scoreName = config.score_name ?? config.template ?? judge.name;
  return (
    <tr data-judge={judge.name}>
      <td>
        {judge.name} {config.template && <span class="muted">({config.template})</span>}
      </td>
      <td>{config.target ?? "observation"}</td>
      <td>
        <a href={href("/traces", { score_name: scoreName, range: "30d" })}>judged traces</a>{" · "}
        <a href={href("/traces", { environment: "agenttrace-judge", name: `Judge: ${judge.name}`, range: "30d" })}>its calls</a>
      </td>
      <td>{config.connection ?? ""}</td>
      {state.data ? (
        <>
          <td class="num" data-done>{state.data.done}</td>
          <td class="num">{state.data.pending}</td>
          <td class="num">{state.data.failed}</td>
          <td class="num">${state.data.spend_usd.toFixed(4)}</td>
          <td class="reason">{state.data.blocked_reason ?? ""}</td>
        </>
      ) : (
        <td colSpan={5}>
          <Status state={state} />
        </td>
      )}
    </tr>
  );
}

function NewJudge({ project, onAdded }: { project: string; onAdded: () => void }) {
  const connections = useLoad(() => get<Paged<Connection>>(`/v1/projects/${project}/connections`, { limit: 100 }), [project]);
  const templates = useLoad(() => get<BuiltIn[]>(`/v1/projects/${project}/judge-templates`), [project]);
  const [error, setError] = useState<string | null>(null);
  const [added, setAdded] = useState<string | null>(null);
  if (!connections.data) return <Status state={connections} />;
  if (!templates.data) return <Status state={templates} />;
  if (connections.data.data.length === 0) {
    return <p class="muted">Add a model connection first (PUT /v1/projects/{project}/connections, or agenttrace connection add).</p>;
  }
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const text = (name: string) => fieldText(form, name);
    const config: Record<string, unknown> = { connection: text("connection"), template: text("template"), target: text("target") };
    if (text("quiet")) config.quiet_seconds = Number(text("quiet"));
    if (text("model")) config.model = text("model");
    if (text("prompt")) config.prompt = text("prompt");
    if (text("sampling")) config.sampling = Number(text("sampling"));
    if (text("budget")) config.daily_budget_usd = Number(text("budget"));
    setError(null);
    try {
      await api("POST", `/v1/projects/${project}/evaluators`, {}, { name: text("name"), kind: "llm_judge", config });
      setAdded(text("name"));
      onAdded();
    } catch (e) {
      setError(message(e));
    }
  };
  return (
    <form class="filters" aria-label="New judge" onSubmit={(e) => void submit(e)}>
      <label>
        Name
        <input name="name" required placeholder="helpfulness" />
      </label>
      <label>
        Connection
        <select name="connection">
          {connections.data.data.map((c) => <option key={c.id} value={c.provider}>{c.provider} ({c.adapter})</option>)}
        </select>
      </label>
      <label>
        Built-in judge
        <select name="template">
          {templates.data.map((t) => <option key={t.name} value={t.name} title={t.description}>{t.name}</option>)}
        </select>
      </label>
      <label>
        Judges each
        <select name="target" title="A trace, session or experiment run is judged once nothing new has arrived for the quiet time">
          <option value="observation">observation</option>
          <option value="trace">trace</option>
          <option value="session">session</option>
          <option value="experiment">experiment run</option>
        </select>
      </label>
      <label>
        Quiet time (s)
        <input name="quiet" type="number" min="0" step="1" placeholder="60 (session 600)" />
      </label>
      <label>
        Model
        <input name="model" placeholder="the connection's" />
      </label>
      <label>
        Share judged
        <input name="sampling" type="number" min="0.01" max="1" step="0.01" placeholder="1" />
      </label>
      <label>
        Daily budget (USD)
        <input name="budget" type="number" min="0" step="0.01" placeholder="none" />
      </label>
      <label class="wide">
        Prompt (leave empty for the built-in one; {"{{input}}"}, {"{{output}}"}, {"{{expected_output}}"}, {"{{metadata}}"},
        {" {{tool_calls}}"} of a trace or session, {"{{conversation}}"} of a session)
        <textarea name="prompt" rows={3} />
      </label>
      <div class="filter-actions">
        <button type="submit">Add judge</button>
      </div>
      {added && <p class="muted" role="status">Added {added}: it judges what arrives from now on.</p>}
      {error && <div class="error" role="alert">{error}</div>}
    </form>
  );
}

function TryJudge({ project, judges }: { project: string; judges: Evaluator[] }) {
  const [chosen, setChosen] = useState<string>(judges[0]?.id ?? "");
  const target = ((judges.find((j) => j.id === chosen) ?? judges[0])?.config as { target?: string } | undefined)?.target ?? "observation";
  const [result, setResult] = useState<JudgePreview | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: SubmitEvent) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const text = (name: string) => fieldText(form, name);
    const run = (event.submitter as HTMLButtonElement | null)?.value === "run";
    setError(null);
    setBusy(true);
    try {
      setResult(
        await api<JudgePreview>("POST", `/v1/projects/${project}/evaluators/${text("judge")}/preview`, {}, {
          ...(target === "session" ? { session_id: text("session_id") } : { trace_id: text("trace_id") }),
          ...(target === "observation" ? { observation_id: text("observation_id") } : {}),
          run,
        }),
      );
    } catch (e) {
      setResult(null);
      setError(message(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <h2>Try a judge on one of its targets</h2>
      <form class="filters" aria-label="Try a judge" onSubmit={(e) => void submit(e)}>
        <label>
          Judge
          <select name="judge" value={chosen} onChange={(e) => { setChosen(e.currentTarget.value); setResult(null); }}>
            {judges.map((j) => <option key={j.id} value={j.id}>{j.name}</option>)}
          </select>
        </label>
        {target === "session" ? (
          <label>
            Session id
            <input name="session_id" required />
          </label>
        ) : (
          <label>
            Trace id
            <input name="trace_id" required />
          </label>
        )}
        {target === "observation" && (
          <label>
            Observation id
            <input name="observation_id" required />
          </label>
        )}
        <div class="filter-actions">
          <button type="submit" value="preview" disabled={busy}>Show prompt</button>
          <button type="submit" value="run" disabled={busy}>Run once</button>
        </div>
      </form>
      {error && <div class="error" role="alert">{error}</div>}
      {result && (
        <div class="judge-preview" aria-label="Judge preview">
          {result.ran && (
            <p data-score={JSON.stringify(result.score)}>
              {result.error ? (
                <span class="error">{result.error_kind}: {result.error}</span>
              ) : (
                <>
                  Score <strong>{JSON.stringify(result.score)}</strong> from {result.model} in {result.latency_ms} ms
                  {result.cost_usd !== null && <> (${result.cost_usd.toFixed(6)})</>}: {result.reasoning}
                </>
              )}
            </p>
          )}
          {result.system && <pre class="prompt system" aria-label="System message">{result.system}</pre>}
          <pre class="prompt">{result.prompt}</pre>
        </div>
      )}
    </>
  );
}

/** A judge's whole config as JSON, edited and saved; and a backfill of a time range. */
function EditJudge({ project, judges, onSaved }: { project: string; judges: Evaluator[]; onSaved: () => void }) {
  const [chosen, setChosen] = useState<string>(judges[0]?.id ?? "");
  const judge = judges.find((j) => j.id === chosen) ?? judges[0];
  const [text, setText] = useState<string>(JSON.stringify(judge?.config ?? {}, null, 2));
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const choose = (id: string) => {
    setChosen(id);
    setText(JSON.stringify(judges.find((j) => j.id === id)?.config ?? {}, null, 2));
    setStatus(null);
    setError(null);
  };
  const save = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setStatus(null);
    let config: unknown;
    try {
      config = JSON.parse(text);
    } catch (e) {
      setError(`The config is not JSON: ${message(e)}`);
      return;
    }
    try {
      await api("PATCH", `/v1/projects/${project}/evaluators/${chosen}`, {}, { config });
      setStatus(`Saved ${judge?.name ?? ""}: it judges with this config from its next run.`);
      onSaved();
    } catch (e) {
      setError(message(e));
    }
  };
  const backfill = async (event: SubmitEvent) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const day = (name: string) => `${fieldText(form, name)}T00:00:00Z`;
    setError(null);
    setStatus(null);
    try {
      const asked = await api<Backfill>("POST", `/v1/projects/${project}/evaluators/${chosen}/backfill`, {}, {
        from: day("from"),
        to: day("to"),
      });
      setStatus(`Backfill ${asked.from} to ${asked.to} asked: the judge job adds those targets on its next run.`);
    } catch (e) {
      setError(message(e));
    }
  };
  return (
    <>
      <h2>Edit a judge</h2>
      <form class="filters" aria-label="Edit judge" onSubmit={(e) => void save(e)}>
        <label>
          Judge
          <select name="judge" value={chosen} onChange={(e) => choose(e.currentTarget.value)}>
            {judges.map((j) => <option key={j.id} value={j.id}>{j.name}</option>)}
          </select>
        </label>
        <label class="wide">
          Config (prompt, model, target, filter, sampling, budget...)
          <textarea name="config" rows={10} spellcheck={false} value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
        <div class="filter-actions">
          <button type="submit">Save</button>
        </div>
      </form>
      <form class="filters" aria-label="Backfill judge" onSubmit={(e) => void backfill(e)}>
        <label>
          From
          <input name="from" type="date" required />
        </label>
        <label>
          To (exclusive)
          <input name="to" type="date" required />
        </label>
        <div class="filter-actions">
          <button type="submit">Judge this range</button>
        </div>
      </form>
      {status && <p class="muted" role="status">{status}</p>}
      {error && <div class="error" role="alert">{error}</div>}
    </>
  );
}
