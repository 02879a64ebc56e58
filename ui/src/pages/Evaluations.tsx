import { useMemo, useState } from "preact/hooks";
import type { ChartConfiguration } from "chart.js";
import { get, type Cursored, type DeadLetter, type Evaluator, type JobRun, type ScoreMetricsAnswer, type Score } from "../api";
import { Chart, PALETTE } from "../components/Chart";
import { Status } from "../components/Status";
import { Truncated } from "../components/Truncated";
import { daysAgo, num, percent, time } from "../format";
import { useLoad } from "../hooks";
import { href } from "../route";
import { CalibrationPanel } from "./Calibration";
import { Judges } from "./Judges";

const DAYS = 14;

export function Evaluations({ project }: { project: string }) {
  const evaluators = useLoad(() => get<{ data: Evaluator[] }>(`/v1/projects/${project}/evaluators`, { limit: 100 }), [project]);
  const rates = useLoad(
    () =>
      get<ScoreMetricsAnswer>("/v1/metrics", {
        project_id: project,
        view: "scores",
        source: "eval",
        dimensions: "evaluator",
        bucket: "day",
        from: daysAgo(DAYS),
        to: new Date(Date.now() + 60_000).toISOString(),
      }),
    [project],
  );
  return (
    <section>
      <div class="page-head">
        <h1>Evaluations</h1>
      </div>
      <div class="panel">
        <h2>Pass rate by evaluator, last {DAYS} days</h2>
        {evaluators.data && rates.data ? <PassRates evaluators={evaluators.data.data} rates={rates.data} project={project} /> : <>
            <Status state={evaluators} />
            <Status state={rates} />
          </>}
      </div>
      <CalibrationPanel project={project} />
      {evaluators.data ? <Judges project={project} evaluators={evaluators.data.data} onAdded={evaluators.reload} /> : <Status state={evaluators} />}
      <JobRuns project={project} />
      <DeadLetters project={project} />
    </section>
  );
}

function PassRates({ evaluators, rates, project }: { evaluators: Evaluator[]; rates: ScoreMetricsAnswer; project: string }) {
  const labels = useMemo(() => {
    const first = Date.parse(daysAgo(DAYS));
    return Array.from({ length: DAYS }, (_, i) => new Date(first + i * 86_400_000).toISOString().slice(0, 10));
  }, []);
  const config = useMemo((): ChartConfiguration => {
    return {
      type: "line",
      data: {
        labels,
        datasets: evaluators.map((evaluator, i) => {
          const byDay = new Map(rates.data.filter((r) => r.evaluator === evaluator.id).map((r) => [String(r.bucket).slice(0, 10), r.mean === null ? null : num(r.mean) * 100]));
          return {
            label: evaluator.name,
            borderColor: PALETTE[i % PALETTE.length],
            backgroundColor: PALETTE[i % PALETTE.length],
            spanGaps: true,
            data: labels.map((day) => byDay.get(day) ?? null),
          };
        }),
      },
      options: { scales: { y: { min: 0, max: 100, ticks: { callback: (v) => `${v}%` } } } },
    };
  }, [evaluators, rates, labels]);
  const summary = evaluators.map((evaluator) => {
    let scores = 0;
    let passed = 0;
    for (const row of rates.data) {
      if (row.evaluator !== evaluator.id) continue;
      scores += num(row.count);
      passed += num(row.count) * num(row.mean);
    }
    return { evaluator, scores, rate: scores ? passed / scores : null };
  });
  const [open, setOpen] = useState<string | null>(null);
  return (
    <>
      <Chart config={config} label="Pass rate per day by evaluator" />
      <table class="grid" aria-label="Evaluators">
        <thead>
          <tr>
            <th>Evaluator</th>
            <th>Kind</th>
            <th class="num">Scores</th>
            <th class="num">Pass rate</th>
            <th>Failures</th>
          </tr>
        </thead>
        <tbody>
          {summary.map(({ evaluator, scores, rate }) => (
            <>
              <tr key={evaluator.id}>
                <td>{evaluator.name}</td>
                <td>{evaluator.kind}</td>
                <td class="num">{scores}</td>
                <td class="num">{percent(rate)}</td>
                <td>
                  <button type="button" class="link" aria-expanded={open === evaluator.id} onClick={() => setOpen(open === evaluator.id ? null : evaluator.id)}>
                    {open === evaluator.id ? "hide" : "show failing observations"}
                  </button>
                </td>
              </tr>
              {open === evaluator.id && (
                <tr key={`${evaluator.id}-failures`}>
                  <td colSpan={5}>
                    <Failures project={project} evaluator={evaluator.id} />
                  </td>
                </tr>
              )}
            </>
          ))}
        </tbody>
      </table>
    </>
  );
}

