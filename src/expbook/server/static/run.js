// The run page (/runs/REF): everything about one run (GET /api/runs/REF), its charts, output
// and files; the name, tags and notes are editable. While the run is running, the page
// refreshes every 3 s: facts, summary, charts (Plotly.react) and the output's new lines.

import {
  $,
  api,
  badge,
  copyText,
  experimentUrl,
  fmtAgo,
  fmtBytes,
  fmtDuration,
  fmtInt,
  fmtNumber,
  fmtParam,
  fmtTime,
  html,
  notify,
  openEditor,
  poll,
  raw,
  readOnly,
  runApi,
  runUrl,
  shellJoin,
  showFatal,
  startPage,
  timeHtml,
  toNumber,
} from "./common.js";
import { board, colorAt, LineChart, loadPlotly, mountChartToolbar, SPLITS } from "./charts.js";

const plotlyLoaded = loadPlotly(); // parsed while the run's data is fetched

const REFRESH_MS = 3000;
const OUTPUT_TAIL = 200;
const OUTPUT_KEPT = 5000; // lines of a followed program's output kept on the page

let run = null; // the API's run detail
let ref = decodeURIComponent(window.location.pathname.replace(/^\/runs\//, ""));
const cards = new Map(); // chart title -> { spec, card, chart: LineChart once drawn }
let toolbar = null; // the charts' toolbar (x axis, smoothing, legend)
let outputCursor = 0;
let refresher = null;
const drawnSignature = new Map(); // section -> JSON of what it shows (redraw only on change)

// --- layout -----------------------------------------------------------------------------------

function layout() {
  $("#main").innerHTML = `
    <div id="run-head"></div>
    <div id="error"></div>
    <div class="cards cards-3">
      <section class="card" id="facts"></section>
      <section class="card" id="source"></section>
      <section class="card" id="host"></section>
    </div>
    <div class="cards cards-2">
      <section class="card" id="params"></section>
      <section class="card" id="notes-card">
        <h2>Tags</h2><div id="tags" class="tags"></div>
        <h2 style="margin-top:14px">Notes</h2><div id="notes"></div>
        <div class="add-note edit">
          <textarea id="new-note" rows="3" placeholder="Add a note (markdown)…"></textarea>
          <div class="editor-actions" style="margin-top:6px">
            <button type="button" id="add-note" class="btn btn-primary">Add note</button>
            <span class="muted small">Ctrl+Enter adds</span>
            <span id="note-error" class="editor-error"></span>
          </div>
        </div>
      </section>
    </div>
    <section class="card section" id="summary"></section>
    <section class="section" id="charts-section">
      <div class="chart-controls">
        <h2 style="margin:0">Charts</h2>
        <div id="chart-toolbar"></div>
        <input type="search" id="chart-search" class="chart-search" placeholder="Search charts by key…" aria-label="search charts by key">
        <span class="muted small">drag to zoom (finer data is fetched) · double-click to reset</span>
      </div>
      <div id="charts" class="panels"></div>
    </section>
    <section class="section panel" id="system-section" data-section="system" hidden>
      <h2 class="panel-head"><button type="button" class="panel-toggle" aria-expanded="true">System</button>
        <span class="count panel-count"></span>
        <span class="muted small">sampled CPU, memory, I/O and GPUs (docs/system.md)</span></h2>
      <div class="panel-body">
        <ul id="system-lines" class="system-lines"></ul>
        <div id="system-charts" class="charts"></div>
      </div>
    </section>
    <section class="card section" id="output-card">
      <h2>Output <span id="output-note" class="count small"></span>
        <span class="card-tools"><button type="button" id="output-more" class="btn btn-small" hidden>Show more</button></span></h2>
      <pre id="output" class="output"></pre>
    </section>
    <section class="card section" id="files"></section>`;
}

// --- header and facts -------------------------------------------------------------------------

function drawHeader() {
  const parent = run.parent_number
    ? html`<span>parent <a href="${runUrl(run.parent_number)}">#${run.parent_number}</a></span>`
    : "";
  const children = run.children.length
    ? html`<span>children ${run.children.map(
        (c, i) => html`${i ? ", " : ""}<a href="${runUrl(c.number)}">#${c.number} ${c.name}</a>${
          c.kind !== "train" ? html` <span class="kind">${c.kind}</span>` : ""
        }`,
      )}</span>`
    : "";
  const experiment = run.experiment
    ? html`<span>experiment <a href="${experimentUrl(run.experiment)}"><b>${run.experiment}</b></a></span>`
    : html`<span>no experiment</span>`;
  $("#run-head").innerHTML = html`
    <div class="run-head">
      <h1><span class="number">#${run.number}</span> <span id="run-name" class="renamable" title="${readOnly() ? "" : "Click to rename"}">${run.name}</span></h1>
      <button type="button" class="pencil edit" id="rename" title="Rename">✎</button>
      ${badge(run.status)}
    </div>
    <div class="run-meta">${experiment}<span>kind <b>${run.kind}</b></span>${parent}${children}</div>`;
  $("#rename").addEventListener("click", renameRun);
  $("#run-name").addEventListener("click", () => {
    if (!readOnly() && !$("#run-name .editor")) renameRun();
  });
  document.title = `#${run.number} ${run.name} · expbook`;
  const recording = run.recording_error
    ? html`<p class="recording-error"><strong>Recording error</strong> (expbook's, not the
        program's): ${run.recording_error}</p>`
    : "";
  $("#error").innerHTML = html`${run.error ? html`<pre class="error-block">${run.error}</pre>` : ""}${recording}`;
}

function renameRun() {
  const target = $("#run-name");
  $("#rename").hidden = true;
  openEditor(target, {
    text: run.name,
    onSave: async (name) => {
      run = await api(runApi(ref), { method: "PATCH", body: { name: name.trim() } });
    },
    onDone: drawHeader,
  });
}

function factsHtml() {
  const seconds = { seconds: true };
  const rows = [
    ["Status", badge(run.status)],
    ["Started", html`${fmtTime(run.started_at, seconds)} <span class="muted">${fmtAgo(run.started_at)}</span>`],
    ["Ended", run.ended_at ? fmtTime(run.ended_at, seconds) : html`<span class="muted">—</span>`],
    ["Duration", fmtDuration(run.duration)],
    ["Exit code", run.exit_code ?? html`<span class="muted">—</span>`],
    run.status === "running" ? ["Heartbeat", fmtAgo(run.heartbeat_at)] : null,
    ["Host", run.hostname ?? "—"],
    ["PID", run.pid ?? "—"],
    ["Directory", run.cwd ? html`<code>${run.cwd}</code>` : "—"],
    ["Run ID", html`<code>${run.id}</code>`],
  ].filter(Boolean);
  return html`<h2>Overview</h2><table class="kv">${rows.map(
    ([label, value]) => html`<tr><th>${label}</th><td>${value}</td></tr>`,
  )}</table>`;
}

function sourceHtml() {
  const command = run.command.length ? shellJoin(run.command) : "";
  const git = run.git || {};
  const remote = git.remote && /^https?:\/\//.test(git.remote)
    ? html`<a href="${git.remote}" target="_blank" rel="noopener">${git.remote}</a>`
    : git.remote ?? "—";
  const hasDiff = "git.diff" in run.attachments;
  return html`<h2>Command</h2>
    ${command
      ? html`<div class="command"><pre class="block" id="command">${command}</pre>
          <button type="button" class="btn btn-small" id="copy-command">Copy</button></div>`
      : html`<p class="muted">No command recorded.</p>`}
    <h2 style="margin-top:12px">Git</h2>
    ${git.commit
      ? html`<table class="kv">
          <tr><th>Commit</th><td class="mono" title="${git.commit}">${git.commit.slice(0, 12)}</td></tr>
          <tr><th>Branch</th><td>${git.branch ?? html`<span class="muted">detached</span>`}</td></tr>
          <tr><th>Remote</th><td>${remote}</td></tr>
          <tr><th>Dirty</th><td>${git.dirty ? html`<span class="badge badge-interrupted">uncommitted changes</span>` : "no"}</td></tr>
        </table>`
      : html`<p class="muted">Not started in a git work tree.</p>`}
    ${hasDiff
      ? html`<details class="diff" id="diff"><summary>git diff (${fmtBytes(run.attachments["git.diff"])})</summary>
          <pre class="block">Loading…</pre></details>`
      : ""}`;
}

function pythonText(host) {
  if (!host.python) return null;
  const other = host.python_implementation && host.python_implementation !== "CPython";
  return other ? `${host.python} (${host.python_implementation})` : host.python;
}

const gpuText = (gpu, i) =>
  `${gpu.index ?? i}: ${gpu.name ?? "GPU"}${gpu.memory_bytes ? ` · ${fmtBytes(gpu.memory_bytes)}` : ""}`;

function hostHtml() {
  const host = run.host || {};
  if (!Object.keys(host).length) return html`<h2>Host</h2><p class="muted">Nothing recorded.</p>`;
  const gpus = host.gpus || [];
  const cpus = host.cpus
    ? `${host.cpus} logical${host.cpus_physical ? ` / ${host.cpus_physical} physical` : ""}`
    : null;
  const rows = [
    ["Hostname", host.hostname ?? run.hostname],
    ["OS", host.os],
    ["Python", pythonText(host)],
    ["Executable", host.python_executable ? html`<code>${host.python_executable}</code>` : null],
    ["CPU", host.cpu],
    ["CPUs", cpus],
    ["RAM", host.ram_bytes ? fmtBytes(host.ram_bytes) : null],
    [
      "GPUs",
      gpus.length
        ? gpus.map((g, i) => html`${i ? html`<br>` : ""}${gpuText(g, i)}`)
        : "none",
    ],
    ["CUDA_VISIBLE_DEVICES", host.cuda_visible_devices],
  ].filter(([, value]) => value !== null && value !== undefined && value !== "");
  return html`<h2>Host</h2>${rows.length
    ? html`<table class="kv">${rows.map(([label, value]) => html`<tr><th>${label}</th><td>${value}</td></tr>`)}
      </table>`
    : html`<p class="muted">Nothing recorded.</p>`}`;
}

function drawFacts() {
  $("#facts").innerHTML = factsHtml();
  if (changed("source", [run.command, run.git, Object.keys(run.attachments)])) {
    $("#source").innerHTML = sourceHtml();
    $("#copy-command")?.addEventListener("click", (e) => copyText($("#command").textContent, e.target));
    $("#diff")?.addEventListener("toggle", loadDiff, { once: true });
  }
  if (changed("host", run.host)) $("#host").innerHTML = hostHtml();
}

/** Whether `value` differs from what `section` last showed (and remember it). */
function changed(section, value) {
  const text = JSON.stringify(value);
  if (drawnSignature.get(section) === text) return false;
  drawnSignature.set(section, text);
  return true;
}

async function loadDiff() {
  const pre = $("#diff pre");
  try {
    const response = await fetch(runApi(ref, "/attachments/git.diff"));
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const text = await response.text();
    pre.innerHTML = text
      .split("\n")
      .map((line) => {
        const cls = line.startsWith("@@")
          ? "diff-hunk"
          : line.startsWith("+") && !line.startsWith("+++")
            ? "diff-add"
            : line.startsWith("-") && !line.startsWith("---")
              ? "diff-del"
              : "";
        return cls ? html`<span class="${cls}">${line}</span>`.text : html`${line}`.text;
      })
      .join("\n");
  } catch (error) {
    pre.textContent = `Could not load the diff: ${error.message}`;
  }
}

// --- params, tags, notes ----------------------------------------------------------------------

function drawParams() {
  if (!changed("params", run.params)) return;
  const keys = Object.keys(run.params).sort();
  $("#params").innerHTML = html`<h2>Params <span class="count">${keys.length}</span></h2>${
    keys.length
      ? html`<table class="kv">${keys.map(
          (key) => html`<tr><th>${key}</th><td class="mono">${fmtParam(run.params[key])}</td></tr>`,
        )}</table>`
      : html`<p class="muted">No params.</p>`
  }`;
}

function drawTags() {
  if ($("#tags input") === document.activeElement) return; // typing a tag
  if (!changed("tags", run.tags)) return;
  const chips = run.tags.map(
    (tag) => html`<span class="tag">${tag}<button type="button" class="edit remove-tag"
      data-tag="${tag}" title="Remove tag ${tag}">×</button></span>`,
  );
  const none = run.tags.length ? "" : html`<span class="muted">No tags.</span>`;
  $("#tags").innerHTML = html`${chips}${none}<input type="text" class="edit" id="new-tag"
    placeholder="+ tag" aria-label="add a tag">`.text;
}

function bindTags() {
  $("#tags").addEventListener("click", async (event) => {
    const button = event.target.closest(".remove-tag");
    if (!button) return;
    const path = runApi(ref, `/tags/${encodeURIComponent(button.dataset.tag)}`);
    try {
      run = await api(path, { method: "DELETE" });
      drawTags();
    } catch (error) {
      notify(`Could not remove the tag: ${error.message}`);
    }
  });
  $("#tags").addEventListener("keydown", async (event) => {
    if (event.target.id !== "new-tag" || event.key !== "Enter") return;
    const tags = event.target.value.split(/[\s,]+/).filter(Boolean);
    if (!tags.length) return;
    try {
      run = await api(runApi(ref, "/tags"), { method: "POST", body: { tags } });
      event.target.blur();
      drawTags();
      $("#new-tag").focus();
    } catch (error) {
      notify(`Could not add the tag: ${error.message}`);
    }
  });
}

function noteHtml(note) {
  return html`<div class="note" data-id="${note.id}">
    <div class="note-head">${timeHtml(note.created_at)}<span class="spacer"></span>
      <button type="button" class="btn btn-link btn-small edit edit-note">edit</button>
      <button type="button" class="btn btn-link btn-small edit delete-note">delete</button></div>
    <div class="markdown note-body">${raw(note.html)}</div></div>`;
}

function drawNotes({ force = false } = {}) {
  if ($("#notes .editor")) return; // editing a note: leave it alone
  if (!changed("notes", run.notes) && !force) return;
  $("#notes").innerHTML = run.notes.length
    ? html`${run.notes.map(noteHtml)}`.text
    : html`<p class="muted">No notes yet.</p>`.text;
}

function bindNotes() {
  const add = async () => {
    const text = $("#new-note").value.trim();
    if (!text) return;
    $("#add-note").disabled = true;
    try {
      run = await api(runApi(ref, "/notes"), { method: "POST", body: { text } });
      $("#new-note").value = "";
      $("#note-error").textContent = "";
      drawNotes();
    } catch (error) {
      $("#note-error").textContent = error.message;
    } finally {
      $("#add-note").disabled = false;
    }
  };
  $("#add-note").addEventListener("click", add);
  $("#new-note").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) add();
  });
  $("#notes").addEventListener("click", async (event) => {
    const box = event.target.closest(".note");
    if (!box) return;
    const id = Number(box.dataset.id);
    const note = run.notes.find((n) => n.id === id);
    if (event.target.closest(".edit-note")) {
      openEditor($(".note-body", box), {
        text: note.text,
        multiline: true,
        onSave: async (text) => {
          run = await api(runApi(ref, `/notes/${id}`), { method: "PUT", body: { text } });
        },
        onDone: () => {
          $(".note-body", box).innerHTML = ""; // close the editor, then draw the notes
          drawNotes({ force: true });
        },
      });
    } else if (event.target.closest(".delete-note")) {
      if (!window.confirm("Delete this note?")) return;
      try {
        run = await api(runApi(ref, `/notes/${id}`), { method: "DELETE" });
        drawNotes();
      } catch (error) {
        notify(`Could not delete the note: ${error.message}`);
      }
    }
  });
}

