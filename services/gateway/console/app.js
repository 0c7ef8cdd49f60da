// The NOC console: one more client of the REST API, with the caller's own token.
// The token is kept in sessionStorage (this tab only) and sent in Authorization; never
// in a URL. Roles only shape what is shown: the server decides what is allowed.

const API = "/api/v1/backups/config";
const $ = (id) => document.getElementById(id);
const SECTIONS = ["signin", "status", "history", "diff", "rollback"];

function token() { return sessionStorage.getItem("cb-token") || ""; }

function role() {
  try {
    const part = token().split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part)).role || "";
  } catch { return ""; }
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined && v !== null && v !== false) q.set(k, String(v));
  const url = API + path + (q.toString() ? "?" + q : "");
  const resp = await fetch(url, { method, headers: { Authorization: "Bearer " + token() } });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const message = body.message || resp.statusText;
    if (resp.status === 401) { signOut("Your token was refused: " + message); }
    throw new ApiError(resp.status, message);
  }
  return body;
}

function utc(ts) { return ts ? ts.replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", " UTC") : "—"; }

function ago(ts) {
  if (!ts) return "";
  const s = Math.round((Date.now() - Date.parse(ts)) / 1000);
  const f = (n, u) => `${n} ${u}${n === 1 ? "" : "s"}`;
  const t = Math.abs(s);
  const text = t < 90 ? f(t, "second") : t < 5400 ? f(Math.round(t / 60), "minute") : t < 129600 ? f(Math.round(t / 3600), "hour") : f(Math.round(t / 86400), "day");
  return s >= 0 ? text + " ago" : "in " + text;
}

function when(ts) {
  return el("time", { datetime: ts || "", title: utc(ts) }, ts ? `${ago(ts)} (${utc(ts)})` : "—");
}

function short(hash) { return hash ? hash.slice(0, 7) : "—"; }

function commitLink(hash, parent) {
  if (!hash) return document.createTextNode("—");
  const params = new URLSearchParams({ commit2: hash });
  if (parent) params.set("commit1", parent);
  return el("a", { href: "#diff?" + params, class: "commit" }, short(hash));
}

function enumText(v, prefix) { return (v || "").replace(prefix, "").toLowerCase() || "—"; }

// --- sign-in -------------------------------------------------------------------------

function signOut(reason) {
  sessionStorage.removeItem("cb-token");
  $("signin-reason").textContent = reason || "";
  location.hash = "#signin";
  route();
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const t = $("token").value.trim().replace(/^Bearer\s+/i, "");
  sessionStorage.setItem("cb-token", t);
  $("token").value = "";
  try {
    await api("GET", "/status");
    location.hash = "#status";
    route();
  } catch (e) {
    if (e.status !== 401) signOut("Your token was refused: " + e.message);
  }
});

$("sign-out").addEventListener("click", () => signOut("Signed out."));

// --- status --------------------------------------------------------------------------

// When a restore drill last proved the domain restorable, or what the last one found.
function proof(d) {
  if (d.last_drill_state === "DRILL_STATE_FAILED") {
    const causes = d.last_drill_causes || [];
    return el("span", {},
      el("span", { class: "bad" }, "drill FAILED "), when(d.last_drill_at),
      d.last_proven_at ? el("span", {}, "; last proven ", when(d.last_proven_at)) : "; never proven",
      ...causes.slice(0, 3).map((c) => el("div", { class: "bad" }, c)),
      causes.length > 3 ? el("div", {}, `… ${causes.length - 3} more (ListDrills)`) : "");
  }
  if (d.last_proven_at) return el("span", {}, "proven ", when(d.last_proven_at));
  return "never (no restore drill yet)";
}

