// Workers: who is online with what (paused and why, how its renders are confined), what they are doing, how fast,
// how trusted, what they earned.
"use strict";

(() => {
  const { h } = FH;
  const tbody = document.querySelector("#workers tbody");
  const empty = document.getElementById("workers-empty");
  const INTERVAL_MS = 3000;

  function state(worker) {
    if (worker.suspended) return FH.pill("suspended");
    if (!worker.online) return FH.pill("offline");
    if (!worker.paused) return FH.pill("online");
    return h("span", { class: "paused" }, FH.pill("paused"), " ",
      h("span", { class: "pause-reason", text: worker.pause_reason || "" }));
  }

  // The agent's report from its hello ("Landlock ABI 7", "none: <reason>"): its own word, flagged when unconfined.
  function confinement(worker) {
    return h("td", { class: `confinement${worker.confined ? "" : " unconfined"}`, text: worker.confinement,
      title: worker.confined ? "its renders are confined, as the agent reports" :
        "the agent reports that its renders are NOT confined: a scene could read this owner's files" });
  }

  function threads(count) {
    return count ? ` · ${count} thread${count === 1 ? "" : "s"}` : "";
  }

  function current(work) {
    if (!work) return "idle";
    const link = h("a", { href: FH.url(`jobs/${work.job}`), text: `job ${work.job}` });
    return work.kind === "task" ? ["rendering ", link, ` (frames ${work.frames})`] : ["checking a frame of ", link];
  }

  // Lifts one job's blocklist (the row's Un-blocklist button lifts them all).
  function unblockOne(worker, job) {
    return h("button", {
      type: "button", class: "act act-unblock-job", dataset: { job }, title: `Un-blocklist ${worker.name} for job ${job}`,
      text: "×", onclick: async (event) => {
        event.currentTarget.disabled = true;
        try {
          await FH.post(`actions/workers/${worker.id}/unblock`, { job });
          FH.toast(`${worker.name} may render job ${job} again`, "ok");
        } catch (err) {
          // shown by post()
        } finally {
          poller.now();
        }
      },
    });
  }

  function row(worker) {
    const checks = worker.checks_passed + worker.checks_failed;
    return h("tr", { dataset: { workerId: worker.id, online: worker.online, suspended: worker.suspended,
      paused: worker.paused, confined: worker.confined } },
      h("td", { title: worker.roles.join(", ") }, h("strong", { text: worker.name })),
      h("td", { text: worker.owner }),
      h("td", {}, state(worker)),
      confinement(worker),
      h("td", { text: worker.blender_version || "–" }),
      h("td", { title: worker.devices.join(", "), text: worker.device + threads(worker.threads) }),
      h("td", {}, current(worker.current)),
      h("td", { class: "num", text: worker.frames_per_hour }),
      h("td", { class: "num", text: worker.trust }),
      h("td", { class: "num", text: checks ? `${worker.checks_passed}/${checks} (${FH.percent(worker.pass_rate)})` : "–" }),
      h("td", { class: "num", text: worker.earned }),
      h("td", { class: "blocks" }, worker.blocked_jobs.length
        ? worker.blocked_jobs.map((job) => h("span", { class: "block" },
          h("a", { href: FH.url(`jobs/${job}`), text: `#${job}` }),
          worker.actions.includes("unblock") ? unblockOne(worker, job) : null))
        : "–"),
      FH.isAdmin ? h("td", {}, FH.workerActions(worker, () => poller.now())) : null);
  }

  const poller = FH.poll(FH.url("data/workers"), (data) => {
    FH.syncList(tbody, data.workers, (worker) => worker.id, row);
    empty.hidden = data.workers.length > 0;
  }, INTERVAL_MS);
})();
