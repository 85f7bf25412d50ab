// Plugin Executor web console: plain JS, no build step. The API key stays in sessionStorage
// and is sent as a Bearer header; live logs use fetch streaming (EventSource cannot send
// headers, and a key in a URL would land in server logs).
"use strict";

const KEY = "plugin-executor.api-key";
const TENANT = "plugin-executor.tenant";
const OPERATOR = "plugin-executor.operator"; // "yes" when the key is the operator's
const main = document.getElementById("main");
const signout = document.getElementById("signout");
const TERMINAL = new Set(["succeeded", "failed", "timed_out", "oom_killed", "crashed", "canceled", "dead"]);
let pageAbort = new AbortController(); // aborted on navigation: ends streams and timers

// ---- helpers
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}
const enc = encodeURIComponent;
const badge = (s) => h("span", { class: `badge s-${s}` }, s ?? "—");
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const ms = (v) => (v === null || v === undefined ? "—" : v < 1000 ? `${v} ms` : `${(v / 1000).toFixed(1)} s`);

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` };
  // The tenant to act as: the operator's pick, or the one a tenant key signed in with.
  const tenant = sessionStorage.getItem(TENANT);
  if (tenant) headers["X-Tenant"] = tenant;
  const response = await fetch(path, { ...options, headers: { ...headers, ...(options.headers || {}) } });
  if (response.status === 401) {
    // A key that stopped working sends the user back to sign-in (unless already there,
    // where the sign-in form shows the error itself).
    sessionStorage.removeItem(KEY);
    if (!document.getElementById("apikey")) location.hash = "#/signin";
    throw new ApiError(401, await response.json().catch(() => null));
  }
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  return response;
}
const getJson = async (path) => (await api(path)).json();

// Server-Sent Events over fetch, reconnecting with Last-Event-ID after a dropped connection.
async function follow(path, onEvent, signal) {
  let lastId = null;
  while (!signal.aborted) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      const response = await api(path, { headers, signal });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const msg = { event: "message", data: "" };
          for (const line of block.split("\n")) {
            if (line.startsWith("id: ")) lastId = line.slice(4);
            else if (line.startsWith("event: ")) msg.event = line.slice(7);
            else if (line.startsWith("data: ")) msg.data += line.slice(6);
          }
          if (!msg.data) continue;
          if (onEvent(msg.event, JSON.parse(msg.data)) === "stop") return;
        }
      }
    } catch (err) {
      if (signal.aborted || err.status === 401) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function logLine(record) {
  const time = new Date(record.created_at);
  return h(
    "div",
    { class: `line lvl-${record.log_type}`, role: "listitem", "data-level": record.log_type },
    h("span", { class: "time", title: record.created_at }, time.toLocaleTimeString()),
    h("span", { class: "lvl" }, record.log_type),
    h("span", { class: "content" }, record.content),
  );
}

function appendLine(box, record) {
  const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
  box.append(logLine(record));
  if (stick) box.scrollTop = box.scrollHeight;
}

function table(columns, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  // A wide table scrolls in its own box, never the page (down to a 375-px screen).
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
    ),
  );
}

// A view shows its page only while it is still the page asked for: a slow view (say the
// plugins list, reloaded for a newly picked tenant) must not cover the page navigated to since.
function show(signal, ...nodes) {
  if (signal.aborted) return;
  main.replaceChildren(...nodes);
}

// ---- views
async function pluginsView(signal) {
  const plugins = await getJson("/v1/plugins");
  show(
    signal,
    h("h1", {}, "Plugins"),
    table(
      ["Name", "Latest version", "Status", "Projects", "Created"],
      plugins.map((p) => [
        h("a", { href: `#/plugins/${enc(p.name)}` }, p.name),
        p.latest_version ?? "—",
        badge(p.status),
        p.projects.join(", ") || "—",
        when(p.created_at),
      ]),
      "No plugins yet: upload one with 'plugin-executor push'.",
    ),
  );
}

function runsFilters(name, signal) {
  const project = h("input", { name: "project_id", placeholder: "any", size: 14 });
  const status = h(
    "select",
    { name: "status" },
    ["", "queued", "running", ...TERMINAL].map((s) => h("option", { value: s }, s || "any")),
  );
  const box = h("div", { id: "runs" });
  const load = async () => {
    const params = new URLSearchParams({ plugin_name: name, limit: "50" });
    if (project.value) params.set("project_id", project.value);
    if (status.value) params.set("status", status.value);
    const runs = await getJson(`/v1/invocations?${params}`);
    box.replaceChildren(
      table(
        ["Run", "Status", "Version", "Event", "Asset", "Project", "Attempt", "Start latency", "Duration", "Queued", "Error"],
        runs.map((r) => [
          h("a", { href: `#/runs/${enc(r.id)}` }, r.id.slice(0, 8)),
          badge(r.status),
          `v${r.version}`,
          r.event_type,
          r.asset_id ?? "—",
          r.project_id,
          r.attempt,
          ms(r.start_latency_ms),
          ms(r.duration_ms),
          when(r.queued_at),
          r.error_type ? `${r.error_type}${r.error_location ? ` (${r.error_location})` : ""}` : "",
        ]),
        "No invocations match.",
      ),
    );
  };
  const form = h(
    "form",
    { class: "filters", onsubmit: (e) => { e.preventDefault(); load(); } },
    h("label", {}, "Project", project),
    h("label", {}, "Status", status),
    h("button", { type: "submit" }, "Filter"),
  );
  const timer = setInterval(() => load().catch(() => {}), 2000);
  signal.addEventListener("abort", () => clearInterval(timer));
  load();
  return [form, box];
}

