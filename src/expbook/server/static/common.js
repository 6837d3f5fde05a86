// Shared helpers of every page: the JSON API, HTML escaping, number/time formatting, status
// badges, the page header, polling and small inline editors.
//
// Everything the pages show comes from the JSON API (/api/...). Text is always escaped before it
// goes into HTML: build markup with the `html` tagged template, which escapes every
// interpolated value except what is wrapped in `raw()` (markdown arrives rendered and safe as
// the API's `html` fields).

// --- HTML -------------------------------------------------------------------------------------

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text made safe for HTML content and attribute values. */
export function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** Markup that is already safe (the result of `html`, or HTML rendered by the server). */
export class Safe {
  constructor(text) {
    this.text = text;
  }
  toString() {
    return this.text;
  }
}

/** Mark `text` as safe HTML: only for markup we built or the API's rendered `html` fields. */
export const raw = (text) => new Safe(String(text ?? ""));

function interpolate(value) {
  if (value instanceof Safe) return value.text;
  if (Array.isArray(value)) return value.map(interpolate).join("");
  if (value === null || value === undefined || value === false) return "";
  return esc(value);
}

/** Tagged template: html`<td>${name}</td>` escapes `name`; arrays are joined. */
export function html(strings, ...values) {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += interpolate(values[i]) + strings[i + 1];
  return new Safe(out);
}

/** `document.querySelector` with a scope. */
export const $ = (selector, scope = document) => scope.querySelector(selector);
export const $$ = (selector, scope = document) => [...scope.querySelectorAll(selector)];

// --- API --------------------------------------------------------------------------------------

/** An answer of the API with an error status; `detail` is its JSON detail (text or object). */
export class ApiError extends Error {
  constructor(status, detail) {
    const text = typeof detail === "string" ? detail : detail?.message ?? JSON.stringify(detail);
    super(text || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

/** A query string from an object; array values repeat the parameter, empty values are left out. */
export function queryString(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== undefined && item !== null && item !== "" && item !== false) {
        search.append(name, String(item));
      }
    }
  }
  return search.toString();
}

/** Call the JSON API: `api("/api/runs", {query: {...}})`, `api(url, {method: "PATCH", body})`. */
export async function api(path, { method = "GET", query, body } = {}) {
  const qs = query ? queryString(query) : "";
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(qs ? `${path}?${qs}` : path, init);
  const text = await response.text();
  let data = text;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON (a proxy's error page): keep the text
  }
  if (!response.ok) throw new ApiError(response.status, data?.detail ?? data ?? response.statusText);
  return data;
}

/** Path of a run's API resource; `ref` is a number, UUID prefix or name. */
export const runApi = (ref, rest = "") => `/api/runs/${encodeURIComponent(ref)}${rest}`;
export const runUrl = (number) => `/runs/${encodeURIComponent(number)}`;
export const experimentUrl = (name) => `/experiments/${encodeURIComponent(name)}`;
export const experimentApi = (name) => `/api/experiments/${encodeURIComponent(name)}`;

// --- numbers, times, sizes --------------------------------------------------------------------

/** An API number as a JS number: "NaN", "Infinity" and "-Infinity" arrive as strings. */
export function toNumber(value) {
  if (value === null || value === undefined || value === "") return null;
  return typeof value === "number" ? value : Number(value);
}

/** A metric value for a table: 4 significant digits, NaN and infinities spelled out. */
export function fmtNumber(value) {
  const x = toNumber(value);
  if (x === null) return "—";
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "∞" : "−∞";
  if (Number.isInteger(x) && Math.abs(x) < 1e12) return String(x);
  const size = Math.abs(x);
  if (size !== 0 && (size < 1e-4 || size >= 1e6)) {
    return x.toExponential(3).replace(/\.?0+e/, "e").replace("e+", "e");
  }
  return String(Number(x.toPrecision(4)));
}

/** A count with thousands separators: 10,000. */
export const fmtInt = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"));

/** A param value as written: numbers exactly, text as is, lists and objects as JSON. */
export function fmtParam(value) {
  if (value === undefined) return "—";
  if (value === null) return "null";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** Seconds as "394ms", "12.5s", "1m 40s", "2h 03m", "3d 4h". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Number(seconds);
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  const pad = (n) => String(n).padStart(2, "0");
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes}m ${pad(Math.floor(s % 60))}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h ${pad(minutes % 60)}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

