// Framehive dashboard: shared helpers. Pages are server-rendered shells; each page's script polls a small
// JSON endpoint of the dashboard and re-renders what changed. Every text goes in through textContent (never
// innerHTML), so names and log lines coming from workers and artists are shown, not run.
"use strict";

const FH = (() => {
  const body = document.body;
  const csrf = body.dataset.csrf;
  const isAdmin = body.dataset.admin === "true";
  // Admins act on every job, users on their own (each job row lists what this viewer may do).
  const actsOnJobs = body.dataset.jobActions === "true";
  const base = body.dataset.base; // "/dashboard/"
  // Polling backs off from a page's interval up to this while the coordinator cannot be reached.
  const RETRY_MAX_MS = 15000;

  // --- DOM ------------------------------------------------------------------------------------------

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    el.append(...nodes(children));
    return el;
  }

  function nodes(children) {
    return children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
      .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
  }

  function fill(parent, ...children) {
    parent.replaceChildren(...nodes(children));
  }

  // Keep ``container``'s children in step with ``items``: a child is rebuilt only when its item changed, so
  // images are not reloaded, focus and selection survive, and nothing flickers between polls.
  function syncList(container, items, key, render) {
    const existing = new Map();
    for (const child of container.children) existing.set(child.dataset.key, child);
    let previous = null;
    for (const item of items) {
      const id = String(key(item));
      const signature = JSON.stringify(item);
      let el = existing.get(id);
      if (!el || el.dataset.signature !== signature) {
        const fresh = render(item);
        fresh.dataset.key = id;
        fresh.dataset.signature = signature;
        if (el) el.replaceWith(fresh);
        el = fresh;
      }
      existing.delete(id);
      const want = previous ? previous.nextSibling : container.firstChild;
      if (want !== el) container.insertBefore(el, want);
      previous = el;
    }
    for (const stale of existing.values()) stale.remove();
  }

  // --- formatting -----------------------------------------------------------------------------------

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "–";
  }

  function percent(fraction) {
    return fraction === null || fraction === undefined ? "–" : `${Math.round(fraction * 100)} %`;
  }

  function pill(state, extra) {
    return h("span", { class: `pill state-${state}${extra ? " " + extra : ""}`, text: state });
  }

  // Verified / rendered / total as one bar: verified frames green, rendered and awaiting checks blue.
  function progress(job) {
    const total = Math.max(job.total, 1);
    const verified = h("span", { class: "bar verified" });
    const rendered = h("span", { class: "bar rendered" });
    verified.style.width = `${(100 * job.verified) / total}%`;
    rendered.style.width = `${(100 * (job.rendered - job.verified)) / total}%`;
    return h("div", {
      class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": job.total,
      "aria-valuenow": job.verified,
      title: `${job.verified} verified, ${job.rendered - job.verified} rendered awaiting checks, ${job.total} frames`,
      dataset: { verified: job.verified, rendered: job.rendered, total: job.total },
    }, verified, rendered, h("span", { class: "label", text: `${job.verified} / ${job.rendered} / ${job.total}` }));
  }

  function eta(job) {
    return job.eta === null ? "–" : `≈ ${duration(job.eta)}`;
  }

  function url(path) {
    return base + path;
  }

  // --- talking to the coordinator -------------------------------------------------------------------

  const banner = document.getElementById("banner");
  const failing = new Set();

  function connection(poller, ok, detail) {
    if (ok) failing.delete(poller);
    else failing.add(poller);
    if (failing.size === 0) {
      banner.hidden = true;
      banner.textContent = "";
      return;
    }
    banner.textContent = detail;
    banner.hidden = false;
  }

  function signedOut() {
    location.assign(`${body.dataset.login}?next=${encodeURIComponent(location.pathname + location.search)}`);
  }

  // Fetch ``target`` (a URL, or a function returning one) every ``interval`` ms and hand the JSON to
  // ``render``. While the coordinator is away (a restart, a network cut) a banner says so and the poller
  // retries with exponential backoff; the first answer hides the banner and restores the interval.
  // Polls ``path`` with a filter form's values, and keeps them in the address (so a reload keeps them): the
  // fields start from the address, and each change rewrites it and polls at once.
  function filteredPoll(form, path, render, interval) {
    const params = new URLSearchParams(location.search);
    for (const field of form.elements) {
      if (field.name && params.has(field.name)) field.value = params.get(field.name);
    }
    const query = () => {
      const out = new URLSearchParams();
      for (const field of form.elements) if (field.name && field.value) out.set(field.name, field.value);
      return out.toString();
    };
    const poller = poll(() => `${url(path)}?${query()}`, render, interval);
    const filter = () => {
      history.replaceState(null, "", `?${query()}`);
      poller.now();
    };
    form.addEventListener("input", filter); // typing
    form.addEventListener("change", filter); // a select (some browsers send no input event for it)
    form.addEventListener("submit", (event) => event.preventDefault());
    return poller;
  }

  function poll(target, render, interval) {
    let delay = interval;
    let timer = null;
    let attempt = 0;
    let inFlight = false;
    let again = false;
    const poller = {};

    async function tick() {
      timer = null;
      inFlight = true;
      let data = null;
      try {
        const response = await fetch(typeof target === "function" ? target() : target, {
          headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin",
        });
        if (response.status === 401) return signedOut();
        if (!response.ok) {
          const body = await response.json().catch(() => null);
          throw new Error(body?.error?.message || `HTTP ${response.status}`);
        }
        data = await response.json();
        attempt = 0;
        delay = interval;
        connection(poller, true);
      } catch (err) {
        attempt += 1;
        connection(poller, false,
          `Lost contact with the coordinator (${err.message}); reconnecting, attempt ${attempt}…`);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      } finally {
        inFlight = false;
      }
      if (data !== null) render(data);
      schedule(again ? 0 : delay);
      again = false;
    }

    function schedule(ms) {
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(tick, ms);
    }

    // Poll again at once (after an action, or a filter change).
    poller.now = () => {
      if (inFlight) again = true;
      else schedule(0);
    };
    tick();
    return poller;
  }

  const toastBox = document.getElementById("toast");
  let toastTimer = null;

  function toast(message, kind) {
    toastBox.textContent = message;
    toastBox.className = `toast ${kind || "info"}`;
    toastBox.hidden = false;
    if (toastTimer !== null) clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastBox.hidden = true; }, 6000);
  }

  // POST JSON with the session's CSRF token; errors are shown and rethrown.
  async function post(path, payload) {
    const response = await fetch(url(path), {
      method: "POST", credentials: "same-origin", body: JSON.stringify(payload || {}),
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
    });
    const data = await response.json().catch(() => null);
    if (response.status === 401) signedOut();
    if (!response.ok) {
      const message = data?.error?.message || `HTTP ${response.status}`;
      toast(message, "error");
      throw new Error(message);
    }
    return data;
  }

  // --- actions (jobs: admins and their owners; workers: admins; the server refuses anyone else) -----

  const LABELS = {
    pause: "Pause", resume: "Resume", requeue: "Requeue", priority: "Priority…", cancel: "Cancel",
    suspend: "Suspend", unsuspend: "Unsuspend", unblock: "Un-blocklist",
  };

  // One button per allowed action; ``ask`` may return the request body, or null to do nothing.
  function actionButtons(actions, path, asks, done) {
    return h("div", { class: "actions" }, actions.map((action) => h("button", {
      type: "button", class: `act act-${action}`, dataset: { action }, text: LABELS[action] || action,
      onclick: async (event) => {
        const ask = asks[action];
        const payload = ask ? ask() : {};
        if (payload === null) return;
        event.currentTarget.disabled = true;
        try {
          await post(`${path}/${action}`, payload);
          toast(`${LABELS[action].replace("…", "")}: done`, "ok");
        } catch (err) {
          // shown by post()
        } finally {
          done();
        }
      },
    })));
  }

  function jobActions(job, done) {
    return actionButtons(job.actions, `actions/jobs/${job.id}`, {
      cancel: () => (confirm(`Cancel job ${job.id} (${job.name})? Frames already verified stay.`) ? {} : null),
      requeue: () => (confirm(`Requeue job ${job.id}'s unfinished work?`) ? {} : null),
      priority: () => {
        const answer = prompt(`Priority of job ${job.id} (0–100, higher runs first):`, String(job.priority));
        if (answer === null || answer.trim() === "") return null;
        return { priority: Number(answer) };
      },
    }, done);
  }

  function workerActions(worker, done) {
    return actionButtons(worker.actions, `actions/workers/${worker.id}`, {
      suspend: () => (confirm(`Suspend ${worker.name}? It gets no more work until unsuspended.`) ? {} : null),
      unblock: () => (confirm(`Remove ${worker.name} from every job's blocklist?`) ? {} : null),
    }, done);
  }

  return {
    h, fill, syncList, duration, when, percent, pill, progress, eta, url, poll, filteredPoll, post, toast,
    jobActions,
    workerActions, isAdmin, actsOnJobs,
  };
})();
