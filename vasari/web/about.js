/* Explanation page: each task and its classes in plain words, and the model card. */
"use strict";

const ORDER = ["type", "school", "timeframe", "style", "artist", "year"];
const $ = (sel) => document.querySelector(sel);

function key(label) {
  return String(label).toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}
function pretty(task, label) {
  const s = String(label);
  if (task === "artist" || task === "timeframe") return s.replace(/_/g, " ");
  const spaced = s.replace(/_+/g, " ").replace(/-(?=[a-z])/g, (m, i) => (/\d/.test(s[i - 1]) ? m : " "));
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

function labelsOf(info, task, glossary) {
  const fromModel = info && info.labels && Array.isArray(info.labels[task]) ? info.labels[task] : null;
  if (fromModel) return { labels: fromModel, fromModel: true };
  const fromGlossary = Object.keys((glossary.labels || {})[task] || {});
  return { labels: fromGlossary, fromModel: false };
}

function renderGlossary(glossary, info) {
  const root = $("#glossary");
  const toc = $("#toc");
  const modelTasks = info && Array.isArray(info.tasks) ? info.tasks : null;
  const tasks = ORDER.filter((t) => !modelTasks || modelTasks.includes(t) || t === "year" || !info)
    .concat((modelTasks || []).filter((t) => !ORDER.includes(t)));
  for (const task of tasks) {
    const t = (glossary.tasks || {})[task] || { title: pretty("", task), explain: "" };
    toc.append(el("li", {}, el("a", { href: `#task-${task}` }, t.title)));
    const section = el("section", { id: `task-${task}`, class: "glossary-task", "aria-labelledby": `task-${task}-title` },
      el("h2", { id: `task-${task}-title` }, t.title),
      t.question ? el("p", {}, el("em", {}, t.question)) : null,
      el("p", {}, t.explain || ""));
    if (task !== "year") {
      const { labels, fromModel } = labelsOf(info, task, glossary);
      if (labels.length) {
        section.append(el("p", { class: "small" }, fromModel
          ? `The model answers with one of these ${labels.length} ${labels.length === 1 ? "class" : "classes"}:`
          : "Classes Vasari knows about:"));
        const dl = el("dl", { class: "classes" });
        const words = (glossary.labels || {})[task] || {};
        for (const label of labels) {
          const explanation = words[key(label)] ||
            (task === "artist" ? "One of the painters the model has seen enough works by." : "");
          dl.append(el("dt", { id: `${task}-${key(label)}` }, pretty(task, label)), el("dd", {}, explanation || "—"));
        }
        section.append(dl);
      }
    }
    root.append(section);
  }
  if (location.hash) {
    const target = document.getElementById(location.hash.slice(1));
    if (target) target.scrollIntoView();
  }
}

/* Render any JSON model card as readable headings, paragraphs and tables. */
function renderValue(value, depth) {
  if (value === null || value === undefined) return "—";
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== "object" || v === null)) return value.join(", ");
    const list = el("ul");
    value.forEach((v) => list.append(el("li", {}, renderValue(v, depth + 1))));
    return list;
  }
  if (typeof value === "object") {
    const table = el("table", { class: "card-table" });
    for (const [k, v] of Object.entries(value)) {
      table.append(el("tr", {}, el("th", { scope: "row" }, pretty("", k)), el("td", {}, renderValue(v, depth + 1))));
    }
    return table;
  }
  if (typeof value === "number") return Number.isInteger(value) ? value.toLocaleString("en") : String(Math.round(value * 1000) / 1000);
  return String(value);
}

function renderCard(info) {
  const root = $("#model-card");
  root.replaceChildren();
  if (!info) { root.append(el("p", { class: "small" }, "The model information is not available right now.")); return; }
  const card = info.card || info.model_card || {};
  const text = ["description", "summary", "intended_use", "limitations"];
  for (const k of text) {
    if (typeof card[k] === "string") {
      root.append(el("h3", {}, pretty("", k)));
      card[k].split(/\n\s*\n/).forEach((para) => root.append(el("p", {}, para.trim())));
    }
  }
  const rest = Object.fromEntries(Object.entries(card).filter(([k, v]) => !(text.includes(k) && typeof v === "string")));
  if (Object.keys(rest).length) root.append(renderValue(rest, 0));
  if (info.backbone) {
    root.append(el("h3", {}, "Image features"), renderValue(info.backbone, 0));
  }
  if (info.metrics && Object.keys(info.metrics).length) {
    root.append(el("h3", {}, "Measured quality"), renderValue(info.metrics, 0));
  }
  if (!root.childElementCount) root.append(el("p", { class: "small" }, "This model has no model card."));
}

document.addEventListener("DOMContentLoaded", async () => {
  let glossary = { tasks: {}, labels: {} };
  let info = null;
  try { const r = await fetch("/static/glossary.json"); if (r.ok) glossary = await r.json(); } catch (e) { /* ignore */ }
  try { const r = await fetch("/api/v1/model"); if (r.ok) info = await r.json(); } catch (e) { /* ignore */ }
  renderGlossary(glossary, info);
  renderCard(info);
});
