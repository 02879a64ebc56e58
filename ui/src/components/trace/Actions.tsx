import { useState } from "preact/hooks";
import { api, get, type Dataset, type Observation, type Paged, type Sharing, type TraceDetail } from "../../api";
import { message, useLoad } from "../../hooks";

/** Making a trace public (and private again), with its link. */
export function ShareToggle({ project, traceId }: { project: string; traceId: string }) {
  const path = `/v1/projects/${project}/traces/${encodeURIComponent(traceId)}/sharing`;
  const state = useLoad(() => get<Sharing>(path), [path]);
  const [error, setError] = useState<string | null>(null);
  const set = async (share: boolean) => {
    try {
      await api("PUT", path, {}, { public: share });
      state.reload();
    } catch (e) {
      setError(message(e));
    }
  };
  if (!state.data) return null;
  const link = `${window.location.origin}${window.location.pathname}${state.data.share_path}`;
  return (
    <div class="share" aria-label="Sharing">
      {state.data.public ? (
        <>
          <span class="badge">public</span> <input class="mono" readOnly aria-label="Share link" value={link} size={40} onFocus={(e) => e.currentTarget.select()} />{" "}
          <button type="button" class="secondary" onClick={() => void set(false)}>Make private</button>
        </>
      ) : (
        <button type="button" class="secondary" onClick={() => void set(true)}>Share publicly</button>
      )}
      {error && <span class="error" role="alert">{error}</span>}
    </div>
  );
}

/** Text for an editable field: a string as it is, anything else as JSON. */
function editable(value: unknown): string {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

/** A field's text back as what it holds: JSON when it parses, else the text itself. */
function parsed(text: string): unknown {
  if (text.trim() === "") return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** "Add to dataset": the trace's (or the selected observation's) input, its output as the
 * expected output, editable before saving; the item keeps where it came from. */
export function AddToDataset({ project, detail, observation }: { project: string; detail: TraceDetail; observation?: Observation }) {
  const datasets = useLoad(() => get<Paged<Dataset>>(`/v1/projects/${project}/datasets`, { limit: 100 }), [project]);
  const source = observation ?? detail.trace;
  const [input, setInput] = useState(editable(source?.input));
  const [expected, setExpected] = useState(editable(source?.output));
  const [note, setNote] = useState<string | null>(null);
  const save = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const chosen = form.get("dataset");
    const name = typeof chosen === "string" ? chosen.trim() : "";
    try {
      await api("POST", `/v1/projects/${project}/datasets`, {}, { name });
      await api("POST", `/v1/projects/${project}/datasets/${encodeURIComponent(name)}/items`, {}, {
        input: parsed(input),
        expected_output: parsed(expected),
        source_trace_id: detail.id,
        source_observation_id: observation?.id ?? null,
      });
      setNote(`Added to ${name}.`);
    } catch (e) {
      setNote(message(e));
    }
  };
  return (
    <details class="add-to-dataset">
      <summary>Add {observation ? "this observation" : "this trace"} to a dataset</summary>
      <form class="stack" onSubmit={(e) => void save(e)} aria-label="Add to dataset">
        <label>
          Dataset{" "}
          <input name="dataset" list="datasets" required placeholder="a new or existing dataset" />
          <datalist id="datasets">{datasets.data?.data.map((d) => <option key={d.id} value={d.name} />)}</datalist>
        </label>
        <label>
          Input <textarea aria-label="Input" value={input} onInput={(e) => setInput(e.currentTarget.value)} />
        </label>
        <label>
          Expected output <textarea aria-label="Expected output" value={expected} onInput={(e) => setExpected(e.currentTarget.value)} />
        </label>
        <button type="submit">Add item</button>
        {note && <span class="muted" role="status">{note}</span>}
      </form>
    </details>
  );
}
