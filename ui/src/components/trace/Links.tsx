import type { GitLink } from "../../api";
import { httpUrl } from "../../format";

/** A pull request's URL: a link when it is http(s), else text (never a `javascript:` link). */
function pullRequest(url: string | null) {
  const safe = httpUrl(url);
  if (safe) return <a href={safe} rel="noreferrer noopener" target="_blank">{safe.replace(/^https?:\/\//i, "")}</a>;
  return url ?? "";
}

/** Commits linked to the trace. */
export function Links({ links }: { links: GitLink[] }) {
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
            <td>{pullRequest(g.pull_request_url)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
