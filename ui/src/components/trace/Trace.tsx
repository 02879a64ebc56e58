import { useMemo, useState } from "preact/hooks";
import type { TraceDetail } from "../../api";
import { count, duration, time, usd } from "../../format";
import { href } from "../../route";
import { Comments } from "../Comments";
import { AddToDataset, ShareToggle } from "./Actions";
import { Fact } from "./Fact";
import { ObservationDetail, TraceIo } from "./ObservationDetail";
import { Records } from "./Records";
import { Tree } from "./Tree";
import { flatten, spanMs, timeSpan, toggled, totals, visibleRows } from "./tree";

/** A trace: its facts, the observation tree and waterfall, the selected observation, and its records;
 * for members (not `shared`, a public trace read signed out) sharing, adding to a dataset, comments. */
export function Trace({ project, detail, initial, shared = false }: { project: string; detail: TraceDetail; initial: string | null; shared?: boolean }) {
  const all = useMemo(() => flatten(detail.observations), [detail]);
  const [collapsed, setCollapsed] = useState<Set<string>>(() => new Set());
  const [selected, setSelected] = useState<string | null>(initial ?? all[0]?.observation.id ?? null);
  const visible = useMemo(() => visibleRows(all, collapsed), [all, collapsed]);
  const byId = useMemo(() => new Map(all.map((row) => [row.observation.id, row])), [all]);
  const span = useMemo(() => timeSpan(all.map((row) => row.observation)), [all]);
  const sums = useMemo(() => totals(all), [all]);
  const trace = detail.trace;

  const select = (observationId: string) => {
    setSelected(observationId);
    const url = new URL(window.location.href);
    const [path = ""] = url.hash.split("?");
    window.history.replaceState(null, "", `${path}?observation=${encodeURIComponent(observationId)}`);
  };
  const toggle = (observationId: string, open?: boolean) => setCollapsed((previous) => toggled(previous, observationId, open));
  const chosen = selected ? byId.get(selected)?.observation : undefined;

  return (
    <section class="trace-page">
      <div class="page-head">
        <div>
          {!shared && <div class="crumbs"><a href="#/traces">Traces</a> /</div>}
          <h1>{trace?.name ?? "(unnamed trace)"}</h1>
          <div class="muted mono">{detail.id}</div>
        </div>
        <dl class="facts">
          {trace && <Fact label="Started" value={time(trace.timestamp_us)} />}
          {trace?.user_id && <Fact label="User" value={trace.user_id} />}
          {trace?.session_id && (
            <Fact label="Session" value={<a href={href(`/sessions/${encodeURIComponent(trace.session_id)}`)}>{trace.session_id}</a>} />
          )}
          <Fact label="Latency" value={duration(spanMs(span))} />
          <Fact label="Cost" value={usd(sums.cost)} />
          <Fact label="Tokens" value={count(sums.tokens)} />
          <Fact label="Observations" value={String(detail.observation_count)} />
        </dl>
      </div>
      {trace && trace.tags.length > 0 && <div>{trace.tags.map((tag) => <span key={tag} class="tag">{tag}</span>)}</div>}
      {!shared && <ShareToggle project={project} traceId={detail.id} />}
      {detail.observations_truncated && (
        <div class="warning" role="status">This trace has more observations than one page shows; the first {detail.observation_count.toLocaleString("en-US")} are here.</div>
      )}
      <div class="trace-layout">
        <div class="panel">
          <h2>Observations</h2>
          {visible.length === 0 ? (
            <p class="muted">No observations yet.</p>
          ) : (
            <Tree rows={visible} byId={byId} collapsed={collapsed} selected={selected} span={span} onSelect={select} onToggle={toggle} />
          )}
        </div>
        <div class="panel detail">
          {chosen ? <ObservationDetail project={project} observation={chosen} detail={detail} shared={shared} /> : trace ? <TraceIo detail={detail} /> : <p class="muted">Select an observation.</p>}
          {!shared && <AddToDataset key={chosen?.id ?? "trace"} project={project} detail={detail} observation={chosen} />}
        </div>
      </div>
      <Records detail={detail} onSelect={select} />
      {!shared && (
        <div class="panel">
          <Comments project={project} objectType="TRACE" objectId={detail.id} />
          {chosen && <Comments key={chosen.id} project={project} objectType="OBSERVATION" objectId={chosen.id} />}
        </div>
      )}
    </section>
  );
}