async function loadStatus() {
  const s = await api("GET", "/status");
  const body = $("status-body");
  body.replaceChildren();
  const run = s.last_run;
  const facts = el("table", { class: "facts" });
  const row = (k, v) => facts.append(el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, v)));
  row("Last run", run ? el("span", {}, `${enumText(run.outcome, "RUN_OUTCOME_")}, `, when(run.finished_at || run.started_at), run.error ? el("div", { class: "bad" }, run.error) : "") : "none yet");
  row("Push", run ? `${enumText(run.push_outcome, "PUSH_OUTCOME_")}${s.last_push_error ? " — " + s.last_push_error : ""}` : "—");
  row("Unpushed commits", String(s.unpushed_commits || 0));
  row("Next scheduled run", s.schedule_enabled ? when(s.next_scheduled_at) : "schedule disabled");
  row("Last mail", s.last_mail_subject ? el("span", {}, `${s.last_mail_subject}, `, when(s.last_mail_at), s.last_mail_error ? el("div", { class: "bad" }, s.last_mail_error) : "") : "—");
  if (s.running) row("Running", s.running);
  if (s.interrupted) row("Interrupted", el("span", { class: "bad" }, s.interrupted));
  if (s.clear_secrets_notice) row("Older history", s.clear_secrets_notice);
  body.append(el("div", { class: "scroll" }, facts));
  const t = el("table", { id: "domains" }, el("thead", {}, el("tr", {}, ...["Domain", "Files", "Last commit", "Last change", "Proven restorable", "Last error"].map((h) => el("th", { scope: "col" }, h)))));
  const tb = el("tbody");
  for (const d of s.domains || []) {
    tb.append(el("tr", {},
      el("td", {}, d.domain),
      el("td", {}, String(d.tracked_files || 0)),
      el("td", {}, commitLink(d.last_commit_hash), " ", when(d.last_commit_at)),
      el("td", {}, commitLink(d.last_change_commit_hash), " ", when(d.last_changed_at)),
      el("td", { class: "proof" }, proof(d)),
      el("td", { class: "bad" }, d.last_error || "")));
  }
  t.append(tb);
  body.append(el("h3", {}, "Domains"), el("div", { class: "scroll" }, t));
}

$("backup-now").addEventListener("click", async () => {
  const btn = $("backup-now");
  btn.disabled = true;
  $("backup-report").textContent = "Backing up…";
  try {
    const r = (await api("POST", "/run")).report;
    const out = el("div", { id: "backup-result" }, el("p", {}, `Run ${r.run_id}: ${enumText(r.outcome, "RUN_OUTCOME_")}, push ${enumText(r.push?.outcome, "PUSH_OUTCOME_")}.`));
    const t = el("table", {}, el("tr", {}, ...["Domain", "Commit", "Added", "Modified", "Deleted", "Error"].map((h) => el("th", { scope: "col" }, h))));
    for (const d of r.domains || []) t.append(el("tr", {}, el("td", {}, d.domain), el("td", {}, commitLink(d.commit_hash, d.previous_hash)), el("td", {}, String(d.files_added || 0)), el("td", {}, String(d.files_modified || 0)), el("td", {}, String(d.files_deleted || 0)), el("td", { class: "bad" }, d.error || "")));
    out.append(el("div", { class: "scroll" }, t));
    $("backup-report").replaceChildren(out);
    await loadStatus();
  } catch (e) {
    $("backup-report").textContent = "";
    showError(e.message);
  } finally { btn.disabled = false; }
});

// --- history -------------------------------------------------------------------------

let historyToken = "";

function localToRfc3339(v) { return v ? new Date(v + "Z").toISOString() : ""; }