// --- summary ----------------------------------------------------------------------------------

function valueCell(value) {
  const x = toNumber(value);
  const odd = x !== null && !Number.isFinite(x);
  return html`<td class="num${odd ? " nonfinite" : ""}" title="${value ?? ""}">${fmtNumber(x)}</td>`;
}

const atStep = (step) =>
  step === null || step === undefined ? "" : html` <span class="muted small">@${step}</span>`;

function drawSummary() {
  if (!changed("summary", run.metrics)) return;
  const keys = Object.keys(run.metrics).sort();
  const rows = keys.map((key) => {
    const m = run.metrics[key];
    return html`<tr><th>${key}</th>${valueCell(m.value)}<td class="num muted">${m.step ?? ""}</td>
      <td class="num">${fmtNumber(m.min)}${atStep(m.min_step)}</td>
      <td class="num">${fmtNumber(m.max)}${atStep(m.max_step)}</td>
      <td class="num">${m.count ? fmtInt(m.count) : html`<span class="muted" title="set directly, not logged">set</span>`}</td>
      <td class="muted">${m.unit ?? ""}</td></tr>`;
  });
  const count = `${keys.length} metric${keys.length === 1 ? "" : "s"}`;
  $("#summary").innerHTML = html`<h2>Summary <span class="count">${count}</span></h2>${
    keys.length
      ? html`<div class="summary-scroll"><table class="grid"><thead><tr><th>metric</th><th class="num">last</th><th class="num">step</th>
          <th class="num">min @step</th><th class="num">max @step</th><th class="num">count</th><th>unit</th></tr></thead>
          <tbody>${rows}</tbody></table></div>`
      : html`<p class="muted">No metrics.</p>`
  }`;
}

