import { useEffect, useState } from "preact/hooks";
import { api, get, type Detector, type ProjectRedaction, type RedactedPreview, type RedactionRules } from "../api";
import { Status } from "../components/Status";
import { message, useLoad } from "../hooks";
import { AuditLog, Deletions } from "./DataControls";

const SECRETS: [Detector, string, string][] = [
  ["llm_api_key", "LLM API keys", "OpenAI, Anthropic, Google AI, Groq, xAI, Hugging Face, Perplexity, Replicate"],
  ["cloud_key", "Cloud and platform keys", "AWS, GitHub, GitLab, Slack, Stripe, Google OAuth, Azure storage"],
  ["jwt", "JSON Web Tokens", "eyJ….eyJ….…"],
  ["bearer_token", "Authorization headers", "the credential after Bearer or Basic"],
  ["private_key", "Private keys", "PEM blocks, also cut short"],
  ["url_password", "Passwords in URLs", "scheme://user:password@host"],
];

const PERSONAL: [Detector, string, string][] = [
  ["email", "Emails", "user ids that are emails too"],
  ["phone", "Phone numbers", "international or grouped digits"],
  ["card_number", "Card numbers", "13 to 19 digits passing the Luhn check"],
  ["iban", "IBANs", "passing their mod-97 check"],
  ["ip_address", "IP addresses", "IPv4 and IPv6"],
];

/** What the edge redacts for the project before anything is stored, with a place to try it. */
export function Privacy({ project }: { project: string }) {
  const state = useLoad(() => get<ProjectRedaction>(`/v1/projects/${project}/redaction`), [project]);
  const [rules, setRules] = useState<RedactionRules | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [sample, setSample] = useState("OPENAI_API_KEY=sk-proj-0123456789abcdefghijklmnop\npostgres://app:hunter2@db:5432/app\nwrite to jane@example.com");
  const [preview, setPreview] = useState<RedactedPreview | null>(null);
  useEffect(() => setRules(state.data?.rules ?? null), [state.data]);
  useEffect(() => {
    if (!rules) return;
    const timer = setTimeout(() => {
      api<RedactedPreview>("POST", `/v1/projects/${project}/redaction/preview`, {}, { text: sample, rules })
        .then((p) => {
          setPreview(p);
          setError(null);
        })
        .catch((e: unknown) => setError(message(e)));
    }, 250);
    return () => clearTimeout(timer);
  }, [project, rules, sample]);
  if (!state.data || !rules) return <Status state={state} />;

  const toggle = (detector: Detector, on: boolean) =>
    setRules({ ...rules, detectors: on ? [...rules.detectors, detector] : rules.detectors.filter((d) => d !== detector) });
  const custom = rules.custom ?? [];
  const setCustom = (index: number, field: "name" | "pattern", value: string) =>
    setRules({ ...rules, custom: custom.map((c, i) => (i === index ? { ...c, [field]: value } : c)) });
  const save = async () => {
    setError(null);
    try {
      const stored = await api<ProjectRedaction>("PUT", `/v1/projects/${project}/redaction`, {}, rules);
      setSaved(`Saved at ${stored.updated_at ?? "now"}. The edge applies them within its key cache's lifetime (30 s by default).`);
      state.reload();
    } catch (e) {
      setError(message(e));
    }
  };
  const detectorList = (title: string, list: [Detector, string, string][]) => (
    <fieldset class="detectors">
      <legend>{title}</legend>
      {list.map(([id, label, hint]) => (
        <label key={id} class="check">
          <input type="checkbox" checked={rules.detectors.includes(id)} onChange={(e) => toggle(id, e.currentTarget.checked)} />
          <span>{label}</span> <span class="muted">{hint}</span>
        </label>
      ))}
    </fieldset>
  );

  return (
    <section class="privacy">
      <div class="page-head">
        <div>
          <h1>Privacy</h1>
          <p class="muted">
            The edge replaces what these rules find with <code>[REDACTED:kind]</code> in every event, on every route, before anything is
            buffered or stored. A pattern finds what looks like a secret; it cannot find one that looks like anything else.
          </p>
        </div>
      </div>
      <div class="split">
        <div class="panel grow">
          {detectorList("Secrets (on unless turned off)", SECRETS)}
          {detectorList("Personal data (off unless turned on)", PERSONAL)}
          <fieldset>
            <legend>Your patterns</legend>
            {custom.map((c, i) => (
              <div key={i} class="row">
                <input aria-label={`Pattern ${i + 1} name`} placeholder="employee_id" value={c.name} onInput={(e) => setCustom(i, "name", e.currentTarget.value)} />
                <input aria-label={`Pattern ${i + 1}`} class="grow mono" placeholder="EMP-\d{6}" value={c.pattern} onInput={(e) => setCustom(i, "pattern", e.currentTarget.value)} />
                <button type="button" class="secondary" onClick={() => setRules({ ...rules, custom: custom.filter((_, j) => j !== i) })}>
                  Remove
                </button>
              </div>
            ))}
            <button type="button" class="secondary" onClick={() => setRules({ ...rules, custom: [...custom, { name: "", pattern: "" }] })}>
              Add a pattern
            </button>
          </fieldset>
          <fieldset>
            <legend>Replacements</legend>
            <label class="check">
              <input type="checkbox" checked={!!rules.hash} onChange={(e) => setRules({ ...rules, hash: e.currentTarget.checked })} />
              <span>Add a digest</span> <span class="muted">[REDACTED:email:3f9a…]: the same value reads the same, without being kept</span>
            </label>
            <label class="check">
              <input type="checkbox" checked={!!rules.paths} onChange={(e) => setRules({ ...rules, paths: e.currentTarget.checked })} />
              <span>Search file paths too</span> <span class="muted">path, cwd, file_path…</span>
            </label>
          </fieldset>
          <div class="row">
            <button type="button" onClick={() => void save()}>
              Save rules
            </button>
            {saved && <span class="muted">{saved}</span>}
          </div>
          {error && (
            <p class="error" role="alert">
              {error}
            </p>
          )}
        </div>
        <div class="panel grow">
          <h2>Try them</h2>
          <textarea aria-label="Sample text" rows={8} class="mono" value={sample} onInput={(e) => setSample(e.currentTarget.value)} />
          <h3>As it would be stored</h3>
          <pre class="text" aria-label="Redacted sample">{preview?.redacted ?? ""}</pre>
          {preview && (
            <p class="muted">
              {Object.entries(preview.counts).map(([kind, n]) => `${n} × ${kind}`).join(", ") || "nothing found"}
            </p>
          )}
          <p class="muted">{state.data.updated_at ? `Last changed ${state.data.updated_at}.` : "This project uses the default rules."}</p>
        </div>
      </div>
      <Deletions project={project} />
      <AuditLog project={project} />
    </section>
  );
}
