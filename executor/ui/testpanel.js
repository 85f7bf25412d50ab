// The plugin page's Test panel: post a sample event (typed JSON, prefilled for the handler
// type) through POST /v1/events and watch each run it starts: status and logs as they come.
"use strict";

let samplesCache = null;
const sampleEvents = () => (samplesCache ??= getJson("/v1/samples/events").catch(() => ({})));

// A sample of `type` on `project` (the samples name a placeholder project).
function sampleFor(samples, type, project) {
  const base = samples[type] || { type, asset_id: "asset-001", payload: {} };
  return JSON.stringify({ ...base, type, project_id: project || base.project_id }, null, 2);
}

// One run: its status badge (updated when it ends) and its log lines as they come.
function watchRun(id, signal) {
  const state = h("span", { class: "live" }, "live");
  const status = h("span", { class: "run-status" }, badge("queued"));
  const logs = h("div", { class: "logs", role: "list", "aria-label": `Logs of run ${id.slice(0, 8)}` });
  const refresh = () => getJson(`/v1/invocations/${enc(id)}`).then((run) => status.replaceChildren(badge(run.status), ` v${run.version}`), () => {});
  refresh();
  follow(
    `/v1/logs/stream?run_id=${enc(id)}`,
    (event, data) => {
      if (event === "message") {
        appendLine(logs, data);
        if (status.textContent.startsWith("queued")) refresh();
      }
      if (event === "end") {
        refresh();
        state.replaceWith(h("span", { class: "muted" }, "ended"));
        return "stop";
      }
      return undefined;
    },
    signal,
  );
  return h("div", { class: "test-run", "data-run": id },
    h("p", {}, h("a", { href: `#/runs/${enc(id)}` }, `Run ${id.slice(0, 8)}`), " ", status, " ", state), logs);
}

// Why a posted event started no run of this plugin, said as the CLI says it.
function whyNoRun(plugin, activations, event) {
  const here = activations.find((a) => a.project_id === event.project_id);
  if (!here) return `${plugin.name} is not active on project ${event.project_id}: activate it there first (Projects, above).`;
  return `${plugin.name} on ${event.project_id} runs for ${here.events.join(", ")}, not ${event.type}: pick one of those types or activate it for ${event.type}.`;
}

function testPanel(plugin, activations, signal) {
  const current = plugin.versions.find((v) => v.current) || plugin.versions[plugin.versions.length - 1];
  const handlers = current ? current.handlers : [];
  const type = h("select", { id: "test-type" }, handlers.map((t) => h("option", { value: t }, t)));
  const project = h("select", { id: "test-project" }, activations.map((a) => h("option", { value: a.project_id }, a.project_id)));
  const body = h("textarea", { id: "test-event", rows: 12, spellcheck: "false", "aria-label": "Event (JSON)" });
  const message = h("div", { id: "test-message", "aria-live": "polite" });
  const runs = h("div", { id: "test-runs" });
  const prefill = async () => { body.value = sampleFor(await sampleEvents(), type.value, project.value); };
  type.addEventListener("change", prefill);
  project.addEventListener("change", prefill);
  prefill();
  const send = async (e) => {
    e.preventDefault();
    let event;
    try {
      event = JSON.parse(body.value);
    } catch (err) {
      message.replaceChildren(notice(false, `The event is not JSON: ${err.message}`));
      return;
    }
    const accepted = await act(message, async () => (await sendJson("/v1/events", "POST", event)).json(),
      (r) => `Event ${r.event_id}: ${r.invocations.length} run(s).`);
    if (!accepted) return;
    if (!accepted.invocations.length) {
      message.replaceChildren(notice(false, `Event ${accepted.event_id} started no run: ${whyNoRun(plugin, activations, event)}`));
      return;
    }
    runs.replaceChildren(...accepted.invocations.map((id) => watchRun(id, signal)));
  };
  return h(
    "section",
    { class: "card", "aria-labelledby": "test-title" },
    h("div", { class: "section-head" }, h("h2", { id: "test-title" }, "Test"), needs("events:write", "logs:read")),
    activations.length ? null : h("p", { class: "muted" }, "Activate the plugin on a project first: an event runs the plugins active on its project."),
    h("form", { class: "test-form", onsubmit: send },
      h("div", { class: "filters" }, h("label", {}, "Event type", type), h("label", {}, "Project", project),
        h("button", { type: "button", class: "toggle", onclick: prefill }, "Reset to sample")),
      body,
      h("button", { type: "submit" }, "Send event")),
    message,
    runs,
  );
}
