// Annotation queues (`#/queues`): the project's queues with their progress, a form to make one
// (and the score configs it asks for), and a queue's review view (`#/queues/<id>`): the next item
// locked to you, shown as the trace page shows it, scored from the keyboard.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import {
  api,
  get,
  type Evaluator,
  type Me,
  type Paged,
  type Queue,
  type QueueDetail,
  type QueueItem,
  type ScoreConfig,
  type TraceDetail,
} from "../api";
import { Status } from "../components/Status";
import { Trace } from "../components/trace/Trace";
import { message, useLoad } from "../hooks";
import { href, type Route } from "../route";
import { Comments } from "../components/Comments";

export function Queues({ project, route }: { project: string; route: Route }) {
  const id = route.path[1];
  return id ? <Review key={id} project={project} queueId={id} /> : <QueueList project={project} />;
}

function QueueList({ project }: { project: string }) {
  const queues = useLoad(() => get<Paged<Queue>>(`/v1/projects/${project}/annotation-queues`, { limit: 100 }), [project]);
  const configs = useLoad(() => get<Paged<ScoreConfig>>(`/v1/projects/${project}/score-configs`, { limit: 1000 }), [project]);
  return (
    <section>
      <div class="page-head">
        <h1>Annotation queues</h1>
      </div>
      <div class="panel">
        {!queues.data ? (
          <Status state={queues} />
        ) : queues.data.data.length === 0 ? (
          <p class="muted">No queues yet: make one below, then add traces to it from a filter or from a judge's failures.</p>
        ) : (
          <table class="grid" aria-label="Annotation queues">
            <thead>
              <tr>
                <th>Queue</th>
                <th>Description</th>
                <th class="num">Done</th>
                <th class="num">Pending</th>
                <th>Reviewers</th>
              </tr>
            </thead>
            <tbody>
              {queues.data.data.map((queue) => (
                <QueueRow key={queue.id} project={project} queue={queue} />
              ))}
            </tbody>
          </table>
        )}
      </div>
      {configs.data && <NewQueue project={project} configs={configs.data.data} onCreated={queues.reload} onConfig={configs.reload} />}
    </section>
  );
}

function QueueRow({ project, queue }: { project: string; queue: Queue }) {
  const detail = useLoad(() => get<QueueDetail>(`/v1/projects/${project}/annotation-queues/${queue.id}`), [project, queue.id]);
  const progress = detail.data?.progress;
  return (
    <tr>
      <td>
        <a href={href(`/queues/${queue.id}`)}>{queue.name}</a>
      </td>
      <td class="muted">{queue.description ?? ""}</td>
      <td class="num">{progress ? `${progress.completed} / ${progress.total}` : "…"}</td>
      <td class="num">{progress?.pending ?? "…"}</td>
      <td>{progress?.people.map((p) => `${p.name} ${p.completed}`).join(", ")}</td>
    </tr>
  );
}

function text(form: FormData, name: string): string {
  const value = form.get(name);
  return typeof value === "string" ? value.trim() : "";
}

function NewQueue({ project, configs, onCreated, onConfig }: { project: string; configs: ScoreConfig[]; onCreated: () => void; onConfig: () => void }) {
  const [error, setError] = useState<string | null>(null);
  const live = configs.filter((c) => !c.isArchived);
  const create = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    try {
      await api("POST", `/v1/projects/${project}/annotation-queues`, {}, {
        name: text(form, "name"),
        description: text(form, "description") || null,
        scoreConfigIds: form.getAll("config").map(String),
        annotatorsPerItem: Number(text(form, "per_item") || "1"),
      });
      (event.currentTarget as HTMLFormElement).reset();
      setError(null);
      onCreated();
    } catch (e) {
      setError(message(e));
    }
  };
  return (
    <div class="panel">
      <h2>New queue</h2>
      <form class="stack" onSubmit={(e) => void create(e)} aria-label="New queue">
        <label>
          Name <input name="name" required />
        </label>
        <label>
          Description <input name="description" />
        </label>
        <fieldset>
          <legend>Scores a reviewer gives</legend>
          {live.length === 0 && <p class="muted">No score configs yet: make one below.</p>}
          {live.map((config) => (
            <label key={config.id} class="inline">
              <input type="checkbox" name="config" value={config.id} /> {config.name} <span class="muted">({config.dataType.toLowerCase()})</span>
            </label>
          ))}
        </fieldset>
        <label>
          Reviews per item <input name="per_item" type="number" min={1} max={10} value="1" />
        </label>
        <button type="submit">Create queue</button>
        {error && <div class="error" role="alert">{error}</div>}
      </form>
      <NewConfig project={project} onCreated={onConfig} />
    </div>
  );
}

