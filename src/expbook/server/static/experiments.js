// The experiments page (/experiments): every experiment with its run count, what it is about
// and what was concluded, most recently changed first.

import { $, $$, api, experimentUrl, fmtInt, html, showFatal, startPage, timeHtml } from "./common.js";

/** The first `length` characters of markdown, as the text it shows: from the server's
 * rendering (`html`), so its markup goes and the text keeps every character (`batch_size`,
 * `lr * 2`, `run #3`). DOMParser runs no script and loads nothing. */
function excerpt(html, length = 160) {
  if (!html) return "";
  const text = new DOMParser().parseFromString(html, "text/html").body.textContent;
  const plain = text.replace(/\s+/g, " ").trim();
  return plain.length > length ? `${plain.slice(0, length - 1)}…` : plain;
}

function rowHtml(experiment) {
  return html`<tr data-name="${experiment.name.toLowerCase()}">
    <td><a href="${experimentUrl(experiment.name)}"><b>${experiment.name}</b></a></td>
    <td class="num">${fmtInt(experiment.run_count)}</td>
    <td class="excerpt">${excerpt(experiment.html.description) || excerpt(experiment.html.hypothesis)}</td>
    <td class="excerpt">${excerpt(experiment.html.conclusion) || html`<span class="muted">—</span>`}</td>
    <td class="nowrap">${timeHtml(experiment.updated_at)}</td></tr>`;
}

function draw(experiments) {
  const sorted = [...experiments].sort((a, b) => b.updated_at - a.updated_at);
  $("#main").innerHTML = html`
    <div class="page-head">
      <h1>Experiments</h1><span class="muted">${fmtInt(experiments.length)}</span>
      <span class="spacer"></span>
      <input type="search" id="find" placeholder="Find an experiment…" aria-label="find an experiment">
    </div>
    ${
      experiments.length
        ? html`<div class="table-wrap"><table class="list"><thead><tr><th>Experiment</th><th class="num">Runs</th>
            <th>About</th><th>Conclusion</th><th>Updated</th></tr></thead>
            <tbody>${sorted.map(rowHtml)}</tbody></table></div>`
        : html`<p class="empty">No experiments yet. Start runs with <code>experiment="…"</code>
            (or <code>expbook run --experiment …</code>) to group them.</p>`
    }`;
  $("#find").addEventListener("input", (event) => {
    const text = event.target.value.trim().toLowerCase();
    for (const row of $$("tbody tr")) row.hidden = text !== "" && !row.dataset.name.includes(text);
  });
}

async function main() {
  await startPage("experiments");
  draw(await api("/api/experiments"));
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  console.error(error);
  showFatal(error);
});
