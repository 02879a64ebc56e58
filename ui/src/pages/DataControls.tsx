import { useEffect, useState } from "preact/hooks";
import { api, get, type AuditEvent, type DeletionJob, type Project } from "../api";
import { Status } from "../components/Status";
import { message, useLoad } from "../hooks";

type Target = "traceIds" | "sessionId" | "userId" | "project";

const TARGETS: [Target, string, string][] = [
  ["traceIds", "Traces", "trace ids, one per line or comma-separated"],
  ["sessionId", "A session", "the session id"],
  ["userId", "A user", "the user id (every trace of theirs)"],
  ["project", "Every event of the project", "the project must be archived first; admins only"],
];

/** Rows a job found in the event tables (PostgreSQL's and the bookkeeping counts aside). */
function rowsOf(job: DeletionJob): number {
  return Object.entries(job.counts)
    .filter(([table]) => !table.includes("."))
    .reduce((sum, [, n]) => sum + n, 0);
}

/** Deleting a project's traces, sessions and users' data: a form, and the jobs with their state. */
export function Deletions({ project }: { project: string }) {
  const jobs = useLoad(() => get<DeletionJob[]>(`/v1/projects/${project}/deletions`, { limit: 20 }), [project]);
  const [target, setTarget] = useState<Target>("traceIds");
  const [value, setValue] = useState("");
  const [datasetItems, setDatasetItems] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const running = jobs.data?.some((job) => job.status === "pending" || job.status === "running") ?? false;
  const reload = jobs.reload;
  // While a job runs, its state is read again every two seconds.
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(reload, 2000);
    return () => clearInterval(timer);
  }, [running, reload]);

  const submit = async () => {
    setError(null);
    const ids = value
      .split(/[\n,]/)
      .map((id) => id.trim())
      .filter((id) => id);
    if (target !== "project" && ids.length === 0) return setError("Name what to delete.");
    const what =
      target === "project"
        ? "every event of this project"
        : target === "traceIds"
          ? `${ids.length} trace(s)`
          : `everything of ${target === "userId" ? "user" : "session"} ${ids[0]}`;
    if (!window.confirm(`Delete ${what}? This cannot be undone.`)) return;
    const body = target === "project" ? { project: true } : { [target]: target === "traceIds" ? ids : ids[0] };
    try {
      await api("POST", `/v1/projects/${project}/deletions`, {}, { ...body, datasetItems });
      setValue("");
      jobs.reload();
    } catch (e) {
      setError(message(e));
    }
  };

  return (
    <div class="panel">
      <h2>Delete data</h2>
      <p class="muted">
        A deletion removes the rows from every table, waits until every replica has, and is done when a read of every table finds none.
        Events of deleted traces that arrive later are refused.
      </p>
      <div class="row">
        <select aria-label="What to delete" value={target} onChange={(e) => setTarget(e.currentTarget.value as Target)}>
          {TARGETS.map(([id, label]) => (
            <option key={id} value={id}>
              {label}
            </option>
          ))}
        </select>
        <input
          aria-label="Ids to delete"
          class="grow mono"
          disabled={target === "project"}
          placeholder={TARGETS.find(([id]) => id === target)?.[2]}
          value={value}
          onInput={(e) => setValue(e.currentTarget.value)}
        />
        <button type="button" class="danger" onClick={() => void submit()}>
          Delete
        </button>
      </div>
      <label class="check">
        <input type="checkbox" checked={datasetItems} onChange={(e) => setDatasetItems(e.currentTarget.checked)} />
        <span>Also delete dataset items made from these traces</span>
      </label>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {jobs.data ? (
        <table class="grid compact" aria-label="Deletions">
          <thead>
            <tr>
              <th>Asked</th>
              <th>What</th>
              <th>By</th>
              <th>Status</th>
              <th class="num">Rows</th>
              <th>Finished</th>
            </tr>
          </thead>
          <tbody>
            {jobs.data.map((job) => (
              <tr key={job.id} title={job.error ?? undefined}>
                <td>{job.createdAt}</td>
                <td class="mono">
                  {job.target} {job.targetIds.slice(0, 3).join(", ")}
                  {job.targetIds.length > 3 ? ` and ${job.targetIds.length - 3} more` : ""}
                </td>
                <td>{job.requestedBy}</td>
                <td class={job.status === "failed" ? "error" : undefined}>{job.status === "running" && job.error ? "retrying" : job.status}</td>
                <td class="num">{rowsOf(job)}</td>
                <td>{job.finishedAt ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Status state={jobs} />
      )}
    </div>
  );
}

/** `PATCH /v1/projects/{project}/prompts/{name}` with the entry's own name filled in (the project and organization stay named as such). */
function described(event: AuditEvent): string {
  const target = event.target as Record<string, unknown>;
  return event.action.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const value = target[name];
    return name === "project" || name === "organization" || typeof value !== "string" ? whole : value;
  });
}

/** The organization's audit log, for its admins and owners. */
export function AuditLog({ project }: { project: string }) {
  const log = useLoad(async () => {
    const owner = await get<Project>(`/v1/projects/${project}`);
    return get<AuditEvent[]>(`/v1/organizations/${owner.organization_id}/audit-log`, { limit: 100 });
  }, [project]);
  return (
    <div class="panel">
      <h2>Audit log</h2>
      <p class="muted">Every change in this organization, export and sign-in of its members: who, what, when, from where. Nothing here can be edited.</p>
      {log.data ? (
        <table class="grid compact" aria-label="Audit log">
          <thead>
            <tr>
              <th>When</th>
              <th>Who</th>
              <th>What</th>
              <th class="num">Status</th>
              <th>From</th>
            </tr>
          </thead>
          <tbody>
            {log.data.map((event) => (
              <tr key={event.id}>
                <td>{event.at}</td>
                <td>{event.actor}</td>
                <td class="mono" title={JSON.stringify(event.target)}>
                  {described(event)}
                </td>
                <td class="num">{event.status || ""}</td>
                <td>{event.address ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : log.error?.includes("needs the admin role") ? (
        <p class="muted">Only the organization's admins and owners read its audit log.</p>
      ) : (
        <Status state={log} />
      )}
    </div>
  );
}
