// Charts of GET /v1/stats, drawn by uPlot (vendor/uplot). Each chart has a "Show table"
// button that lists the values uPlot was given, read back from the plot itself: the text
// alternative for screen readers, and what the browser tests check.
"use strict";

const STATUS_COLORS = { // a colour per status; the statuses themselves come from the API
  succeeded: "#059669", failed: "#dc2626", timed_out: "#d97706", oom_killed: "#7c3aed",
  crashed: "#be185d", dead: "#111827", canceled: "#9ca3af",
};
const PLOT_HEIGHT = 220;

const utcMinute = (seconds) => `${new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ")} UTC`;
const cell = (v) => (v === null || v === undefined ? "—" : String(v));

function age(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

// A figure with a uPlot chart and its table toggle. `series` starts with the x series;
// `xValue` formats an x for the table.
function chartFigure({ id, title, series, data, xValue, shown, options = {} }) {
  const plotBox = h("div", { class: "plot", role: "img", "aria-label": `${title}: use "Show table" for the values` });
  const tableBox = h("div", { class: "chart-table", id: `${id}-table`, hidden: true });
  const toggle = h("button", { type: "button", class: "toggle", "aria-expanded": "false", "aria-controls": `${id}-table` }, "Show table");
  const figure = h(
    "figure",
    { class: "chart card", id },
    h("figcaption", {}, h("h2", {}, title), toggle),
    plotBox,
    tableBox,
  );
  const plot = new uPlot(
    {
      width: 600,
      height: PLOT_HEIGHT,
      series,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      ...options,
    },
    data,
    plotBox,
  );
  figure.plot = plot; // for the browser tests: the scales it drew
  // The plot follows its box's width (down to a 375-px phone), never wider than the page.
  new ResizeObserver(([entry]) => {
    const width = Math.floor(entry.contentRect.width);
    if (width > 0) plot.setSize({ width, height: PLOT_HEIGHT });
  }).observe(plotBox);
  toggle.addEventListener("click", () => {
    const open = tableBox.hidden;
    if (open) tableBox.replaceChildren(drawnTable(plot, xValue, shown));
    tableBox.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    toggle.textContent = open ? "Hide table" : "Show table";
  });
  return figure;
}

function drawnTable(plot, xValue, shown) {
  // `shown` holds what the reader should see when the plot draws something else (the
  // running sums of stacked bars): the counts, columns in the plot's series order.
  const [xs, ...columns] = shown || plot.data;
  const labels = plot.series.slice(1).map((s) => s.label);
  return table(
    [plot.series[0].label || "", ...labels],
    xs.map((x, row) => [xValue(x), ...columns.map((values) => cell(values[row]))]),
    "No data.",
  );
}

// Runs ended by status, bottom to top: failures sit on top, where the eye lands first.
const STACK_ORDER = ["succeeded", "canceled", "dead", "crashed", "oom_killed", "timed_out", "failed"];
const FAILURE_COLOR = "#dc2626";
const fromZero = (_u, _lo, hi) => [0, hi > 0 ? hi * 1.1 : 1];
// Milliseconds on a y-axis, wide enough for "60 s" and "950 ms".
const MS_AXIS = { size: 64, values: (_u, ticks) => ticks.map((t) => (t >= 1000 ? `${+(t / 1000).toFixed(1)} s` : `${+t.toFixed(1)} ms`)) };
const bucketXs = (stats) => stats.buckets.map((b) => Date.parse(b.start) / 1000);

// Stacked bars: `layers` bottom to top, each { label, color, values }. uPlot has no stacking:
// each layer is drawn as a bar up to its running sum, the top one first, so every lower
// layer paints over the part of the bar below its own segment (opaque fills, no blending).
function stackedBarsChart({ id, title, xs, layers, widthS }) {
  const sums = [];
  layers.forEach((layer, i) => sums.push(layer.values.map((v, j) => (v || 0) + (i ? sums[i - 1][j] : 0))));
  const top = [...layers.keys()].reverse();
  const bars = uPlot.paths.bars({ size: [0.8, 48], align: 0 });
  return chartFigure({
    id,
    title,
    series: [
      { label: "Bucket (UTC)" },
      ...top.map((i) => ({ label: layers[i].label, stroke: layers[i].color, fill: layers[i].color, paths: bars, points: { show: false }, width: 0 })),
    ],
    data: [xs, ...top.map((i) => sums[i])],
    shown: [xs, ...top.map((i) => layers[i].values)],
    xValue: utcMinute,
    options: {
      scales: { x: { range: (_u, lo, hi) => [lo - widthS / 2, hi + widthS / 2] }, y: { range: fromZero } },
    },
  });
}

function runsByStatusChart(id, title, stats) {
  // The terminal statuses, as the API lists them in every bucket.
  const listed = Object.keys(stats.buckets[0].runs);
  const rank = (s) => (STACK_ORDER.includes(s) ? STACK_ORDER.indexOf(s) : 0.5);
  const statuses = [...listed].sort((a, b) => rank(a) - rank(b));
  return stackedBarsChart({
    id,
    title,
    xs: bucketXs(stats),
    widthS: BUCKET_S[stats.bucket],
    layers: statuses.map((s) => ({ label: s, color: STATUS_COLORS[s] || "#6b7280", values: stats.buckets.map((b) => b.runs[s]) })),
  });
}

// p50 and p95 per bucket of a figure the API gives as { p50, p95 } (ms); y from 0.
function percentilesChart(id, title, stats, field) {
  const line = (color) => ({ stroke: color, width: 2, points: { show: true }, spanGaps: false });
  return chartFigure({
    id,
    title,
    series: [{ label: "Bucket (UTC)" }, { label: "p50 (ms)", ...line("#2456c7") }, { label: "p95 (ms)", ...line("#b42318") }],
    data: [bucketXs(stats), stats.buckets.map((b) => b[field].p50), stats.buckets.map((b) => b[field].p95)],
    xValue: utcMinute,
    options: { scales: { y: { range: fromZero } }, axes: [{}, MS_AXIS] },
  });
}

// A total per bucket in two stacked layers: the part that went well, failures on top.
function okAndFailedChart(id, title, stats, { total, failed, ok, okColor, failedLabel }) {
  return stackedBarsChart({
    id,
    title,
    xs: bucketXs(stats),
    widthS: BUCKET_S[stats.bucket],
    layers: [
      { label: ok, color: okColor, values: stats.buckets.map((b) => b[total] - b[failed]) },
      { label: failedLabel, color: FAILURE_COLOR, values: stats.buckets.map((b) => b[failed]) },
    ],
  });
}

function gatewayChart(id, stats) {
  return okAndFailedChart(id, "Platform API calls and errors", stats, {
    total: "gateway_calls", failed: "gateway_errors", ok: "answered", okColor: "#2456c7", failedLabel: "errors",
  });
}

function buildsChart(id, stats) {
  return okAndFailedChart(id, "Builds", stats, {
    total: "builds", failed: "builds_failed", ok: "built", okColor: "#059669", failedLabel: "failed",
  });
}

function durationByVersionChart(id, stats) {
  const versions = stats.versions;
  const bars = (align) => uPlot.paths.bars({ size: [0.35, 60], align });
  return chartFigure({
    id,
    title: "Duration p50 / p95 per version",
    series: [
      { label: "Version" },
      { label: "p50 (ms)", stroke: "#2456c7", fill: "#2456c7aa", paths: bars(-1), points: { show: false } },
      { label: "p95 (ms)", stroke: "#b42318", fill: "#b42318aa", paths: bars(1), points: { show: false } },
    ],
    data: [
      versions.map((v) => v.version),
      versions.map((v) => v.duration_ms.p50),
      versions.map((v) => v.duration_ms.p95),
    ],
    xValue: (x) => `v${x}`,
    options: {
      scales: { x: { time: false, range: (_u, lo, hi) => [lo - 0.5, hi + 0.5] }, y: { range: fromZero } },
      axes: [{ values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? `v${t}` : "")) }, MS_AXIS],
    },
  });
}