function NewConfig({ project, onCreated }: { project: string; onCreated: () => void }) {
  const [error, setError] = useState<string | null>(null);
  const [kind, setKind] = useState("BOOLEAN");
  const create = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const number = (name: string) => (text(form, name) === "" ? null : Number(text(form, name)));
    try {
      await api("POST", `/v1/projects/${project}/score-configs`, {}, {
        name: text(form, "name"),
        dataType: kind,
        description: text(form, "description") || null,
        minValue: kind === "NUMERIC" ? number("min") : null,
        maxValue: kind === "NUMERIC" ? number("max") : null,
        categories:
          kind === "CATEGORICAL"
            ? text(form, "categories")
                .split(",")
                .map((label) => label.trim())
                .filter(Boolean)
                .map((label, value) => ({ label, value }))
            : null,
      });
      (event.currentTarget as HTMLFormElement).reset();
      setError(null);
      onCreated();
    } catch (e) {
      setError(message(e));
    }
  };
  return (
    <details>
      <summary>New score config</summary>
      <form class="stack" onSubmit={(e) => void create(e)} aria-label="New score config">
        <label>
          Name <input name="name" required />
        </label>
        <label>
          Type{" "}
          <select name="type" value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
            <option value="BOOLEAN">yes / no</option>
            <option value="CATEGORICAL">one of some categories</option>
            <option value="NUMERIC">a number</option>
            <option value="TEXT">text</option>
          </select>
        </label>
        {kind === "NUMERIC" && (
          <>
            <label>
              Lowest <input name="min" type="number" step="any" />
            </label>
            <label>
              Highest <input name="max" type="number" step="any" />
            </label>
          </>
        )}
        {kind === "CATEGORICAL" && (
          <label>
            Categories (comma-separated, in key order) <input name="categories" required placeholder="bad, ok, good" />
          </label>
        )}
        <label>
          Description <input name="description" />
        </label>
        <button type="submit">Create score config</button>
        {error && <div class="error" role="alert">{error}</div>}
      </form>
    </details>
  );
}

/** The options a config's score takes from the number keys, in order. */
function choices(config: ScoreConfig): { label: string; value: string | boolean }[] {
  if (config.dataType === "BOOLEAN") return [{ label: "Yes", value: true }, { label: "No", value: false }];
  if (config.dataType === "CATEGORICAL") return (config.categories ?? []).map((c) => ({ label: c.label, value: c.label }));
  return [];
}

type Values = Record<string, string | boolean>;

