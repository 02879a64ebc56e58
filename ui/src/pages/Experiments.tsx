import { useState } from "preact/hooks";
import { get, type Comparison, type Experiment, type Paged } from "../api";
import { Json } from "../components/Json";
import { Status } from "../components/Status";
import { gist } from "../format";
import { useLoad } from "../hooks";
import { href, navigate, type Route } from "../route";

function fixed(value: number | null | undefined, digits = 3): string {
  return value == null ? "—" : value.toFixed(digits);
}

export function Experiments({ project, route }: { project: string; route: Route }) {
  const list = useLoad(() => get<Paged<Experiment>>(`/v1/projects/${project}/experiments`, { limit: 100 }), [project]);
  if (!list.data) return <Status state={list} />;
  // Oldest first: by default the older run is the baseline, the newest the candidate.
  const experiments = [...list.data.data].sort((x, y) => x.created_at.localeCompare(y.created_at));
  const a = route.query.get("a") ?? experiments[0]?.id ?? "";
  const b = route.query.get("b") ?? experiments[experiments.length - 1]?.id ?? "";
  const choose = (key: "a" | "b", value: string) => navigate("/experiments", { a, b, [key]: value });
  return (
    <section>
      <div class="page-head">
        <h1>Experiments</h1>
      </div>
      {experiments.length === 0 ? (
        <div class="empty">No experiments yet. Run one over a dataset with the Langfuse SDK or <code>agenttrace demo --experiments</code>.</div>
      ) : (
        <>
          <form class="filters" aria-label="Experiments to compare" onSubmit={(e) => e.preventDefault()}>
            <label>
              Baseline (A)
              <select name="a" value={a} onChange={(e) => choose("a", e.currentTarget.value)}>
                {experiments.map((x) => <option key={x.id} value={x.id}>{x.name}</option>)}
              </select>
            </label>
            <label>
              Candidate (B)
              <select name="b" value={b} onChange={(e) => choose("b", e.currentTarget.value)}>
                {experiments.map((x) => <option key={x.id} value={x.id}>{x.name}</option>)}
              </select>
            </label>
          </form>
          {a && b && <Compare key={`${a}/${b}`} project={project} a={a} b={b} />}
        </>
      )}
    </section>
  );
}

function Compare({ project, a, b }: { project: string; a: string; b: string }) {
  const state = useLoad(() => get<Comparison>(`/v1/projects/${project}/experiments/compare`, { a, b }), [project, a, b]);
  const [item, setItem] = useState<string | null>(null);
  if (!state.data) return <Status state={state} />;
  const { scores, items } = state.data;
  const names = scores.map((s) => s.score_name);
  return (
    <>
      <div class="panel">
        <h2>
          {state.data.a.name} <span class="muted">vs</span> {state.data.b.name}
        </h2>
        <p class="muted">B − A per dataset item both ran, with a bootstrap 95% confidence interval of the mean difference.</p>
        <table class="grid" aria-label="Score comparison">
          <thead>
            <tr>
              <th>Score</th>
              <th class="num">A mean</th>
              <th class="num">B mean</th>
              <th class="num">Paired items</th>
              <th class="num">Mean difference (B − A)</th>
              <th class="num">95% CI</th>
              <th>Verdict</th>
            </tr>
          </thead>
          <tbody>
            {scores.map((s) => {
              const verdict = s.ci_low == null || s.ci_high == null ? "not enough pairs" : s.ci_low > 0 ? "B better" : s.ci_high < 0 ? "B worse" : "no clear difference";
              return (
                <tr key={s.score_name} data-score={s.score_name}>
                  <td>{s.score_name}</td>
                  <td class="num">{fixed(s.a_mean)}</td>
                  <td class="num">{fixed(s.b_mean)}</td>
                  <td class="num">{s.paired_items}</td>
                  <td class="num" data-difference={s.mean_difference ?? ""}>{s.mean_difference == null ? "—" : `${s.mean_difference >= 0 ? "+" : ""}${fixed(s.mean_difference)}`}</td>
                  <td class="num">{s.ci_low == null ? "—" : `[${fixed(s.ci_low)}, ${fixed(s.ci_high)}]`}</td>
                  <td class={verdict === "B better" ? "pass" : verdict === "B worse" ? "fail" : "muted"}>{verdict}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <div class="panel">
        <h2>Items</h2>
        <table class="grid compact" aria-label="Items">
          <thead>
            <tr>
              <th>Item</th>
              {names.map((n) => (
                <th key={n} class="num" colSpan={2}>{n} (A · B)</th>
              ))}
              <th>Traces</th>
            </tr>
          </thead>
          <tbody>
            {items.map((row) => (
              <>
                <tr key={row.dataset_item_id} class={item === row.dataset_item_id ? "selected" : ""}>
                  <td title={row.dataset_item_id}>
                    <button type="button" class="link" aria-expanded={item === row.dataset_item_id} onClick={() => setItem(item === row.dataset_item_id ? null : row.dataset_item_id)}>
                      {gist(row.input) ?? row.dataset_item_id}
                    </button>
                  </td>
                  {names.flatMap((n) => [
                    <td key={`${n}-a`} class="num">{fixed(row.a_scores[n] ?? null, 2)}</td>,
                    <td key={`${n}-b`} class={`num ${(row.b_scores[n] ?? 0) > (row.a_scores[n] ?? 0) ? "pass" : (row.b_scores[n] ?? 0) < (row.a_scores[n] ?? 0) ? "fail" : ""}`}>{fixed(row.b_scores[n] ?? null, 2)}</td>,
                  ])}
                  <td>
                    {row.a_trace_id && <a href={href(`/traces/${encodeURIComponent(row.a_trace_id)}`)}>A</a>}{" "}
                    {row.b_trace_id && <a href={href(`/traces/${encodeURIComponent(row.b_trace_id)}`)}>B</a>}
                  </td>
                </tr>
                {item === row.dataset_item_id && (
                  <tr key={`${row.dataset_item_id}-detail`}>
                    <td colSpan={names.length * 2 + 2}>
                      <div class="two-columns">
                        <div>
                          <h3>Input</h3>
                          <Json value={row.input} />
                        </div>
                        <div>
                          <h3>Expected output</h3>
                          <Json value={row.expected_output} />
                        </div>
                      </div>
                    </td>
                  </tr>
                )}
              </>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
