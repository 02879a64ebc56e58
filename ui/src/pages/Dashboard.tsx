import { useMemo } from "preact/hooks";
import type { ChartConfiguration } from "chart.js";
import { get, type ObservationMetricsAnswer } from "../api";
import { Chart, PALETTE } from "../components/Chart";
import { Status } from "../components/Status";
import { count, daysAgo, duration, num, percent, usd } from "../format";
import { useLoad } from "../hooks";
import { href, navigate, type Route } from "../route";

const RANGES = [7, 14, 30, 90];

interface Metrics {
  byModel: ObservationMetricsAnswer;
  daily: ObservationMetricsAnswer;
  errors: ObservationMetricsAnswer;
  tools: ObservationMetricsAnswer;
  byKey: ObservationMetricsAnswer;
}

export function Dashboard({ project, route }: { project: string; route: Route }) {
  const days = Number(route.query.get("days") ?? "7") || 7;
  const state = useLoad(async (): Promise<Metrics> => {
    const from = daysAgo(days);
    const to = new Date(Date.now() + 60_000).toISOString();
    const metrics = (query: Record<string, string>) => get<ObservationMetricsAnswer>("/v1/metrics", { project_id: project, from, to, ...query });
    const [byModel, daily, errors, tools, byKey] = await Promise.all([
      metrics({ bucket: "day", type: "generation", dimensions: "model" }),
      metrics({ bucket: "day", type: "generation" }),
      metrics({ bucket: "day" }),
      // Tool calls of every type (`tool_call`, Langfuse's `tool`), by outcome.
      metrics({ bucket: "none", dimensions: "tool,level" }),
      // Who spent what: generations by the API key that sent them.
      metrics({ bucket: "none", type: "generation", dimensions: "api_key" }),
    ]);
    return { byModel, daily, errors, tools, byKey };
  }, [project, days]);

  return (
    <section>
      <div class="page-head">
        <h1>Dashboard</h1>
        <label>
          Range{" "}
          <select aria-label="Range" value={String(days)} onChange={(e) => navigate("/dashboard", { days: e.currentTarget.value })}>
            {RANGES.map((d) => (
              <option key={d} value={String(d)}>Last {d} days</option>
            ))}
          </select>
        </label>
      </div>
      {state.data ? <Charts metrics={state.data} days={days} /> : <Status state={state} />}
    </section>
  );
}

/** A dimension's value as a label (empty means the rows had none). */
function text(value: unknown, none: string): string {
  return typeof value === "string" && value !== "" ? value : none;
}

function dayLabels(days: number): string[] {
  const first = Date.parse(daysAgo(days));
  return Array.from({ length: days }, (_, i) => new Date(first + i * 86_400_000).toISOString().slice(0, 10));
}

function byDay(rows: Record<string, unknown>[], labels: string[], pick: (row: Record<string, unknown>) => number | null): (number | null)[] {
  const values = new Map<string, number | null>();
  for (const row of rows) values.set(String(row.bucket).slice(0, 10), pick(row));
  return labels.map((day) => values.get(day) ?? null);
}

