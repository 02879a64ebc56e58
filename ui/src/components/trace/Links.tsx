import type { GitLink } from "../../api";

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
            <td>{g.pull_request_url && <a href={g.pull_request_url} rel="noreferrer noopener" target="_blank">{g.pull_request_url.replace(/^https?:\/\//, "")}</a>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
