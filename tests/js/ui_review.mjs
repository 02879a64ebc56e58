// Two people reviewing one annotation queue at once, in two headless Chromium sessions driven by
// playwright-core; then the judge's calibration against them, a comment, and a trace shared by
// link and opened signed out. Run by tests/tests/ui_review.rs, in two phases (UI_PHASE): `review`,
// then (after the calibration job ran) `after`.
//
// Environment: UI_URL, UI_PROJECT, UI_QUEUE, UI_TRACE, UI_ALICE, UI_BOB (emails), UI_PASSWORD,
// UI_PHASE, UI_SCREENSHOTS (a folder), CHROMIUM (the browser's path).
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
const step = (name) => console.error(`[ui-review] ${name}`);
const results = {};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const errors = [];

/** A person's own browser session (own storage), signed in, in the project. */
async function signedIn(email) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.on("pageerror", (error) => errors.push(`${email}: ${error}`));
  await page.goto(url);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(env("UI_PASSWORD"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByLabel("Project").waitFor();
  await page.getByLabel("Project").selectOption(project);
  return page;
}

/** The object of the item the page shows for review, or null once nothing is left. */
async function shownItem(page) {
  const scores = page.getByLabel("Your scores");
  const done = page.getByText("Nothing left for you in this queue");
  await Promise.race([scores.waitFor(), done.waitFor()]);
  if (await done.isVisible()) return null;
  return (await scores.locator("h2 .mono").textContent()).trim();
}

try {
  if (env("UI_PHASE") === "review") {
    const [alice, bob] = [await signedIn(env("UI_ALICE")), await signedIn(env("UI_BOB"))];
    const queue = `${url}/#/queues/${env("UI_QUEUE")}`;
    await Promise.all([alice.goto(queue), bob.goto(queue)]);
    const reviewed = { alice: [], bob: [] };
    let first = true;
    for (;;) {
      const [a, b] = await Promise.all([shownItem(alice), shownItem(bob)]);
      if (a === null && b === null) break;
      assert.notEqual(a, b, "two people were shown the same item at once");
      if (first) {
        step("the review view, keyboard first: 1 chooses Yes, Enter submits");
        await alice.keyboard.press("1");
        await alice.getByRole("radio", { name: /Yes/, checked: true }).waitFor();
        await alice.getByRole("heading", { name: "fix-bug" }).waitFor();
        await alice.getByText("Patched").first().waitFor();
        await alice.screenshot({ path: `${shots}/queue-review.png` });
        first = false;
      }
      // Alice answers Yes, Bob No, each with the keyboard.
      for (const [name, page, item, key] of [["alice", alice, a, "1"], ["bob", bob, b, "2"]]) {
        if (item === null) continue;
        await page.keyboard.press(key);
        await page.keyboard.press("Enter");
        await page
          .waitForFunction(
            (item) => {
              const h2 = document.querySelector("[aria-label='Your scores'] h2 .mono");
              return !h2 || h2.textContent.trim() !== item;
            },
            item,
            { timeout: 10_000 },
          )
          .catch(async (error) => {
            await page.screenshot({ path: `${shots}/review-stuck-${name}.png` });
            const alerts = await page.getByRole("alert").allTextContents();
            throw new Error(`${name} stayed on ${item}: ${alerts.join(" | ") || "no alert"} (${error.message})`);
          });
        reviewed[name].push(item);
      }
    }
    results.reviewed = reviewed;
    step("going back: p reopens the last item with the scores to correct");
    await bob.keyboard.press("p");
    await bob.getByLabel("Your scores").waitFor();
    results.reopened = (await bob.getByLabel("Your scores").locator("h2 .mono").textContent()).trim();
  } else {
    const alice = await signedIn(env("UI_ALICE"));
    step("the calibration panel on the evaluations page");
    await alice.goto(`${url}/#/evaluations`);
    const panel = alice.getByLabel("Judge calibration");
    await panel.getByRole("table", { name: /Confusion matrix/ }).waitFor();
    await panel.scrollIntoViewIfNeeded();
    await panel.screenshot({ path: `${shots}/calibration.png` });
    results.calibration = (await panel.textContent()).replace(/\s+/g, " ");

    step("a comment on the trace, and the trace shared by link");
    const trace = env("UI_TRACE");
    await alice.goto(`${url}/#/traces/${encodeURIComponent(trace)}`);
    await alice.getByLabel("New comment").first().fill("The agent **skipped** the tests here.");
    await alice.getByRole("button", { name: "Comment" }).first().click();
    await alice.getByText("The agent **skipped** the tests here.").waitFor();
    await alice.getByRole("button", { name: "Share publicly" }).click();
    const link = await alice.getByLabel("Share link").inputValue();
    results.link = link;
    const stranger = await (await browser.newContext()).newPage();
    stranger.on("pageerror", (error) => errors.push(`stranger: ${error}`));
    await stranger.goto(link);
    await stranger.getByText("A trace shared with you").waitFor();
    await stranger.getByRole("heading", { name: "fix-bug" }).waitFor();
    results.shared_shows_comments = await stranger.getByLabel("Comments").count();
    await alice.getByRole("button", { name: "Make private" }).click();
    await alice.getByRole("button", { name: "Share publicly" }).waitFor();
    await stranger.reload();
    await stranger.getByRole("alert").waitFor();
    results.after_private = (await stranger.getByRole("alert").textContent()).trim();
  }
  assert.deepEqual(errors, [], "no script errors");
  console.log(JSON.stringify(results));
} finally {
  await browser.close();
}