const pad2 = (n) => String(n).padStart(2, "0");

/** Unix seconds as local "2026-11-22 14:30" (with seconds when `seconds` is true). */
export function fmtTime(unix, { seconds = false } = {}) {
  if (unix === null || unix === undefined) return "—";
  const d = new Date(unix * 1000);
  const day = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  const time = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  return `${day} ${time}${seconds ? `:${pad2(d.getSeconds())}` : ""}`;
}

/** How long ago: "just now", "5 min ago", "3 h ago", "2 days ago". */
export function fmtAgo(unix) {
  if (unix === null || unix === undefined) return "";
  const s = Date.now() / 1000 - unix;
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  const days = Math.round(s / 86400);
  return `${days} day${days === 1 ? "" : "s"} ago`;
}

/** A time cell: the date, with the relative time as tooltip. */
export const timeHtml = (unix) =>
  html`<time title="${fmtTime(unix, { seconds: true })} · ${fmtAgo(unix)}">${fmtTime(unix)}</time>`;

/** Bytes as "512 B", "3.4 KiB", "1.2 GiB". */
export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let size = Number(n);
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${size} B` : `${size < 10 ? size.toFixed(1) : Math.round(size)} ${units[unit]}`;
}

// --- runs -------------------------------------------------------------------------------------

export const STATUSES = ["running", "finished", "failed", "interrupted", "crashed", "pruned"];

/** A coloured status badge (running pulses). */
export function badge(status) {
  const known = STATUSES.includes(status) ? status : "unknown";
  return html`<span class="badge badge-${known}">${status}</span>`;
}

/** A command line as a POSIX shell would need it typed (single quotes where needed). */
export function shellJoin(args) {
  return args
    .map((arg) => {
      if (arg !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
      return `'${arg.replace(/'/g, `'"'"'`)}'`;
    })
    .join(" ");
}

/** A params./metrics. field of the filter and sort language, quoting keys that need it. */
export function field(prefix, key) {
  if (/^[^\s()<>=!~,'"`]+$/.test(key)) return `${prefix}.${key}`;
  if (!key.includes("`")) return `${prefix}.\`${key}\``;
  return `${prefix}.'${key.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

// --- the page ---------------------------------------------------------------------------------

let infoPromise = null;

/** GET /api/info once per page. */
export function storeInfo() {
  infoPromise ??= api("/api/info").catch(() => ({ read_only: false, store: "" }));
  return infoPromise;
}

/**
 * Set up the page header: the active nav link and the store being served. A read-only server
 * hides every edit control (elements with class "edit", through the body's "read-only" class).
 */
export async function startPage(nav) {
  setupThemeToggle();
  $(`[data-nav="${nav}"]`)?.classList.add("active");
  const info = await storeInfo();
  const target = $("#store-info");
  if (target && info.store) {
    target.innerHTML = html`<span class="store-url" title="expbook ${info.version} · ${fmtInt(
      info.runs,
    )} runs">${info.store}</span>${info.read_only ? html` <span class="pill">read-only</span>` : ""}`;
  }
  document.body.classList.toggle("read-only", Boolean(info.read_only));
  return info;
}

// --- the colour theme -------------------------------------------------------------------------

const THEME_KEY = "expbook.theme";
const THEMES = ["auto", "light", "dark"];
const THEME_TITLES = {
  auto: "Colour theme: auto, as the system's (click for light)",
  light: "Colour theme: light (click for dark)",
  dark: "Colour theme: dark (click for auto)",
};

/** The theme chosen in the header: "auto" (the system's), "light" or "dark". */
export function chosenTheme() {
  const theme = document.documentElement.dataset.theme;
  return THEMES.includes(theme) ? theme : "auto";
}

