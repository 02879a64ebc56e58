import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import type { ChartConfiguration } from "chart.js";
import {
  api,
  get,
  type AlertChannel,
  type AlertDelivery,
  type AlertEvent,
  type AlertRule,
  type CreatedAlertChannel,
  type MetricsAnswer,
} from "../api";
import {
  checkChannel,
  checkRule,
  COMPARISONS,
  describeRule,
  EMPTY_RULE,
  filtersOf,
  formatMetric,
  groupsOf,
  hourBuckets,
  hourLabel,
  isScoreMetric,
  isSilenced,
  metricsQuery,
  METRICS,
  ruleState,
  seriesOf,
  WINDOW_UNITS,
  windowText,
  type ChannelField,
  type RuleField,
  type RuleForm,
} from "../alerts";
import { Chart, PALETTE } from "../components/Chart";
import { Status } from "../components/Status";
import { shortId } from "../format";
import { message, useLoad, type Loaded } from "../hooks";
import { href, navigate, type Route } from "../route";

/** The rules' state changes every minute, when the scheduler evaluates them. */
const REFRESH_MS = 30_000;
const HISTORY_LIMIT = 100;

/** Alert rules with their state, a rule's metric against its threshold, the channels they notify,
 * what fired and what was sent. The API refuses what the caller's role may not do, and its
 * message is shown where the action was. */
export function Alerts({ project, route }: { project: string; route: Route }) {
  const selected = route.query.get("rule");
  const eventFilter = route.query.get("event");
  const base = `/v1/projects/${project}/alerts`;
  const rules = useLoad(() => get<AlertRule[]>(`${base}/rules`), [base]);
  const channels = useLoad(() => get<AlertChannel[]>(`${base}/channels`), [base]);
  const events = useLoad(() => get<AlertEvent[]>(`${base}/events`, { rule: selected, limit: HISTORY_LIMIT }), [base, selected]);
  const deliveries = useLoad(() => get<AlertDelivery[]>(`${base}/deliveries`, { event: eventFilter, limit: HISTORY_LIMIT }), [base, eventFilter]);

  const { reload: reloadRules } = rules;
  const { reload: reloadEvents } = events;
  const { reload: reloadDeliveries } = deliveries;
  // What "silenced" means now: read again with the rules.
  const [now, setNow] = useState(Date.now);
  const refresh = useCallback(() => {
    setNow(Date.now());
    reloadRules();
    reloadEvents();
    reloadDeliveries();
  }, [reloadRules, reloadEvents, reloadDeliveries]);
  useEffect(() => {
    const timer = setInterval(refresh, REFRESH_MS);
    return () => clearInterval(timer);
  }, [refresh]);

  const rule = rules.data?.find((r) => r.id === selected) ?? null;
  const go = (query: { rule?: string | null; event?: string | null }) =>
    navigate("/alerts", { rule: "rule" in query ? query.rule : selected, event: "event" in query ? query.event : eventFilter });

  return (
    <section class="alerts">
      <div class="page-head">
        <div>
          <h1>Alerts</h1>
          <p class="muted">
            Each rule watches a metric over a rolling window, every minute, and notifies its channels when it crosses the threshold (once per group
            with a group-by) and when it resolves. A silenced rule records what fires but sends nothing until then; a disabled one is not evaluated.
          </p>
        </div>
        <button type="button" class="secondary" onClick={refresh}>
          Refresh
        </button>
      </div>
      <Rules project={project} rules={rules} now={now} selected={selected} onChanged={reloadRules} onSelect={(id) => go({ rule: id })} />
      {selected &&
        (rule ? (
          <RuleDetail key={rule.id} project={project} rule={rule} channels={channels.data ?? []} onChanged={reloadRules} onClose={() => go({ rule: null })} />
        ) : (
          rules.data && (
            <div class="warning">
              No rule {selected} in this project. <a href={href("/alerts")}>Show every rule</a>.
            </div>
          )
        ))}
      <div class="two-columns">
        <NewRule
          project={project}
          channels={channels.data ?? []}
          onCreated={(created) => {
            reloadRules();
            go({ rule: created.id });
          }}
        />
        <Channels project={project} channels={channels} />
      </div>
      <Events events={events} rules={rules.data ?? []} rule={rule} selected={selected} eventFilter={eventFilter} onShowAll={() => go({ rule: null })} />
      <Deliveries
        deliveries={deliveries}
        events={events.data ?? []}
        rules={rules.data ?? []}
        channels={channels.data ?? []}
        eventFilter={eventFilter}
        onShowAll={() => go({ event: null })}
      />
    </section>
  );
}

