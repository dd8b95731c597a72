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
        const words = (glossary.labels || {})[task] || {};
        if (task === "artist") { // a long list of names: compact columns
          const list = el("ul", { class: "classes compact" });
          for (const label of labels) list.append(el("li", { id: `${task}-${key(label)}` }, pretty(task, label)));
          section.append(list);
          root.append(section);
          continue;
        }
        const dl = el("dl", { class: "classes" });
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

/* ---------- the model card ---------- */

const SOURCES = {
  louvre: "the Louvre's collection",
  louvre_photos: "visitors' photos of paintings in a museum",
  wga: "the Web Gallery of Art",
  wga_thumbs: "the Web Gallery of Art (thumbnails)",
  aic: "the Art Institute of Chicago",
  artists7: "paintings by seven famous painters (Rembrandt, Rubens, Turner, Constable, Monet, Hopper, Lowry)",
  wikiart: "WikiArt",
};

function plainSummary(info) {
  const card = (info && (info.card || info.model_card)) || {};
  const data = card.data && typeof card.data === "object" ? card.data : null;
  const out = el("div", { class: "card-summary" });
  if (data) {
    let train = 0, all = 0;
    const names = [];
    for (const [source, splits] of Object.entries(data)) {
      const counts = splits && typeof splits === "object" ? splits : { train: Number(splits) || 0 };
      train += Number(counts.train) || 0;
      all += Object.values(counts).reduce((a, b) => a + (Number(b) || 0), 0);
      names.push(SOURCES[source] || source.replace(/_/g, " "));
    }
    out.append(el("p", {}, `It learned from ${train.toLocaleString("en")} pictures of paintings `,
      `(and was checked on ${(all - train).toLocaleString("en")} more it had not seen) from ${names.join("; ")}.`));
  }
  const tasks = info && info.labels ? Object.entries(info.labels) : [];
  if (tasks.length) {
    out.append(el("p", {}, "It answers: " + tasks.map(([t, l]) => `${pretty("", t).toLowerCase()} (${l.length} choices)`).join(", ") +
      (info.year ? ", and the year." : ".")));
  }
  if (info && info.backbone && info.backbone.name) {
    out.append(el("p", { class: "small" }, `It looks at pictures through ${info.backbone.name}, an image network trained on everyday photos (ImageNet), and learned only small "heads" on top of it for these questions.`));
  }
  return out;
}

/* A small Markdown renderer (headings, paragraphs, lists, tables, code, **bold**, `code`)
   that builds DOM nodes: the card's text is never parsed as HTML. */
function inline(text) {
  const frag = document.createDocumentFragment();
  const re = /(\*\*[^*]+\*\*|`[^`]+`)/g;
  let last = 0, m;
  while ((m = re.exec(text)) !== null) {
    if (m.index > last) frag.append(text.slice(last, m.index));
    const tok = m[0];
    frag.append(tok.startsWith("**") ? el("strong", {}, tok.slice(2, -2)) : el("code", {}, tok.slice(1, -1)));
    last = m.index + tok.length;
  }
  if (last < text.length) frag.append(text.slice(last));
  return frag;
}

function renderMarkdown(md) {
  const root = document.createDocumentFragment();
  const lines = md.replace(/\r\n/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i++; continue; }
    if (line.startsWith("```")) {
      const code = [];
      i++;
      while (i < lines.length && !lines[i].startsWith("```")) code.push(lines[i++]);
      i++;
      root.append(el("pre", { class: "code" }, code.join("\n")));
      continue;
    }
    const h = /^(#{1,4})\s+(.*)$/.exec(line);
    if (h) {
      const level = Math.min(4, h[1].length + 2); // the page's h2 is the section title
      root.append(el(`h${level}`, {}, inline(h[2])));
      i++;
      continue;
    }
    if (line.trim().startsWith("|")) {
      const rows = [];
      while (i < lines.length && lines[i].trim().startsWith("|")) rows.push(lines[i++].trim());
      const cells = (r) => r.replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
      const table = el("table", { class: "card-table metrics" });
      const head = el("thead", {}, el("tr", {}, ...cells(rows[0]).map((c) => el("th", { scope: "col" }, inline(c)))));
      const body = el("tbody");
      rows.slice(1).filter((r) => !/^\|?\s*:?-{3,}/.test(r)).forEach((r) =>
        body.append(el("tr", {}, ...cells(r).map((c) => el("td", {}, inline(c))))));
      table.append(head, body);
      root.append(el("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "table" }, table));
      continue;
    }
    if (/^\s*[-*]\s+/.test(line)) {
      const list = el("ul");
      while (i < lines.length && /^\s*[-*]\s+/.test(lines[i])) list.append(el("li", {}, inline(lines[i++].replace(/^\s*[-*]\s+/, ""))));
      root.append(list);
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !/^(#|```|\||\s*[-*]\s)/.test(lines[i])) para.push(lines[i++].trim());
    root.append(el("p", {}, inline(para.join(" "))));
  }
  return root;
}

function renderCard(info, markdown) {
  const root = $("#model-card");
  root.replaceChildren();
  if (!info) { root.append(el("p", { class: "small" }, "The model information is not available right now.")); return; }
  root.append(plainSummary(info));
  if (markdown) {
    const details = el("details", { class: "model-card-text", open: true }, el("summary", {}, "The full model card"));
    details.append(renderMarkdown(markdown));
    root.append(details);
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  let glossary = { tasks: {}, labels: {} };
  let info = null;
  try { const r = await fetch("/static/glossary.json"); if (r.ok) glossary = await r.json(); } catch (e) { /* ignore */ }
  let markdown = null;
  try { const r = await fetch("/api/v1/model"); if (r.ok) info = await r.json(); } catch (e) { /* ignore */ }
  try { const r = await fetch("/api/v1/model/card"); if (r.ok) markdown = await r.text(); } catch (e) { /* ignore */ }
  renderGlossary(glossary, info);
  renderCard(info, markdown);
});
