import { useMemo, useRef, useState } from "preact/hooks";
import { get, type FileOperation, type GitLink, type Observation, type Score, type TerminalCommand, type TraceDetail } from "../api";
import { Payload } from "../components/Messages";
import { Json } from "../components/Json";
import { Status } from "../components/Status";
import { Truncated } from "../components/Truncated";
import { count, duration, num, time, usd } from "../format";
import { useLoad } from "../hooks";
import { href, type Route } from "../route";

const ROW_HEIGHT = 28;
const TREE_HEIGHT = 520;
const OVERSCAN = 12;

interface Row {
  observation: Observation;
  depth: number;
  parent: string | null;
  hasChildren: boolean;
}

export function TraceView({ project, id, route }: { project: string; id: string; route: Route }) {
  const state = useLoad(() => get<TraceDetail>(`/v1/traces/${encodeURIComponent(id)}`, { project_id: project }), [project, id]);
  if (!state.data) return <Status state={state} />;
  return <Trace detail={state.data} initial={route.query.get("observation")} />;
}

function Trace({ detail, initial }: { detail: TraceDetail; initial: string | null }) {
  const all = useMemo(() => flatten(detail.observations), [detail]);
  const [collapsed, setCollapsed] = useState<Set<string>>(() => new Set());
  const [selected, setSelected] = useState<string | null>(initial ?? all[0]?.observation.id ?? null);
  const visible = useMemo(() => visibleRows(all, collapsed), [all, collapsed]);
  const byId = useMemo(() => new Map(all.map((row) => [row.observation.id, row])), [all]);
  const span = useMemo(() => timeSpan(all.map((row) => row.observation)), [all]);
  const trace = detail.trace;
  const totals = useMemo(() => {
    let cost = 0;
    let tokens = 0;
    for (const { observation } of all) {
      cost += num(observation.total_cost);
      tokens += observation.input_tokens + observation.output_tokens;
    }
    return { cost, tokens };
  }, [all]);

  const select = (observationId: string) => {
    setSelected(observationId);
    const url = new URL(window.location.href);
    const [path = ""] = url.hash.split("?");
    window.history.replaceState(null, "", `${path}?observation=${encodeURIComponent(observationId)}`);
  };
  const toggle = (observationId: string, open?: boolean) => {
    setCollapsed((previous) => {
      const next = new Set(previous);
      const isOpen = !next.has(observationId);
      if (open ?? !isOpen) next.delete(observationId);
      else next.add(observationId);
      return next;
    });
  };
  const chosen = selected ? byId.get(selected)?.observation : undefined;

  return (
    <section class="trace-page">
      <div class="page-head">
        <div>
          <div class="crumbs"><a href="#/traces">Traces</a> /</div>
          <h1>{trace?.name ?? "(unnamed trace)"}</h1>
          <div class="muted mono">{detail.id}</div>
        </div>
        <dl class="facts">
          {trace && <Fact label="Started" value={time(trace.timestamp_us)} />}
          {trace?.user_id && <Fact label="User" value={trace.user_id} />}
          {trace?.session_id && (
            <Fact label="Session" value={<a href={href(`/sessions/${encodeURIComponent(trace.session_id)}`)}>{trace.session_id}</a>} />
          )}
          <Fact label="Latency" value={duration(span.end > span.start ? (span.end - span.start) / 1000 : null)} />
          <Fact label="Cost" value={usd(totals.cost)} />
          <Fact label="Tokens" value={count(totals.tokens)} />
          <Fact label="Observations" value={String(detail.observation_count)} />
        </dl>
      </div>
      {trace && trace.tags.length > 0 && <div>{trace.tags.map((tag) => <span key={tag} class="tag">{tag}</span>)}</div>}
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
          {chosen ? <ObservationDetail observation={chosen} detail={detail} /> : trace ? <TraceIo detail={detail} /> : <p class="muted">Select an observation.</p>}
        </div>
      </div>
      <Records detail={detail} onSelect={select} />
    </section>
  );
}

function Fact({ label, value }: { label: string; value: preact.ComponentChildren }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd>{value}</dd>
    </div>
  );
}

function flatten(roots: Observation[]): Row[] {
  const rows: Row[] = [];
  const stack: [Observation, number, string | null][] = roots.map((o) => [o, 0, null] as [Observation, number, string | null]).reverse();
  while (stack.length > 0) {
    const [observation, depth, parent] = stack.pop() as [Observation, number, string | null];
    rows.push({ observation, depth, parent, hasChildren: observation.children.length > 0 });
    for (let i = observation.children.length - 1; i >= 0; i--) {
      stack.push([observation.children[i] as Observation, depth + 1, observation.id]);
    }
  }
  return rows;
}

