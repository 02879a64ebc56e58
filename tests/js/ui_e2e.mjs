// A person using the web UI, in Debian's headless Chromium driven by playwright-core (no
// downloaded browser). Run by tests/tests/ui.rs against a real ETL loaded with the demo's data;
// every step checks what the page shows against the API or the databases.
//
// Environment: UI_URL, UI_EMAIL, UI_PASSWORD, UI_PROJECT, UI_OTHER_PROJECT, UI_TRACE (a trace
// with a terminal command), UI_EXIT_CODE (that command's exit code), UI_BIG_TRACE (a trace of
// many observations), UI_PROMPT, UI_SCREENSHOTS (a folder), CHROMIUM (the browser's path),
// UI_JUDGE_TRACE and UI_JUDGE_OBSERVATION (a generation to try a new LLM judge on; the project
// has a model connection to a test server that scores 0.75).
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is set`);
  return value;
};
const url = env("UI_URL");
const project = env("UI_PROJECT");
const shots = env("UI_SCREENSHOTS");
mkdirSync(shots, { recursive: true });
const results = {};
const step = (name) => console.error(`[ui] ${name}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
const consoleErrors = [];
page.on("console", (message) => message.type() === "error" && consoleErrors.push(message.text()));
page.on("pageerror", (error) => consoleErrors.push(String(error)));
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: false });