async function loadHistory(next) {
  const params = {
    domain: $("h-domain").value, path: $("h-path").value.trim(),
    since: localToRfc3339($("h-since").value), until: localToRfc3339($("h-until").value),
    include_unchanged: $("h-unchanged").checked, page_size: 50, page_token: next ? historyToken : "",
  };
  const h = await api("GET", "/history", params);
  const t = el("table", { id: "history-table" }, el("thead", {}, el("tr", {}, ...["When", "Domain", "File", "Change", "Commit", "By"].map((x) => el("th", { scope: "col" }, x)))));
  const tb = el("tbody");
  for (const e of h.entries || []) {
    const change = e.summary ? `${e.change_type}: ${e.summary}` : e.change_type;
    tb.append(el("tr", {}, el("td", {}, when(e.backed_up_at)), el("td", {}, e.domain), el("td", {}, e.file), el("td", {}, change), el("td", {}, commitLink(e.commit_hash, e.previous_hash)), el("td", {}, e.backed_up_by)));
  }
  t.append(tb);
  const body = $("history-body");
  body.replaceChildren();
  if (h.clear_secrets_notice) body.append(el("p", { class: "hint" }, h.clear_secrets_notice));
  body.append(el("div", { class: "scroll" }, t));
  if (!(h.entries || []).length) body.append(el("p", {}, "No entries."));
  historyToken = h.next_page_token || "";
  $("h-next").hidden = !historyToken;
}

$("history-form").addEventListener("submit", (ev) => { ev.preventDefault(); run(() => loadHistory(false)); });
$("h-next").addEventListener("click", () => run(() => loadHistory(true)));

// --- diff ----------------------------------------------------------------------------

function patchView(text) {
  const pre = el("pre", { class: "patch" });
  for (const line of text.split("\n")) {
    const cls = line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : "";
    pre.append(cls ? el("span", { class: cls }, line) : line + "\n");
  }
  return pre;
}

function lineCounts(f) {
  if (f.additions !== undefined || f.deletions !== undefined || !f.patch) return [f.additions || 0, f.deletions || 0];
  // A rollback plan's patch carries no counts: count its lines.
  let add = 0, del = 0;
  for (const l of f.patch.split("\n")) {
    if (l.startsWith("+") && !l.startsWith("+++")) add++;
    else if (l.startsWith("-") && !l.startsWith("---")) del++;
  }
  return [add, del];
}

function renderFiles(files, target) {
  for (const f of files) {
    const [add, del] = lineCounts(f);
    const head = el("h4", {}, f.path, el("span", { class: "flag" }, `+${add} −${del}`));
    if (f.binary) head.append(el("span", { class: "flag" }, "binary"));
    if (f.sealed) head.append(el("span", { class: "flag" }, "sealed"));
    if (f.truncated) head.append(el("span", { class: "flag" }, "truncated"));
    if (f.change_type) head.append(el("span", { class: "flag" }, f.change_type));
    if (f.action) head.append(el("span", { class: "flag" }, f.action));
    // The change in the service's own terms, and any change of mode or owner.
    const said = f.summary || (f.metadata_changes || []).join(", ");
    target.append(el("article", { class: "file" }, head, said ? el("p", { class: "summary" }, said) : "", f.patch ? patchView(f.patch) : ""));
  }
}

async function loadDiff(c1, c2) {
  let commit1 = c1;
  if (!commit1) {
    const hist = await api("GET", "/history", { page_size: 1000, include_unchanged: true });
    const entry = (hist.entries || []).find((e) => e.commit_hash.startsWith(c2));
    commit1 = entry && entry.previous_hash ? entry.previous_hash : c2;
  }
  const d = await api("GET", "/diff", { commit1, commit2: c2 });
  const body = $("diff-body");
  body.replaceChildren(el("p", { id: "diff-summary" }, `${short(d.commit1)} → ${short(d.commit2)}: ${d.files_changed || 0} files, +${d.additions || 0} −${d.deletions || 0}${d.truncated ? " (truncated)" : ""}`));
  renderFiles(d.files || [], body);
}

$("diff-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const p = new URLSearchParams({ commit2: $("d-commit2").value.trim() });
  if ($("d-commit1").value.trim()) p.set("commit1", $("d-commit1").value.trim());
  location.hash = "#diff?" + p;
});

// --- rollback ------------------------------------------------------------------------

