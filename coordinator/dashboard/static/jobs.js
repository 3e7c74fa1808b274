// Jobs: the table, its filters (kept in the address, so a reload keeps them) and the admin's actions.
"use strict";

(() => {
  const { h } = FH;
  const form = document.getElementById("filters");
  const tbody = document.querySelector("#jobs tbody");
  const empty = document.getElementById("jobs-empty");
  const INTERVAL_MS = 2000;

  function row(job) {
    const link = (text) => h("a", { href: FH.url(`jobs/${job.id}`), text });
    return h("tr", { dataset: { jobId: job.id, state: job.state } },
      h("td", {}, link(`#${job.id}`)),
      h("td", {}, link(job.name)),
      h("td", { text: job.owner }),
      h("td", {}, FH.pill(job.state)),
      h("td", {}, FH.progress(job)),
      h("td", { text: FH.eta(job) }),
      h("td", { class: "num", text: job.price }),
      h("td", { class: "num priority", text: job.priority }),
      FH.actsOnJobs ? h("td", {}, FH.jobActions(job, () => poller.now())) : null);
  }

  const poller = FH.filteredPoll(form, "data/jobs", (data) => {
    FH.syncList(tbody, data.jobs, (job) => job.id, row);
    empty.hidden = data.jobs.length > 0;
  }, INTERVAL_MS);
})();