function StateBadge({ rule, now }: { rule: AlertRule; now: number }) {
  const state = ruleState(rule);
  const text =
    state === "firing"
      ? `firing: ${rule.firing.length} ${rule.firing.length === 1 ? "group" : "groups"}`
      : state === "error"
        ? "cannot evaluate"
        : state === "waiting"
          ? "not evaluated yet"
          : state;
  return (
    <>
      <span class={`badge state-${state}`}>{text}</span>
      {isSilenced(rule.silencedUntil, now) && <span class="badge state-silenced">silenced</span>}
    </>
  );
}

function Rules({
  project,
  rules,
  now,
  selected,
  onChanged,
  onSelect,
}: {
  project: string;
  rules: Loaded<AlertRule[]>;
  now: number;
  selected: string | null;
  onChanged: () => void;
  onSelect: (id: string | null) => void;
}) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const path = (rule: AlertRule) => `/v1/projects/${project}/alerts/rules/${rule.id}`;
  const act = async (rule: AlertRule, what: string, run: () => Promise<unknown>) => {
    setError(null);
    setBusy(rule.id);
    try {
      await run();
      onChanged();
    } catch (e) {
      setError(`Could not ${what} ${rule.name}: ${message(e)}`);
    } finally {
      setBusy(null);
    }
  };
  const change = (rule: AlertRule, what: string, body: Record<string, unknown>) => act(rule, what, () => api("PATCH", path(rule), {}, body));
  const remove = (rule: AlertRule) => {
    if (!window.confirm(`Delete the rule ${rule.name}, its state, history and deliveries? This cannot be undone.`)) return;
    void act(rule, "delete", async () => {
      await api("DELETE", path(rule));
      if (selected === rule.id) onSelect(null);
    });
  };

  return (
    <div class="panel">
      <h2>Rules</h2>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {rules.data ? (
        rules.data.length === 0 ? (
          <p class="muted">No alert rules yet: make one below.</p>
        ) : (
          <table class="grid compact" aria-label="Alert rules">
            <thead>
              <tr>
                <th>Name</th>
                <th>Condition</th>
                <th>State</th>
                <th>Silenced until</th>
                <th>Last evaluated</th>
                <th>Enabled</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {rules.data.map((rule) => {
                const silenced = isSilenced(rule.silencedUntil, now);
                return [
                  <tr key={rule.id} class={rule.id === selected ? "selected" : undefined} data-state={ruleState(rule)}>
                    <td>
                      <a href={href("/alerts", { rule: rule.id })}>{rule.name}</a>
                    </td>
                    <td class="mono">{describeRule(rule)}</td>
                    <td>
                      <StateBadge rule={rule} now={now} />
                    </td>
                    <td>{silenced ? rule.silencedUntil : ""}</td>
                    <td>{rule.lastEvaluatedAt ?? "never"}</td>
                    <td>
                      <label class="check">
                        <input
                          type="checkbox"
                          aria-label={`${rule.name} enabled`}
                          checked={rule.enabled}
                          disabled={busy === rule.id}
                          onChange={(e) => void change(rule, e.currentTarget.checked ? "enable" : "disable", { enabled: e.currentTarget.checked })}
                        />
                        <span>{rule.enabled ? "on" : "off"}</span>
                      </label>
                    </td>
                    <td class="actions">
                      {silenced ? (
                        <button type="button" class="secondary" disabled={busy === rule.id} onClick={() => void change(rule, "unsilence", { silencedUntil: "" })}>
                          Unsilence
                        </button>
                      ) : (
                        <button
                          type="button"
                          class="secondary"
                          disabled={busy === rule.id}
                          onClick={() => void change(rule, "silence", { silencedUntil: new Date(Date.now() + 3_600_000).toISOString() })}
                        >
                          Silence 1 h
                        </button>
                      )}{" "}
                      <button type="button" class="danger" disabled={busy === rule.id} onClick={() => remove(rule)}>
                        Delete
                      </button>
                    </td>
                  </tr>,
                  rule.lastError ? (
                    <tr key={`${rule.id}-error`} class="rule-error">
                      <td colSpan={7}>
                        <div class="error">
                          <strong>Last evaluation failed:</strong> {rule.lastError}
                        </div>
                      </td>
                    </tr>
                  ) : null,
                ];
              })}
            </tbody>
          </table>
        )
      ) : (
        <Status state={rules} />
      )}
    </div>
  );
}