function visibleRows(all: Row[], collapsed: Set<string>): Row[] {
  const rows: Row[] = [];
  let hiddenBelow: number | null = null;
  for (const row of all) {
    if (hiddenBelow !== null) {
      if (row.depth > hiddenBelow) continue;
      hiddenBelow = null;
    }
    rows.push(row);
    if (row.hasChildren && collapsed.has(row.observation.id)) hiddenBelow = row.depth;
  }
  return rows;
}

function timeSpan(observations: Observation[]): { start: number; end: number } {
  let start = Infinity;
  let end = -Infinity;
  for (const o of observations) {
    start = Math.min(start, o.start_time_us);
    end = Math.max(end, o.end_time_us ?? o.start_time_us);
  }
  return Number.isFinite(start) ? { start, end } : { start: 0, end: 0 };
}

function observationMs(o: Observation): number | null {
  return o.end_time_us === null ? null : (o.end_time_us - o.start_time_us) / 1000;
}

/** The observation tree with its waterfall: virtualized, and driven from the keyboard as a WAI-ARIA tree. */
function Tree(props: {
  rows: Row[];
  byId: Map<string, Row>;
  collapsed: Set<string>;
  selected: string | null;
  span: { start: number; end: number };
  onSelect: (id: string) => void;
  onToggle: (id: string, open?: boolean) => void;
}) {
  const { rows, byId, collapsed, selected, span, onSelect, onToggle } = props;
  const scrollerRef = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const index = rows.findIndex((row) => row.observation.id === selected);
  const total = Math.max(span.end - span.start, 1);

  const focus = (next: number) => {
    const row = rows[Math.max(0, Math.min(rows.length - 1, next))];
    if (!row) return;
    onSelect(row.observation.id);
    const element = scrollerRef.current;
    if (!element) return;
    const position = rows.indexOf(row) * ROW_HEIGHT;
    if (position < element.scrollTop) element.scrollTop = position;
    else if (position + ROW_HEIGHT > element.scrollTop + element.clientHeight) element.scrollTop = position + ROW_HEIGHT - element.clientHeight;
  };

  const onKeyDown = (event: KeyboardEvent) => {
    const row = rows[index];
    const handled = () => event.preventDefault();
    switch (event.key) {
      case "ArrowDown":
        handled();
        focus(index + 1);
        break;
      case "ArrowUp":
        handled();
        focus(index - 1);
        break;
      case "Home":
        handled();
        focus(0);
        break;
      case "End":
        handled();
        focus(rows.length - 1);
        break;
      case "PageDown":
        handled();
        focus(index + 15);
        break;
      case "PageUp":
        handled();
        focus(index - 15);
        break;
      case "ArrowRight":
        handled();
        if (row?.hasChildren) {
          if (collapsed.has(row.observation.id)) onToggle(row.observation.id, true);
          else focus(index + 1);
        }
        break;
      case "ArrowLeft":
        handled();
        if (row?.hasChildren && !collapsed.has(row.observation.id)) onToggle(row.observation.id, false);
        else if (row?.parent) {
          const parentIndex = rows.findIndex((r) => r.observation.id === row.parent);
          if (parentIndex >= 0) focus(parentIndex);
        }
        break;
      case "Enter":
      case " ":
        handled();
        if (row?.hasChildren) onToggle(row.observation.id);
        break;
      default:
        if (index < 0 && rows.length > 0 && event.key.startsWith("Arrow")) focus(0);
    }
  };

  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((scrollTop + TREE_HEIGHT) / ROW_HEIGHT) + OVERSCAN);
  const activeId = selected && byId.has(selected) ? `obs-${selected}` : undefined;

  return (
    <div
      class="tree"
      role="tree"
      aria-label="Observations"
      tabIndex={0}
      aria-activedescendant={activeId}
      ref={scrollerRef}
      style={{ height: `${Math.min(TREE_HEIGHT, rows.length * ROW_HEIGHT + 2)}px` }}
      onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
      onKeyDown={onKeyDown}
    >
      <div style={{ height: `${rows.length * ROW_HEIGHT}px`, position: "relative" }}>
        {rows.slice(first, last).map((row, offset) => {
          const o = row.observation;
          const ms = observationMs(o);
          const left = ((o.start_time_us - span.start) / total) * 100;
          const width = Math.max((((o.end_time_us ?? o.start_time_us) - o.start_time_us) / total) * 100, 0.4);
          const open = !collapsed.has(o.id);
          return (
            <div
              key={o.id}
              id={`obs-${o.id}`}
              role="treeitem"
              aria-level={row.depth + 1}
              aria-selected={o.id === selected}
              aria-expanded={row.hasChildren ? open : undefined}
              data-observation-id={o.id}
              class={`tree-row level-${o.level}${o.id === selected ? " selected" : ""}`}
              style={{ top: `${(first + offset) * ROW_HEIGHT}px`, height: `${ROW_HEIGHT}px` }}
              onClick={() => onSelect(o.id)}
            >
              <div class="tree-label" style={{ paddingLeft: `${row.depth * 16 + 4}px` }}>
                <span
                  class="twisty"
                  aria-hidden="true"
                  onClick={(e) => {
                    e.stopPropagation();
                    if (row.hasChildren) onToggle(o.id);
                  }}
                >
                  {row.hasChildren ? (open ? "▾" : "▸") : ""}
                </span>
                <span class={`type type-${o.type}`}>{o.type}</span>
                <span class="name" title={o.name}>{o.name}</span>
                {o.level === "error" || o.level === "warning" ? <span class={`badge level-${o.level}`}>{o.level}</span> : null}
              </div>
              <div class="tree-meta">
                <span class="model">{o.model ?? o.tool_name ?? ""}</span>
                <span class="num">{o.input_tokens + o.output_tokens > 0 ? count(o.input_tokens + o.output_tokens) : ""}</span>
                <span class="num">{o.total_cost !== null && num(o.total_cost) > 0 ? usd(o.total_cost) : ""}</span>
                <span class="num">{duration(ms)}</span>
              </div>
              <div class="waterfall" aria-hidden="true">
                <div class={`bar type-${o.type}`} style={{ left: `${left}%`, width: `${Math.min(width, 100 - left)}%` }} />
              </div>
            </div>
          );
        })}
      </div>
    </div>
  );
}

