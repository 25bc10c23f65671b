// Keyboard shortcuts of the agent pages: "/" search, "j"/"k" next and previous row,
// "o" open the row, "r" reply, "?" this list. Keys typed into a field stay the
// field's. Everything here is a shortcut to a link or a field the page already has.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const help = document.getElementById("keys-help");
  const rows = () => Array.from(document.querySelectorAll("[data-row]"));
  const current = () => rows().find((row) => row.contains(document.activeElement));

  function move(step) {
    const all = rows();
    if (!all.length) return;
    const at = all.indexOf(current());
    const next = at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(Math.max(at + step, 0), all.length - 1);
    all[next].querySelector("a").focus();
  }

  function focus(selector) {
    const field = document.querySelector(selector);
    if (field) field.focus();
  }

  const actions = {
    "/": () => focus("input[type=search]"),
    "j": () => move(1),
    "k": () => move(-1),
    "o": () => { const row = current(); if (row) row.querySelector("a").click(); },
    "r": () => focus("form[action$='/reply'] textarea"),
    "?": () => { if (help && !help.open) help.showModal(); },
  };

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    const target = event.target;
    if (target.closest("input, textarea, select, [contenteditable], dialog")) return;
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });
});
