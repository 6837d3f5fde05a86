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
import { colorAt, LineChart, loadPlotly } from "./charts.js";

const plotlyLoaded = loadPlotly(); // parsed while the run's data is fetched

const REFRESH_MS = 3000;
const OUTPUT_TAIL = 200;
const OUTPUT_KEPT = 5000; // lines of a followed program's output kept on the page

let run = null; // the API's run detail
let ref = decodeURIComponent(window.location.pathname.replace(/^\/runs\//, ""));
const charts = new Map(); // chart title -> LineChart
const chartOptions = { xMode: "step", logY: false };
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
    <section class="section">
      <div class="chart-controls">
        <h2 style="margin:0">Charts</h2>
        <label>x axis <select id="x-mode">
          <option value="step">step</option><option value="epoch">epoch</option>
          <option value="time">relative time</option></select></label>
        <label class="check-label"><input type="checkbox" id="log-y"> log y</label>
        <span class="muted small">drag to zoom (finer data is fetched) · double-click to reset</span>
      </div>
      <div id="charts" class="charts"></div>
    </section>
    <section class="section" id="system-section" hidden>
      <h2>System <span class="muted small">sampled CPU, memory, I/O and GPUs (docs/system.md)</span></h2>
      <ul id="system-lines" class="system-lines"></ul>
      <div id="system-charts" class="charts"></div>
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
      ? html`<table class="grid"><thead><tr><th>metric</th><th class="num">last</th><th class="num">step</th>
          <th class="num">min @step</th><th class="num">max @step</th><th class="num">count</th><th>unit</th></tr></thead>
          <tbody>${rows}</tbody></table>`
      : html`<p class="muted">No metrics.</p>`
  }`;
}

// --- charts -----------------------------------------------------------------------------------

/** The keys a chart draws, when they say more than its title. */
const subtitle = (spec) =>
  spec.keys.length === 1 && spec.keys[0] === spec.title ? "" : spec.keys.join(" · ");

/** Create a chart per entry of `run.charts` not shown yet (and update changed key lists).
 * Returns the charts that need loading. */
function drawCharts() {
  return [...drawChartsIn($("#charts"), run.charts, "No metric series logged."),
    ...drawChartsIn($("#system-charts"), run.system_charts || [], "")];
}

/** The System section: the summary lines (util mean / peak...) and its charts. */
function drawSystem() {
  const lines = run.system || [];
  $("#system-section").hidden = !lines.length && !(run.system_charts || []).length;
  if (!changed("system", lines)) return;
  $("#system-lines").innerHTML = html`${lines.map(
    (line) => html`<li><span class="muted">${line.label}:</span> ${line.text}</li>`,
  )}`.text;
}

function drawChartsIn(container, specs, emptyText) {
  if (!specs.length) {
    if (emptyText) container.innerHTML = html`<p class="muted">${emptyText}</p>`.text;
    return [];
  }
  $("p.muted", container)?.remove();
  const fresh = [];
  for (const spec of specs) {
    const existing = charts.get(spec.title);
    if (existing) {
      if (JSON.stringify(existing.keys) !== JSON.stringify(spec.keys)) {
        existing.keys = spec.keys; // a split appeared (valid/loss after train/loss)
        existing.legend = spec.keys.length > 1;
        $(`.chart-card[data-title="${CSS.escape(spec.title)}"] .note-small`, container).textContent = subtitle(spec);
      }
      continue;
    }
    const card = document.createElement("div");
    card.className = "chart-card";
    card.dataset.title = spec.title;
    card.innerHTML = html`<h3>${spec.title}<span class="note-small">${subtitle(spec)}</span></h3><div class="chart"></div>`.text;
    container.append(card);
    const chart = new LineChart($(".chart", card), {
      runs: [ref],
      keys: spec.keys,
      name: (s) => s.key,
      color: (s) => colorAt(chart.keys.indexOf(s.key)),
      startOf: () => run.started_at,
      legend: spec.keys.length > 1,
    });
    chart.options = { ...chartOptions };
    charts.set(spec.title, chart);
    fresh.push(chart);
  }
  return fresh;
}

/** Load new charts, and the others again (for a running run). */
async function refreshCharts() {
  drawCharts();
  await Promise.all([...charts.values()].map((chart) => chart.load()));
}

function bindChartControls() {
  const update = () => {
    chartOptions.xMode = $("#x-mode").value;
    chartOptions.logY = $("#log-y").checked;
    for (const chart of charts.values()) chart.setOptions(chartOptions);
  };
  $("#x-mode").addEventListener("change", update);
  $("#log-y").addEventListener("change", update);
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
  await started; // (read-only hides the edit controls)
  ref = String(run.number); // a rename must not break the page's API calls
  if (window.location.pathname !== runUrl(run.number)) history.replaceState(null, "", runUrl(run.number));
  layout();
  drawAll();
  bindTags();
  bindNotes();
  bindChartControls();
  $("#output-more").addEventListener("click", () => loadOutput(OUTPUT_KEPT));
  const output = loadOutput();
  await plotlyLoaded;
  await Promise.all([...drawCharts().map((chart) => chart.load()), output]);
  if (run.status === "running") refresher = poll(refresh, REFRESH_MS);
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  console.error(error);
  showFatal(error);
});
