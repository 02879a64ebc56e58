import { get, type TraceDetail } from "../api";
import { Status } from "../components/Status";
import { Trace } from "../components/trace/Trace";
import { useLoad } from "../hooks";
import type { Route } from "../route";

/** One trace (`#/traces/<id>?observation=<id>`): the view itself is in components/trace/. */
export function TraceView({ project, id, route }: { project: string; id: string; route: Route }) {
  const state = useLoad(() => get<TraceDetail>(`/v1/traces/${encodeURIComponent(id)}`, { project_id: project }), [project, id]);
  if (!state.data) return <Status state={state} />;
  return <Trace project={project} detail={state.data} initial={route.query.get("observation")} />;
}
