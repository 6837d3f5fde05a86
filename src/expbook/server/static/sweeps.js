// The sweeps page (/sweeps): every sweep with its state, search method, objective, how its
// trials ended and its best value so far, newest first. Refreshes while a sweep is running.

import { $, api, experimentUrl, fmtInt, fmtNumber, html, poll, showFatal, startPage, timeHtml } from "./common.js";

const REFRESH_MS = 3000;
const COUNTED = ["finished", "pruned", "failed", "crashed", "running", "queued", "stopped"];

export const sweepUrl = (name) => `/sweeps/${encodeURIComponent(name)}`;

/** A sweep's or trial's state as a badge (the states runs have share their colours). */
export const stateBadge = (state) => html`<span class="badge badge-${state}">${state}</span>`;

/** "12 finished · 3 pruned · 1 failed": the trials' states, in a fixed order. */
export function countsHtml(counts) {
  const parts = COUNTED.filter((state) => counts[state]).map(
    (state) => html`<span class="trial-count trial-${state}">${fmtInt(counts[state])} ${state}</span>`,
  );
  return parts.length ? html`${parts.map((part, i) => (i ? html` · ${part}` : part))}` : html`<span class="muted">none yet</span>`;
}

function objective(sweep) {
  if (!sweep.metric) return html`<span class="muted">—</span>`;
  const arrow = sweep.metric.goal === "maximize" ? "↑" : "↓";
  return html`<code>${sweep.metric.name}</code> <span class="muted" title="${sweep.metric.goal}">${arrow}</span>`;
}

function rowHtml(sweep) {
  const best = sweep.best;
  return html`<tr data-name="${sweep.name.toLowerCase()}">
    <td><a href="${sweepUrl(sweep.name)}"><b>${sweep.name}</b></a></td>
    <td>${stateBadge(sweep.state)}</td>
    <td>${sweep.experiment ? html`<a href="${experimentUrl(sweep.experiment)}">${sweep.experiment}</a>` : html`<span class="muted">—</span>`}</td>
    <td>${sweep.method ?? html`<span class="muted">—</span>`}</td>
    <td>${objective(sweep)}</td>
    <td class="num">${fmtInt(sweep.trial_count)}</td>
    <td class="small">${countsHtml(sweep.counts)}</td>
    <td class="num">${best ? html`${fmtNumber(best.value)} <span class="muted">(trial ${best.number})</span>` : html`<span class="muted">—</span>`}</td>
    <td class="nowrap">${timeHtml(sweep.created_at)}</td></tr>`;
}

function layout() {
  $("#main").innerHTML = html`
    <div class="page-head">
      <h1>Sweeps</h1><span class="muted" id="sweep-count"></span>
      <span class="spacer"></span>
      <input type="search" id="find" placeholder="Find a sweep…" aria-label="find a sweep">
    </div>
    <div id="sweeps-body"></div>`.text;
  $("#find").addEventListener("input", filter);
}

function filter() {
  const text = $("#find").value.trim().toLowerCase();
  for (const row of document.querySelectorAll("#sweeps tbody tr")) {
    row.hidden = text !== "" && !row.dataset.name.includes(text);
  }
}

/** The table (again, on a refresh: the search box keeps its text and focus). */
function draw(sweeps) {
  const sorted = [...sweeps].sort((a, b) => b.created_at - a.created_at);
  $("#sweep-count").textContent = fmtInt(sweeps.length);
  $("#sweeps-body").innerHTML = (
    sweeps.length
      ? html`<div class="table-wrap"><table class="list" id="sweeps"><thead><tr><th>Sweep</th><th>State</th>
          <th>Experiment</th><th>Method</th><th>Objective</th><th class="num">Trials</th><th>Ended as</th>
          <th class="num">Best</th><th>Created</th></tr></thead>
          <tbody>${sorted.map(rowHtml)}</tbody></table></div>`
      : html`<p class="empty">No sweeps yet. Start one with <code>expbook sweep run SPEC.yaml</code>
          (see docs/sweeps.md).</p>`
  ).text;
  filter();
}

async function main() {
  await startPage("sweeps");
  const sweeps = await api("/api/sweeps");
  layout();
  draw(sweeps);
  if (sweeps.some((sweep) => sweep.state === "running")) {
    poll(async () => draw(await api("/api/sweeps")), REFRESH_MS);
  }
  document.body.dataset.ready = "true";
}

if (document.body.dataset.page === "sweeps") {
  main().catch((error) => {
    console.error(error);
    showFatal(error);
  });
}