// --- charts -----------------------------------------------------------------------------------
//
// Charts sit in panels by key prefix: the metrics without one (train/ and valid/ splits of a
// metric share a chart), then one panel per prefix (`layer3/`; `layer0/` ... `layer44/` share a
// `layerN/` panel), then System. Pinned charts (localStorage, per store) come first in their own
// panel; in each panel loss-like, then accuracy-like charts lead. A panel of more than
// PANEL_OPEN_MAX charts starts closed, and a closed panel's charts are drawn when it opens.

const PANEL_OPEN_MAX = 12;
const LOSS_LIKE = /loss|err|mse|mae|rmse|nll|ppl|perplexity/i;
const ACC_LIKE = /acc|f1|auc|precision|recall|score|reward|bleu|iou|map/i;

const panelOpen = new Map(); // panel name -> open, once the user chose
const closedInSearch = new Set(); // panels the user closed during the current search
const splitColors = new Map(); // a key's split ("" for none) -> its colour index on this page
let pins = new Set(); // pinned chart titles
let pinsKey = "expbook.pins";

/** The shared legend's entries, the run's splits in a fixed order (train, then valid...), each
 * with its colour on every chart; keys without a split come after, with no entry. */
function noteSplits() {
  const splits = new Set((run.series_keys || []).map(splitOf));
  const order = (split) => (split ? SPLITS.indexOf(split.toLowerCase()) : SPLITS.length);
  for (const split of [...splits].sort((a, b) => order(a) - order(b) || a.localeCompare(b))) {
    const color = colorOfSplit(split);
    if (split) board.note(split, split, color);
  }
}

