import { useEffect, useState } from "preact/hooks";
import { api, get, sessionToken, setSessionToken, whenSignedOut, type Me, type Paged, type Project } from "./api";
import { message } from "./hooks";
import { href, useRoute } from "./route";
import { SignIn } from "./pages/SignIn";
import { Traces } from "./pages/Traces";
import { TraceView } from "./pages/TraceView";
import { Sessions, SessionView } from "./pages/Sessions";
import { Dashboard } from "./pages/Dashboard";
import { Evaluations } from "./pages/Evaluations";
import { Experiments } from "./pages/Experiments";
import { Privacy } from "./pages/Privacy";
import { Alerts } from "./pages/Alerts";
import { Prompts } from "./pages/Prompts";
import { Datasets } from "./pages/Datasets";
import { Queues } from "./pages/Queues";
import { SharedTrace } from "./pages/Shared";

const PROJECT_KEY = "agenttrace.project";

const SECTIONS: [string, string][] = [
  ["traces", "Traces"],
  ["sessions", "Sessions"],
  ["dashboard", "Dashboard"],
  ["alerts", "Alerts"],
  ["evaluations", "Evaluations"],
  ["queues", "Queues"],
  ["experiments", "Experiments"],
  ["prompts", "Prompts"],
  ["datasets", "Datasets"],
  ["privacy", "Privacy"],
];

export function App() {
  const route = useRoute();
  const [signedIn, setSignedIn] = useState(sessionToken() !== null);
  useEffect(() => whenSignedOut(() => setSignedIn(false)), []);
  // A public trace's link opens signed out, and shows that trace only.
  if (route.path[0] === "share") return <SharedTrace route={route} />;
  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />;
  return (
    <Shell
      onSignOut={() => {
        void api("POST", "/v1/auth/sign-out").catch(() => undefined);
        setSessionToken(null);
        setSignedIn(false);
      }}
    />
  );
}

interface ProjectChoice extends Project {
  organization: string;
}

function Shell({ onSignOut }: { onSignOut: () => void }) {
  const route = useRoute();
  const [me, setMe] = useState<Me | null>(null);
  const [projects, setProjects] = useState<ProjectChoice[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [project, setProject] = useState<string | null>(localStorage.getItem(PROJECT_KEY));

  useEffect(() => {
    (async () => {
      const who = await get<Me>("/v1/me");
      setMe(who);
      const lists = await Promise.all(
        (who.organizations ?? []).map(async (organization) => {
          const page = await get<Paged<Project>>(`/v1/organizations/${organization.id}/projects`, { limit: 100 });
          return page.data.map((p) => ({ ...p, organization: organization.name }));
        }),
      );
      const all = lists.flat();
      setProjects(all);
      setProject((chosen) => (chosen && all.some((p) => p.id === chosen) ? chosen : (all[0]?.id ?? null)));
    })().catch((e: unknown) => setError(message(e)));
  }, []);

  useEffect(() => {
    if (project) localStorage.setItem(PROJECT_KEY, project);
  }, [project]);

  const section = route.path[0] ?? "traces";
  let page;
  if (error) page = <div class="error" role="alert">{error}</div>;
  else if (projects === null) page = <div class="muted loading">Loading…</div>;
  else if (!project) page = <div class="empty">You are not a member of any project yet. Ask an organization admin to add you, or create one with <code>agenttrace project create</code>.</div>;
  else page = <Page project={project} section={section} route={route} />;

  return (
    <div class="shell">
      <header class="topbar">
        <a class="brand" href="#/traces">AgentTrace</a>
        <nav aria-label="Sections">
          {SECTIONS.map(([id, label]) => (
            <a key={id} href={href(`/${id}`)} class={section === id ? "active" : ""} aria-current={section === id ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <div class="spacer" />
        {projects && projects.length > 0 && (
          <label class="project-switch">
            <span>Project</span>
            <select
              aria-label="Project"
              value={project ?? ""}
              onChange={(e) => {
                setProject(e.currentTarget.value);
                window.location.hash = `/${section}`;
              }}
            >
              {projects.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.organization} / {p.name}
                </option>
              ))}
            </select>
          </label>
        )}
        <span class="muted user">{me?.user?.email}</span>
        <button type="button" class="secondary" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main>{page}</main>
    </div>
  );
}

function Page({ project, section, route }: { project: string; section: string; route: ReturnType<typeof useRoute> }) {
  const id = route.path[1];
  switch (section) {
    case "traces":
      return id ? <TraceView key={`${project}/${id}`} project={project} id={id} route={route} /> : <Traces key={project} project={project} route={route} />;
    case "sessions":
      return id ? <SessionView key={`${project}/${id}`} project={project} id={id} /> : <Sessions key={project} project={project} />;
    case "dashboard":
      return <Dashboard key={project} project={project} route={route} />;
    case "alerts":
      return <Alerts key={project} project={project} route={route} />;
    case "evaluations":
      return <Evaluations key={project} project={project} />;
    case "queues":
      return <Queues key={project} project={project} route={route} />;
    case "experiments":
      return <Experiments key={project} project={project} route={route} />;
    case "prompts":
      return <Prompts key={project} project={project} route={route} />;
    case "datasets":
      return <Datasets key={project} project={project} route={route} />;
    case "privacy":
      return <Privacy key={project} project={project} />;
    default:
      return <div class="empty">No such page. <a href="#/traces">Go to traces</a>.</div>;
  }
}
