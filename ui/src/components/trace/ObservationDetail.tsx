import { get, type Observation, type StoredObservation, type TraceDetail } from "../../api";
import { useLoad } from "../../hooks";
import { Json } from "../Json";
import { Payload } from "../Messages";
import { count, duration, time, usd } from "../../format";
import { Commands } from "./Commands";
import { Fact } from "./Fact";
import { Files } from "./Files";
import { ScoreList } from "./Scores";
import { observationMs, unpriced } from "./tree";

/** Whether a trace's detail cut any of the observation's payloads to a preview. */
export function isCut(o: Observation): boolean {
  return o.input_truncated || o.output_truncated || o.model_parameters_truncated || o.metadata_truncated;
}

/** The selected observation: its facts, scores, input and output, commands, files and metadata. A
 * trace's detail carries payload previews; a cut one is read whole when it is opened. */
export function ObservationDetail({
  project,
  observation: preview,
  detail,
  shared = false,
}: {
  project: string;
  observation: Observation;
  detail: TraceDetail;
  /** A public trace read signed out: read through its share link. */
  shared?: boolean;
}) {
  const cut = isCut(preview);
  const path = `/traces/${encodeURIComponent(detail.id)}/observations/${encodeURIComponent(preview.id)}`;
  const whole = useLoad(
    () =>
      cut
        ? shared
          ? get<StoredObservation>(`/v1/shared/${encodeURIComponent(project)}${path}`)
          : get<StoredObservation>(`/v1${path}`, { project_id: project })
        : Promise.resolve<StoredObservation>(preview),
    [project, detail.id, preview.id, cut, shared],
  );
  // While another observation's whole answer is still shown, its preview is the truth.
  const o: StoredObservation = whole.data?.id === preview.id ? whole.data : preview;
  const scores = detail.scores.filter((s) => s.observation_id === o.id);
  const commands = detail.terminal_commands.filter((c) => c.observation_id === o.id);
  const files = detail.file_operations.filter((f) => f.observation_id === o.id);
  return (
    <div class="observation" aria-label="Selected observation">
      <h2>
        <span class={`type type-${o.type}`}>{o.type}</span> {o.name}
      </h2>
      <dl class="facts">
        <Fact label="Started" value={time(o.start_time_us)} />
        <Fact label="Duration" value={duration(observationMs(o))} />
        {o.model && <Fact label="Model" value={o.model} />}
        {o.tool_name && <Fact label="Tool" value={o.tool_name} />}
        {o.input_tokens + o.output_tokens > 0 && <Fact label="Tokens" value={`${count(o.input_tokens)} in · ${count(o.output_tokens)} out`} />}
        {unpriced(o) ? (
          <Fact
            label="Cost"
            value={
              <span
                class="badge level-warning no-price"
                title={`The price table has no price for ${o.model ?? "this model"} and the agent sent no cost: add one (POST /v1/prices), then re-price with the recompute_costs job`}
              >
                no price
              </span>
            }
          />
        ) : (
          o.total_cost !== null && <Fact label="Cost" value={usd(o.total_cost)} />
        )}
        <Fact label="Level" value={o.level} />
      </dl>
      {o.status_message && <div class={`status-message level-${o.level}`}>{o.status_message}</div>}
      {cut && o === preview && (
        <div class="muted" role="status">
          {whole.error ? `Showing the first 1,000 characters of each payload; the rest could not be read: ${whole.error}` : "Showing the first 1,000 characters of each payload; reading the rest…"}
        </div>
      )}
      {scores.length > 0 && <ScoreList scores={scores} />}
      <h3>Input</h3>
      <Payload value={o.input} />
      <h3>Output</h3>
      <Payload value={o.output} />
      {commands.length > 0 && <Commands commands={commands} />}
      {files.length > 0 && <Files files={files} />}
      {Object.keys(o.metadata).length > 0 && (
        <>
          <h3>Metadata</h3>
          <Json value={o.metadata} depth={0} />
        </>
      )}
    </div>
  );
}

/** The trace's own input and output, shown while no observation is selected. */
export function TraceIo({ detail }: { detail: TraceDetail }) {
  return (
    <>
      <h2>Trace input</h2>
      <Payload value={detail.trace?.input} />
      <h2>Trace output</h2>
      <Payload value={detail.trace?.output} />
    </>
  );
}
