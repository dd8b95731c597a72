/* Vasari visitor page: pick, drop, paste or photograph a painting; show what the model thinks.
   Talks only to this server (/api/v1/...); no external resources. */
"use strict";

const TASK_ORDER = ["type", "school", "timeframe", "style", "artist"];
const FALLBACK_TASKS = {
  type: { title: "Kind of picture", question: "What kind of picture is it?" },
  school: { title: "School", question: "Which school does it belong to?" },
  timeframe: { title: "Period", question: "When was it painted?" },
  style: { title: "Style", question: "Which movement or style?" },
  artist: { title: "Artist", question: "Who painted it?" },
};
const YEAR_MIN = 1400, YEAR_MAX = 1900;

const $ = (sel) => document.querySelector(sel);
let glossary = { tasks: {}, labels: {} };
let maxBytes = 20 * 1024 * 1024;
let previewUrl = null;
let busy = false;
let currentFile = null; // the picture on show (explain.js sends it again when "Why?" is clicked)

/* ---------- words ---------- */

function labelKey(label) {
  return String(label).toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

function prettyLabel(task, label) {
  const s = String(label);
  if (task === "artist" || task === "timeframe") return s.replace(/_/g, " ");
  const spaced = s.replace(/[_]+/g, " ").replace(/-(?=[a-z])/g, (m, i) => (/\d/.test(s[i - 1]) ? m : " "));
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

function taskInfo(task) {
  return (glossary.tasks && glossary.tasks[task]) || FALLBACK_TASKS[task] ||
    { title: prettyLabel("", task), question: "" };
}

function explainLabel(task, label) {
  const byTask = (glossary.labels && glossary.labels[task]) || {};
  return byTask[labelKey(label)] || "";
}

function percent(score) {
  const p = Math.max(0, Math.min(1, Number(score) || 0)) * 100;
  return p >= 10 || p === 0 ? Math.round(p) : Math.round(p * 10) / 10;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setStatus(message, kind = "") {
  const status = $("#status");
  status.textContent = message;
  status.className = "status" + (kind ? " " + kind : "");
}

/* ---------- bars ---------- */

function barRow(task, label, score, { link = true, isTop = false } = {}) {
  const p = percent(score);
  const name = prettyLabel(task, label);
  const nameNode = link
    ? el("a", { href: `/about#${task}-${labelKey(label)}`, title: explainLabel(task, label) || null }, name)
    : el("span", {}, name);
  const fill = el("div", { class: "bar-fill" + (isTop ? " top" : "") });
  fill.style.width = `${Math.max(p, 0.5)}%`;
  const bar = el("div", {
    class: "bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": p,
    "aria-valuetext": `${p} percent`, "aria-label": `${name}: ${p} percent`,
  }, fill);
  return el("li", { class: "bar-row", "data-label": label, "data-score": score },
    el("span", { class: "bar-label" }, nameNode),
    bar,
    el("span", { class: "bar-value", "aria-hidden": "true" }, `${p}%`));
}

/* ---------- rendering ----------
   `result` is a Prediction of docs/contract.md (generated from vasari/inference/schema.py);
   optional sections (year, novelty, similar, affinity, crop) may be absent. */

function renderTasks(result) {
  const container = $("#tasks");
  container.replaceChildren();
  const predictions = result.predictions || {};
  const verdicts = result.verdict || {};
  const novel = Boolean(result.novelty && result.novelty.novel); // issue #14: no dating/resemblance guesses for a non-painting
  const tasks = TASK_ORDER.filter((t) => predictions[t] && !(novel && ["timeframe", "style", "artist"].includes(t)))
    .concat(Object.keys(predictions).filter((t) => !TASK_ORDER.includes(t)));
  const template = $("#task-template");
  for (const task of tasks) {
    const items = (predictions[task] || []).slice(0, 3);
    const info = taskInfo(task);
    const node = template.content.firstElementChild.cloneNode(true);
    node.dataset.task = task;
    node.id = `task-${task}`;
    const titleId = `task-${task}-title`;
    node.setAttribute("aria-labelledby", titleId);
    const title = node.querySelector(".task-title");
    title.id = titleId;
    title.textContent = info.title;
    node.querySelector(".task-question").textContent = info.question || "";
    const verdict = verdicts[task];
    const verdictNode = node.querySelector(".verdict");
    if (verdict === undefined || verdict === null || verdict === "unknown") {
      verdictNode.classList.add("unsure");
      verdictNode.append(el("strong", {}, "Not sure"),
        el("span", { class: "small" }, " best guesses:"));
      verdictNode.title = glossary.unknown || "";
    } else {
      verdictNode.append(el("span", { class: "small" }, "Most likely "),
        el("strong", {}, prettyLabel(task, verdict)));
    }
    const list = node.querySelector(".bars");
    list.setAttribute("aria-label", `${info.title}: top ${items.length} guesses`);
    items.forEach((item, i) => list.append(barRow(task, item.label, item.score, { isTop: i === 0 && verdict === item.label })));
    node.querySelector(".explain").href = `/about#task-${task}`;
    if (typeof addWhyLink === "function") addWhyLink(node, task, currentFile, verdictNode.classList.contains("unsure"));
    container.append(node);
  }
}

function renderSummary(result) {
  const v = result.verdict || {};
  const known = (t) => v[t] && v[t] !== "unknown";
  const parts = [];
  if (known("type")) parts.push(`a ${prettyLabel("type", v.type).toLowerCase()}`);
  if (known("school")) parts.push(`${prettyLabel("school", v.school)} school`);
  if (known("style")) parts.push(prettyLabel("style", v.style));
  const novel = Boolean(result.novelty && result.novelty.novel);
  if (known("timeframe")) parts.push(`painted ${v.timeframe}`);
  else if (parts.length && !novel && result.year && result.year.estimate) parts.push(`painted around ${Math.round(result.year.estimate)}`);
  let text;
  if (parts.length) {
    text = "Most likely " + parts.join(", ");
    if (known("artist")) text += `, close to ${v.artist}`;
    text += ".";
  } else {
    text = "Vasari is not sure about this picture — it may not be a European painting from 1401–1900, or it is unlike what it has seen.";
  }
  const summary = $("#summary");
  summary.replaceChildren(el("p", {}, text));
  if (result.novelty && result.novelty.novel) {
    summary.append(el("p", { class: "small note unsure-note" },
      "This picture is unlike the paintings Vasari learned from (it may be a photo of something else, a modern work, or a detail), so it answers \u201cnot sure\u201d."));
  }
  if (result.crop && result.crop.found) {
    summary.append(el("p", { class: "small note" }, "Vasari found the painting in your photo and looked only at it (outlined on the left)."));
  }
}

function renderYear(result) {
  const section = $("#year");
  const y = result.year;
  if (!y || y.estimate === null || y.estimate === undefined) { section.hidden = true; return; }
  section.hidden = false;
  const est = Math.round(y.estimate);
  const low = y.low !== undefined && y.low !== null ? Math.round(y.low) : null;
  const high = y.high !== undefined && y.high !== null ? Math.round(y.high) : null;
  const range = low !== null && high !== null ? ` (likely between ${low} and ${high})` : "";
  const rangeText = low !== null && high !== null && low !== high ? range : "";
  $("#year-text").replaceChildren(el("strong", {}, `About ${est}`), rangeText);
  const pos = (year) => ((Math.max(YEAR_MIN, Math.min(YEAR_MAX, year)) - YEAR_MIN) / (YEAR_MAX - YEAR_MIN)) * 100;
  const rangeEl = $("#year-range");
  const lo = pos(low ?? est), hi = pos(high ?? est);
  rangeEl.style.left = `${lo}%`;
  rangeEl.style.width = `${Math.max(hi - lo, 0.8)}%`;
  $("#year-dot").style.left = `${pos(est)}%`;
  $("#year-timeline").setAttribute("aria-label", `Timeline 1400 to 1900: estimate ${est}${range}`);
}

function safeThumb(url) {
  if (typeof url !== "string" || !url) return null;
  if (url.startsWith("data:image/") || (url.startsWith("/") && !url.startsWith("//"))) return url;
  return null; // never load anything from another site
}

function renderSimilar(result) {
  const section = $("#similar");
  const items = Array.isArray(result.similar) ? result.similar : [];
  section.hidden = items.length === 0;
  const list = $("#similar-list");
  list.replaceChildren();
  for (const item of items.slice(0, 8)) {
    const thumb = safeThumb(item.thumbnail);
    const meta = [item.artist, item.year].filter((x) => x !== null && x !== undefined && x !== "").join(", ");
    const title = item.title || "Untitled";
    list.append(el("li", { class: "similar-item" },
      thumb ? el("img", { src: thumb, alt: title, width: 160, height: 120 }) : el("div", { class: "thumb-placeholder", "aria-hidden": "true" }),
      el("div", { class: "similar-text" },
        el("span", { class: "similar-title" }, title),
        meta ? el("span", { class: "small" }, meta) : null,
        el("span", { class: "small" }, `similarity ${percent(item.score)}%`))));
  }
}

function renderAffinity(result) {
  const section = $("#affinity");
  const items = Array.isArray(result.affinity) ? result.affinity : [];
  section.hidden = items.length === 0;
  const list = $("#affinity-list");
  list.replaceChildren();
  for (const item of items.slice(0, 6)) {
    const row = barRow("artist", item.artist, item.score, { link: false });
    const evidence = Array.isArray(item.evidence) ? item.evidence.slice(0, 3) : [];
    if (evidence.length) {
      row.append(el("p", { class: "evidence small" },
        "Because it resembles: " + evidence.map((e) => e.title || "an untitled work").join("; ")));
    }
    list.append(row);
  }
}

function renderCrop(result) {
  const fig = $(".preview");
  fig.querySelectorAll("svg.crop").forEach((n) => n.remove());
  const crop = result.crop;
  const img = $("#preview-img");
  if (!crop || !crop.found || !Array.isArray(crop.box) || crop.box.length < 3) return;
  const draw = () => {
    // the box is in the pixels of the picture the server decoded (crop.image_size); the
    // browser shows the same picture (same EXIF orientation) scaled like object-fit: contain
    const size = Array.isArray(crop.image_size) ? crop.image_size : [img.naturalWidth, img.naturalHeight];
    const [w, h] = size;
    if (!w || !h) return;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "crop");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    svg.setAttribute("aria-hidden", "true");
    const poly = document.createElementNS(ns, "polygon");
    poly.setAttribute("points", crop.box.map((p) => `${p[0]},${p[1]}`).join(" "));
    svg.append(poly);
    fig.querySelector(".preview-frame").append(svg);
  };
  if (img.complete) draw(); else img.addEventListener("load", draw, { once: true });
}

function render(result) {
  renderSummary(result);
  renderYear(result);
  renderTasks(result);
  renderSimilar(result);
  renderAffinity(result);
  renderCrop(result);
  $("#result").hidden = false;
  document.body.classList.add("has-result");
}

/* ---------- upload ---------- */

function showPreview(file) {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  const img = $("#preview-img");
  img.src = previewUrl;
  img.alt = `The picture you chose: ${file.name || "photo"}`;
  $("#preview-caption").textContent = file.name || "";
}

async function analyse(file) {
  if (!file || busy) return;
  if (file.size === 0) { setStatus("That file is empty.", "error"); return; }
  if (file.size > maxBytes) {
    setStatus(`That file is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${Math.round(maxBytes / 1048576)} MB.`, "error");
    return;
  }
  busy = true;
  document.body.classList.add("busy");
  $("#result").hidden = true;
  showPreview(file);
  currentFile = file;
  setStatus("Looking at the painting…", "working");
  const form = new FormData();
  form.append("file", file, file.name || "photo.jpg");
  try {
    const response = await fetch("/api/v1/predict?top_k=3", { method: "POST", body: form });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `The server answered ${response.status}.`;
      const friendly = {
        415: "That does not look like an image. ",
        422: "That image is damaged or too large to decode. ",
        413: "That file is too large. ",
        503: "The model is still starting — try again in a few seconds. ",
      }[response.status] || "";
      setStatus(friendly + (message || ""), "error");
      return;
    }
    render(body);
    setStatus("Done. Here is what Vasari thinks.", "done");
    $("#result").scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (err) {
    setStatus("Could not reach the server. Check your connection and try again.", "error");
  } finally {
    busy = false;
    document.body.classList.remove("busy");
  }
}

function setUpUpload() {
  const zone = $("#dropzone");
  const fileInput = $("#file-input");
  const cameraInput = $("#camera-input");
  for (const input of [fileInput, cameraInput]) {
    input.addEventListener("change", () => {
      if (input.files && input.files[0]) analyse(input.files[0]);
      input.value = "";
    });
  }
  zone.addEventListener("click", (event) => {
    if (event.target.closest("label, input, a, button")) return;
    fileInput.click();
  });
  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "dragend"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const file = event.dataTransfer && event.dataTransfer.files && event.dataTransfer.files[0];
    if (file) analyse(file);
  });
  // A drop outside the zone must not navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
    if (file) analyse(file);
  });
  window.addEventListener("paste", (event) => {
    const items = (event.clipboardData && event.clipboardData.files) || [];
    if (items[0]) analyse(items[0]);
  });
  $("#again").addEventListener("click", () => {
    $("#result").hidden = true;
    document.body.classList.remove("has-result");
    setStatus("");
    window.scrollTo({ top: 0, behavior: "smooth" });
    fileInput.focus();
  });
}

async function loadContext() {
  try {
    const g = await fetch("/static/glossary.json");
    if (g.ok) glossary = await g.json();
  } catch (e) { /* the page works without explanations */ }
  try {
    const m = await fetch("/api/v1/model");
    if (m.ok) {
      const info = await m.json();
      if (info.service && info.service.max_upload_bytes) {
        maxBytes = info.service.max_upload_bytes;
        $("#max-mb").textContent = String(Math.round(maxBytes / 1048576));
      }
      const card = info.card || info.model_card || {};
      const name = card.name || card.title || info.name || "";
      const backbone = (info.backbone && (info.backbone.name || info.backbone)) || "";
      const line = [name && `Model: ${name}`, typeof backbone === "string" && backbone && `backbone ${backbone}`]
        .filter(Boolean).join(" · ");
      $("#model-line").textContent = line;
    }
  } catch (e) { /* still usable */ }
}

document.addEventListener("DOMContentLoaded", () => {
  setUpUpload();
  loadContext();
});
