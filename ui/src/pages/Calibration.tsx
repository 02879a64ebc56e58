import { get, type Calibration } from "../api";
import { Status } from "../components/Status";
import { num, percent } from "../format";
import { useLoad } from "../hooks";

/** How far to trust each LLM judge: its agreement with people on the targets both scored. */
export function CalibrationPanel({ project }: { project: string }) {
  const state = useLoad(() => get<Calibration[]>(`/v1/projects/${project}/calibrations`), [project]);
  return (
    <div class="panel" aria-label="Judge calibration">
      <h2>Judges against people</h2>
      <p class="muted">
        On the targets both an LLM judge and people (annotation queues) scored under the judge's score name: how often they agree. Recomputed every 10
        minutes.
      </p>
      {!state.data ? (
        <Status state={state} />
      ) : state.data.length === 0 ? (
        <p class="muted">No judge has been compared with people yet: put some of its targets in an annotation queue and review them.</p>
      ) : (
        state.data.map((calibration) => <JudgeCalibration key={calibration.evaluator_id} calibration={calibration} />)
      )}
    </div>
  );
}

function fixed(value: number | null | undefined, digits = 2): string {
  return value === null || value === undefined ? "—" : num(value).toFixed(digits);
}

/** Landis and Koch's words for a kappa. */
function agreementWord(kappa: number | null | undefined): string {
  if (kappa === null || kappa === undefined) return "";
  if (kappa < 0) return "worse than chance";
  if (kappa < 0.2) return "slight";
  if (kappa < 0.4) return "fair";
  if (kappa < 0.6) return "moderate";
  if (kappa < 0.8) return "substantial";
  return "almost perfect";
}

interface Confusion {
  labels: string[];
  counts: number[][];
}

interface Disagreement {
  trace_id: string;
  observation_id?: string | null;
  judge: unknown;
  human: unknown;
  author?: string | null;
  link?: string | null;
}

function JudgeCalibration({ calibration: c }: { calibration: Calibration }) {
  const numeric = c.data_type === "numeric";
  const confusion = c.confusion as unknown as Confusion | null;
  const disagreements = c.disagreements as unknown as Disagreement[];
  return (
    <article class="calibration" aria-label={`Calibration of ${c.evaluator_name}`}>
      <h3>
        {c.evaluator_name} <span class="muted">· {c.score_name} · {c.data_type} · {c.pairs} pairs</span>
      </h3>
      <dl class="facts">
        {numeric ? (
          <>
            <div><dt>Mean absolute error</dt><dd>{fixed(c.mean_absolute_error)}</dd></div>
            <div><dt>Spearman</dt><dd>{fixed(c.spearman)}</dd></div>
          </>
        ) : (
          <>
            <div><dt>Accuracy</dt><dd>{percent(c.accuracy)}</dd></div>
            <div><dt>Cohen's kappa</dt><dd>{fixed(c.kappa)} <span class="muted">{agreementWord(c.kappa)}</span></dd></div>
          </>
        )}
      </dl>
      {confusion && confusion.labels.length > 0 && (
        <table class="grid compact confusion" aria-label={`Confusion matrix of ${c.evaluator_name}`}>
          <thead>
            <tr>
              <th>People ↓ · judge →</th>
              {confusion.labels.map((label) => <th key={label} class="num">{label}</th>)}
            </tr>
          </thead>
          <tbody>
            {confusion.labels.map((label, row) => (
              <tr key={label}>
                <th>{label}</th>
                {confusion.counts[row]?.map((n, column) => (
                  <td key={column} class={`num ${row === column ? "agree" : n > 0 ? "disagree" : ""}`}>{n}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {disagreements.length > 0 && (
        <details>
          <summary>{disagreements.length} disagreement{disagreements.length === 1 ? "" : "s"}</summary>
          <table class="grid compact" aria-label={`Disagreements of ${c.evaluator_name}`}>
            <thead>
              <tr>
                <th>Target</th>
                <th>Judge</th>
                <th>Person</th>
                <th>Who</th>
              </tr>
            </thead>
            <tbody>
              {disagreements.map((d, i) => (
                <tr key={i}>
                  <td>
                    <a href={d.link ?? `#/traces/${encodeURIComponent(d.trace_id)}`} class="mono">
                      {d.observation_id ? `${d.trace_id} / ${d.observation_id}` : d.trace_id}
                    </a>
                  </td>
                  <td>{String(d.judge)}</td>
                  <td>{String(d.human)}</td>
                  <td class="muted">{d.author ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
    </article>
  );
}