/** A key's split ("train", "valid", ...) or "" (as the server groups them). */
function splitOf(key) {
  for (const separator of ["/", "_"]) {
    const at = key.indexOf(separator);
    if (at > 0 && at < key.length - 1 && SPLITS.includes(key.slice(0, at).toLowerCase())) {
      return key.slice(0, at);
    }
  }
  return "";
}

function colorOfSplit(split) {
  if (!splitColors.has(split)) splitColors.set(split, splitColors.size);
  return colorAt(splitColors.get(split));
}

const splitColor = (key) => colorOfSplit(splitOf(key));

/** The keys a chart draws, when they say more than its title. */
const subtitle = (spec) =>
  spec.keys.length === 1 && spec.keys[0] === spec.title ? "" : spec.keys.join(" · ");

/** 0 for loss-like charts, 1 for accuracy-like, 2 for the rest. */
function rank(title) {
  const name = title.split("/").pop();
  return LOSS_LIKE.test(name) ? 0 : ACC_LIKE.test(name) ? 1 : 2;
}

const byRank = (a, b) => rank(a.title) - rank(b.title) || a.title.localeCompare(b.title);

function loadPins(store) {
  pinsKey = `expbook.pins:${store}`;
  try {
    pins = new Set(JSON.parse(window.localStorage.getItem(pinsKey) || "[]"));
  } catch {
    pins = new Set();
  }
}

