import { get, type TraceDetail } from "../api";
import { Status } from "../components/Status";
import { Trace } from "../components/trace/Trace";
import { useLoad } from "../hooks";
import type { Route } from "../route";

/** A public trace, read signed out (`#/share/<project>/<trace>`): that trace and nothing else. */
export function SharedTrace({ route }: { route: Route }) {
  const [, project = "", id = ""] = route.path;
  const state = useLoad(() => get<TraceDetail>(`/v1/shared/${encodeURIComponent(project)}/traces/${encodeURIComponent(id)}`), [project, id]);
  return (
    <div class="shell">
      <header class="topbar">
        <a class="brand" href="#/traces">AgentTrace</a>
        <span class="muted">A trace shared with you</span>
      </header>
      <main>{state.data ? <Trace project={project} detail={state.data} initial={route.query.get("observation")} shared /> : <Status state={state} />}</main>
    </div>
  );
}
