// Acting from the console: upload, activate and deactivate, run another version on a
// project, replay, delete, and a Test panel. Each action calls the REST endpoint the CLI
// uses, so the API checks the key's scope and writes the audit entry; a refusal shows the
// API's own message (its `message`, whatever the status).
"use strict";

const PACK_SKIPPED_DIRS = new Set(["__pycache__", ".git", ".venv"]); // as the CLI's push
const TAR_BLOCK = 512;

function notice(ok, ...children) {
  return h("p", { class: ok ? "ok" : "error", role: ok ? "status" : "alert" }, ...children);
}

// Run `fn`; show what `done` makes of its result in `box`, or the API's error.
async function act(box, fn, done) {
  box.replaceChildren(h("p", { class: "muted" }, "Working…"));
  try {
    const result = await fn();
    box.replaceChildren(notice(true, done(result)));
    return result;
  } catch (err) {
    box.replaceChildren(notice(false, err.message));
    return null;
  }
}

// The scope an action needs, said next to it (the API refuses the action without it).
const needs = (...scopes) => h("span", { class: "needs muted" }, `needs ${scopes.join(" + ")}`);

const sendJson = (path, method, body) =>
  api(path, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

// ---- upload: a file as it is, a folder packed as the CLI packs it (tar.gz, paths relative
// to the folder), built in the browser with no library: ustar headers, gzip by the browser.
function tarHeader(path, size) {
  const header = new Uint8Array(TAR_BLOCK);
  const bytes = new TextEncoder().encode(path);
  let name = bytes, prefix = new Uint8Array(0);
  if (bytes.length > 100) {
    const cut = path.lastIndexOf("/", 155);
    prefix = new TextEncoder().encode(path.slice(0, cut));
    name = new TextEncoder().encode(path.slice(cut + 1));
    if (cut < 0 || prefix.length > 155 || name.length > 100) throw new Error(`${path}: path too long to pack`);
  }
  const put = (offset, text) => header.set(new TextEncoder().encode(text), offset);
  header.set(name, 0);
  put(100, "0000644\0");
  put(108, "0000000\0");
  put(116, "0000000\0");
  put(124, `${size.toString(8).padStart(11, "0")}\0`);
  put(136, `${Math.floor(Date.now() / 1000).toString(8).padStart(11, "0")}\0`);
  put(148, "        ");
  put(156, "0");
  put(257, "ustar\0");
  put(263, "00");
  header.set(prefix, 345);
  const sum = header.reduce((total, b) => total + b, 0);
  put(148, `${sum.toString(8).padStart(6, "0")}\0 `);
  return header;
}

async function tarGz(files) {
  const parts = [];
  for (const { path, file } of files) {
    const data = new Uint8Array(await file.arrayBuffer());
    parts.push(tarHeader(path, data.length), data, new Uint8Array((TAR_BLOCK - (data.length % TAR_BLOCK)) % TAR_BLOCK));
  }
  parts.push(new Uint8Array(2 * TAR_BLOCK));
  const gzip = new Blob(parts).stream().pipeThrough(new CompressionStream("gzip"));
  return new Response(gzip).blob();
}

const packable = (path) => !path.split("/").some((part) => PACK_SKIPPED_DIRS.has(part)) && !path.endsWith(".pyc");

// Files of a dropped folder entry, with paths relative to it.
async function entryFiles(entry, prefix = "") {
  if (entry.isFile) return [{ path: prefix + entry.name, file: await new Promise((ok, ko) => entry.file(ok, ko)) }];
  const reader = entry.createReader();
  const found = [];
  for (;;) {
    const batch = await new Promise((ok, ko) => reader.readEntries(ok, ko));
    if (!batch.length) break;
    for (const child of batch) found.push(...(await entryFiles(child, `${prefix}${entry.name}/`)));
  }
  return found;
}

// The relative paths of a picked folder's files ("folder/main.py" -> "main.py").
const folderFiles = (files) => [...files].map((file) => ({ path: file.webkitRelativePath.split("/").slice(1).join("/"), file }));

function uploadPanel(name) {
  const message = h("div", { id: "upload-message", "aria-live": "polite" });
  const send = (filename, blob) => {
    const form = new FormData();
    form.append("name", name);
    form.append("file", blob, filename);
    return act(
      message,
      async () => (await api("/v1/plugins", { method: "POST", body: form })).json(),
      (created) => [
        `v${created.version} uploaded (${created.status}). `,
        h("a", { href: `#/plugins/${enc(name)}/versions/${created.version}/build` }, `Watch the build of v${created.version}`),
      ],
    );
  };
  const sendFolder = async (folder, files) => {
    const kept = files.filter((f) => packable(f.path));
    if (!kept.length) return message.replaceChildren(notice(false, `${folder} holds no file to upload.`));
    return send(`${folder}.tar.gz`, await tarGz(kept));
  };
  const file = h("input", {
    type: "file", id: "upload-file", accept: ".zip,.tar.gz,.tgz,.py",
    onchange: () => file.files[0] && send(file.files[0].name, file.files[0]),
  });
  const folder = h("input", {
    type: "file", id: "upload-folder", webkitdirectory: true, multiple: true,
    onchange: () => folder.files.length && sendFolder(folder.files[0].webkitRelativePath.split("/")[0], folderFiles(folder.files)),
  });
  const drop = h(
    "div",
    {
      class: "dropzone", id: "dropzone",
      ondragover: (e) => { e.preventDefault(); drop.classList.add("over"); },
      ondragleave: () => drop.classList.remove("over"),
      ondrop: async (e) => {
        e.preventDefault();
        drop.classList.remove("over");
        const entry = e.dataTransfer.items[0] && e.dataTransfer.items[0].webkitGetAsEntry();
        if (entry && entry.isDirectory) {
          const files = (await entryFiles(entry)).map((f) => ({ ...f, path: f.path.split("/").slice(1).join("/") }));
          sendFolder(entry.name, files);
        } else if (e.dataTransfer.files[0]) {
          send(e.dataTransfer.files[0].name, e.dataTransfer.files[0]);
        }
      },
    },
    "Drop the plugin's folder, a .zip, a .tar.gz or one .py file here",
  );
  return h(
    "section",
    { class: "card", "aria-labelledby": "upload-title" },
    h("div", { class: "section-head" }, h("h2", { id: "upload-title" }, "Upload a new version"), needs("plugins:write")),
    drop,
    h("div", { class: "filters" }, h("label", {}, "Archive or .py file", file), h("label", {}, "Folder", folder)),
    message,
  );
}

// ---- activations: on which projects, for which events, which version runs
const activeVersions = (plugin) => plugin.versions.filter((v) => v.status === "ACTIVE").map((v) => v.version);

function versionSelect(plugin, label, pinned) {
  return h(
    "select",
    { "aria-label": label },
    h("option", { value: "" }, `follow current (v${plugin.current_version ?? "—"})`),
    activeVersions(plugin).map((n) => h("option", { value: n, selected: n === pinned }, `pin v${n}`)),
  );
}

// The activation as it is, with another version: events, retries and placement kept.
function sameActivation(a, version) {
  return {
    events: a.events_default ? null : a.events, max_retries: a.max_retries,
    version, runtime: a.runtime ?? null, node_selector: a.node_selector ?? null,
  };
}

function activationsPanel(plugin, activations, reload) {
  const message = h("div", { id: "activation-message", "aria-live": "polite" });
  const path = (project) => `/v1/projects/${enc(project)}/plugins/${enc(plugin.name)}`;
  const rows = activations.map((a) => {
    const version = versionSelect(plugin, `Version on ${a.project_id}`, a.pinned_version);
    const runs = a.pinned_version ? `v${a.runs_version} (pinned)` : `v${a.runs_version ?? "—"} (follows current)`;
    return [
      a.project_id, a.events.join(", "), runs, a.max_retries,
      h("span", { class: "row-actions" },
        version,
        h("button", {
          type: "button", "aria-label": `Switch version on ${a.project_id}`,
          onclick: async () => {
            const body = sameActivation(a, version.value ? Number(version.value) : null);
            const done = await act(message, async () => (await sendJson(path(a.project_id), "PUT", body)).json(),
              (r) => `${a.project_id} now runs v${r.runs_version}${r.pinned_version ? " (pinned)" : ""}.`);
            if (done) reload();
          },
        }, "Switch"),
        h("button", {
          type: "button", class: "danger", "aria-label": `Deactivate on ${a.project_id}`,
          onclick: async () => {
            const done = await act(message, () => api(path(a.project_id), { method: "DELETE" }), () => `Deactivated on ${a.project_id}.`);
            if (done) reload();
          },
        }, "Deactivate")),
    ];
  });
  const handlers = plugin.versions.length ? plugin.versions[plugin.versions.length - 1].handlers : [];
  const project = h("input", { id: "activate-project", required: true, size: 16 });
  const boxes = handlers.map((e) => h("input", { type: "checkbox", value: e, checked: true }));
  const extra = h("input", { id: "activate-extra", size: 18, placeholder: "asset.*, …" });
  const pin = versionSelect(plugin, "Version", null);
  const form = h(
    "form",
    {
      class: "filters",
      onsubmit: async (e) => {
        e.preventDefault();
        const picked = boxes.filter((b) => b.checked).map((b) => b.value);
        const more = extra.value.split(",").map((s) => s.trim()).filter(Boolean);
        const defaults = picked.length === handlers.length && !more.length;
        const body = { events: defaults ? null : [...picked, ...more], version: pin.value ? Number(pin.value) : null };
        if (body.events && !body.events.length) return message.replaceChildren(notice(false, "Pick at least one event."));
        const done = await act(message, async () => (await sendJson(path(project.value.trim()), "PUT", body)).json(),
          (r) => `Active on ${r.project_id} for ${r.events.join(", ")} (runs v${r.runs_version}).`);
        if (done) reload();
        return undefined;
      },
    },
    h("label", {}, "Project", project),
    h("fieldset", { class: "scopes" }, h("legend", {}, "Events"), boxes.map((b) => h("label", { class: "check" }, b, b.value))),
    h("label", {}, "Other events (globs)", extra),
    h("label", {}, "Version", pin),
    h("button", { type: "submit" }, "Activate"),
  );
  return h(
    "section",
    { "aria-labelledby": "projects-title" },
    h("div", { class: "section-head" }, h("h2", { id: "projects-title" }, "Projects"), needs("plugins:write")),
    h("div", { id: "activations" }, table(["Project", "Events", "Runs", "Retries", ""], rows, "Not active on any project.")),
    h("h3", {}, "Activate on a project"),
    form,
    message,
  );
}

// ---- delete, after typing the plugin's name
function deletePanel(name) {
  const message = h("div", { "aria-live": "polite" });
  const typed = h("input", { id: "delete-confirm", autocomplete: "off", size: 16 });
  const button = h("button", { type: "submit", class: "danger", disabled: true }, "Delete plugin");
  typed.addEventListener("input", () => { button.disabled = typed.value !== name; });
  return h(
    "section",
    { class: "card danger-zone", "aria-labelledby": "delete-title" },
    h("div", { class: "section-head" }, h("h2", { id: "delete-title" }, "Delete"), needs("plugins:write")),
    h("p", {}, "Deletes every version and activation; past runs and their logs stay."),
    h("form", {
      class: "filters",
      onsubmit: async (e) => {
        e.preventDefault();
        const done = await act(message, () => api(`/v1/plugins/${enc(name)}`, { method: "DELETE" }), () => `${name} deleted.`);
        if (done) location.hash = "#/plugins";
      },
    }, h("label", {}, `Type ${name} to confirm`, typed), button),
    message,
  );
}

// ---- replay a run (from its page)
function replayButton(id) {
  const message = h("span", { "aria-live": "polite" });
  return h("span", { class: "row-actions" }, needs("plugins:write"), h("button", {
    type: "button",
    onclick: async () => {
      const run = await act(message, async () => (await api(`/v1/invocations/${enc(id)}/replay`, { method: "POST" })).json(), (r) => `Replayed as ${r.id.slice(0, 8)}.`);
      if (run) location.hash = `#/runs/${run.id}`;
    },
  }, "Replay"), message);
}
