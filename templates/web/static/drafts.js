// Drafts on a ticket page: the reply and the note are saved on the server as the
// agent types (a second after the last key), so any other action on the page, or a
// reload, shows them again. Leaving the page with unsent text asks first.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  const forms = document.querySelectorAll("form[data-draft]");
  if (!live || !forms.length) return;
  const url = `/tickets/${encodeURIComponent(live.dataset.ticket)}/draft`;
  const csrf = document.querySelector("input[name=csrf]").value;
  const unsaved = new Map(); // kind -> timer of a save still to come
  let leaving = false;

  function save(kind, text, keepalive = false) {
    clearTimeout(unsaved.get(kind));
    unsaved.delete(kind);
    const body = new FormData();
    body.append("csrf", csrf);
    body.append("kind", kind);
    body.append("text", text);
    return fetch(url, { method: "POST", body, keepalive, credentials: "same-origin" });
  }

  function flush(keepalive = false) {
    const saves = [];
    for (const form of forms) {
      if (unsaved.has(form.dataset.draft)) {
        saves.push(save(form.dataset.draft, form.elements.text.value, keepalive));
      }
    }
    return Promise.allSettled(saves);
  }

  for (const form of forms) {
    const kind = form.dataset.draft;
    form.elements.text.addEventListener("input", () => {
      clearTimeout(unsaved.get(kind));
      unsaved.set(kind, setTimeout(() => save(kind, form.elements.text.value), 1000));
    });
  }

  // Sending a reply or note deletes its draft on the server: no save of it may
  // follow. Before any form goes (also one a live update swapped in), the other
  // drafts are saved.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    leaving = true;
    if (form.dataset.draft) {
      clearTimeout(unsaved.get(form.dataset.draft));
      unsaved.delete(form.dataset.draft);
    }
    if (!unsaved.size) return;
    event.preventDefault();
    flush().then(() => form.submit());
  });

  // "Send and set <status>": the button says what it will do.
  const reply = document.querySelector("form[data-draft=reply]");
  const status = reply && reply.elements.status;
  if (status) {
    const button = reply.querySelector("button[type=submit]");
    const show = () => {
      button.textContent = status.value
        ? `${button.dataset.labelStatus} ${status.value}`
        : button.dataset.label;
    };
    status.addEventListener("change", show);
    show();
  }

  document.addEventListener("mailgate:reload", (event) => {
    event.preventDefault();
    leaving = true;
    flush().then(() => location.reload());
  });

  window.addEventListener("beforeunload", (event) => {
    const typed = Array.from(forms).some((form) => form.elements.text.value.trim());
    if (leaving || !typed) return;
    flush(true);
    event.preventDefault();
    event.returnValue = "";
  });
});