// The activations of a plugin, one request per project it is active on.
async function pluginActivations(plugin) {
  const lists = await Promise.all(plugin.projects.map((p) => getJson(`/v1/projects/${enc(p)}/plugins`)));
  return lists.flat().filter((a) => a.plugin === plugin.name);
}

function versionsTable(plugin, activations) {
  const name = plugin.name;
  return table(
    ["Version", "Status", "Runs on", "Handlers", "Created", "Finished", "Error", "Build"],
    [...plugin.versions].reverse().map((v) => [
      v.current ? h("span", {}, `v${v.version} `, h("span", { class: "badge s-current" }, "current")) : `v${v.version}`,
      badge(v.status),
      activations.filter((a) => a.runs_version === v.version).map((a) => a.project_id).join(", ") || "—",
      v.handlers.join(", "),
      when(v.created_at),
      when(v.finished_at),
      v.error ?? "",
      h("a", { href: `#/plugins/${enc(name)}/versions/${v.version}/build` }, "build log"),
    ]),
    "No versions.",
  );
}

async function pluginView(name, signal) {
  const plugin = await getJson(`/v1/plugins/${enc(name)}`);
  const activations = await pluginActivations(plugin);
  const versions = [...plugin.versions].reverse();
  const live = h("div", { class: "logs", role: "list", id: "live-logs", "aria-label": "Live logs" });
  const reload = () => route(); // the same page, read again after an action
  show(
    signal,
    h("h1", {}, plugin.name, " ", badge(plugin.status)),
    h(
      "div",
      { class: "card" },
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Projects"), h("dd", {}, plugin.projects.join(", ") || "not active anywhere"),
        h("dt", {}, "Handlers"), h("dd", {}, versions[0] ? versions[0].handlers.join(", ") : "—"),
      ),
    ),
    pluginCharts(name),
    h("h2", {}, "Versions"),
    h("div", { id: "versions" }, versionsTable(plugin, activations)),
    activationsPanel(plugin, activations, reload),
    testPanel(plugin, activations, signal),
    uploadPanel(name),
    h("h2", {}, "Invocations"),
    ...runsFilters(name, signal),
    h("h2", {}, "Live logs ", h("span", { class: "live" }, "following")),
    live,
    deletePanel(name),
  );
  follow(
    `/v1/logs/stream?plugin_name=${enc(name)}&limit=50`,
    (event, data) => { if (event === "message") appendLine(live, data); },
    signal,
  );
}

// The engine's layer lines of a build log, as executor/buildlog.py tells them; "==> " starts
// the executor's step lines. Everything else is the build's output, always shown.
const ENGINE_DETAIL =
  /^(Step \d+\/\d+ : .*| ---> .*|Removing intermediate container [0-9a-f]{12,64}|Successfully built [0-9a-f]{12,64}|Successfully tagged \S+)$/;
const lineKind = (line) => (line.startsWith("==> ") ? "step" : ENGINE_DETAIL.test(line) ? "detail" : "output");

async function buildView(name, version, signal) {
  const state = h("span", { class: "live" }, "building");
  const log = h("pre", { class: "buildlog hide-detail", id: "build-log", tabindex: "0" });
  const layers = h("input", {
    type: "checkbox",
    id: "build-layers",
    onchange: () => log.classList.toggle("hide-detail", !layers.checked),
  });
  let pending = ""; // a line the stream has not ended yet
  const append = (text, last) => {
    const lines = (pending + text).split("\n");
    pending = last ? "" : lines.pop();
    if (last && lines[lines.length - 1] === "") lines.pop();
    for (const line of lines) log.append(h("span", { class: `bl-${lineKind(line)}` }, `${line}\n`));
  };
  show(
    signal,
    h("h1", {}, `${name} v${version} — build log `, state),
    h("label", { class: "muted" }, layers, " show the engine's layer lines (Step 3/7, ---> 1a2b3c)"),
    log,
  );
  follow(
    `/v1/plugins/${enc(name)}/versions/${enc(version)}/build-log/stream`,
    (event, data) => {
      if (event === "reset") {
        log.textContent = "";
        pending = "";
      }
      if (event === "build") {
        append(data.text, false);
        log.scrollTop = log.scrollHeight;
      }
      if (event === "end") {
        append("", true);
        state.replaceWith(badge(data.status));
        if (data.error) log.append(h("strong", { class: "error" }, `\n${data.error}\n`));
        return "stop";
      }
      return undefined;
    },
    signal,
  );
}

