// Accounts & ledger: balances and escrows, ledger entries (filtered), claims and their outcomes.
"use strict";

(() => {
  const { h } = FH;
  const form = document.getElementById("ledger-filters");
  const reasons = document.getElementById("reason");
  const INTERVAL_MS = 4000;

  // The reason asked for in the address must be an option before the form takes it from there.
  const asked = new URLSearchParams(location.search).get("reason");
  if (asked) fillReasons([asked]);

  function jobLink(job) {
    return job ? h("a", { href: FH.url(`jobs/${job}`), text: `#${job}` }) : "–";
  }

  // A job the account's agents get no work of (failure accounting): a link where the viewer may see the job.
  function block(row) {
    const job = row.visible ? h("a", { href: FH.url(`jobs/${row.job}`), text: `#${row.job}` })
      : h("span", { text: `#${row.job}` });
    return h("li", { dataset: { job: row.job, reason: row.reason }, title: `since ${FH.when(row.at)}` },
      job, row.job_name ? h("span", { class: "memo", text: ` ${row.job_name} ` }) : " ", FH.pill(row.reason, "reason"));
  }

  function blocks(row) {
    if (!row.blocks_total) return h("td", { class: "blocks", text: "–" });
    const more = row.blocks_total - row.blocks.length;
    return h("td", { class: "blocks" }, h("ul", { class: "blocks" }, ...row.blocks.map(block)),
      more > 0 ? h("span", { class: "memo", text: `and ${more} more` }) : null);
  }

  function account(row) {
    return h("tr", { dataset: { account: row.name, suspended: row.suspended } },
      h("td", {}, h("strong", { text: row.name }), row.trusted ? h("span", { class: "badge", text: "trusted" }) : null,
        row.suspended ? FH.pill("suspended") : null,
        row.suspended_why ? h("div", { class: "memo why", text: row.suspended_why }) : null),
      h("td", { class: "num balance", text: row.balance }),
      h("td", { class: "num", text: row.escrow }),
      h("td", { class: "num", text: row.active_jobs }),
      h("td", { class: "num", text: row.workers }),
      h("td", { class: "num", text: row.claims_rejected }),
      blocks(row),
      h("td", { text: FH.when(row.created_at) }));
  }

  function entry(row) {
    return h("tr", { dataset: { reason: row.reason } },
      h("td", { text: row.id }),
      h("td", { text: FH.when(row.at) }),
      h("td", { title: row.from, text: row.from_label }),
      h("td", { title: row.to, text: row.to_label }),
      h("td", { class: "num", text: row.amount }),
      h("td", {}, FH.pill(row.reason, "reason")),
      h("td", {}, jobLink(row.job)),
      h("td", { class: "memo", text: row.memo + (row.frame !== null ? ` frame ${row.frame}` : "") }));
  }

  function claim(row) {
    return h("tr", { dataset: { state: row.state } },
      h("td", { text: `#${row.id}` }),
      h("td", {}, jobLink(row.job)),
      h("td", { text: row.account || "–" }),
      h("td", { text: row.frames }),
      h("td", { class: "memo", text: row.reason }),
      h("td", {}, FH.pill(row.state)),
      h("td", { class: "memo", text: row.outcome || "–" }));
  }

  function fillReasons(list) {
    const known = new Set([...reasons.options].map((option) => option.value));
    for (const reason of list) if (!known.has(reason)) reasons.append(h("option", { value: reason, text: reason }));
  }

  FH.filteredPoll(form, "data/accounts", (data) => {
    FH.syncList(document.querySelector("#accounts tbody"), data.accounts, (row) => row.id, account);
    fillReasons(data.reasons);
    FH.syncList(document.querySelector("#ledger tbody"), data.ledger, (row) => row.id, entry);
    FH.syncList(document.querySelector("#claims tbody"), data.claims, (row) => row.id, claim);
    document.getElementById("claims-empty").hidden = data.claims.length > 0;
  }, INTERVAL_MS);
})();
