// Overview: the network at a glance (or the viewer's share of it), and what happened lately.
"use strict";

(() => {
  const { h } = FH;
  const INTERVAL_MS = 3000;

  function tile(stat) {
    return h("div", { class: "tile", dataset: { stat: stat.key } },
      h("div", { class: "value", text: stat.value }), h("div", { class: "name", text: stat.name }),
      stat.detail ? h("div", { class: "detail", text: stat.detail }) : null);
  }

  function tiles(stats) {
    const checks = stats.verification;
    const network = stats.scope === "network";
    return [
      { key: "workers", name: "workers online", value: stats.workers_online.total },
      { key: "fpm", name: "frames verified per minute", value: stats.frames_per_minute,
        detail: `${stats.frames_verified} in the last ${stats.window_minutes} min` },
      { key: "queue", name: "tasks waiting for a worker", value: stats.queue_depth },
      { key: "checks", name: "checks waiting for a verifier", value: stats.checks_waiting.total,
        detail: `${stats.jobs_waiting} job(s) say why they wait` },
      { key: "running", name: "jobs running", value: stats.jobs_running,
        detail: `${stats.jobs_queued} queued · ${stats.jobs_paused} paused` },
      { key: "pass-rate", name: "verification pass rate", value: FH.percent(checks.pass_rate),
        detail: `${checks.passed} passed · ${checks.failed} failed` },
      { key: "points", name: network ? "points in circulation" : "your points (balance + escrow)",
        value: stats.points_in_circulation },
    ];
  }

  function event(row) {
    const link = row.job ? h("a", { href: FH.url(`jobs/${row.job}`), text: `job ${row.job}` }) : null;
    return h("li", { dataset: { kind: row.kind } },
      h("time", { datetime: row.at, text: FH.when(row.at) }),
      h("span", { class: `pill kind-${row.kind}`, text: row.kind.replaceAll("_", " ") }),
      h("span", { text: row.message }), link || h("span"));
  }

  FH.poll(FH.url("data/overview"), (stats) => {
    FH.syncList(document.getElementById("tiles"), tiles(stats), (stat) => stat.key, tile);
    const devices = Object.entries(stats.workers_online.by_device);
    FH.syncList(document.querySelector("#devices tbody"), devices.length ? devices : [["none online", 0]],
      ([device]) => device, ([device, count]) => h("tr", {}, h("td", { text: device }), h("td", { class: "num", text: count })));
    FH.syncList(document.getElementById("events"), stats.recent_events, (row) => row.id, event);
  }, INTERVAL_MS);
})();
