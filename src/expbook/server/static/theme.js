// The colour theme, applied before the page paints: this classic script runs from <head>
// (the CSP allows no inline script), so a page never flashes light before turning dark.
// localStorage "expbook.theme" holds "light" or "dark" (the header's toggle, common.js); without
// it the theme is "auto" and style.css follows prefers-color-scheme.
(function applyTheme() {
  let chosen = "auto";
  try {
    const stored = localStorage.getItem("expbook.theme");
    if (stored === "light" || stored === "dark") chosen = stored;
  } catch {
    // storage blocked (a privacy setting): follow the system
  }
  document.documentElement.dataset.theme = chosen;
})();
