import { useRef, useState } from "preact/hooks";
import type { Observation } from "../../api";
import { count, duration, num, usd } from "../../format";
import { bar, observationMs, ROW_HEIGHT, rowWindow, scrollToShow, TREE_HEIGHT, treeKey, type Row, type Span } from "./tree";

/** The observation tree with its waterfall: virtualized, and driven from the keyboard as a WAI-ARIA tree. */
export function Tree(props: {
  rows: Row[];
  byId: Map<string, Row>;
  collapsed: Set<string>;
  selected: string | null;
  span: Span;
  onSelect: (id: string) => void;
  onToggle: (id: string, open?: boolean) => void;
}) {
  const { rows, byId, collapsed, selected, span, onSelect, onToggle } = props;
  const scrollerRef = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const index = rows.findIndex((row) => row.observation.id === selected);

  const onKeyDown = (event: KeyboardEvent) => {
    const action = treeKey(event.key, rows, index, collapsed);
    if (action.kind === "ignore") return;
    event.preventDefault();
    if (action.kind === "toggle") onToggle(action.id, action.open);
    if (action.kind !== "focus") return;
    const row = rows[action.index];
    if (!row) return;
    onSelect(row.observation.id);
    const element = scrollerRef.current;
    if (element) element.scrollTop = scrollToShow(action.index, element.scrollTop, element.clientHeight);
  };

  const { first, last } = rowWindow(scrollTop, rows.length);
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
        {rows.slice(first, last).map((row, offset) => (
          <TreeRow
            key={row.observation.id}
            row={row}
            top={(first + offset) * ROW_HEIGHT}
            open={!collapsed.has(row.observation.id)}
            selected={row.observation.id === selected}
            span={span}
            onSelect={onSelect}
            onToggle={onToggle}
          />
        ))}
      </div>
    </div>
  );
}

function TreeRow(props: {
  row: Row;
  top: number;
  open: boolean;
  selected: boolean;
  span: Span;
  onSelect: (id: string) => void;
  onToggle: (id: string, open?: boolean) => void;
}) {
  const { row, top, open, selected, span, onSelect, onToggle } = props;
  const o = row.observation;
  // The model or tool, beside the name; a tool call is usually named after its tool: said once.
  const used = o.model ?? o.tool_name;
  const aside = used && used !== o.name ? used : null;
  return (
    <div
      id={`obs-${o.id}`}
      role="treeitem"
      aria-level={row.depth + 1}
      aria-selected={selected}
      aria-expanded={row.hasChildren ? open : undefined}
      data-observation-id={o.id}
      class={`tree-row level-${o.level}${selected ? " selected" : ""}`}
      style={{ top: `${top}px`, height: `${ROW_HEIGHT}px` }}
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
        <span class="names">
          <span class="name" title={o.name}>{o.name}</span>
          {aside && <span class="model" title={aside}>{aside}</span>}
        </span>
        {o.level === "error" || o.level === "warning" ? <span class={`badge level-${o.level}`}>{o.level}</span> : null}
      </div>
      <div class="tree-meta">
        <span class="num">{o.input_tokens + o.output_tokens > 0 ? count(o.input_tokens + o.output_tokens) : ""}</span>
        <span class="num">{o.total_cost !== null && num(o.total_cost) > 0 ? usd(o.total_cost) : ""}</span>
        <span class="num">{duration(observationMs(o))}</span>
      </div>
      <Waterfall o={row.observation} span={span} />
    </div>
  );
}

/** The observation's bar on the trace's time line. */
function Waterfall({ o, span }: { o: Observation; span: Span }) {
  const { left, width } = bar(o, span);
  return (
    <div class="waterfall" aria-hidden="true">
      <div class={`bar type-${o.type}`} style={{ left: `${left}%`, width: `${width}%` }} />
    </div>
  );
}
