// Modelsmith dashboard: the study list and one study's page, from the JSON under /api
// (ending with what the best trial's model looks at).
// Plots are SVG documents drawn by the server (the same files `modelsmith report` writes);
// this script places them, builds the trials table (sortable, filterable by state) and
// polls the study's revision, redrawing only when a trial changed.

const POLL_MS = 3000;
const main = document.getElementById("main");
const statusLine = document.getElementById("status");
const crumb = document.getElementById("crumb");

// ---------- small helpers ----------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

function fmt(x) {
  if (x === null || x === undefined) return "";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en-US");
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return x.toExponential(3);
  return String(Number(x.toFixed(4)));
}

function seconds(s) {
  if (s === null || s === undefined) return "";
  return s < 60 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`;
}

function joules(j) {
  if (j === null || j === undefined) return "";
  if (j < 1e3) return `${j.toFixed(0)} J`;
  if (j < 1e6) return `${(j / 1e3).toFixed(1)} kJ`;
  return `${(j / 1e6).toFixed(2)} MJ`;
}

function grams(g) {
  return g < 1 ? `${g.toFixed(3)} g` : g < 1e3 ? `${g.toFixed(1)} g` : `${(g / 1e3).toFixed(2)} kg`;
}

function showError(message) {
  main.replaceChildren(el("p", { class: "error", id: "error" }, message));
}

function setStatus(text) {
  statusLine.textContent = text;
}

// ---------- the study list ----------

async function studyList() {
  document.title = "Studies · Modelsmith";
  const studies = await getJson("/api/studies");
  if (studies.length === 0) {
    main.replaceChildren(el("p", { class: "notice", id: "empty" },
      "No studies in this storage yet. Start one with `modelsmith tune`."));
    return;
  }
  const rows = studies.map((s) => el("tr", {},
    el("td", { style: "text-align:left" },
      el("a", { class: "study", href: `/study/${encodeURIComponent(s.study.name)}` }, s.study.name)),
    el("td", {}, s.study.direction),
    el("td", {}, s.trials), el("td", {}, s.complete), el("td", {}, s.pruned),
    el("td", {}, s.failed), el("td", {}, s.running), el("td", {}, fmt(s.best_value)),
    el("td", {}, new Date(s.study.created_at * 1000).toLocaleString())));
  const head = ["study", "direction", "trials", "complete", "pruned", "failed", "running", "best", "created"]
    .map((h) => el("th", {}, h));
  main.replaceChildren(el("h1", {}, "Studies"),
    el("div", { class: "panel" }, el("table", { id: "studies" }, el("tr", {}, ...head), ...rows)));
}

// ---------- a study ----------

const view = { sortKey: "number", sortDir: 1, stateFilter: "all", text: "", table: null, best: null };

async function studyPage(name) {
  document.title = `${name} · Modelsmith`;
  crumb.textContent = `/ ${name}`;
  let revision = null;
  const refresh = async () => {
    try {
      const overview = await getJson(`/api/studies/${encodeURIComponent(name)}`);
      setStatus(`updated ${new Date().toLocaleTimeString()}`);
      if (overview.revision === revision) return;
      revision = overview.revision;
      await drawStudy(name, overview);
    } catch (e) {
      if (revision === null) showError(e.message);
      else setStatus(`refresh failed: ${e.message}`);
    }
  };
  await refresh();
  setInterval(refresh, POLL_MS);
}

async function drawStudy(name, overview) {
  const header = [el("h1", {}, `Study ${overview.name}`), cards(overview)];
  if (overview.trials === 0) {
    main.replaceChildren(...header, el("p", { class: "notice", id: "empty" },
      `Study '${overview.name}' has no trials yet; this page refreshes when the first one starts.`));
    return;
  }
  const base = `/api/studies/${encodeURIComponent(name)}`;
  const [plots, table] = await Promise.all([getJson(`${base}/plots`), getJson(`${base}/trials`)]);
  view.table = table;
  view.best = overview.best ? overview.best.number : null;
  const plotPanels = plots.map((p) => {
    const holder = el("div", { class: "plot", id: `plot-${p.id}` });
    holder.innerHTML = p.svg;
    return el("section", { class: "panel" }, holder);
  });
  const tablePanel = el("section", { class: "panel", id: "trials-panel" },
    el("h2", {}, "Trials"), tableControls(), el("div", { class: "table-wrap", id: "table-wrap" }));
  // What the best trial's model looks at: explained by the server once per best trial, so
  // it arrives after the rest of the page.
  const looksAt = overview.best === null ? [] : [el("section", { class: "panel", id: "looks-at-panel" },
    el("p", { class: "notice" }, `Explaining the model of the best trial (${overview.best.number})…`))];
  main.replaceChildren(...header, el("div", { class: "grid" }, ...plotPanels), tablePanel, ...looksAt);
  drawTable();
  if (looksAt.length) explainBest(base, looksAt[0]);
}

async function explainBest(base, panel) {
  try {
    const r = await getJson(`${base}/explanation`);
    const section = el("div", { id: "looks-at-section" });
    section.innerHTML = r.html; // the server's HTML, every text in it escaped
    panel.replaceChildren(section,
      el("p", { class: "caption" }, `The model of the best trial (${r.trial}), from ${r.model}.`));
  } catch (e) {
    panel.replaceChildren(el("h2", {}, "What the model looks at"),
      el("p", { class: "notice", id: "looks-at-unavailable" }, e.message));
  }
}

function cards(o) {
  const card = (label, value) => el("div", { class: "card" }, el("b", {}, value), label);
  const green = o.greenest ? [el("div", { class: "card", id: "greenest" },
    el("b", {}, `trial ${o.greenest.greenest.number}`),
    `greenest within reach of the best: ${(100 * o.greenest.saving).toFixed(0)}% less energy per prediction`)] : [];
  const best = o.best ? `${fmt(o.best.value)} (trial ${o.best.number})` : "–";
  return el("div", { class: "cards", id: "overview" },
    card(`best ${o.metric} (${o.direction})`, best),
    card("trials", o.trials), card("complete", o.complete), card("pruned", o.pruned),
    card("failed", o.failed), card("running", o.running),
    ...(o.energy ? [card(`training energy (${o.energy.methods.join(", ")}), ${grams(o.energy.co2e_grams)} CO2e`,
      joules(o.energy.joules))] : []), ...green);
}

function tableControls() {
  const states = ["all", "complete", "pruned", "failed", "running", "waiting"];
  const select = el("select", { id: "state-filter", onchange: (e) => { view.stateFilter = e.target.value; drawTable(); } },
    ...states.map((s) => el("option", s === view.stateFilter ? { value: s, selected: "" } : { value: s }, s)));
  const search = el("input", { id: "text-filter", type: "search", placeholder: "filter parameters…", value: view.text,
    oninput: (e) => { view.text = e.target.value.toLowerCase(); drawTable(); } });
  return el("div", { class: "controls" }, el("label", {}, "state ", select), el("label", {}, search));
}

function cellValue(row, key) {
  if (key === "number" || key === "state" || key === "value" || key === "steps"
      || key === "duration_seconds" || key === "started_at" || key === "energy_joules") return row[key];
  return row.params[key];
}

// A stored time (Unix seconds) as the reader's local date and time.
function date(unixSeconds) {
  return unixSeconds == null ? "" : new Date(unixSeconds * 1000).toLocaleString();
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === undefined || a === null) return 1;   // missing values sort last either way
  if (b === undefined || b === null) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b));
}

function drawTable() {
  const { params, rows } = view.table;
  const columns = [["number", "trial"], ["state", "state"], ["value", "value"], ["steps", "epochs"],
    ["started_at", "started"], ["duration_seconds", "time"], ["energy_joules", "energy"],
    ...params.map((p) => [p, p])];
  let shown = rows.filter((r) => view.stateFilter === "all" || r.state === view.stateFilter);
  if (view.text) {
    shown = shown.filter((r) => JSON.stringify(r.params).toLowerCase().includes(view.text));
  }
  shown.sort((a, b) => {
    const c = compare(cellValue(a, view.sortKey), cellValue(b, view.sortKey));
    const missing = cellValue(a, view.sortKey) == null || cellValue(b, view.sortKey) == null;
    return missing ? c : c * view.sortDir;
  });
  const head = columns.map(([key, label]) => el("th", {
    "data-key": key,
    class: key === view.sortKey ? (view.sortDir > 0 ? "sorted-asc" : "sorted-desc") : "",
    onclick: () => {
      view.sortDir = key === view.sortKey ? -view.sortDir : 1;
      view.sortKey = key;
      drawTable();
    },
  }, label));
  const body = shown.map((r) => el("tr", { class: r.number === view.best ? "best" : "", "data-trial": r.number },
    el("td", {}, r.number),
    el("td", { class: `state-${r.state}`, title: r.error || "" }, r.state),
    el("td", {}, fmt(r.value)), el("td", {}, r.steps), el("td", {}, date(r.started_at)),
    el("td", {}, seconds(r.duration_seconds)), el("td", {}, joules(r.energy_joules)),
    ...params.map((p) => el("td", {}, fmt(r.params[p])))));
  const table = el("table", { id: "trials" }, el("thead", {}, el("tr", {}, ...head)), el("tbody", {}, ...body));
  document.getElementById("table-wrap").replaceChildren(table);
}

// ---------- routing ----------

async function start() {
  const path = decodeURIComponent(location.pathname);
  try {
    if (path.startsWith("/study/")) await studyPage(path.slice("/study/".length));
    else await studyList();
  } catch (e) {
    showError(e.message);
  }
}

start();