function Charts({ metrics, days }: { metrics: Metrics; days: number }) {
  const labels = useMemo(() => dayLabels(days), [days]);
  const totals = useMemo(() => {
    let cost = 0;
    let requests = 0;
    let tokens = 0;
    for (const row of metrics.byModel.data) {
      cost += num(row.total_cost);
      requests += num(row.count);
      tokens += num(row.input_tokens) + num(row.output_tokens);
    }
    let errors = 0;
    let observations = 0;
    for (const row of metrics.errors.data) {
      observations += num(row.count);
      errors += num(row.count) * num(row.error_rate);
    }
    return { cost, requests, tokens, errorRate: observations ? errors / observations : null };
  }, [metrics]);

  const costByModel = useMemo((): ChartConfiguration => {
    const models = [...new Set(metrics.byModel.data.map((row) => text(row.model, "(no model)")))].sort();
    return {
      type: "bar",
      data: {
        labels,
        datasets: models.map((model, i) => ({
          label: model,
          backgroundColor: PALETTE[i % PALETTE.length] ?? "#888",
          data: byDay(
            metrics.byModel.data.filter((row) => text(row.model, "(no model)") === model),
            labels,
            (row) => num(row.total_cost),
          ),
        })),
      },
      options: {
        scales: { x: { stacked: true }, y: { stacked: true, ticks: { callback: (v) => usd(v) } } },
        plugins: { tooltip: { callbacks: { label: (item) => `${item.dataset.label ?? ""}: ${usd(item.raw)}` } } },
      },
    };
  }, [metrics, labels]);

  const tokens = useMemo(
    (): ChartConfiguration => ({
      type: "bar",
      data: {
        labels,
        datasets: [
          { label: "input", backgroundColor: PALETTE[0], data: byDay(metrics.daily.data, labels, (r) => num(r.input_tokens)) },
          { label: "output", backgroundColor: PALETTE[1], data: byDay(metrics.daily.data, labels, (r) => num(r.output_tokens)) },
        ],
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true } } },
    }),
    [metrics, labels],
  );

  const requests = useMemo(
    (): ChartConfiguration => ({
      type: "bar",
      data: { labels, datasets: [{ label: "LLM requests", backgroundColor: PALETTE[2], data: byDay(metrics.daily.data, labels, (r) => num(r.count)) }] },
    }),
    [metrics, labels],
  );

  const latency = useMemo(
    (): ChartConfiguration => ({
      type: "line",
      data: {
        labels,
        datasets: [
          { label: "p50", borderColor: PALETTE[0], backgroundColor: PALETTE[0], spanGaps: true, data: byDay(metrics.daily.data, labels, (r) => r.latency_p50_ms as number | null) },
          { label: "p95", borderColor: PALETTE[3], backgroundColor: PALETTE[3], spanGaps: true, data: byDay(metrics.daily.data, labels, (r) => r.latency_p95_ms as number | null) },
        ],
      },
      options: { scales: { y: { ticks: { callback: (v) => duration(Number(v)) } } } },
    }),
    [metrics, labels],
  );

  const errorRate = useMemo(
    (): ChartConfiguration => ({
      type: "line",
      data: {
        labels,
        datasets: [{ label: "error rate", borderColor: PALETTE[6], backgroundColor: PALETTE[6], spanGaps: true, data: byDay(metrics.errors.data, labels, (r) => num(r.error_rate) * 100) }],
      },
      options: { scales: { y: { min: 0, ticks: { callback: (v) => `${v}%` } } } },
    }),
    [metrics, labels],
  );

  const failingTools = useMemo(() => {
    const byTool = new Map<string, { tool: string; calls: number; failures: number }>();
    for (const row of metrics.tools.data) {
      if (typeof row.tool !== "string" || row.tool === "") continue;
      const entry = byTool.get(row.tool) ?? { tool: row.tool, calls: 0, failures: 0 };
      entry.calls += num(row.count);
      // A tool call fails loudly (error) or with a non-zero exit (warning).
      if (row.level === "error" || row.level === "warning") entry.failures += num(row.count);
      byTool.set(row.tool, entry);
    }
    return [...byTool.values()]
      .filter((row) => row.failures > 0)
      .map((row) => ({ ...row, rate: row.failures / row.calls }))
      .sort((a, b) => b.failures - a.failures || b.rate - a.rate)
      .slice(0, 10);
  }, [metrics]);

  const costByKey = useMemo(
    () =>
      metrics.byKey.data
        .map((row) => ({ key: text(row.api_key, "written by AgentTrace"), cost: num(row.total_cost), requests: num(row.count) }))
        .sort((a, b) => b.cost - a.cost)
        .slice(0, 10),
    [metrics],
  );

  return (
    <>
      <div class="cards">
        <Card label="Cost" value={usd(totals.cost)} testId="total-cost" raw={totals.cost} />
        <Card label="LLM requests" value={count(totals.requests)} testId="total-requests" raw={totals.requests} />
        <Card label="Tokens" value={count(totals.tokens)} testId="total-tokens" raw={totals.tokens} />
        <Card label="Error rate" value={percent(totals.errorRate)} testId="error-rate" raw={totals.errorRate ?? 0} />
      </div>
      <div class="chart-grid">
        <figure class="panel" data-chart="cost-by-model" data-total={totals.cost}>
          <figcaption>Cost per day by model <span class="muted">· total {usd(totals.cost)}</span></figcaption>
          <Chart config={costByModel} label="Cost per day by model" />
        </figure>
        <figure class="panel" data-chart="tokens">
          <figcaption>Tokens per day</figcaption>
          <Chart config={tokens} label="Tokens per day" />
        </figure>
        <figure class="panel" data-chart="requests" data-total={totals.requests}>
          <figcaption>LLM requests per day</figcaption>
          <Chart config={requests} label="LLM requests per day" />
        </figure>
        <figure class="panel" data-chart="latency">
          <figcaption>Generation latency p50 / p95</figcaption>
          <Chart config={latency} label="Latency percentiles per day" />
        </figure>
        <figure class="panel" data-chart="error-rate">
          <figcaption>Error rate (all observations)</figcaption>
          <Chart config={errorRate} label="Error rate per day" />
        </figure>
        <figure class="panel" data-chart="failing-tools">
          <figcaption>Tools that fail most</figcaption>
          {failingTools.length === 0 ? (
            <p class="muted">No tool call failed in this range.</p>
          ) : (
            <table class="grid compact" aria-label="Tools that fail most">
              <thead>
                <tr>
                  <th>Tool</th>
                  <th class="num">Failures</th>
                  <th class="num">Calls</th>
                  <th class="num">Failure rate</th>
                </tr>
              </thead>
              <tbody>
                {failingTools.map((row) => (
                  <tr key={row.tool}>
                    <td>
                      <a href={href("/traces", { level: "warning", range: "30d" })}>{row.tool}</a>
                    </td>
                    <td class="num">{row.failures}</td>
                    <td class="num">{row.calls}</td>
                    <td class="num">{percent(row.rate)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </figure>
        <figure class="panel" data-chart="cost-by-key">
          <figcaption>Cost by API key</figcaption>
          {costByKey.length === 0 ? (
            <p class="muted">No generation in this range.</p>
          ) : (
            <table class="grid compact" aria-label="Cost by API key">
              <thead>
                <tr>
                  <th>Public key</th>
                  <th class="num">Cost</th>
                  <th class="num">LLM requests</th>
                </tr>
              </thead>
              <tbody>
                {costByKey.map((row) => (
                  <tr key={row.key}>
                    <td>
                      <code>{row.key}</code>
                    </td>
                    <td class="num">{usd(row.cost)}</td>
                    <td class="num">{count(row.requests)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </figure>
      </div>
    </>
  );
}

function Card({ label, value, testId, raw }: { label: string; value: string; testId: string; raw: number }) {
  return (
    <div class="card" data-testid={testId} data-value={raw}>
      <div class="card-label">{label}</div>
      <div class="card-value">{value}</div>
    </div>
  );
}
