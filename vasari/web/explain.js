/* "Why?" under each task card: the regions of the picture that drove the card's answer.
   Nothing is requested until the visitor clicks: then the picture on show goes to
   POST /api/v1/explain?task=...&format=png (about a second of work on the server; it keeps
   the picture's scores, so the "Why?" of the other cards answers at once) and the
   overlay PNG appears under the card; a second click hides or shows it again.
   Uses `el` of app.js (loaded before this file). */
"use strict";

function whyFailure(response) {
  return {
    503: "The server is busy — try again in a few seconds.",
    413: "That file is too large to explain.",
  }[response.status] || `Could not explain this answer (the server answered ${response.status}).`;
}

async function fetchOverlay(file, task) {
  const form = new FormData();
  form.append("file", file, file.name || "photo.jpg");
  const response = await fetch(`/api/v1/explain?task=${encodeURIComponent(task)}&format=png`, { method: "POST", body: form });
  if (!response.ok) throw new Error(whyFailure(response));
  return URL.createObjectURL(await response.blob());
}

function addWhyLink(card, task, file, unsure) {
  if (!file) return;
  const panelId = `why-${task}`;
  const button = el("button", { type: "button", class: "why-link", "aria-expanded": "false", "aria-controls": panelId },
    unsure ? "Why these guesses?" : "Why?");
  const panel = el("div", { class: "why-panel", id: panelId, hidden: "" });
  let loaded = false;
  button.addEventListener("click", async () => {
    const open = button.getAttribute("aria-expanded") === "true";
    button.setAttribute("aria-expanded", String(!open));
    panel.hidden = open;
    if (open || loaded) return;
    loaded = true;
    panel.replaceChildren(el("p", { class: "small", role: "status" }, "Looking at which parts of the picture mattered…"));
    try {
      const url = await fetchOverlay(file, task);
      panel.replaceChildren(
        el("img", { class: "why-overlay", src: url, alt: `Heat map of the regions that drove the ${task} answer` }),
        el("p", { class: "small" }, "Brighter regions weighed more: hiding them lowers the answer's probability most. "
          + "The dimmed border is outside what the model sees."));
    } catch (err) {
      loaded = false;
      panel.replaceChildren(el("p", { class: "small why-error", role: "alert" }, err.message || String(err)));
    }
  });
  card.append(button, panel);
}
