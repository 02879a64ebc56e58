import type { TerminalCommand } from "../../api";
import { Truncated } from "../Truncated";
import { duration } from "../../format";

/** Terminal commands: the command line, its exit code and time, its output. */
export function Commands({ commands }: { commands: TerminalCommand[] }) {
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
