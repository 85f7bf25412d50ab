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
function chartFigure({ id, title, series, data, xValue, options = {} }) {
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
  // The plot follows its box's width (down to a 375-px phone), never wider than the page.
  new ResizeObserver(([entry]) => {
    const width = Math.floor(entry.contentRect.width);
    if (width > 0) plot.setSize({ width, height: PLOT_HEIGHT });
  }).observe(plotBox);
  toggle.addEventListener("click", () => {
    const open = tableBox.hidden;
    if (open) tableBox.replaceChildren(drawnTable(plot, xValue));
    tableBox.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    toggle.textContent = open ? "Hide table" : "Show table";
  });
  return figure;
}

function drawnTable(plot, xValue) {
  const [xs, ...columns] = plot.data;
  const labels = plot.series.slice(1).map((s) => s.label);
  return table(
    [plot.series[0].label || "", ...labels],
    xs.map((x, row) => [xValue(x), ...columns.map((values) => cell(values[row]))]),
    "No data.",
  );
}

function runsByStatusChart(id, title, stats) {
  const xs = stats.buckets.map((b) => Date.parse(b.start) / 1000);
  // The terminal statuses, as the API lists them in every bucket.
  const statuses = Object.keys(stats.buckets[0].runs);
  return chartFigure({
    id,
    title,
    series: [
      { label: "Bucket (UTC)" },
      ...statuses.map((s) => ({ label: s, stroke: STATUS_COLORS[s] || "#6b7280", width: 2, points: { show: true } })),
    ],
    data: [xs, ...statuses.map((s) => stats.buckets.map((b) => b.runs[s]))],
    xValue: utcMinute,
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
      scales: { x: { time: false, range: (_u, lo, hi) => [lo - 0.5, hi + 0.5] } },
      axes: [{ values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? `v${t}` : "")) }, {}],
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

async function overviewView() {
  const stats = await getJson("/v1/stats?bucket=hour");
  show(
    h("h1", {}, "Overview"),
    h("p", { class: "muted" }, `Last 24 hours, ${utcMinute(Date.parse(stats.since) / 1000)} to ${utcMinute(Date.parse(stats.until) / 1000)}.`),
    h("div", { class: "card" }, queueFacts(stats.queue)),
    h("div", { id: "overview-runs" }),
    h("h2", {}, "Plugins with the most failures"),
    h(
      "div",
      { id: "top-failing" },
      table(
        ["Plugin", "Failures", "Runs"],
        stats.top_failing.map((f) => [h("a", { href: `#/plugins/${enc(f.plugin)}` }, f.plugin), f.failures, f.runs]),
        "No failed runs in the last 24 hours.",
      ),
    ),
  );
  // Drawn once its box is on the page, so the plot takes the box's width.
  document.getElementById("overview-runs").replaceWith(runsByStatusChart("chart-runs", "Runs per hour by status", stats));
}

// The plugin page's charts: filled in when the figures arrive.
function pluginCharts(name) {
  const box = h("section", { class: "charts", "aria-label": "Charts" }, h("p", { class: "muted" }, "Loading charts…"));
  getJson(`/v1/stats?bucket=hour&plugin=${enc(name)}`).then(
    (stats) => {
      box.replaceChildren();
      box.append(runsByStatusChart("chart-plugin-runs", "Runs by status, last 24 hours", stats));
      box.append(durationByVersionChart("chart-versions", stats));
    },
    (err) => box.replaceChildren(h("p", { class: "error", role: "alert" }, `Charts: ${err.message}`)),
  );
  return box;
}