/** A queue's review view: the next item for you, your scores for it, and the keys that drive it. */
function Review({ project, queueId }: { project: string; queueId: string }) {
  const base = `/v1/projects/${project}/annotation-queues/${queueId}`;
  const detail = useLoad(() => get<QueueDetail>(base), [base]);
  const reloadDetail = detail.reload;
  const configs = useLoad(() => get<Paged<ScoreConfig>>(`/v1/projects/${project}/score-configs`, { limit: 1000 }), [project]);
  const me = useLoad(() => get<Me>("/v1/me"), []);
  const [item, setItem] = useState<QueueItem | null>(null);
  const [done, setDone] = useState(false);
  const [history, setHistory] = useState<string[]>([]);
  const [values, setValues] = useState<Values>({});
  // What the keys chose so far, read by a submit that may come before the page shows the choice
  // (a 1 then Enter faster than a render).
  const valuesRef = useRef<Values>({});
  const choose = useCallback((change: Values | null) => {
    valuesRef.current = change === null ? {} : { ...valuesRef.current, ...change };
    setValues(valuesRef.current);
  }, []);
  const [comments, setComments] = useState<Record<string, string>>({});
  const [active, setActiveState] = useState(0);
  // Which score the number keys set, read by the key handler as of the last key.
  const activeRef = useRef(0);
  const setActive = useCallback((change: number | ((previous: number) => number)) => {
    activeRef.current = typeof change === "function" ? change(activeRef.current) : change;
    setActiveState(activeRef.current);
  }, []);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const itemRef = useRef<QueueItem | null>(null);
  useEffect(() => {
    itemRef.current = item;
  }, [item]);

  const queueConfigs = (configs.data?.data ?? []).filter((c) => detail.data?.scoreConfigIds.includes(c.id));

  const next = useCallback(async () => {
    setError(null);
    try {
      const taken = await api<QueueItem | undefined>("POST", `${base}/next`);
      setItem(taken ?? null);
      setDone(!taken);
      choose(null);
      setComments({});
      setActive(0);
    } catch (e) {
      setError(message(e));
    }
    reloadDetail();
  }, [base, choose, setActive, reloadDetail]);

  useEffect(() => {
    void next();
  }, [next]);

  // Keep the lock while the item is open, and let it go when leaving the queue.
  useEffect(() => {
    const renew = window.setInterval(() => {
      const current = itemRef.current;
      if (current) void api("POST", `${base}/items/${current.id}/take`).catch(() => undefined);
    }, 60_000);
    return () => {
      window.clearInterval(renew);
      const current = itemRef.current;
      if (current) void api("POST", `${base}/items/${current.id}/release`).catch(() => undefined);
    };
  }, [base]);

  const submit = useCallback(async () => {
    if (!item || busy) return;
    const chosen = valuesRef.current;
    const scores = queueConfigs
      .filter((c) => chosen[c.id] !== undefined && chosen[c.id] !== "")
      .map((c) => ({ config_id: c.id, value: c.dataType === "NUMERIC" ? Number(chosen[c.id]) : chosen[c.id], comment: comments[c.id] || null }));
    if (scores.length === 0) {
      setError("Give at least one score (number keys), or skip with s.");
      return;
    }
    setBusy(true);
    try {
      await api("POST", `${base}/items/${item.id}/complete`, {}, { scores });
      setHistory((h) => [...h.filter((id) => id !== item.id), item.id]);
      detail.reload();
      await next();
    } catch (e) {
      setError(message(e));
    } finally {
      setBusy(false);
    }
  }, [item, busy, queueConfigs, comments, base, next, detail]);

  const skip = useCallback(async () => {
    if (!item || busy) return;
    setBusy(true);
    try {
      await api("POST", `${base}/items/${item.id}/skip`);
      detail.reload();
      await next();
    } catch (e) {
      setError(message(e));
    } finally {
      setBusy(false);
    }
  }, [item, busy, base, next, detail]);

  const previous = useCallback(async () => {
    const last = history.filter((id) => id !== item?.id).at(-1);
    if (!last) return;
    try {
      if (item) await api("POST", `${base}/items/${item.id}/release`);
      const reopened = await api<QueueItem>("POST", `${base}/items/${last}/take`);
      setHistory((h) => h.filter((id) => id !== last));
      setItem(reopened);
      setDone(false);
      choose(null);
      setActive(0);
    } catch (e) {
      setError(message(e));
    }
  }, [history, item, base, choose, setActive]);

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement | null;
      const typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT");
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey || !typing)) {
        event.preventDefault();
        void submit();
        return;
      }
      if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
      const config = queueConfigs[activeRef.current];
      if (/^[1-9]$/.test(event.key) && config) {
        const choice = choices(config)[Number(event.key) - 1];
        if (choice) {
          choose({ [config.id]: choice.value });
          setActive((a) => Math.min(a + 1, queueConfigs.length - 1));
        }
      } else if (event.key === "s") void skip();
      else if (event.key === "p") void previous();
      else if (event.key === "ArrowDown" || event.key === "j") setActive((a) => Math.min(a + 1, queueConfigs.length - 1));
      else if (event.key === "ArrowUp" || event.key === "k") setActive((a) => Math.max(a - 1, 0));
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [queueConfigs, submit, skip, previous, choose, setActive]);

  if (!detail.data || !configs.data) return <><Status state={detail} /><Status state={configs} /></>;
  const progress = detail.data.progress;
  const mine = progress.people.find((p) => p.user_id === me.data?.user?.id);
  return (
    <section class="review">
      <div class="page-head">
        <div>
          <div class="crumbs"><a href="#/queues">Queues</a> /</div>
          <h1>{detail.data.name}</h1>
          {detail.data.description && <div class="muted">{detail.data.description}</div>}
        </div>
        <dl class="facts">
          <div><dt>Done</dt><dd>{progress.completed} / {progress.total}</dd></div>
          <div><dt>You</dt><dd>{mine?.completed ?? 0} done, {mine?.skipped ?? 0} skipped</dd></div>
          <div><dt>In review now</dt><dd>{progress.locked}</dd></div>
        </dl>
      </div>
      <AddItems project={project} base={base} onAdded={() => { detail.reload(); if (done) void next(); }} />
      <ReviewedToDataset project={project} queueId={queueId} />
      {error && <div class="error" role="alert">{error}</div>}
      {done && !item && <div class="empty" role="status">Nothing left for you in this queue. Thank you!</div>}
      {item && (
        <div class="review-layout">
          <div class="panel scoring" aria-label="Your scores">
            <h2>
              {item.objectType.toLowerCase()} <span class="mono">{item.objectId}</span>
            </h2>
            <p class="muted keys">
              <kbd>1</kbd>–<kbd>9</kbd> choose · <kbd>j</kbd>/<kbd>k</kbd> score · <kbd>Enter</kbd> submit · <kbd>s</kbd> skip · <kbd>p</kbd> previous
            </p>
            {queueConfigs.map((config, index) => (
              <fieldset key={config.id} class={index === active ? "active" : ""} onFocusCapture={() => setActive(index)}>
                <legend>{config.name}</legend>
                {config.description && <div class="muted">{config.description}</div>}
                {choices(config).length > 0 ? (
                  <div class="choices" role="radiogroup" aria-label={config.name}>
                    {choices(config).map((choice, i) => (
                      <button
                        key={choice.label}
                        type="button"
                        role="radio"
                        aria-checked={values[config.id] === choice.value}
                        class={values[config.id] === choice.value ? "chosen" : "secondary"}
                        onClick={() => choose({ [config.id]: choice.value })}
                      >
                        <kbd>{i + 1}</kbd> {choice.label}
                      </button>
                    ))}
                  </div>
                ) : config.dataType === "NUMERIC" ? (
                  <input
                    type="number"
                    step="any"
                    aria-label={config.name}
                    min={config.minValue ?? undefined}
                    max={config.maxValue ?? undefined}
                    value={String(values[config.id] ?? "")}
                    onInput={(e) => choose({ [config.id]: e.currentTarget.value })}
                  />
                ) : (
                  <textarea aria-label={config.name} value={String(values[config.id] ?? "")} onInput={(e) => choose({ [config.id]: e.currentTarget.value })} />
                )}
                <input
                  class="comment"
                  placeholder="Why (optional)"
                  aria-label={`Why ${config.name}`}
                  value={comments[config.id] ?? ""}
                  onInput={(e) => setComments((c) => ({ ...c, [config.id]: e.currentTarget.value }))}
                />
              </fieldset>
            ))}
            <div class="actions">
              <button type="button" onClick={() => void submit()} disabled={busy}>Submit</button>
              <button type="button" class="secondary" onClick={() => void skip()} disabled={busy}>Skip</button>
              <button type="button" class="secondary" onClick={() => void previous()} disabled={history.length === 0}>Previous</button>
            </div>
            <Comments project={project} objectType={item.objectType} objectId={item.objectId} />
          </div>
          <div class="grow">
            {item.traceId ? (
              <ItemTrace project={project} item={item} />
            ) : (
              <div class="warning">This {item.objectType.toLowerCase()} was not found when it was added; it cannot be shown.</div>
            )}
          </div>
        </div>
      )}
    </section>
  );
}

