import type { FileOperation } from "../../api";
import { diffLineClass } from "./tree";

const DIFF_LINES = 400;

/** File operations, each with its diff (open when there are only a few). */
export function Files({ files }: { files: FileOperation[] }) {
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
  const shown = lines.slice(0, DIFF_LINES);
  return (
    <pre class="diff">
      {shown.map((line, i) => (
        <div key={i} class={diffLineClass(line)}>
          {line || " "}
        </div>
      ))}
      {lines.length > shown.length && <div class="muted">… {lines.length - shown.length} more lines</div>}
    </pre>
  );
}