function savePins() {
  try {
    window.localStorage.setItem(pinsKey, JSON.stringify([...pins].sort()));
  } catch {
    // private browsing: pins last as long as the page
  }
}

/** The chart specs of the run: its metric charts, its system charts, and system keys that no
 * system chart shows (each its own chart). */
function chartSpecs() {
  const system = run.system_charts || [];
  const shown = new Set(system.flatMap((spec) => spec.keys));
  const others = (run.series_keys || [])
    .filter((key) => key.startsWith("system/") && !shown.has(key))
    .map((key) => ({ title: key, keys: [key] }));
  return [
    ...run.charts.map((spec) => ({ ...spec, system: false })),
    ...[...system, ...others].map((spec) => ({ ...spec, system: true })),
  ];
}

/** The panels, in order: [{ name, label, specs }]. */
function panelsOf(specs) {
  const prefixOf = (spec) => (spec.title.includes("/") ? spec.title.split("/")[0] : "");
  const prefixes = new Set(specs.filter((s) => !s.system).map(prefixOf));
  const patterns = new Map(); // "layerN" -> how many prefixes have it
  for (const prefix of prefixes) {
    const pattern = prefix.replace(/\d+/g, "N");
    if (pattern !== prefix) patterns.set(pattern, (patterns.get(pattern) ?? 0) + 1);
  }
  const panelOf = (spec) => {
    if (pins.has(spec.title)) return "pinned";
    if (spec.system) return "system";
    const prefix = prefixOf(spec);
    const pattern = prefix.replace(/\d+/g, "N");
    return (patterns.get(pattern) ?? 0) > 1 ? `${pattern}/` : prefix ? `${prefix}/` : "";
  };
  const groups = new Map();
  for (const spec of specs) {
    const name = panelOf(spec);
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name).push(spec);
  }
  const order = (name) => (name === "pinned" ? 0 : name === "" ? 1 : name === "system" ? 3 : 2);
  const labels = { pinned: "Pinned", "": "Metrics", system: "System" };
  return [...groups]
    .sort(([a], [b]) => order(a) - order(b) || a.localeCompare(b))
    .map(([name, list]) => ({ name, label: labels[name] ?? name, specs: list.sort(byRank) }));
}

