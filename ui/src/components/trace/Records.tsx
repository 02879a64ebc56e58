import { useState } from "preact/hooks";
import type { TraceDetail } from "../../api";
import { Commands } from "./Commands";
import { Files } from "./Files";
import { Links } from "./Links";
import { ScoreList } from "./Scores";

/** What was recorded against the trace, a tab each; the first tab with something in it opens. */
export function Records({ detail, onSelect }: { detail: TraceDetail; onSelect: (id: string) => void }) {
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