/** The theme the page shows now: "light" or "dark" (auto resolved through the system's). */
export function shownTheme() {
  const theme = chosenTheme();
  if (theme !== "auto") return theme;
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

/**
 * Show `theme` ("auto", "light" or "dark"), remember it in localStorage and tell the page:
 * `document` gets a "themechange" event (charts draw again with the new colours).
 */
export function setTheme(theme) {
  const chosen = THEMES.includes(theme) ? theme : "auto";
  document.documentElement.dataset.theme = chosen;
  try {
    if (chosen === "auto") localStorage.removeItem(THEME_KEY);
    else localStorage.setItem(THEME_KEY, chosen);
  } catch {
    // storage blocked: the choice lasts until the page is left
  }
  showThemeToggle();
  document.dispatchEvent(new Event("themechange"));
}

function showThemeToggle() {
  const button = $("#theme-toggle");
  if (!button) return;
  const theme = chosenTheme();
  button.textContent = theme[0].toUpperCase() + theme.slice(1);
  button.dataset.theme = theme;
  button.title = THEME_TITLES[theme];
  button.setAttribute("aria-label", THEME_TITLES[theme]);
}

let themeReady = false;

/** The header's toggle (auto → light → dark), and "themechange" when the system's changes. */
function setupThemeToggle() {
  if (themeReady) return;
  themeReady = true;
  if (!document.documentElement.dataset.theme) {
    document.documentElement.dataset.theme = "auto"; // a shell without theme.js
  }
  showThemeToggle();
  $("#theme-toggle")?.addEventListener("click", () => {
    setTheme(THEMES[(THEMES.indexOf(chosenTheme()) + 1) % THEMES.length]);
  });
  window.matchMedia?.("(prefers-color-scheme: dark)").addEventListener?.("change", () => {
    if (chosenTheme() === "auto") document.dispatchEvent(new Event("themechange"));
  });
  window.addEventListener("storage", (event) => {
    if (event.key !== THEME_KEY) return; // chosen in another tab of the UI
    document.documentElement.dataset.theme = event.newValue || "auto";
    showThemeToggle();
    document.dispatchEvent(new Event("themechange"));
  });
}

/** Whether the server refuses edits (known once `startPage` has run). */
export const readOnly = () => document.body.classList.contains("read-only");

/** Replace the page's content with an error message. */
export function showFatal(error) {
  const message = error instanceof ApiError && error.status === 404 ? "Not found" : "Could not load";
  $("#main").innerHTML = html`<div class="alert"><strong>${message}.</strong> ${error.message}</div>`;
}

/** Call `fn` every `ms` milliseconds (after the previous call ended) until `stop()`. */
export function poll(fn, ms) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try {
      if (!document.hidden) await fn();
    } catch (error) {
      console.warn("refresh failed:", error); // a restarting server: try again next time
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** Say that something failed, in a message at the bottom of the window for a few seconds. */
export function notify(message) {
  let box = $("#notice");
  if (!box) {
    box = document.createElement("div");
    box.id = "notice";
    box.setAttribute("role", "alert");
    document.body.append(box);
  }
  box.textContent = message;
  box.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => (box.hidden = true), 6000);
}

/** Copy `text` to the clipboard, saying so on `button` for a moment. */
export async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea"); // insecure contexts: the old way
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  if (button) {
    const before = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = before), 1200);
  }
}

/**
 * Replace `container`'s content with an editor for `text` (an input, or a textarea when
 * `multiline`), with Save and Cancel. Enter (Ctrl+Enter in a textarea) saves, Escape cancels.
 * `onSave(newText)` may throw: the error is shown and the editor stays open. `onDone()` is called
 * after a save or a cancel to draw the container again.
 */
export function openEditor(container, { text = "", multiline = false, placeholder = "", onSave, onDone }) {
  const rows = Math.min(16, Math.max(4, text.split("\n").length + 1));
  const control = multiline
    ? html`<textarea class="editor-text" rows="${rows}" placeholder="${placeholder}">${text}</textarea>`
    : html`<input class="editor-text" type="text" value="${text}" placeholder="${placeholder}">`;
  const hint = multiline ? "Markdown · Ctrl+Enter saves · Esc cancels" : "Enter saves · Esc cancels";
  container.innerHTML = html`<div class="editor">${control}
    <div class="editor-actions">
      <button type="button" class="btn btn-primary editor-save">Save</button>
      <button type="button" class="btn editor-cancel">Cancel</button>
      <span class="muted small">${hint}</span>
      <span class="editor-error"></span>
    </div></div>`;
  const input = $(".editor-text", container);
  const save = async () => {
    $(".editor-save", container).disabled = true;
    try {
      await onSave(input.value);
      onDone();
    } catch (error) {
      $(".editor-error", container).textContent = error.message;
      $(".editor-save", container).disabled = false;
    }
  };
  $(".editor-save", container).addEventListener("click", save);
  $(".editor-cancel", container).addEventListener("click", () => onDone());
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") onDone();
    else if (event.key === "Enter" && (!multiline || event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      save();
    }
  });
  input.focus();
  if (!multiline) input.select();
  return input;
}