function ItemTrace({ project, item }: { project: string; item: QueueItem }) {
  const trace = item.traceId ?? "";
  const state = useLoad(() => get<TraceDetail>(`/v1/traces/${encodeURIComponent(trace)}`, { project_id: project }), [project, trace]);
  if (!state.data) return <Status state={state} />;
  return (
    <>
      {item.objectType === "SESSION" && (
        <p class="muted">
          Session <a href={href(`/sessions/${encodeURIComponent(item.objectId)}`)}>{item.objectId}</a>: its first trace is shown, and scored.
        </p>
      )}
      <Trace key={item.id} project={project} detail={state.data} initial={item.objectType === "OBSERVATION" ? item.objectId : null} />
    </>
  );
}

/** Adds items from a filtered list: traces by name or tags, or what a judge failed. */
function AddItems({ project, base, onAdded }: { project: string; base: string; onAdded: () => void }) {
  const judges = useLoad(() => get<{ data: Evaluator[] }>(`/v1/projects/${project}/evaluators`, { limit: 100 }), [project]);
  const [note, setNote] = useState<string | null>(null);
  const add = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const judge = text(form, "judge");
    const rate = Number(text(form, "sample") || "100") / 100;
    const body = judge
      ? { judge_failures: { evaluator_id: judge }, sample_rate: rate, limit: 1000 }
      : { traces: { name: text(form, "name") || null, tags: text(form, "tags") || null }, sample_rate: rate, limit: 1000 };
    try {
      const added = await api<{ found: number; items: QueueItem[] }>("POST", `${base}/items/from-filter`, {}, body);
      setNote(`${added.items.length} of ${added.found} found are in the queue.`);
      onAdded();
    } catch (e) {
      setNote(message(e));
    }
  };
  return (
    <details class="panel">
      <summary>Add items</summary>
      <form class="inline-form" onSubmit={(e) => void add(e)} aria-label="Add items">
        <label>
          Traces named <input name="name" />
        </label>
        <label>
          with tags <input name="tags" placeholder="a,b" />
        </label>
        <label>
          or what this judge failed{" "}
          <select name="judge">
            <option value="">—</option>
            {judges.data?.data.filter((j) => j.kind === "llm_judge").map((j) => (
              <option key={j.id} value={j.id}>{j.name}</option>
            ))}
          </select>
        </label>
        <label>
          sample % <input name="sample" type="number" min={1} max={100} value="100" />
        </label>
        <button type="submit">Add</button>
        {note && <span class="muted" role="status">{note}</span>}
      </form>
    </details>
  );
}

