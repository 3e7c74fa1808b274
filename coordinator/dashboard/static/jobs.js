// Jobs: the table, its filters (kept in the address, so a reload keeps them) and the admin's actions.
"use strict";

(() => {
  const { h } = FH;
  const form = document.getElementById("filters");
  const tbody = document.querySelector("#jobs tbody");
  const empty = document.getElementById("jobs-empty");
  const INTERVAL_MS = 2000;

  const params = new URLSearchParams(location.search);
  for (const field of form.elements) {
    if (field.name && params.has(field.name)) field.value = params.get(field.name);
  }

  function query() {
    const out = new URLSearchParams();
    for (const field of form.elements) if (field.name && field.value) out.set(field.name, field.value);
    return out.toString();
  }

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

  const poller = FH.poll(() => `${FH.url("data/jobs")}?${query()}`, (data) => {
    FH.syncList(tbody, data.jobs, (job) => job.id, row);
    empty.hidden = data.jobs.length > 0;
  }, INTERVAL_MS);

  function filter() {
    history.replaceState(null, "", `?${query()}`);
    poller.now();
  }
  form.addEventListener("input", filter); // typing
  form.addEventListener("change", filter); // a select (some browsers send no input event for it)
  form.addEventListener("submit", (event) => event.preventDefault());
})();