function gatewayCalls(run) {
  if (!Array.isArray(run.gateway_calls)) return [];
  return [
    h("h2", {}, "Gateway calls"),
    table(
      ["At", "Method", "Path", "Status", "Duration", "Error"],
      run.gateway_calls.map((c) => [
        when(c.at ?? c.created_at), c.method, c.path, c.status ?? "—", ms(c.duration_ms), c.error ?? "",
      ]),
      "No calls to the platform API.",
    ),
  ];
}

function runFacts(run) {
  const facts = [
    ["Status", badge(run.status)], ["Plugin", h("a", { href: `#/plugins/${enc(run.plugin)}` }, `${run.plugin} v${run.version}`)],
    ["Event", run.event_type], ["Asset", run.asset_id ?? "—"],
    ["Project", run.project_id], ["Attempt", run.attempt],
    ["Queued", when(run.queued_at)], ["Start latency", ms(run.start_latency_ms)],
    ["Duration", ms(run.duration_ms)], ["Exit code", run.exit_code ?? "—"],
    ["Start", run.start], ["Log bytes", `${run.log_bytes}${run.truncated ? " (truncated)" : ""}`],
  ];
  if (run.error) facts.push(["Error", h("span", { class: "error" }, run.error)]);
  // Why it failed, as Lambda's errorType/errorMessage: the exception and its line in the plugin.
  if (run.error_type) {
    facts.push(["Error type", h("code", { class: "error" }, run.error_type)]);
    facts.push(["Error message", h("span", { class: "error" }, run.error_message ?? "")]);
    facts.push(["Error location", run.error_location ?? "—"]);
  }
  return h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

async function runView(id, signal) {
  let run = await getJson(`/v1/invocations/${enc(id)}`);
  const facts = h("div", { class: "card", id: "run-facts" }, runFacts(run));
  const gateway = h("div", {}, gatewayCalls(run));
  const state = h("span", { class: "live" }, "live");
  const box = h("div", { class: "logs", role: "list", id: "run-logs", "aria-label": "Run logs" });
  const level = h(
    "select",
    { "aria-label": "Minimum level", onchange: () => filterLines() },
    ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"].map((l) => h("option", { value: l }, l)),
  );
  const search = h("input", { type: "search", placeholder: "search", "aria-label": "Search", oninput: () => filterLines() });
  const order = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
  function filterLines() {
    const min = order.indexOf(level.value);
    const text = search.value.toLowerCase();
    for (const line of box.children) {
      const lvl = line.dataset.level;
      const levelOk = lvl === "SYSTEM" || order.indexOf(lvl) >= min;
      const textOk = !text || line.textContent.toLowerCase().includes(text);
      line.hidden = !(levelOk && textOk);
    }
  }
  show(
    signal,
    h("h1", {}, `Run ${id.slice(0, 8)} `, state),
    replayButton(id),
    facts,
    gateway,
    h("h2", {}, "Logs"),
    h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
      h("label", {}, "Minimum level", level), h("label", {}, "Search", search)),
    box,
  );
  follow(
    `/v1/logs/stream?run_id=${enc(id)}`,
    (event, data) => {
      if (event === "message") {
        appendLine(box, data);
        filterLines();
        return undefined;
      }
      if (event === "end") {
        getJson(`/v1/invocations/${enc(id)}`).then((done) => {
          run = done;
          facts.replaceChildren(runFacts(run));
          gateway.replaceChildren(...gatewayCalls(run));
          state.replaceWith(h("span", { class: "muted" }, "ended"));
        });
        return "stop";
      }
      return undefined;
    },
    signal,
  );
}

// ---- router
async function route() {
  pageAbort.abort();
  pageAbort = new AbortController();
  const signal = pageAbort.signal;
  const path = location.hash.replace(/^#/, "") || "/plugins";
  if (!sessionStorage.getItem(KEY) || path === "/signin") return signinView(signal);
  signout.hidden = false;
  showTenantPicker();
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[0] === "overview") await overviewView(signal);
    else if (parts[0] === "audit") await auditView(signal);
    else if (parts[0] === "keys") await keysView(signal);
    else if (parts[0] === "plugins" && parts.length === 1) await pluginsView(signal);
    else if (parts[0] === "plugins" && parts[2] === "versions") await buildView(parts[1], parts[3], signal);
    else if (parts[0] === "plugins") await pluginView(parts[1], signal);
    else if (parts[0] === "runs") await runView(parts[1], signal);
    else show(signal, h("h1", {}, "Not found"), h("a", { href: "#/plugins" }, "Back to plugins"));
    main.focus({ preventScroll: true });
  } catch (err) {
    if (err.status !== 401) show(signal, h("h1", {}, "Error"), h("p", { class: "error", role: "alert" }, err.message));
  }
}

signout.addEventListener("click", () => {
  for (const item of [KEY, TENANT, OPERATOR]) sessionStorage.removeItem(item);
  location.hash = "#/signin";
});
window.addEventListener("hashchange", route);
// After every deferred script (charts.js, operator.js) has defined its views.
document.addEventListener("DOMContentLoaded", route);
