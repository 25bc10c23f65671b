// Live updates on the inbox, the board and a ticket page, from the server's event
// stream (/live). A change makes the page fetch itself again and swap in the parts
// marked data-live (a part the agent is editing stays as it is); new items are
// counted in the title. Text from the server goes in as text only, never as markup.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  const ticket = live.dataset.ticket || "";
  const title = document.title;
  const pending = new Set(); // codes of new tickets
  let messages = 0; // new messages on this ticket
  let unseen = 0;
  let timer = null;

  const query = new URLSearchParams({ since: live.dataset.since });
  if (ticket) query.set("ticket", ticket);
  const source = new EventSource("/live?" + query.toString());

  source.addEventListener("ticket", (event) => {
    const change = JSON.parse(event.data);
    if (ticket && change.message) messages += 1;
    if (!ticket && change.new) pending.add(change.code);
    clearTimeout(timer);
    timer = setTimeout(refresh, 200);
  });
  source.addEventListener("presence", (event) => showPresence(JSON.parse(event.data)));
  source.addEventListener("resync", () => {
    source.close();
    // Too much happened: reload (after drafts.js has saved what is typed).
    if (document.dispatchEvent(new CustomEvent("mailgate:reload", { cancelable: true }))) {
      location.reload();
    }
  });
  window.addEventListener("pagehide", () => source.close());

  for (const kind of ["click", "keydown"]) {
    document.addEventListener(kind, () => {
      unseen = 0;
      document.title = title;
    });
  }

  async function refresh() {
    const counted = pending.size + messages;
    const codes = new Set(pending);
    pending.clear();
    messages = 0;
    const response = await fetch(location.href, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    if (response.url !== location.href && ticket) {
      location.assign(response.url); // merged into another ticket
      return;
    }
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const before = new Set(Array.from(document.querySelectorAll("[data-live] .msg"), (m) => m.id));
    for (const part of document.querySelectorAll("[data-live]")) {
      const replacement = fresh.getElementById(part.id);
      if (!replacement || part.contains(document.activeElement) || part.dataset.dirty) continue;
      part.replaceWith(document.importNode(replacement, true));
    }
    for (const row of document.querySelectorAll("[data-live] [data-code]")) {
      if (codes.has(row.dataset.code)) row.classList.add("live-new");
    }
    for (const message of document.querySelectorAll("[data-live] .msg")) {
      if (!before.has(message.id)) message.classList.add("live-new");
    }
    unseen += counted;
    document.title = unseen ? `(${unseen}) ${title}` : title;
  }

  function showPresence(others) {
    const list = document.getElementById("presence");
    if (!list) return;
    const doing = { reply: "is typing a reply", note: "is writing a note" };
    list.replaceChildren(
      ...others.map((other) => {
        const item = document.createElement("li");
        item.textContent = `${other.name} ${doing[other.typing] || "is viewing"}`;
        if (other.typing) item.className = "typing";
        return item;
      })
    );
  }

  // A form the agent has touched is theirs until they submit it.
  document.addEventListener("change", (event) => {
    const form = event.target.closest("form[data-live]");
    if (form) form.dataset.dirty = "1";
  });
});