// The API as the signed-in page calls it, with the page's own session.
const api = (path) =>
  page.evaluate(async (path) => {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${localStorage.getItem("agenttrace.session")}` } });
    if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
    return response.json();
  }, path);

try {
  step("sign in: a wrong password is refused, the right one lets in");
  await page.goto(url);
  await page.getByLabel("Email").fill(env("UI_EMAIL"));
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").waitFor();
  await page.getByLabel("Password").fill(env("UI_PASSWORD"));
  await shot("sign-in");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("table", { name: "Traces" }).waitFor();

  step("project switcher: the demo project is chosen, the other one is empty");
  await page.getByLabel("Project").selectOption(project);
  await page.getByRole("table", { name: "Traces" }).waitFor();
  const listed = await page.locator("table[aria-label=Traces] tbody tr").count();
  const firstPage = await api(`/v1/traces?project_id=${project}&limit=50&from=${new Date(Date.now() - 7 * 86400e3).toISOString()}`);
  assert.equal(listed, firstPage.data.length, "the list shows the API's first page");
  await shot("traces");
  await page.getByLabel("Project").selectOption(env("UI_OTHER_PROJECT"));
  await page.getByText("No traces match").waitFor();
  await page.getByLabel("Project").selectOption(project);
  await page.getByRole("table", { name: "Traces" }).waitFor();

  step("filter the trace list by session");
  const traceId = env("UI_TRACE");
  const detail = await api(`/v1/traces/${encodeURIComponent(traceId)}?project_id=${project}`);
  const session = detail.trace.session_id;
  assert.ok(session, "the demo trace has a session");
  await page.getByLabel("Session", { exact: true }).fill(session);
  await page.getByRole("button", { name: "Apply" }).click();
  await page.waitForFunction(
    (session) => {
      const rows = [...document.querySelectorAll("table[aria-label=Traces] tbody tr")];
      return rows.length > 0 && location.hash.includes(encodeURIComponent(session)) && rows.every((row) => row.textContent.includes(session.slice(0, 8)));
    },
    session,
  );
  const expected = await api(`/v1/traces?project_id=${project}&session_id=${encodeURIComponent(session)}&limit=50&from=${new Date(Date.now() - 7 * 86400e3).toISOString()}`);
  const shown = await page.locator("table[aria-label=Traces] tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.traceId));
  assert.deepEqual(shown, expected.data.map((row) => row.id), "the filtered list is the API's answer for that session");
  results.filtered_traces = shown.length;

  step("open a trace");
  await page.locator(`tr[data-trace-id="${traceId}"] a`).first().click();
  const tree = page.getByRole("tree", { name: "Observations" });
  await tree.waitFor();
  const items = page.getByRole("treeitem");
  const rendered = await items.count();
  assert.ok(rendered > 0 && rendered <= detail.observation_count, `${rendered} of ${detail.observation_count} rows rendered`);
  await shot("trace");

  step("the tree from the keyboard");
  await tree.focus();
  await page.keyboard.press("Home");
  const firstId = await page.locator("[role=treeitem][aria-selected=true]").getAttribute("data-observation-id");
  await page.keyboard.press("ArrowDown");
  const secondId = await page.locator("[role=treeitem][aria-selected=true]").getAttribute("data-observation-id");
  assert.notEqual(firstId, secondId, "ArrowDown moves the selection");
  await page.keyboard.press("Home");
  const root = page.locator(`[role=treeitem][data-observation-id="${firstId}"]`);
  if ((await root.getAttribute("aria-expanded")) === "true") {
    const before = await items.count();
    await page.keyboard.press("ArrowLeft");
    assert.equal(await root.getAttribute("aria-expanded"), "false", "ArrowLeft collapses");
    assert.ok((await items.count()) < before, "collapsing hides the children");
    await page.keyboard.press("ArrowRight");
    assert.equal(await root.getAttribute("aria-expanded"), "true", "ArrowRight expands");
    assert.equal(await items.count(), before, "expanding shows them again");
  }

  step("expand an observation: its input and output");
  const generation = page.locator("[role=treeitem]", { has: page.locator(".type-generation") }).first();
  await generation.click();
  const selected = page.getByLabel("Selected observation");
  await selected.getByRole("heading", { name: "Input" }).waitFor();
  assert.ok(await selected.locator(".messages, .json, pre.text").count() > 0, "the input is rendered");
  const fold = selected.locator(".json-toggle").first();
  if (await fold.count()) {
    const was = await fold.getAttribute("aria-expanded");
    await fold.click();
    assert.notEqual(await fold.getAttribute("aria-expanded"), was, "a JSON fold opens and closes");
  }
  await shot("observation");

  step("read a terminal command's exit code");
  await page.getByRole("tab", { name: /Terminal commands/ }).click();
  const exitCodes = await page.locator("[aria-label='Terminal commands'] [data-exit-code]").evaluateAll((els) => els.map((el) => el.dataset.exitCode));
  assert.ok(exitCodes.includes(env("UI_EXIT_CODE")), `exit code ${env("UI_EXIT_CODE")} is shown (${exitCodes})`);
  const stored = detail.terminal_commands.map((c) => String(c.exit_code));
  assert.deepEqual([...exitCodes].sort(), [...stored].sort(), "every command's exit code, as stored");
  await page.locator("[aria-label='Terminal commands']").scrollIntoViewIfNeeded();
  await shot("terminal-commands");

  step("search: a word of a command finds its traces, highlighted, and a hit opens");
  const word = detail.terminal_commands
    .flatMap((c) => c.command.split(/[^A-Za-z0-9]+/))
    .filter((w) => w.length >= 4)
    .sort((a, b) => b.length - a.length)[0];
  assert.ok(word, "the demo trace ran a command with a word to search");
  await page.goto(`${url}/#/traces`);
  await page.getByLabel("Search text").fill(`command:${word}`);
  await page.getByRole("button", { name: "Apply" }).click();
  await page.locator("table[aria-label=Traces] tbody tr mark").first().waitFor();
  const found = await api(
    `/v1/search?project_id=${project}&q=${encodeURIComponent(`command:${word}`)}&limit=50&from=${new Date(Date.now() - 7 * 86400e3).toISOString()}`,
  );
  const hits = await page.locator("table[aria-label=Traces] tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.traceId));
  assert.deepEqual(hits, found.data.map((hit) => hit.trace.id), "the list is the search API's answer");
  assert.ok(hits.includes(traceId), "the trace that ran the command is found");
  const marked = await page.locator(`tr[data-trace-id="${traceId}"] mark`).first().innerText();
  assert.equal(marked.toLowerCase(), word.toLowerCase(), "the match is highlighted");
  results.search_hits = hits.length;
  await shot("search");
  await page.locator(`tr[data-trace-id="${traceId}"] a`).first().click();
  await page.getByRole("tree", { name: "Observations" }).waitFor();

  step("a session reads as a conversation");
  await page.goto(`${url}/#/sessions/${encodeURIComponent(session)}`);
  await page.getByRole("list", { name: "Conversation" }).waitFor();
  const turns = await page.locator(".turn").count();
  const sessionDetail = await api(`/v1/sessions/${encodeURIComponent(session)}?project_id=${project}&limit=100`);
  assert.equal(turns, sessionDetail.data.length, "one turn per trace of the session");
  await shot("session");

  step("dashboard totals equal the read API's");
  await page.goto(`${url}/#/dashboard?days=7`);
  const costChart = page.locator("figure[data-chart=cost-by-model]");
  await costChart.waitFor();
  await page.waitForFunction(() => document.querySelectorAll("canvas").length >= 5);
  const chartTotal = Number(await costChart.getAttribute("data-total"));
  const requestsTotal = Number(await page.locator("figure[data-chart=requests]").getAttribute("data-total"));
  const from = await page.evaluate(() => {
    const now = new Date();
    return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) - 6 * 86400e3).toISOString();
  });
  const to = new Date(Date.now() + 60e3).toISOString();
  const overall = await api(`/v1/metrics?project_id=${project}&type=generation&bucket=none&from=${from}&to=${to}`);
  const apiCost = overall.data.reduce((sum, row) => sum + row.total_cost, 0);
  const apiRequests = overall.data.reduce((sum, row) => sum + row.count, 0);
  assert.ok(apiCost > 0, "the demo's generations cost something");
  assert.ok(Math.abs(chartTotal - apiCost) < 1e-6, `chart total ${chartTotal} = API total ${apiCost}`);
  assert.equal(requestsTotal, apiRequests, "requests chart total = API count");
  // The demo's generations came through the edge with a project key: the key is named.
  const keys = await page.getByRole("table", { name: "Cost by API key" }).locator("tbody code").allTextContents();
  assert.ok(keys.some((key) => key.startsWith("pk-at-")), `the demo's API key is listed (${keys})`);
  results.dashboard_cost = chartTotal;
  await shot("dashboard");

  step("evaluations: pass rates, job runs, dead letters");
  await page.goto(`${url}/#/evaluations`);
  await page.getByRole("table", { name: "Evaluators" }).waitFor();
  await page.getByRole("table", { name: "Job runs" }).waitFor();
  await page.getByRole("table", { name: "Dead letters" }).waitFor();
  await shot("evaluations");

  step("evaluations: add an LLM judge from a built-in one, try it on a generation");
  const newJudge = page.getByRole("form", { name: "New judge" });
  await newJudge.getByLabel("Name").fill("helpful-ui");
  await newJudge.getByLabel("Built-in judge").selectOption("helpfulness");
  await newJudge.getByRole("button", { name: "Add judge" }).click();
  await page.locator('table[aria-label="LLM judges"] tr[data-judge="helpful-ui"]').waitFor();
  const judges = (await api(`/v1/projects/${project}/evaluators?limit=100`)).data.filter((e) => e.kind === "llm_judge");
  assert.equal(judges.length, 1, "the judge was stored");
  assert.equal(judges[0].config.template, "helpfulness");
  const tryJudge = page.getByRole("form", { name: "Try a judge" });
  await tryJudge.getByLabel("Trace id").fill(env("UI_JUDGE_TRACE"));
  await tryJudge.getByLabel("Observation id").fill(env("UI_JUDGE_OBSERVATION"));
  await tryJudge.getByRole("button", { name: "Show prompt" }).click();
  await page.locator(".judge-preview pre.prompt").waitFor();
  assert.match(await page.locator(".judge-preview pre.prompt").innerText(), /Score how helpful the answer is/);
  await tryJudge.getByRole("button", { name: "Run once" }).click();
  await page.locator('.judge-preview [data-score="0.75"]').waitFor();
  results.judge_preview = await page.locator(".judge-preview [data-score]").innerText();
  await page.locator(".judge-preview").scrollIntoViewIfNeeded();
  await shot("judges");

  step("evaluations: a judge of whole traces is tried on a trace alone");
  await newJudge.getByLabel("Name").fill("trace-ui");
  await newJudge.getByLabel("Built-in judge").selectOption("helpfulness");
  await newJudge.getByLabel("Judges each").selectOption("trace");
  await newJudge.getByLabel("Quiet time (s)").fill("30");
  await newJudge.getByRole("button", { name: "Add judge" }).click();
  const traceRow = page.locator('table[aria-label="LLM judges"] tr[data-judge="trace-ui"]');
  await traceRow.waitFor();
  assert.match(await traceRow.innerText(), /\btrace\b/);
  assert.match(await traceRow.getByRole("link", { name: "its calls" }).getAttribute("href"), /environment=agenttrace-judge/);
  const traceJudge = (await api(`/v1/projects/${project}/evaluators?limit=100`)).data.find((e) => e.name === "trace-ui");
  assert.deepEqual([traceJudge.config.target, traceJudge.config.quiet_seconds], ["trace", 30]);
  await tryJudge.getByLabel("Judge").selectOption({ label: "trace-ui" });
  await tryJudge.getByLabel("Observation id").waitFor({ state: "detached" });
  await tryJudge.getByLabel("Trace id").fill(env("UI_JUDGE_TRACE"));
  await tryJudge.getByRole("button", { name: "Show prompt" }).click();
  await page.locator('.judge-preview pre.prompt:has-text("Score how helpful")').waitFor();

  step("evaluations: edit a judge's config, then ask it to judge a past range");
  const editJudge = page.getByRole("form", { name: "Edit judge" });
  await editJudge.getByLabel("Judge").selectOption({ label: "trace-ui" });
  const configBox = editJudge.getByLabel(/^Config/);
  const edited = JSON.parse(await configBox.inputValue());
  assert.equal(edited.target, "trace");
  edited.quiet_seconds = 120;
  await configBox.fill(JSON.stringify(edited, null, 2));
  await editJudge.getByRole("button", { name: "Save" }).click();
  await page.getByRole("status").filter({ hasText: "Saved trace-ui" }).waitFor();
  const saved = (await api(`/v1/projects/${project}/evaluators?limit=100`)).data.find((e) => e.name === "trace-ui");
  assert.equal(saved.config.quiet_seconds, 120);
  await configBox.fill("{ not json");
  await editJudge.getByRole("button", { name: "Save" }).click();
  await page.getByRole("alert").filter({ hasText: "not JSON" }).waitFor();
  const backfillForm = page.getByRole("form", { name: "Backfill judge" });
  await backfillForm.getByLabel("From").fill("2026-11-01");
  await backfillForm.getByLabel("To (exclusive)").fill("2026-11-08");
  await backfillForm.getByRole("button", { name: "Judge this range" }).click();
  await page.getByRole("status").filter({ hasText: "Backfill" }).waitFor();
  const activity = await api(`/v1/projects/${project}/evaluators/${saved.id}/judgments`);
  assert.equal(activity.backfills[0].status, "pending");

  step("compare two experiments");
  const experiments = (await api(`/v1/projects/${project}/experiments?limit=100`)).data;
  assert.ok(experiments.length >= 2, "the demo ran two experiments");
  const [a, b] = experiments;
  await page.goto(`${url}/#/experiments?a=${a.id}&b=${b.id}`);
  const comparison = page.getByRole("table", { name: "Score comparison" });
  await comparison.waitFor();
  const compared = await api(`/v1/projects/${project}/experiments/compare?a=${a.id}&b=${b.id}`);
  assert.ok(compared.scores.length > 0, "the experiments have scores to compare");
  for (const score of compared.scores) {
    const cell = comparison.locator(`tr[data-score="${score.score_name}"] [data-difference]`);
    const shownDifference = await cell.getAttribute("data-difference");
    assert.equal(shownDifference === "" ? null : Number(shownDifference), score.mean_difference, `${score.score_name}'s difference`);
  }
  await page.getByRole("table", { name: "Items" }).locator("button").first().click();
  await page.getByRole("heading", { name: "Expected output" }).waitFor();
  await shot("experiments");

  step("move a prompt label");
  const prompt = env("UI_PROMPT");
  await page.goto(`${url}/#/prompts/${encodeURIComponent(prompt)}`);
  await page.getByRole("table", { name: "Versions" }).waitFor();
  const before = await api(`/v1/projects/${project}/prompts/${encodeURIComponent(prompt)}?label=production`);
  const target = before.version === 1 ? 2 : 1;
  const moveForm = page.getByRole("form", { name: "Move a label" });
  await moveForm.getByLabel("Label").fill("production");
  await moveForm.getByLabel("To version").selectOption(String(target));
  await moveForm.getByRole("button", { name: "Move label" }).click();
  await page.locator(`tr[data-version="${target}"] .label-production`).waitFor();
  assert.equal(await page.locator(`tr[data-version="${before.version}"] .label-production`).count(), 0, "the label left its old version");
  const after = await api(`/v1/projects/${project}/prompts/${encodeURIComponent(prompt)}?label=production`);
  assert.equal(after.version, target, "the API serves the moved label's version");
  await page.getByLabel(/Diff from v/).waitFor();
  await shot("prompts");

  step("datasets");
  await page.goto(`${url}/#/datasets`);
  await page.locator(".nav-list a").first().click();
  await page.getByRole("table", { name: "Dataset items" }).waitFor();

  step("privacy: the rules' preview, an opt-in detector turned on and saved");
  await page.goto(`${url}/#/privacy`);
  const redacted = page.getByLabel("Redacted sample");
  await page.waitForFunction(() => document.querySelector("[aria-label='Redacted sample']")?.textContent?.includes("[REDACTED:llm_api_key]"));
  assert.ok(!(await redacted.textContent()).includes("sk-proj-"), "the sample's key is replaced");
  assert.ok((await redacted.textContent()).includes("jane@example.com"), "emails are kept by default");
  await page.getByRole("checkbox", { name: /Emails/ }).check();
  await page.waitForFunction(() => document.querySelector("[aria-label='Redacted sample']")?.textContent?.includes("[REDACTED:email]"));
  await page.getByRole("button", { name: "Save rules" }).click();
  await page.getByText(/^Saved at/).waitFor();
  results.privacy_detectors = (await api(`/v1/projects/${project}/redaction`)).rules.detectors;
  await shot("privacy");

  step("privacy: a trace deleted, the job seen to succeed, and the change in the audit log");
  const keep = new Set([env("UI_TRACE"), process.env.UI_BIG_TRACE, env("UI_JUDGE_TRACE")]);
  const doomed = (await api(`/v1/traces?project_id=${project}&limit=100`)).data.map((t) => t.id).find((id) => !keep.has(id));
  await page.getByLabel("What to delete").selectOption("traceIds");
  await page.getByLabel("Ids to delete").fill(doomed);
  page.once("dialog", (dialog) => void dialog.accept());
  await page.getByRole("button", { name: "Delete", exact: true }).click();
  const deletions = page.getByRole("table", { name: "Deletions" });
  await deletions.locator("tr", { hasText: doomed }).filter({ hasText: "succeeded" }).waitFor({ timeout: 60_000 });
  const left = (await api(`/v1/traces?project_id=${project}&limit=1000`)).data.map((t) => t.id);
  results.deleted_trace_listed = left.includes(doomed);
  await page.reload();
  await page.getByRole("table", { name: "Audit log" }).locator("tr", { hasText: `POST /v1/projects/{project}/deletions` }).first().waitFor();
  results.audit_rows = await page.getByRole("table", { name: "Audit log" }).locator("tbody tr").count();
  await page.getByRole("heading", { name: "Delete data" }).evaluate((heading) => heading.scrollIntoView({ block: "start" }));
  await shot("deletions");

  step("alerts: a channel made and its secret shown once, a rule per user made in the form");
  await page.goto(`${url}/#/alerts`);
  const channelForm = page.getByRole("form", { name: "New alert channel" });
  await channelForm.getByLabel("Name", { exact: true }).fill("ops hook");
  await channelForm.getByLabel("URL").fill("https://hooks.example.com/agenttrace");
  await channelForm.getByRole("button", { name: "Create channel" }).click();
  const secret = page.getByLabel("Signing secret");
  await secret.waitFor();
  results.alert_secret_prefix = (await secret.inputValue()).slice(0, 9);
  const channels = await api(`/v1/projects/${project}/alerts/channels`);
  results.alert_channels_show_secret = JSON.stringify(channels).includes(await secret.inputValue());
  const ruleForm = page.getByRole("form", { name: "New alert rule" });
  await ruleForm.getByRole("button", { name: "Create rule" }).click();
  await ruleForm.locator("[aria-invalid=true]").first().waitFor();
  // (The field's label now carries its error too.)
  await ruleForm.locator("label", { hasText: /^Name/ }).locator("input").fill("a user over a cent an hour");
  await ruleForm.getByLabel("Threshold").fill("0.01");
  await ruleForm.getByLabel("Fire per").selectOption("user");
  await ruleForm.getByRole("checkbox", { name: /ops hook/ }).check();
  await ruleForm.getByRole("button", { name: "Create rule" }).click();
  await page.getByRole("table", { name: "Alert rules" }).locator("tr", { hasText: "a user over a cent an hour" }).waitFor();
  results.alert_rules = (await api(`/v1/projects/${project}/alerts/rules`)).map((r) => [r.name, r.groupBy, r.channels.length]);
  await page.waitForLoadState("networkidle");
  await page.waitForTimeout(500);
  await shot("alerts");

  const big = process.env.UI_BIG_TRACE;
  if (big) {
    step("a trace of many observations opens");
    await page.goto(`${url}/#/traces`);
    await page.getByRole("table", { name: "Traces" }).waitFor();
    const started = Date.now();
    await page.goto(`${url}/#/traces/${encodeURIComponent(big)}`);
    await page.getByRole("tree", { name: "Observations" }).waitFor();
    await page.getByRole("treeitem").first().waitFor();
    results.big_trace_open_ms = Date.now() - started;
    results.big_trace_rendered_rows = await page.getByRole("treeitem").count();
    // How much of that is the API's answer (the ETL as built for tests: unoptimized).
    results.big_trace_api_ms = await page.evaluate(async ([big, project]) => {
      const started = performance.now();
      const response = await fetch(`/v1/traces/${encodeURIComponent(big)}?project_id=${project}`, {
        headers: { Authorization: `Bearer ${localStorage.getItem("agenttrace.session")}` },
      });
      await response.json();
      return Math.round(performance.now() - started);
    }, [big, project]);
    await page.getByRole("tree").focus();
    await page.keyboard.press("End");
    await page.locator("[role=treeitem][aria-selected=true]").waitFor();
  }
  assert.deepEqual(consoleErrors.filter((e) => !e.includes("401")), [], "no script errors");
  console.log(JSON.stringify(results));
} catch (error) {
  await shot("failure").catch(() => undefined);
  console.error(`[ui] failed; the page at the failure is in ${shots}/failure.png`);
  throw error;
} finally {
  await browser.close();
}