function newCard(spec) {
  const card = document.createElement("div");
  card.className = "chart-card";
  card.dataset.title = spec.title;
  card.innerHTML = html`<h3><span class="chart-title">${spec.title}</span><span class="note-small">${subtitle(spec)}</span>
    <span class="spacer"></span><button type="button" class="pin" aria-pressed="false" title="Pin: show first, on every run of this store">pin</button></h3>
    <div class="chart"></div>`.text;
  $(".pin", card).addEventListener("click", () => togglePin(spec.title));
  return card;
}

/** Make cards for new chart specs and update changed key lists (a split appeared). */
function updateCards() {
  for (const spec of chartSpecs()) {
    const entry = cards.get(spec.title);
    if (!entry) {
      cards.set(spec.title, { spec, card: newCard(spec), chart: null });
      continue;
    }
    if (JSON.stringify(entry.spec.keys) !== JSON.stringify(spec.keys)) {
      entry.spec = spec;
      $(".note-small", entry.card).textContent = subtitle(spec);
      if (entry.chart) entry.chart.keys = spec.keys; // valid/loss after train/loss
    }
  }
}

/** The panel element of `name` (System's is on the page; the others are made here). */
function panelElement(name, label) {
  if (name === "system") return $("#system-section");
  let panel = [...$("#charts").children].find((p) => p.dataset.section === name);
  if (!panel) {
    panel = document.createElement("section");
    panel.className = "panel";
    panel.dataset.section = name;
    panel.innerHTML = html`<h3 class="panel-head"><button type="button" class="panel-toggle" aria-expanded="true">${label}</button>
      <span class="count panel-count"></span></h3><div class="panel-body"><div class="charts"></div></div>`.text;
  }
  return panel;
}

const panelCharts = (panel) => (panel.id === "system-section" ? $("#system-charts") : $(".charts", panel));

const searchText = () => $("#chart-search").value.trim().toLowerCase();

const matches = (spec, text) =>
  !text || spec.title.toLowerCase().includes(text) || spec.keys.some((key) => key.toLowerCase().includes(text));

/** Put every card in its panel, in order; open, close and filter the panels; draw the charts of
 * open panels not drawn yet. Returns those charts' loads. */
function arrangePanels() {
  const text = searchText();
  const panels = panelsOf([...cards.values()].map((entry) => entry.spec));
  const keep = new Set();
  const loads = [];
  let previous = null;
  for (const { name, label, specs } of panels) {
    const panel = panelElement(name, label);
    keep.add(panel);
    if (name !== "system") {
      const first = $("#charts").firstElementChild;
      if (previous ? previous.nextElementSibling !== panel : first !== panel) {
        if (previous) previous.after(panel);
        else $("#charts").prepend(panel);
      }
      previous = panel;
    }
    const grid = panelCharts(panel);
    const order = specs.map((spec) => cards.get(spec.title).card);
    if (order.length !== grid.children.length || order.some((card, i) => grid.children[i] !== card)) {
      grid.append(...order); // in order (moving a drawn chart keeps it); only when changed
    }
    let shown = 0;
    for (const spec of specs) {
      const { card } = cards.get(spec.title);
      card.hidden = !matches(spec, text);
      if (!card.hidden) shown += 1;
      $(".pin", card).setAttribute("aria-pressed", String(pins.has(spec.title)));
      $(".pin", card).textContent = pins.has(spec.title) ? "unpin" : "pin";
    }
    const open = text
      ? shown > 0 && !closedInSearch.has(name)
      : (panelOpen.get(name) ?? specs.length <= PANEL_OPEN_MAX);
    const total = `${specs.length} chart${specs.length === 1 ? "" : "s"}`;
    $(".panel-count", panel).textContent = text ? `${shown} of ${total}` : total;
    $(".panel-toggle", panel).setAttribute("aria-expanded", String(open));
    panel.classList.toggle("closed", !open);
    $(".panel-body", panel).hidden = !open;
    const empty = name === "system" && !specs.length && !(run.system || []).length;
    panel.hidden = empty || (Boolean(text) && !shown);
    if (!open) continue;
    for (const spec of specs) {
      const entry = cards.get(spec.title);
      if (entry.card.hidden) continue;
      if (!entry.chart) loads.push(makeChart(entry).load());
      else if (entry.chart.stale) entry.chart.draw(); // changed while hidden
    }
  }
  for (const panel of [...$("#charts").children]) {
    if (panel.classList.contains("panel") && !keep.has(panel)) panel.remove();
  }
  if (!panels.some((p) => p.name === "system")) {
    $("#system-section").hidden = !(run.system || []).length;
  }
  if (!cards.size && !$("#charts > p")) {
    $("#charts").innerHTML = html`<p class="muted">No metric series logged.</p>`.text;
  } else if (cards.size) {
    $("#charts > p")?.remove();
  }
  return loads;
}

