// The canned reply picker of the reply box: type to search by name, ArrowUp/ArrowDown
// to choose, Enter (or a click) puts the reply's text at the cursor of the reply box,
// Escape closes the list. The texts come rendered for this ticket in data-text.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const picker = document.querySelector(".canned-picker");
  if (!picker) return;
  const search = picker.querySelector(".canned-search");
  const list = picker.querySelector(".canned-options");
  const options = Array.from(list.querySelectorAll("[role=option]"));
  const box = document.getElementById(picker.dataset.target);
  let active = -1;
  picker.hidden = false;

  const shown = () => options.filter((option) => !option.hidden);

  function highlight(index) {
    const visible = shown();
    active = visible.length ? (index + visible.length) % visible.length : -1;
    visible.forEach((option, n) => option.setAttribute("aria-selected", String(n === active)));
    if (active >= 0) {
      search.setAttribute("aria-activedescendant", visible[active].id);
      visible[active].scrollIntoView({ block: "nearest" });
    } else {
      search.removeAttribute("aria-activedescendant");
    }
  }

  function open() {
    const wanted = search.value.trim().toLowerCase();
    for (const option of options) option.hidden = !option.dataset.name.includes(wanted);
    list.hidden = false;
    search.setAttribute("aria-expanded", "true");
    highlight(0);
  }

  function close() {
    list.hidden = true;
    search.setAttribute("aria-expanded", "false");
    search.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function insert(option) {
    // The reply box keeps its cursor (or selection) while the search has the focus.
    box.setRangeText(option.dataset.text, box.selectionStart, box.selectionEnd, "end");
    search.value = "";
    close();
    box.focus();
  }

  search.addEventListener("input", open);
  search.addEventListener("focus", open);
  search.addEventListener("blur", () => setTimeout(close, 150));
  search.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (list.hidden) open();
      else highlight(active + (event.key === "ArrowDown" ? 1 : -1));
    } else if (event.key === "Enter") {
      event.preventDefault(); // never sends the reply from the search field
      const choice = shown()[active];
      if (!list.hidden && choice) insert(choice);
    } else if (event.key === "Escape" && !list.hidden) {
      event.preventDefault();
      close();
    }
  });
  for (const option of options) {
    // mousedown, not click: it comes before the search field's blur closes the list.
    option.addEventListener("mousedown", (event) => {
      event.preventDefault();
      insert(option);
    });
  }
});
