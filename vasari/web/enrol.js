/* Vasari visitor page: the curators' "Add an artist" form (POST /api/v1/artists with the
   operator's admin token). Kept apart from app.js: the visitor flow does not depend on it. */
"use strict";

(function () {
  const MIN_FILES = 5, MAX_FILES = 20;
  const byId = (id) => document.getElementById(id);

  function say(message, kind) {
    const status = byId("enrol-status");
    status.textContent = message;
    status.className = "status" + (kind ? " " + kind : "");
  }

  function failure(response, body) {
    const message = (body && body.error && body.error.message) || response.statusText;
    if (response.status === 401) return "The admin token was not accepted (401): " + message;
    if (response.status === 403) return "Adding artists is switched off on this server (403): " + message;
    return "The artist could not be added (" + response.status + "): " + message;
  }

  async function submit(event) {
    event.preventDefault();
    const files = Array.from(byId("enrol-files").files || []);
    if (files.length < MIN_FILES || files.length > MAX_FILES) {
      say("Choose between " + MIN_FILES + " and " + MAX_FILES + " pictures (" + files.length + " chosen).", "error");
      return;
    }
    const form = new FormData();
    form.append("name", byId("enrol-name").value.trim());
    for (const file of files) form.append("files", file, file.name);
    for (const field of ["years", "school"]) {
      const value = byId("enrol-" + field).value.trim();
      if (value) form.append(field, value);
    }
    const button = byId("enrol-submit");
    button.disabled = true;
    say("Teaching the model " + files.length + " pictures…", "working");
    try {
      const response = await fetch("/api/v1/artists", {
        method: "POST", body: form,
        headers: { Authorization: "Bearer " + byId("enrol-token").value },
      });
      let body = null;
      try { body = await response.json(); } catch (e) { body = null; }
      if (!response.ok) { say(failure(response, body), "error"); return; }
      say("Added " + body.artist + ": the model is now version " + body.version + " (" + body.bundle +
          "); the next picture can be attributed to them.", "done");
      const line = document.getElementById("model-line");
      if (line) line.dataset.version = String(body.version);
    } catch (error) {
      say("The server could not be reached: " + error, "error");
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = byId("enrol-form");
    if (form) form.addEventListener("submit", submit);
  });
})();