function Failures({ project, evaluator }: { project: string; evaluator: string }) {
  const state = useLoad(() => get<Cursored<Score>>("/v1/scores", { project_id: project, evaluator_id: evaluator, max_value: 0, limit: 20 }), [project, evaluator]);
  if (!state.data) return <Status state={state} />;
  if (state.data.data.length === 0) return <p class="muted">No failures.</p>;
  return (
    <ul class="failures">
      {state.data.data.map((score) => (
        <li key={score.id}>
          <a href={href(`/traces/${encodeURIComponent(score.trace_id)}`, { observation: score.observation_id })}>
            {score.observation_id ? `observation ${score.observation_id.slice(0, 8)}` : `trace ${score.trace_id.slice(0, 8)}`}
          </a>{" "}
          <span class="muted">{time(score.timestamp_us)}</span> {score.comment && <span>— {score.comment}</span>}
        </li>
      ))}
    </ul>
  );
}

function JobRuns({ project }: { project: string }) {
  const state = useLoad(() => get<{ data: JobRun[] }>(`/v1/projects/${project}/job-runs`, { limit: 50 }), [project]);
  return (
    <div class="panel">
      <h2>Job runs</h2>
      {!state.data ? (
        <Status state={state} />
      ) : state.data.data.length === 0 ? (
        <p class="muted">No job has run yet.</p>
      ) : (
        <table class="grid compact" aria-label="Job runs">
          <thead>
            <tr>
              <th>Job</th>
              <th>Started</th>
              <th>Status</th>
              <th class="num">Rows in</th>
              <th class="num">Rows out</th>
              <th>Error</th>
            </tr>
          </thead>
          <tbody>
            {state.data.data.map((run) => (
              <tr key={run.id} class={`run-${run.status}`}>
                <td>{run.job}</td>
                <td>{run.started_at}</td>
                <td><span class={`badge status-${run.status}`}>{run.status}</span></td>
                <td class="num">{run.rows_in}</td>
                <td class="num">{run.rows_out}</td>
                <td>{run.error && <Truncated text={run.error} limit={200} />}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function DeadLetters({ project }: { project: string }) {
  const state = useLoad(() => get<Cursored<DeadLetter>>(`/v1/projects/${project}/dead-letters`, { limit: 50 }), [project]);
  return (
    <div class="panel">
      <h2>Dead letters</h2>
      <p class="muted">Events the ETL refused, kept with the reason and exactly as received.</p>
      {!state.data ? (
        <Status state={state} />
      ) : state.data.data.length === 0 ? (
        <p class="muted">None: every event was valid.</p>
      ) : (
        <table class="grid compact" aria-label="Dead letters">
          <thead>
            <tr>
              <th>Received</th>
              <th>Event</th>
              <th>Reason</th>
              <th>Raw</th>
            </tr>
          </thead>
          <tbody>
            {state.data.data.map((letter) => (
              <tr key={`${letter.batch_id}/${letter.event_index}`}>
                <td>{time(letter.received_at_us)}</td>
                <td>
                  {letter.event_type ?? "?"} <span class="muted mono">{letter.event_id ?? ""}</span>
                </td>
                <td class="reason">{letter.reason}</td>
                <td>
                  <code><Truncated text={letter.raw} limit={160} /></code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