function queueFacts(queue) {
  return h(
    "dl",
    { class: "facts", id: "queue" },
    h("dt", {}, "Queued now"), h("dd", {}, String(queue.depth)),
    h("dt", {}, "Oldest queued"), h("dd", {}, queue.oldest_queued_at ? `${age(queue.oldest_queued_age_s)} ago` : "—"),
  );
}

// ---- the time range every chart shows: kept for the session, shared by all pages
const RANGE = "plugin-executor.range";
const BUCKET_S = { minute: 60, hour: 3600, day: 86400 };
const RANGES = {
  "1h": { label: "1 h", bucket: "minute", seconds: 3600 },
  "24h": { label: "24 h", bucket: "hour", seconds: 86400 },
  "7d": { label: "7 d", bucket: "hour", seconds: 7 * 86400 },
  custom: { label: "custom" },
};

function savedRange() {
  try {
    const range = JSON.parse(sessionStorage.getItem(RANGE));
    if (range && RANGES[range.kind]) return range;
  } catch (_err) { /* unreadable: the default */ }
  return { kind: "24h" };
}

// A custom range gets the narrowest bucket that keeps it under the API's 1500 buckets.
function customBucket(seconds) {
  if (seconds <= 6 * 3600) return "minute";
  return seconds <= 31 * 86400 ? "hour" : "day";
}

// The /v1/stats query of a range: bucket, since and until (the 24 h default sends none,
// the API's own default of 24 hourly buckets).
function rangeQuery(range) {
  const params = new URLSearchParams();
  if (range.kind === "custom") {
    const since = new Date(range.since), until = new Date(range.until);
    params.set("bucket", customBucket((until - since) / 1000));
    params.set("since", since.toISOString());
    params.set("until", until.toISOString());
    return params;
  }
  const preset = RANGES[range.kind];
  params.set("bucket", preset.bucket);
  if (range.kind !== "24h") params.set("since", new Date(Date.now() - preset.seconds * 1000).toISOString());
  return params;
}