/** Copies the queue's completed items into a dataset: each trace's (or observation's) input,
 * and its output as the expected output, keeping where it came from. */
function ReviewedToDataset({ project, queueId }: { project: string; queueId: string }) {
  const [note, setNote] = useState<string | null>(null);
  const copy = async (event: Event) => {
    event.preventDefault();
    const name = text(new FormData(event.currentTarget as HTMLFormElement), "dataset");
    try {
      await api("POST", `/v1/projects/${project}/datasets`, {}, { name });
      const taken = await api<{ items: unknown[]; missing: string[] }>(
        "POST",
        `/v1/projects/${project}/datasets/${encodeURIComponent(name)}/items/from-traces`,
        {},
        { queue_id: queueId, limit: 1000 },
      );
      setNote(`${taken.items.length} items in ${name}${taken.missing.length ? `; ${taken.missing.length} traces not found` : ""}.`);
    } catch (e) {
      setNote(message(e));
    }
  };
  return (
    <details class="panel">
      <summary>Copy reviewed items to a dataset</summary>
      <form class="inline-form" onSubmit={(e) => void copy(e)} aria-label="Copy reviewed items to a dataset">
        <label>
          Dataset <input name="dataset" required placeholder="a new or existing dataset" />
        </label>
        <button type="submit">Copy</button>
        {note && <span class="muted" role="status">{note}</span>}
      </form>
    </details>
  );
}
