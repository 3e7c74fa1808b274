// One job, live: header and actions, the frame grid coloured by state, the last rendered frame (or the one
// picked in the grid), the latest thumbnails, the tasks, and every verification check with its two crops. A big
// job's grid comes as runs of frames of one state (a cell per run). Each poll names the version the page shows
// (?known=): while the job is unchanged the coordinator answers {unchanged: true}, a few bytes, and nothing is redrawn.
"use strict";

(() => {
  const { h } = FH;
  const root = document.getElementById("job");
  const jobId = root.dataset.jobId;
  const grid = document.getElementById("frame-grid");
  const INTERVAL_MS = 2000;
  // The grid's states in a frame's order, as the coordinator names them (dashboard/job_detail.py GRID_STATES).
  const FRAME_STATES = JSON.parse(root.dataset.frameStates);
  let selected = null; // a frame number picked in the grid, else the last rendered frame is shown
  let latest = null;

  FH.fill(document.getElementById("legend"),
    FRAME_STATES.map((state) => h("span", { class: "legend-item" }, h("span", { class: `swatch st-${state}` }), state)));

  function header(job) {
    FH.fill(document.getElementById("job-state"), FH.pill(job.state));
    document.getElementById("job-name").textContent = job.name;
    root.dataset.state = job.state;
    FH.fill(document.getElementById("job-actions"), FH.actsOnJobs ? FH.jobActions(job, () => poller.now()) : null);
    const facts = [
      ["Owner", job.owner], ["Frames", job.frames], ["Resolution", job.resolution.join(" × ")],
      ["Verification", job.policy], ["Needs", job.needs], ["Priority", job.priority], ["Price", `${job.price} points`],
      ["In escrow", `${job.escrow} points`], ["ETA", FH.eta(job)], ["Submitted", FH.when(job.created_at)],
      ["Finished", FH.when(job.finished_at)],
    ];
    FH.fill(document.getElementById("job-facts"), facts.map(([term, value]) => [h("dt", { text: term }),
      h("dd", { text: value })]));
    FH.fill(document.getElementById("job-progress"), FH.progress(job));
    const error = document.getElementById("job-error");
    error.textContent = job.error || "";
    error.hidden = !job.error;
    // Why frames wait, as the coordinator says (no verifier of another owner online, ...), and what the artist
    // may do meanwhile: take the frames that await checks, marked UNVERIFIED.
    const waiting = document.getElementById("job-waiting");
    const fetch = job.unverified ? ` ${job.unverified} frame(s) await checks: \`framehive download ${job.id} ` +
      "--out DIR --unverified` gets them now, marked UNVERIFIED." : "";
    waiting.textContent = job.waiting ? `Waiting: ${job.waiting}.${fetch}` : "";
    waiting.hidden = !job.waiting;
  }

  function cell(frame) {
    if (frame.last !== undefined && frame.last !== frame.n) return run(frame);
    const by = frame.worker ? ` by ${frame.worker}` : "";
    const how = frame.verified_by ? ` (accepted by ${frame.verified_by})` : "";
    return h("button", {
      type: "button", class: `cell st-${frame.state}`, title: `Frame ${frame.n}: ${frame.state}${by}${how}`,
      dataset: { frame: frame.n, state: frame.state }, onclick: () => pick(frame.n), text: frame.n,
    });
  }

  // Frames n to last, all in one state: one cell, two columns wide so that its range fits.
  function run(frames) {
    const el = h("button", {
      type: "button", class: `cell run st-${frames.state}`,
      title: `Frames ${frames.n}–${frames.last}: ${frames.count} ${frames.state}`,
      dataset: { frame: frames.n, last: frames.last, count: frames.count, state: frames.state },
      onclick: () => pick(frames.n), text: `${frames.n}–${frames.last}`,
    });
    el.style.gridColumn = "span 2";
    return el;
  }

  function pick(number) {
    selected = selected === number ? null : number;
    if (latest) showPreview(latest);
  }

  function showPreview(job) {
    for (const el of grid.children) el.classList.toggle("selected", Number(el.dataset.frame) === selected);
    const frame = selected === null ? null : job.frame_grid.find((f) => f.n === selected);
    const shown = frame ? { ...frame, url: frame.image } : job.last_frame;
    document.getElementById("preview-title").textContent = frame ? `Frame ${frame.n}` : "Last rendered frame";
    const figure = document.getElementById("preview");
    if (!shown || !shown.url) {
      const which = frame && frame.last !== undefined && frame.last !== frame.n
        ? `Frames ${frame.n}–${frame.last} are` : frame ? `Frame ${frame.n} is` : null;
      const why = which ? `${which} ${frame.state}: no image to show.` : "No frame to show yet.";
      if (figure.dataset.src !== why) FH.fill(figure, h("p", { class: "empty", text: why }));
      figure.dataset.src = why;
      return;
    }
    const caption = `Frame ${shown.n} · ${shown.state}${shown.worker ? ` · by ${shown.worker}` : ""}`;
    if (figure.dataset.src !== shown.url) {
      figure.dataset.src = shown.url;
      const image = h("img", { src: shown.url, alt: `Frame ${shown.n}`, id: "preview-image", dataset: { frame: shown.n } });
      image.style.aspectRatio = job.resolution.join(" / ");
      FH.fill(figure, image, h("figcaption"));
    }
    figure.querySelector("figcaption").textContent = caption; // the state changes, the pixels do not
  }

  function thumb(frame) {
    const image = h("img", { src: frame.url, alt: `Frame ${frame.n}` });
    if (latest) image.style.aspectRatio = latest.resolution.join(" / "); // no jump while it loads
    return h("figure", { class: "thumb", dataset: { frame: frame.n }, onclick: () => pick(frame.n) },
      image, h("figcaption", { text: `${frame.n} · ${frame.worker || ""}` }));
  }

  function task(row) {
    const failure = row.last_failure;
    return h("tr", { dataset: { taskId: row.id, state: row.state } },
      h("td", { text: `#${row.id}` }),
      h("td", { text: row.frames }),
      h("td", {}, FH.pill(row.state)),
      h("td", { text: row.worker || "–" }),
      h("td", { text: row.rendered_by.join(", ") || "–" }),
      h("td", { class: "num", text: row.attempts }),
      h("td", { class: "num", text: row.failures }),
      h("td", {}, failure ? h("details", {},
        h("summary", { text: `${failure.reason} on ${failure.worker || "?"}: ${failure.error || "no message"}` }),
        h("pre", { class: "log", text: failure.log_tail || "(no log)" })) : "–"));
  }

  function metric(value) {
    return typeof value === "number" && !Number.isInteger(value) ? value.toPrecision(4) : String(value);
  }

  function crop(url, label, who) {
    return h("figure", {},
      url ? h("img", { src: url, alt: `${label}'s crop`, class: `crop crop-${label.toLowerCase()}` })
        : h("div", { class: "crop pending", text: "not yet" }),
      h("figcaption", {}, h("strong", { text: label }), who ? ` ${who}` : ""));
  }

  function check(row) {
    const [x, y, w, hgt] = row.region;
    const verdict = row.verdict || row.state;
    return h("article", { class: `check verdict-${verdict}`, dataset: { checkId: row.id, verdict } },
      h("header", {}, h("strong", { text: `#${row.id} ${row.kind}` }), ` · frame ${row.frame} · region ${x},${y} ${w}×${hgt}`,
        row.mode ? ` · ${row.mode}` : "", " ", FH.pill(verdict)),
      h("div", { class: "crops" },
        crop(row.images && row.images.renderer, "Renderer", row.renderer),
        crop(row.images && row.images.verifier, "Verifier", row.verifier)),
      row.metrics ? h("dl", { class: "metrics" }, Object.entries(row.metrics).map(([key, value]) =>
        [h("dt", { text: key }), h("dd", { text: metric(value) })])) : null,
      row.reason ? h("p", { class: "reason", text: row.reason }) : null);
  }

  const poller = FH.poll(() => FH.url(`data/jobs/${jobId}`) +
    (latest ? `?known=${encodeURIComponent(latest.version)}` : ""), (job) => {
    if (job.unchanged) return; // the version the page shows (it named it) is still current
    latest = job;
    header(job);
    FH.syncList(grid, job.frame_grid, (frame) => frame.n, cell);
    showPreview(job);
    FH.syncList(document.getElementById("thumbs"), job.thumbnails, (frame) => frame.url, thumb);
    FH.syncList(document.querySelector("#tasks tbody"), job.tasks, (row) => row.id, task);
    FH.syncList(document.getElementById("checks"), job.checks, (row) => row.id, check);
  }, INTERVAL_MS);
})();