function makeChart(entry) {
  const chart = new LineChart($(".chart", entry.card), {
    runs: [ref],
    keys: entry.spec.keys,
    name: (s) => s.key,
    legendOf: (s) => splitOf(s.key) || null, // the shared legend: train, valid, ...
    color: (s) => splitColor(s.key),
    startOf: () => run.started_at,
    legend: false,
  });
  entry.chart = chart;
  return chart;
}

function togglePin(title) {
  if (pins.has(title)) pins.delete(title);
  else pins.add(title);
  savePins();
  Promise.all(arrangePanels()).catch(showChartError);
}

function showChartError(error) {
  console.warn("could not draw a chart:", error);
}

/** The System section's summary lines (util mean / peak...). */
function drawSystem() {
  const lines = run.system || [];
  if (!changed("system", lines)) return;
  $("#system-lines").innerHTML = html`${lines.map(
    (line) => html`<li><span class="muted">${line.label}:</span> ${line.text}</li>`,
  )}`.text;
}

/** Cards for new series, charts for new open panels, and every drawn chart loaded again (for a
 * running run). */
async function refreshCharts() {
  updateCards();
  noteSplits();
  const fresh = arrangePanels();
  const drawn = [...cards.values()].filter((e) => e.chart && !fresh.includes(e.chart));
  toolbar?.setKeys(metricKeys());
  await Promise.all([...fresh, ...drawn.map((entry) => entry.chart.load())]);
}

/** The keys offered as an x axis: the run's metrics (system ones left out). */
const metricKeys = () => (run.series_keys || []).filter((key) => !key.startsWith("system/"));

function bindChartControls() {
  toolbar = mountChartToolbar($("#chart-toolbar"), { keys: metricKeys() });
  $("#chart-search").addEventListener("input", () => {
    closedInSearch.clear();
    Promise.all(arrangePanels()).catch(showChartError);
  });
  const toggle = (event) => {
    const button = event.target.closest(".panel-toggle");
    if (!button) return;
    const name = button.closest(".panel").dataset.section;
    const open = button.getAttribute("aria-expanded") !== "true";
    if (searchText()) {
      if (open) closedInSearch.delete(name);
      else closedInSearch.add(name);
    } else {
      panelOpen.set(name, open);
    }
    Promise.all(arrangePanels()).catch(showChartError);
  };
  $("#charts").addEventListener("click", toggle);
  $("#system-section").addEventListener("click", toggle);
}

// --- output and files -------------------------------------------------------------------------

async function loadOutput(tail = OUTPUT_TAIL) {
  const out = await api(runApi(ref, "/output"), { query: { tail } });
  outputCursor = out.cursor;
  const pre = $("#output");
  if (!out.lines.length) {
    $("#output-card").hidden = run.status !== "running" && !out.truncated;
    pre.textContent = "(no output yet)";
    $("#output-note").textContent = "";
    return;
  }
  $("#output-card").hidden = false;
  pre.textContent = out.lines.join("\n");
  const count = `${fmtInt(out.lines.length)} lines`;
  $("#output-note").textContent = out.truncated ? `last ${count} (earlier output left out)` : count;
  $("#output-more").hidden = !out.truncated || tail >= OUTPUT_KEPT;
  pre.scrollTop = pre.scrollHeight;
}

