// Drag and drop on the board: dropping a card on a column fills in the card's own
// status form and submits it, exactly as choosing the status and pressing Move does.
// The handlers sit on the document, so cards a live update swaps in work the same.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  let dragged = null;
  const columnOf = (event) => event.target.closest && event.target.closest(".board .column");
  document.addEventListener("dragstart", (event) => {
    const card = event.target.closest && event.target.closest(".board-card");
    if (!card) return;
    dragged = card;
    event.dataTransfer.setData("text/plain", card.dataset.code);
    event.dataTransfer.effectAllowed = "move";
    card.classList.add("dragging");
  });
  document.addEventListener("dragend", () => dragged && dragged.classList.remove("dragging"));
  document.addEventListener("dragover", (event) => {
    const column = columnOf(event);
    if (!column) return;
    event.preventDefault();
    column.classList.add("drop-target");
  });
  document.addEventListener("dragleave", (event) => {
    const column = columnOf(event);
    if (column) column.classList.remove("drop-target");
  });
  document.addEventListener("drop", (event) => {
    const column = columnOf(event);
    if (!column) return;
    event.preventDefault();
    column.classList.remove("drop-target");
    if (!dragged || dragged.closest(".column") === column) return;
    const form = dragged.querySelector("form.move");
    form.querySelector("select[name=status]").value = column.dataset.status;
    column.appendChild(dragged);
    form.submit();
  });
});