function renderTask(task) {
  const box = $("rollback-progress");
  const state = enumText(task.state, "ROLLBACK_STATE_");
  const list = el("ol", { class: "stages" });
  for (const s of task.stages || []) {
    const secs = s.started_at && s.finished_at ? ((Date.parse(s.finished_at) - Date.parse(s.started_at)) / 1000).toFixed(2) + " s" : "running";
    list.append(el("li", { class: s.finished_at ? (s.ok ? "ok" : "bad") : "" },
      el("strong", {}, enumText(s.state, "ROLLBACK_STATE_")), ` — ${secs}: ${s.message || ""}`, s.output ? el("pre", {}, s.output) : ""));
  }
  box.replaceChildren(el("p", { id: "rollback-state" }, `Task ${task.task_id}: ${state}`), list);
  if (task.error) box.append(el("p", { class: "bad" }, task.error + (task.revert_succeeded ? " (the previous files were put back)" : "")));
}

async function follow(taskId) {
  sessionStorage.setItem("cb-task", taskId);
  const resp = await fetch(`${API}/rollback/status?task_id=${encodeURIComponent(taskId)}&watch=true`, { headers: { Authorization: "Bearer " + token() } });
  if (!resp.ok) {
    const body = await resp.json().catch(() => ({}));
    throw new ApiError(resp.status, body.message || resp.statusText);
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line);
      if (msg.error) throw new ApiError(0, msg.error.message);
      if (msg.result && msg.result.task) renderTask(msg.result.task);
    }
  }
  sessionStorage.removeItem("cb-task");
}

let planned = null;

$("rollback-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  run(async () => {
    planned = { commit: $("r-commit").value.trim(), domain: $("r-domain").value, reason: $("r-reason").value.trim() };
    const r = await api("POST", "/rollback", { ...planned, dry_run: true });
    const p = r.plan || {};
    const box = $("rollback-plan");
    box.replaceChildren(el("p", { id: "plan-validation", class: p.validation_ok ? "ok" : "bad" }, p.validation_ok ? "Validation passed." : "Validation FAILED: nothing would be changed."));
    if (p.validation_output) box.append(el("pre", {}, p.validation_output));
    for (const w of p.warnings || []) box.append(el("p", { class: "hint" }, "Warning: " + w));
    renderFiles((p.files || []).filter((f) => f.action !== "unchanged"), box);
    $("r-confirm").hidden = !p.validation_ok;
  });
});

$("r-confirm").addEventListener("click", () => run(async () => {
  $("r-confirm").hidden = true;
  const r = await api("POST", "/rollback", planned);
  renderTask(r.task);
  await follow(r.task.task_id);
}));

// --- routing -------------------------------------------------------------------------

async function run(work) {
  showError("");
  try { await work(); } catch (e) { showError(e.message || String(e)); }
}

function show(id) {
  for (const s of SECTIONS) $(s).hidden = s !== id;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === "#" + id) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

async function route() {
  const [name, query] = location.hash.replace(/^#/, "").split("?");
  const signedIn = !!token();
  $("nav").hidden = !signedIn;
  const r = role();
  $("nav-rollback").hidden = r !== "admin";
  $("backup-now").hidden = !(r === "admin" || r === "noc");
  if (!signedIn) { show("signin"); return; }
  const id = SECTIONS.includes(name) && name !== "signin" ? name : "status";
  show(id);
  if (id === "status") await run(loadStatus);
  if (id === "history") await run(() => loadHistory(false));
  if (id === "diff") {
    const p = new URLSearchParams(query || "");
    if (p.get("commit2")) {
      $("d-commit1").value = p.get("commit1") || "";
      $("d-commit2").value = p.get("commit2");
      await run(() => loadDiff(p.get("commit1") || "", p.get("commit2")));
    }
  }
  if (id === "rollback") {
    const pending = sessionStorage.getItem("cb-task");
    if (pending) await run(() => follow(pending));
  }
}

window.addEventListener("hashchange", route);
route();