// datetime-local shows local time; the value is turned into UTC when the query is made.
const localInput = (date) => new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);

function rangePicker(onChange) {
  const range = savedRange();
  const kind = h(
    "select",
    { id: "range", "aria-label": "Time range" },
    Object.entries(RANGES).map(([k, r]) => h("option", { value: k, selected: k === range.kind }, r.label)),
  );
  const now = new Date();
  const since = h("input", { type: "datetime-local", id: "range-since", value: range.since ? localInput(new Date(range.since)) : localInput(new Date(now - 86400000)) });
  const until = h("input", { type: "datetime-local", id: "range-until", value: range.until ? localInput(new Date(range.until)) : localInput(now) });
  const custom = h("span", { class: "custom-range", hidden: range.kind !== "custom" },
    h("label", {}, "From", since), h("label", {}, "To", until), h("button", { type: "submit" }, "Apply"));
  const apply = () => {
    const picked = { kind: kind.value };
    if (kind.value === "custom") {
      if (!since.value || !until.value) return;
      picked.since = new Date(since.value).toISOString();
      picked.until = new Date(until.value).toISOString();
    }
    sessionStorage.setItem(RANGE, JSON.stringify(picked));
    onChange(picked);
  };
  kind.addEventListener("change", () => {
    custom.hidden = kind.value !== "custom";
    if (kind.value !== "custom") apply();
  });
  return h(
    "form",
    { class: "filters range", onsubmit: (e) => { e.preventDefault(); apply(); } },
    h("label", {}, "Time range", kind),
    custom,
  );
}

const rangeText = (stats) => `${utcMinute(Date.parse(stats.since) / 1000)} to ${utcMinute(Date.parse(stats.until) / 1000)}, by the ${stats.bucket}.`;

// Charts are drawn once their box is on the page, so each plot takes the box's width.
function drawInto(box, figures) {
  box.replaceChildren(...figures.map(() => h("div")));
  figures.forEach((make, i) => box.children[i].replaceWith(make()));
}

async function overviewView(signal) {
  const charts = h("section", { id: "overview-charts", class: "charts", "aria-label": "Charts" });
  const span = h("p", { class: "muted", id: "range-text" });
  const queue = h("div", { class: "card" });
  const failing = h("div", { id: "top-failing" });
  const load = async (range) => {
    // The old range's figures go at once: nothing on screen belongs to another range.
    charts.replaceChildren(h("p", { class: "muted" }, "Loading charts…"));
    span.textContent = "";
    let stats;
    try {
      stats = await getJson(`/v1/stats?${rangeQuery(range)}`);
    } catch (err) {
      charts.replaceChildren(h("p", { class: "error", role: "alert" }, `Charts: ${err.message}`));
      return;
    }
    span.textContent = rangeText(stats);
    queue.replaceChildren(queueFacts(stats.queue));
    failing.replaceChildren(
      table(
        ["Plugin", "Failures", "Runs"],
        stats.top_failing.map((f) => [h("a", { href: `#/plugins/${enc(f.plugin)}` }, f.plugin), f.failures, f.runs]),
        "No failed runs in this range.",
      ),
    );
    drawInto(charts, [
      () => runsByStatusChart("chart-runs", `Runs per ${stats.bucket} by status`, stats),
      () => percentilesChart("chart-duration", "Duration", stats, "duration_ms"),
      () => percentilesChart("chart-latency", "Start latency", stats, "start_latency_ms"),
      () => gatewayChart("chart-gateway", stats),
      () => buildsChart("chart-builds", stats),
    ]);
  };
  show(
    signal,
    h("h1", {}, "Overview"),
    rangePicker(load),
    span,
    queue,
    h("h2", {}, "Plugins with the most failures"),
    failing,
    charts,
  );
  await load(savedRange());
}

// The plugin page's charts: filled in when the figures arrive, again for another range.
function pluginCharts(name) {
  const charts = h("div", {}, h("p", { class: "muted" }, "Loading charts…"));
  const span = h("p", { class: "muted", id: "range-text" });
  const load = (range) => {
    charts.replaceChildren(h("p", { class: "muted" }, "Loading charts…"));
    span.textContent = "";
    return getJson(`/v1/stats?${rangeQuery(range)}&plugin=${enc(name)}`).then(
      (stats) => {
        span.textContent = rangeText(stats);
        drawInto(charts, [
          () => runsByStatusChart("chart-plugin-runs", `Runs per ${stats.bucket} by status`, stats),
          () => percentilesChart("chart-plugin-duration", "Duration", stats, "duration_ms"),
          () => (stats.versions.length ? durationByVersionChart("chart-versions", stats) : h("p", { class: "muted" }, "No version ran in this range.")),
        ]);
      },
      (err) => charts.replaceChildren(h("p", { class: "error", role: "alert" }, `Charts: ${err.message}`)),
    );
  };
  load(savedRange());
  return h("section", { class: "charts", "aria-label": "Charts" }, rangePicker(load), span, charts);
}