function TraceIo({ detail }: { detail: TraceDetail }) {
  return (
    <>
      <h2>Trace input</h2>
      <Payload value={detail.trace?.input} />
      <h2>Trace output</h2>
      <Payload value={detail.trace?.output} />
    </>
  );
}

function ObservationDetail({ observation: o, detail }: { observation: Observation; detail: TraceDetail }) {
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
        {o.total_cost !== null && <Fact label="Cost" value={usd(o.total_cost)} />}
        <Fact label="Level" value={o.level} />
      </dl>
      {o.status_message && <div class={`status-message level-${o.level}`}>{o.status_message}</div>}
      {scores.length > 0 && <ScoreList scores={scores} />}
      <h3>Input</h3>
      <Payload value={o.input} />
      <h3>Output</h3>
      <Payload value={o.output} />
      {commands.length > 0 && <Commands commands={commands} />}
      {files.length > 0 && <Files files={files} />}
      {o.metadata && Object.keys(o.metadata).length > 0 && (
        <>
          <h3>Metadata</h3>
          <Json value={o.metadata} depth={0} />
        </>
      )}
    </div>
  );
}

function ScoreList({ scores, onSelect }: { scores: Score[]; onSelect?: (id: string) => void }) {
  return (
    <table class="grid compact" aria-label="Scores">
      <thead>
        <tr>
          <th>Score</th>
          <th>Value</th>
          <th>Source</th>
          <th>Comment</th>
          {onSelect && <th>Observation</th>}
        </tr>
      </thead>
      <tbody>
        {scores.map((s) => (
          <tr key={s.id}>
            <td>{s.name}</td>
            <td class={s.data_type === "boolean" ? (s.value >= 1 ? "pass" : "fail") : ""}>
              {s.data_type === "categorical" ? s.string_value : s.data_type === "boolean" ? (s.value >= 1 ? "pass" : "fail") : s.value.toFixed(3)}
            </td>
            <td>{s.source}</td>
            <td>{s.comment ?? ""}</td>
            {onSelect && (
              <td>
                {s.observation_id && (
                  <button type="button" class="link" onClick={() => onSelect(s.observation_id as string)}>
                    {s.observation_id.slice(0, 8)}
                  </button>
                )}
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Commands({ commands }: { commands: TerminalCommand[] }) {
  return (
    <div class="commands" aria-label="Terminal commands">
      {commands.map((c) => (
        <div key={c.id} class="command" data-command-id={c.id}>
          <div class="command-head">
            <code class="command-line">$ {c.command}</code>
            <span class={`exit ${c.exit_code === 0 ? "ok" : "failed"}`} data-exit-code={c.exit_code ?? ""}>
              exit {c.exit_code ?? "?"}
            </span>
            <span class="muted">{duration(c.duration_ms)}</span>
          </div>
          {c.cwd && <div class="muted mono">{c.cwd}</div>}
          {c.stdout && <pre class="stdout"><Truncated text={c.stdout} limit={1500} /></pre>}
          {c.stderr && <pre class="stderr"><Truncated text={c.stderr} limit={1500} /></pre>}
        </div>
      ))}
    </div>
  );
}

function Files({ files }: { files: FileOperation[] }) {
  return (
    <div class="files" aria-label="File operations">
      {files.map((f) => (
        <details key={f.id} class="file" open={files.length <= 3}>
          <summary>
            <span class={`badge op-${f.operation}`}>{f.operation}</span> <code>{f.path}</code>
            {f.new_path && <> → <code>{f.new_path}</code></>}
            <span class="added"> +{f.lines_added}</span>
            <span class="removed"> −{f.lines_removed}</span>
          </summary>
          {f.diff ? <Diff text={f.diff} /> : <p class="muted">No diff recorded.</p>}
        </details>
      ))}
    </div>
  );
}

function Diff({ text }: { text: string }) {
  const lines = text.split("\n");
  const shown = lines.slice(0, 400);
  return (
    <pre class="diff">
      {shown.map((line, i) => (
        <div key={i} class={line.startsWith("+") && !line.startsWith("+++") ? "added" : line.startsWith("-") && !line.startsWith("---") ? "removed" : line.startsWith("@@") ? "hunk" : ""}>
          {line || " "}
        </div>
      ))}
      {lines.length > shown.length && <div class="muted">… {lines.length - shown.length} more lines</div>}
    </pre>
  );
}

function Links({ links }: { links: GitLink[] }) {
  return (
    <table class="grid compact" aria-label="Git links">
      <thead>
        <tr>
          <th>Commit</th>
          <th>Repository</th>
          <th>Branch</th>
          <th>Message</th>
          <th class="num">Files</th>
          <th class="num">+/−</th>
          <th>Pull request</th>
        </tr>
      </thead>
      <tbody>
        {links.map((g) => (
          <tr key={g.id}>
            <td class="mono">{g.commit_sha.slice(0, 10)}</td>
            <td>{g.repository}</td>
            <td>{g.branch ?? ""}</td>
            <td>{g.message ?? ""}</td>
            <td class="num">{g.files_changed}</td>
            <td class="num">
              <span class="added">+{g.insertions}</span> <span class="removed">−{g.deletions}</span>
            </td>
            <td>{g.pull_request_url && <a href={g.pull_request_url} rel="noreferrer noopener" target="_blank">{g.pull_request_url.replace(/^https?:\/\//, "")}</a>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Records({ detail, onSelect }: { detail: TraceDetail; onSelect: (id: string) => void }) {
  const tabs: [string, number, preact.ComponentChildren][] = [
    ["Terminal commands", detail.terminal_commands.length, <Commands commands={detail.terminal_commands} />],
    ["File operations", detail.file_operations.length, <Files files={detail.file_operations} />],
    ["Git links", detail.git_links.length, <Links links={detail.git_links} />],
    ["Scores", detail.scores.length, <ScoreList scores={detail.scores} onSelect={onSelect} />],
  ];
  const [tab, setTab] = useState(() => Math.max(0, tabs.findIndex(([, n]) => n > 0)));
  return (
    <div class="panel records">
      <div role="tablist" aria-label="Recorded against this trace" class="tabs">
        {tabs.map(([label, n], i) => (
          <button key={label} type="button" role="tab" aria-selected={tab === i} class={tab === i ? "active" : ""} onClick={() => setTab(i)}>
            {label} <span class="muted">{n}</span>
          </button>
        ))}
      </div>
      <div role="tabpanel">{(tabs[tab]?.[1] ?? 0) > 0 ? tabs[tab]?.[2] : <p class="muted">None recorded.</p>}</div>
    </div>
  );
}
