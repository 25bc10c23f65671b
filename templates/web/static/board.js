// Drag and drop on the board: dropping a card on a column fills in the card's own
// status form and submits it, exactly as choosing the status and pressing Move does.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  let dragged = null;
  for (const card of document.querySelectorAll(".board-card")) {
    card.addEventListener("dragstart", (event) => {
      dragged = card;
      event.dataTransfer.setData("text/plain", card.dataset.code);
      event.dataTransfer.effectAllowed = "move";
      card.classList.add("dragging");
    });
    card.addEventListener("dragend", () => card.classList.remove("dragging"));
  }
  for (const column of document.querySelectorAll(".board .column")) {
    column.addEventListener("dragover", (event) => {
      event.preventDefault();
      column.classList.add("drop-target");
    });
    column.addEventListener("dragleave", () => column.classList.remove("drop-target"));
    column.addEventListener("drop", (event) => {
      event.preventDefault();
      column.classList.remove("drop-target");
      if (!dragged || dragged.closest(".column") === column) return;
      const form = dragged.querySelector("form.move");
      form.querySelector("select[name=status]").value = column.dataset.status;
      column.appendChild(dragged);
      form.submit();
    });
  }
});