/** A rule's metric per hour over the last 24 hours against its threshold, the groups firing now,
 * and its threshold and channels to change. */
function RuleDetail({
  project,
  rule,
  channels,
  onChanged,
  onClose,
}: {
  project: string;
  rule: AlertRule;
  channels: AlertChannel[];
  onChanged: () => void;
  onClose: () => void;
}) {
  const filters = JSON.stringify(rule.filters);
  const metrics = useLoad(async () => {
    const buckets = hourBuckets(Date.now());
    const from = new Date(buckets[0] ?? Date.now()).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    const answer = await get<MetricsAnswer>("/v1/metrics", metricsQuery(project, rule, from, to));
    return { buckets, rows: answer.data };
    // The rules are read again every 30 s; the chart only when what it shows changes.
  }, [project, rule.id, rule.metric, filters, rule.groupBy]);

  const chart = useMemo(() => {
    if (!metrics.data) return null;
    const { buckets, rows } = metrics.data;
    const { series, hidden } = seriesOf(rule.metric, rows, buckets, rule.groupBy, rule.comparison);
    const config: ChartConfiguration = {
      type: "line",
      data: {
        labels: buckets.map(hourLabel),
        datasets: [
          ...series.map((s, i) => ({
            label: rule.groupBy ? s.group || "(none)" : rule.metric,
            borderColor: PALETTE[i % PALETTE.length] ?? "#888",
            backgroundColor: PALETTE[i % PALETTE.length] ?? "#888",
            spanGaps: true,
            data: s.values,
          })),
          {
            label: `threshold (${rule.comparison} ${formatMetric(rule.metric, rule.threshold)})`,
            borderColor: "#d9480f",
            backgroundColor: "#d9480f",
            borderDash: [6, 4],
            pointRadius: 0,
            data: buckets.map(() => rule.threshold),
          },
        ],
      },
      options: {
        scales: { y: { ticks: { callback: (v) => formatMetric(rule.metric, v) } } },
        plugins: { tooltip: { callbacks: { label: (item) => `${item.dataset.label ?? ""}: ${formatMetric(rule.metric, item.raw)}` } } },
      },
    };
    return { config, hidden };
  }, [metrics.data, rule.metric, rule.groupBy, rule.comparison, rule.threshold]);

  const [threshold, setThreshold] = useState(String(rule.threshold));
  const [chosen, setChosen] = useState<string[]>(rule.channels);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const save = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setSaved(null);
    const value = threshold.trim() === "" ? NaN : Number(threshold);
    if (!Number.isFinite(value)) return setError("threshold: a finite number");
    try {
      await api("PATCH", `/v1/projects/${project}/alerts/rules/${rule.id}`, {}, { threshold: value, channels: chosen });
      setSaved("Saved: the scheduler uses it from its next evaluation.");
      onChanged();
    } catch (e) {
      setError(message(e));
    }
  };

  return (
    <div class="panel rule-detail" aria-label={`Rule ${rule.name}`}>
      <div class="page-head">
        <div>
          <h2>{rule.name}</h2>
          <p class="mono">{describeRule(rule)}</p>
        </div>
        <button type="button" class="secondary" onClick={onClose}>
          Close
        </button>
      </div>
      {rule.lastError && (
        <div class="error" role="alert">
          <strong>Last evaluation failed:</strong> {rule.lastError}
        </div>
      )}
      <figure data-chart="alert-rule">
        <figcaption>
          {rule.metric} per hour, last 24 hours (UTC){rule.groupBy ? `, per ${rule.groupBy}` : ""}{" "}
          <span class="muted">
            · the rule measures it over {windowText(rule.windowMinutes)}
            {chart && chart.hidden > 0 ? ` · ${chart.hidden} more groups not drawn` : ""}
          </span>
        </figcaption>
        {chart ? <Chart config={chart.config} label={`${rule.metric} per hour against the threshold`} /> : <Status state={metrics} />}
      </figure>
      <h3>Firing now</h3>
      {rule.firing.length === 0 ? (
        <p class="muted">{rule.enabled ? "Nothing crosses the threshold." : "The rule is disabled: it is not evaluated."}</p>
      ) : (
        <table class="grid compact" aria-label="Firing groups">
          <thead>
            <tr>
              <th>Group</th>
              <th class="num">Value</th>
              <th>Since</th>
            </tr>
          </thead>
          <tbody>
            {rule.firing.map((group) => (
              <tr key={group.group}>
                <td>{group.group || <span class="muted">(the whole project)</span>}</td>
                <td class="num">{formatMetric(rule.metric, group.value)}</td>
                <td>{group.since}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>Change</h3>
      <form class="inline-form" onSubmit={(e) => void save(e)} aria-label="Change the rule">
        <label>
          Threshold
          <input type="number" step="any" value={threshold} onInput={(e) => setThreshold(e.currentTarget.value)} />
        </label>
        <ChannelChoice channels={channels} chosen={chosen} onChange={setChosen} />
        <button type="submit">Save</button>
        {saved && <span class="muted">{saved}</span>}
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

function ChannelChoice({ channels, chosen, onChange }: { channels: AlertChannel[]; chosen: string[]; onChange: (ids: string[]) => void }) {
  return (
    <fieldset class="channel-choice">
      <legend>Notify</legend>
      {channels.length === 0 && <span class="muted">No channels yet: the rule only records what fires.</span>}
      {channels.map((channel) => (
        <label key={channel.id} class="inline">
          <input
            type="checkbox"
            checked={chosen.includes(channel.id)}
            onChange={(e) => onChange(e.currentTarget.checked ? [...chosen, channel.id] : chosen.filter((id) => id !== channel.id))}
          />{" "}
          {channel.name} <span class="muted">({channel.kind})</span>
        </label>
      ))}
      {chosen
        .filter((id) => !channels.some((channel) => channel.id === id))
        .map((id) => (
          <span key={id} class="muted mono">
            {shortId(id)} (unknown)
          </span>
        ))}
    </fieldset>
  );
}

function FieldError({ errors, field }: { errors: Partial<Record<string, string>>; field: string }) {
  const text = errors[field];
  return text ? <span class="field-error">{text}</span> : null;
}

function NewRule({ project, channels, onCreated }: { project: string; channels: AlertChannel[]; onCreated: (rule: AlertRule) => void }) {
  const [form, setForm] = useState<RuleForm>(EMPTY_RULE);
  const [errors, setErrors] = useState<Partial<Record<RuleField, string>>>({});
  const [error, setError] = useState<string | null>(null);
  const set = (change: Partial<RuleForm>) => setForm((previous) => ({ ...previous, ...change }));
  const metric = METRICS.find(([id]) => id === form.metric);
  const create = async (event: Event) => {
    event.preventDefault();
    setError(null);
    const checked = checkRule(form);
    if (checked.errors) return setErrors(checked.errors);
    setErrors({});
    try {
      const created = await api<AlertRule>("POST", `/v1/projects/${project}/alerts/rules`, {}, checked.body);
      setForm(EMPTY_RULE);
      onCreated(created);
    } catch (e) {
      setError(message(e));
    }
  };
  const share = form.metric === "error_rate" || form.metric === "score_pass_rate";
  return (
    <div class="panel">
      <h2>New rule</h2>
      <form class="stack" onSubmit={(e) => void create(e)} aria-label="New alert rule" noValidate>
        <label>
          Name <input value={form.name} onInput={(e) => set({ name: e.currentTarget.value })} aria-invalid={!!errors.name} />
          <FieldError errors={errors} field="name" />
        </label>
        <label>
          Metric{" "}
          <select
            value={form.metric}
            onChange={(e) => {
              const next = e.currentTarget.value;
              // A group-by of the other view does not apply.
              set({ metric: next, groupBy: groupsOf(next).includes(form.groupBy) ? form.groupBy : "" });
            }}
          >
            {METRICS.map(([id]) => (
              <option key={id} value={id}>
                {id}
              </option>
            ))}
          </select>
          {metric && <span class="muted">{metric[1]}</span>}
          <FieldError errors={errors} field="metric" />
        </label>
        <div class="inline-form">
          <label>
            Comparison{" "}
            <select value={form.comparison} onChange={(e) => set({ comparison: e.currentTarget.value })}>
              {COMPARISONS.map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </select>
            <FieldError errors={errors} field="comparison" />
          </label>
          <label>
            Threshold
            <input
              type="number"
              step="any"
              value={form.threshold}
              placeholder={share ? "0.05 = 5%" : form.metric.startsWith("latency") ? "ms" : form.metric === "cost" ? "USD" : ""}
              onInput={(e) => set({ threshold: e.currentTarget.value })}
              aria-invalid={!!errors.threshold}
            />
            <FieldError errors={errors} field="threshold" />
          </label>
          <label>
            Over the last
            <span class="row">
              <input type="number" min={1} step={1} value={form.window} onInput={(e) => set({ window: e.currentTarget.value })} aria-label="Window" aria-invalid={!!errors.windowMinutes} />
              <select value={form.unit} onChange={(e) => set({ unit: e.currentTarget.value })} aria-label="Window unit">
                {WINDOW_UNITS.map(([unit]) => (
                  <option key={unit} value={unit}>
                    {unit}
                  </option>
                ))}
              </select>
            </span>
            <FieldError errors={errors} field="windowMinutes" />
          </label>
        </div>
        {share && <span class="muted">A share is a number from 0 to 1: 0.05 is 5%.</span>}
        <fieldset>
          <legend>Only what matches{isScoreMetric(form.metric) ? " (the score's name is needed)" : ""}</legend>
          <div class="inline-form">
            {filtersOf(form.metric).map((key) => (
              <label key={key}>
                {key}
                {isScoreMetric(form.metric) && key === "name" ? " *" : ""}
                <input
                  value={form.filters[key] ?? ""}
                  placeholder={key === "type" ? "generation" : ""}
                  onInput={(e) => set({ filters: { ...form.filters, [key]: e.currentTarget.value } })}
                />
              </label>
            ))}
          </div>
          <FieldError errors={errors} field="filters" />
        </fieldset>
        <label>
          Fire per{" "}
          <select value={form.groupBy} onChange={(e) => set({ groupBy: e.currentTarget.value })}>
            <option value="">the whole project (no group-by)</option>
            {groupsOf(form.metric).map((group) => (
              <option key={group} value={group}>
                {group}
              </option>
            ))}
          </select>
          <FieldError errors={errors} field="groupBy" />
        </label>
        <ChannelChoice channels={channels} chosen={form.channels} onChange={(ids) => set({ channels: ids })} />
        <FieldError errors={errors} field="channels" />
        <button type="submit">Create rule</button>
        {error && (
          <div class="error" role="alert">
            {error}
          </div>
        )}
      </form>
    </div>
  );
}

function CopyButton({ text }: { text: string }) {
  const [note, setNote] = useState<string | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setNote("Copied.");
    } catch {
      setNote("Could not copy: select the text and copy it.");
    }
  };
  return (
    <>
      <button type="button" class="secondary" onClick={() => void copy()}>
        Copy
      </button>
      {note && <span class="muted"> {note}</span>}
    </>
  );
}

function Channels({ project, channels }: { project: string; channels: Loaded<AlertChannel[]> & { reload: () => void } }) {
  const [name, setName] = useState("");
  const [kind, setKind] = useState("webhook");
  const [url, setUrl] = useState("");
  const [errors, setErrors] = useState<Partial<Record<ChannelField, string>>>({});
  const [error, setError] = useState<string | null>(null);
  const [created, setCreated] = useState<CreatedAlertChannel | null>(null);
  const path = `/v1/projects/${project}/alerts/channels`;
  const create = async (event: Event) => {
    event.preventDefault();
    setError(null);
    const checked = checkChannel(name, kind, url);
    setErrors(checked);
    if (Object.keys(checked).length > 0) return;
    try {
      const answer = await api<CreatedAlertChannel>("POST", path, {}, { name: name.trim(), kind, url: url.trim() });
      setCreated(answer);
      setName("");
      setUrl("");
      channels.reload();
    } catch (e) {
      setError(message(e));
    }
  };
  const remove = async (channel: AlertChannel) => {
    if (!window.confirm(`Delete the channel ${channel.name}? Its pending deliveries are dropped and rules stop notifying it.`)) return;
    setError(null);
    try {
      await api("DELETE", `${path}/${channel.id}`);
      channels.reload();
    } catch (e) {
      setError(`Could not delete ${channel.name}: ${message(e)}`);
    }
  };
  return (
    <div class="panel">
      <h2>Channels</h2>
      <p class="muted">
        A webhook gets a JSON POST signed with the channel's secret (<code>x-agenttrace-signature: t=…,v1=…</code>, an HMAC-SHA256 of{" "}
        <code>&lt;t&gt;.&lt;body&gt;</code>); a Slack channel is an incoming-webhook URL. Failed deliveries are retried with backoff for a day.
      </p>
      {created && (
        <div class="warning secret" role="status" aria-label="New channel's secret">
          <p>
            <strong>The signing secret of {created.name}.</strong> Copy it now: <strong>you will not see this again.</strong> Verify each delivery's
            signature with it.
          </p>
          <div class="row">
            <input class="mono grow" readOnly aria-label="Signing secret" value={created.secret} onFocus={(e) => e.currentTarget.select()} />
            <CopyButton text={created.secret} />
            <button type="button" class="secondary" onClick={() => setCreated(null)}>
              I have stored it
            </button>
          </div>
        </div>
      )}
      {channels.data ? (
        channels.data.length === 0 ? (
          <p class="muted">No channels yet.</p>
        ) : (
          <table class="grid compact" aria-label="Alert channels">
            <thead>
              <tr>
                <th>Name</th>
                <th>Kind</th>
                <th>URL</th>
                <th>Created</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {channels.data.map((channel) => (
                <tr key={channel.id}>
                  <td>{channel.name}</td>
                  <td>{channel.kind}</td>
                  <td class="mono">{channel.urlHint}</td>
                  <td>{channel.createdAt}</td>
                  <td class="actions">
                    <button type="button" class="danger" onClick={() => void remove(channel)}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      ) : (
        <Status state={channels} />
      )}
      <h3>New channel</h3>
      <form class="stack" onSubmit={(e) => void create(e)} aria-label="New alert channel" noValidate>
        <label>
          Name <input value={name} onInput={(e) => setName(e.currentTarget.value)} aria-invalid={!!errors.name} />
          <FieldError errors={errors} field="name" />
        </label>
        <label>
          Kind{" "}
          <select value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
            <option value="webhook">webhook (signed JSON POST)</option>
            <option value="slack">slack (incoming webhook)</option>
          </select>
          <FieldError errors={errors} field="kind" />
        </label>
        <label>
          URL{" "}
          <input
            class="mono"
            value={url}
            placeholder={kind === "slack" ? "https://hooks.slack.com/services/…" : "https://example.com/agenttrace-alerts"}
            onInput={(e) => setUrl(e.currentTarget.value)}
            aria-invalid={!!errors.url}
          />
          <FieldError errors={errors} field="url" />
        </label>
        <button type="submit">Create channel</button>
        {error && (
          <div class="error" role="alert">
            {error}
          </div>
        )}
      </form>
    </div>
  );
}

function Events({
  events,
  rules,
  rule,
  selected,
  eventFilter,
  onShowAll,
}: {
  events: Loaded<AlertEvent[]>;
  rules: AlertRule[];
  rule: AlertRule | null;
  selected: string | null;
  eventFilter: string | null;
  onShowAll: () => void;
}) {
  const names = new Map(rules.map((r) => [r.id, r]));
  return (
    <div class="panel">
      <h2>
        History{selected ? ` of ${rule?.name ?? shortId(selected)}` : ""}{" "}
        {selected && (
          <button type="button" class="link" onClick={onShowAll}>
            every rule
          </button>
        )}
      </h2>
      <p class="muted">Groups that began firing or resolved, and evaluations that failed, newest first (the last {HISTORY_LIMIT}).</p>
      {events.data ? (
        events.data.length === 0 ? (
          <p class="muted">Nothing has fired yet.</p>
        ) : (
          <table class="grid compact" aria-label="Alert history">
            <thead>
              <tr>
                <th>At</th>
                <th>Rule</th>
                <th>Group</th>
                <th>Kind</th>
                <th class="num">Value</th>
                <th class="num">Threshold</th>
                <th>Message</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {events.data.map((event) => {
                const owner = names.get(event.ruleId);
                const metric = owner?.metric ?? "";
                return (
                  <tr key={event.id} class={event.id === eventFilter ? "selected" : undefined}>
                    <td>{event.at}</td>
                    <td>
                      <a href={href("/alerts", { rule: event.ruleId })}>{owner?.name ?? shortId(event.ruleId)}</a>
                    </td>
                    <td>{event.group}</td>
                    <td>
                      <span class={`badge kind-${event.kind}`}>{event.kind}</span>
                      {event.silenced && (
                        <span class="badge state-silenced" title="Recorded while the rule was silenced: nothing was sent">
                          silenced
                        </span>
                      )}
                    </td>
                    <td class="num">{formatMetric(metric, event.value)}</td>
                    <td class="num">{formatMetric(metric, event.threshold)}</td>
                    <td class={event.kind === "error" ? "fail" : undefined}>{event.message}</td>
                    <td>
                      <a href={href("/alerts", { rule: selected, event: event.id })}>deliveries</a>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )
      ) : (
        <Status state={events} />
      )}
    </div>
  );
}

function Deliveries({
  deliveries,
  events,
  rules,
  channels,
  eventFilter,
  onShowAll,
}: {
  deliveries: Loaded<AlertDelivery[]>;
  events: AlertEvent[];
  rules: AlertRule[];
  channels: AlertChannel[];
  eventFilter: string | null;
  onShowAll: () => void;
}) {
  const eventsById = new Map(events.map((e) => [e.id, e]));
  const ruleNames = new Map(rules.map((r) => [r.id, r.name]));
  const channelNames = new Map(channels.map((c) => [c.id, c.name]));
  const eventText = (id: string) => {
    const event = eventsById.get(id);
    if (!event) return shortId(id);
    return [ruleNames.get(event.ruleId) ?? shortId(event.ruleId), event.kind, event.group].filter(Boolean).join(" · ");
  };
  return (
    <div class="panel">
      <h2>
        Deliveries{eventFilter ? ` of event ${shortId(eventFilter)}` : ""}{" "}
        {eventFilter && (
          <button type="button" class="link" onClick={onShowAll}>
            every event
          </button>
        )}
      </h2>
      <p class="muted">Every notification sent or to be sent, newest first (the last {HISTORY_LIMIT}).</p>
      {deliveries.data ? (
        deliveries.data.length === 0 ? (
          <p class="muted">Nothing sent yet.</p>
        ) : (
          <table class="grid compact" aria-label="Alert deliveries">
            <thead>
              <tr>
                <th>Created</th>
                <th>Event</th>
                <th>Channel</th>
                <th>Status</th>
                <th class="num">Attempts</th>
                <th class="num">Last HTTP status</th>
                <th>Last error</th>
                <th>Next attempt</th>
                <th>Delivered</th>
              </tr>
            </thead>
            <tbody>
              {deliveries.data.map((delivery) => (
                <tr key={delivery.id}>
                  <td>{delivery.createdAt}</td>
                  <td>
                    <a href={href("/alerts", { event: delivery.eventId })}>{eventText(delivery.eventId)}</a>
                  </td>
                  <td>{channelNames.get(delivery.channelId) ?? <span class="muted mono">{shortId(delivery.channelId)}</span>}</td>
                  <td>
                    <span class={`badge status-${delivery.status}`}>{delivery.status}</span>
                  </td>
                  <td class="num">{delivery.attempts}</td>
                  <td class="num">{delivery.lastStatus ?? ""}</td>
                  <td class={delivery.lastError ? "fail" : undefined}>{delivery.lastError ?? ""}</td>
                  <td>{delivery.status === "pending" ? (delivery.nextAttemptAt ?? "") : ""}</td>
                  <td>{delivery.deliveredAt ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      ) : (
        <Status state={deliveries} />
      )}
    </div>
  );
}
