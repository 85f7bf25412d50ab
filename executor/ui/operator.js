// Sign-in and the operator's console: the tenant to act as (sent as X-Tenant), the audit
// trail with filters, and a tenant's API keys (a new key is shown once, then only its name).
"use strict";

const tenantPicker = document.getElementById("tenant-picker");
const tenantSelect = document.getElementById("tenant");
const AUDIT_ACTIONS = [
  "tenant.", "tenant.create", "tenant.update", "tenant.delete", "project.assign", "key.", "key.create", "key.revoke", "plugin.",
  "plugin.upload", "plugin.activate", "plugin.deactivate", "plugin.delete", "plugin.rollback",
  "plugin.limits", "invocation.replay",
];
const SCOPES = ["plugins:read", "plugins:write", "logs:read", "events:write", "admin"];

// Sign-in: the key, and for a tenant key optionally its tenant's name (sent as X-Tenant,
// so the API checks it), needed to manage the tenant's keys.
function signinView(signal) {
  signout.hidden = true;
  document.getElementById("tenant-picker").hidden = true;
  const input = h("input", {
    id: "apikey", type: "password", autocomplete: "off", required: true, autofocus: true,
  });
  const tenant = h("input", { id: "signin-tenant", autocomplete: "off", placeholder: "optional" });
  const message = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    {
      class: "card signin",
      onsubmit: async (event) => {
        event.preventDefault();
        sessionStorage.setItem(KEY, input.value.trim());
        sessionStorage.setItem(TENANT, tenant.value.trim());
        try {
          const landing = await signinCheck();
          await detectOperator();
          location.hash = landing;
        } catch (err) {
          message.textContent = `Sign-in failed: ${err.message}`;
          input.select();
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("label", { for: "apikey" }, "API key"),
    input,
    h("label", { for: "signin-tenant" }, "Tenant"),
    tenant,
    h("p", { class: "muted hint" }, "A tenant key: your tenant's name, to manage its keys. The operator picks one after signing in."),
    h("button", { type: "submit" }, "Sign in"),
    message,
  );
  show(signal, form);
  input.focus();
}

// The page a key lands on: its plugins, or, for a key that may not read them (admin scope
// only), its tenant's keys, which it may manage.
async function signinCheck() {
  try {
    await getJson("/v1/plugins");
    return "#/plugins";
  } catch (err) {
    const tenant = sessionStorage.getItem(TENANT);
    if (err.code !== "missing_scope") throw err;
    if (!tenant) throw new Error(`${err.message}; an admin key: enter your tenant's name to manage its keys`);
    await getJson(`/v1/tenants/${enc(tenant)}/keys`);
    return "#/keys";
  }
}

// Only the operator key may list tenants: that is how the console knows it holds one.
async function detectOperator() {
  try {
    await getJson("/v1/tenants");
    sessionStorage.setItem(OPERATOR, "yes");
    if (!sessionStorage.getItem(TENANT)) sessionStorage.setItem(TENANT, "default");
  } catch (err) {
    if (err.status !== 403) throw err;
    sessionStorage.removeItem(OPERATOR);
  }
}

async function showTenantPicker() {
  if (sessionStorage.getItem(OPERATOR) !== "yes") return;
  const current = sessionStorage.getItem(TENANT) || "default";
  const tenants = await getJson("/v1/tenants").catch(() => [{ name: current }]);
  tenantSelect.replaceChildren(...tenants.map((t) => h("option", { value: t.name, selected: t.name === current }, t.name)));
  tenantPicker.hidden = false;
}

tenantSelect.addEventListener("change", () => {
  sessionStorage.setItem(TENANT, tenantSelect.value);
  route(); // the same page, now for the picked tenant
});

function auditRows(entries) {
  return table(
    ["When", "Tenant", "Actor", "Action", "Target", "Detail"],
    entries.map((e) => [
      when(e.at), e.tenant, e.actor, h("code", {}, e.action), e.target,
      e.detail ? h("code", { class: "detail" }, JSON.stringify(e.detail)) : "",
    ]),
    "No entries match.",
  );
}

async function auditView(signal) {
  const operator = sessionStorage.getItem(OPERATOR) === "yes";
  const field = (name, attrs) => h("input", { name, size: 16, placeholder: "any", ...attrs });
  const action = field("action", { list: "audit-actions" });
  const actor = field("actor", {});
  const target = field("target", {});
  const everyTenant = h("input", { type: "checkbox", name: "all" });
  const box = h("div", { id: "audit" });
  const load = async () => {
    const params = new URLSearchParams({ limit: "200" });
    if (operator && !everyTenant.checked) params.set("tenant", sessionStorage.getItem(TENANT));
    for (const input of [action, actor, target]) if (input.value.trim()) params.set(input.name, input.value.trim());
    try {
      box.replaceChildren(auditRows(await getJson(`/v1/audit?${params}`)));
    } catch (err) {
      box.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
    }
  };
  show(
    signal,
    h("h1", {}, "Audit trail"),
    h("datalist", { id: "audit-actions" }, AUDIT_ACTIONS.map((a) => h("option", { value: a }))),
    h(
      "form",
      { class: "filters", onsubmit: (e) => { e.preventDefault(); load(); } },
      h("label", {}, "Action (or family, e.g. plugin.)", action),
      h("label", {}, "Actor", actor),
      h("label", {}, "Target", target),
      operator ? h("label", { class: "check" }, h("span", {}, "Every tenant"), everyTenant) : null,
      h("button", { type: "submit" }, "Filter"),
    ),
    box,
  );
  await load();
}

function newKeyBox(created) {
  const secret = h("code", { id: "new-key-value" }, created.key);
  return h(
    "div",
    { class: "card new-key", id: "new-key", role: "status" },
    h("p", {}, h("strong", {}, `Key "${created.name}" created. `), "Copy it now: it is shown this once, only its hash is kept."),
    secret,
    " ",
    h("button", { type: "button", onclick: () => navigator.clipboard && navigator.clipboard.writeText(created.key) }, "Copy"),
  );
}

async function keysView(signal) {
  const tenant = sessionStorage.getItem(TENANT);
  if (!tenant) {
    show(
      signal,
      h("h1", {}, "API keys"),
      h("p", {}, "Sign in again with your tenant's name (the Tenant field) to manage its keys."),
    );
    return;
  }
  const base = `/v1/tenants/${enc(tenant)}/keys`;
  const list = h("div", { id: "keys" });
  const created = h("div", { "aria-live": "polite" });
  const message = h("p", { class: "error", role: "alert" });
  const load = async () => {
    const keys = await getJson(base);
    list.replaceChildren(
      table(
        ["Name", "Id", "Scopes", "Last used", "Created", "Expires", "State", ""],
        keys.map((k) => [
          k.name, h("code", {}, k.id), k.scopes.join(", "), k.last_used_at ? when(k.last_used_at) : "never",
          when(k.created_at), when(k.expires_at),
          k.revoked_at ? badge("revoked") : badge("active"),
          k.revoked_at ? "" : h("button", { type: "button", "aria-label": `Revoke key ${k.name}`, onclick: () => revoke(k) }, "Revoke"),
        ]),
        "No keys yet.",
      ),
    );
  };
  const revoke = async (key) => {
    try {
      await api(`${base}/${enc(key.id)}`, { method: "DELETE" });
      await load();
    } catch (err) {
      message.textContent = `Revoke failed: ${err.message}`;
    }
  };
  const name = h("input", { name: "name", required: true, maxlength: 100, size: 18 });
  const days = h("input", { name: "expires", type: "number", min: "0.01", max: "3650", step: "any", placeholder: "never", size: 8 });
  const scopes = SCOPES.map((s) => h("input", { type: "checkbox", value: s }));
  const form = h(
    "form",
    {
      class: "filters card",
      onsubmit: async (e) => {
        e.preventDefault();
        const body = { name: name.value.trim(), scopes: scopes.filter((c) => c.checked).map((c) => c.value) };
        if (days.value) body.expires_in_days = Number(days.value);
        try {
          const response = await api(base, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
          created.replaceChildren(newKeyBox(await response.json()));
          message.textContent = "";
          form.reset();
          await load();
        } catch (err) {
          message.textContent = `Key not created: ${err.message}`;
        }
      },
    },
    h("label", {}, "Name", name),
    h("fieldset", { class: "scopes" }, h("legend", {}, "Scopes"), scopes.map((c) => h("label", { class: "check" }, c, c.value))),
    h("label", {}, "Expires in days", days),
    h("button", { type: "submit" }, "Create key"),
  );
  show(signal, h("h1", {}, `API keys of ${tenant}`), h("h2", {}, "New key"), form, message, created, h("h2", {}, "Keys"), list);
  await load();
}