/** Append what the running program printed since the last look. */
async function followOutput() {
  const out = await api(runApi(ref, "/output"), { query: { tail: 2000, after: outputCursor } });
  if (!out.lines.length) return;
  outputCursor = out.cursor;
  const pre = $("#output");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  const empty = pre.textContent === "(no output yet)";
  const gap = out.truncated ? "\n… (lines left out)" : "";
  const text = (empty ? "" : `${pre.textContent}${gap}\n`) + out.lines.join("\n");
  const lines = text.split("\n");
  pre.textContent = lines.length > OUTPUT_KEPT ? lines.slice(-OUTPUT_KEPT).join("\n") : text;
  $("#output-card").hidden = false;
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

/** An attachment's download address (names may have folders: each part is encoded). */
const attachmentUrl = (name) =>
  runApi(ref, `/attachments/${name.split("/").map(encodeURIComponent).join("/")}`);

/** An artifact's address; `download` asks the browser to save it. */
const artifactUrl = (name, download = false) =>
  runApi(ref, `/artifacts/${name.split("/").map(encodeURIComponent).join("/")}`) +
  (download ? "?download=true" : "");

function artifactRow(a) {
  const preview =
    a.preview === "image"
      ? html`<img class="artifact-image" src="${artifactUrl(a.name)}" alt="${a.name}" loading="lazy">`
      : a.preview === "text"
        ? html`<details class="artifact-text" data-name="${a.name}"><summary>preview</summary><pre></pre></details>`
        : "";
  return html`<tr><td class="name"><a href="${artifactUrl(a.name, true)}" download="${a.name.split("/").pop()}">${a.name}</a>${preview}</td>
    <td class="size">${fmtBytes(a.size)}</td>
    <td class="hash"><code title="sha256 ${a.sha256}">${a.sha256.slice(0, 12)}</code></td></tr>`;
}

async function loadTextPreview(details) {
  const pre = $("pre", details);
  if (!details.open || pre.dataset.loaded) return;
  pre.dataset.loaded = "1";
  try {
    const response = await fetch(artifactUrl(details.dataset.name));
    pre.textContent = response.ok ? await response.text() : `(${response.status})`;
  } catch (error) {
    pre.textContent = `(could not load: ${error.message})`;
  }
}

function drawFiles() {
  if (!changed("files", [run.attachments, run.artifacts])) return;
  const names = Object.keys(run.attachments).sort();
  const kept = run.artifacts || [];
  $("#files").innerHTML = html`<h2>Artifacts <span class="count">${kept.length}</span></h2>${
    kept.length
      ? html`<table class="artifacts"><thead><tr><th>name</th><th>size</th><th>sha256</th></tr></thead>
          <tbody>${kept.map(artifactRow)}</tbody></table>`
      : html`<p class="muted">No artifacts (<code>run.log_artifact(path)</code>, <code>expbook run --artifacts PATTERN</code>).</p>`
  }<h3>Captured with the run</h3>${
    names.length
      ? html`<ul class="files">${names.map(
          (name) => html`<li><a href="${attachmentUrl(name)}" download="${name.split("/").pop()}">${name}</a>
            <span class="size">${fmtBytes(run.attachments[name])}</span></li>`,
        )}</ul>`
      : html`<p class="muted">No attachments.</p>`
  }`;
  for (const details of $("#files").querySelectorAll(".artifact-text")) {
    details.addEventListener("toggle", () => loadTextPreview(details));
  }
}

// --- live refresh -----------------------------------------------------------------------------

function drawAll() {
  if (!$("#run-name .editor")) drawHeader();
  drawFacts();
  drawParams();
  drawTags();
  drawNotes();
  drawSummary();
  drawSystem();
  drawFiles();
}

async function refresh() {
  const wasRunning = run.status === "running";
  run = await api(runApi(ref));
  drawAll();
  await Promise.all([refreshCharts(), followOutput()]);
  if (wasRunning && run.status !== "running") refresher?.stop();
}

async function main() {
  const started = startPage("runs"); // the header's request goes with the run's
  try {
    run = await api(runApi(ref));
  } catch (error) {
    await started;
    showFatal(error);
    return;
  }
  const info = await started; // (read-only hides the edit controls)
  loadPins(info?.store ?? "");
  ref = String(run.number); // a rename must not break the page's API calls
  if (window.location.pathname !== runUrl(run.number)) history.replaceState(null, "", runUrl(run.number) + window.location.search);
  layout();
  drawAll();
  bindTags();
  bindNotes();
  bindChartControls();
  $("#output-more").addEventListener("click", () => loadOutput(OUTPUT_KEPT));
  const output = loadOutput();
  await plotlyLoaded;
  updateCards();
  noteSplits();
  await Promise.all([...arrangePanels(), output]);
  if (run.status === "running") refresher = poll(refresh, REFRESH_MS);
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  console.error(error);
  showFatal(error);
});
