// sparewatch status page: draws /api/v1/status and polls it. Every string that comes from
// the agent (names of NICs, disks, sensors, reasons, errors) goes in as text, never as HTML.
"use strict";

const POLL_MS = 2000;
const STALE_MS = 15000;
let lastOk = 0;
let lastGenerated = 0;

// An element with a class and text content: the only way this page makes elements.
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function ago(secs) {
  secs = Math.max(0, Math.round(secs));
  if (secs < 90) return secs + "s";
  const m = Math.round(secs / 60);
  if (m < 90) return m + "m";
  const h = Math.round(secs / 3600);
  if (h < 48) return h + "h";
  return Math.round(secs / 86400) + "d";
}

function since(ts, now) {
  const d = new Date(ts * 1000);
  return d.toISOString().replace(/\.\d+Z$/, "Z") + " (" + ago(now - ts) + " ago)";
}

function health(m) {
  if (m.unknown) return ["unknown", "unknown"];
  if (m.at_risk) return ["at risk", "at_risk"];
  if (m.healthy) return ["healthy", "healthy"];
  return ["unhealthy", "unhealthy"];
}

// The history of a group: since when it is in its state, how often it changed state, and its
// last drill (from the drill history the agent reads in its --state.dir).
function history(g, now) {
  const p = el("p", "history");
  p.append(el("span", "since", "in this state since " + since(g.since, now)), " · ",
    el("span", "state-changes", g.transitions + (g.transitions === 1 ? " state change" : " state changes")), " · ");
  const d = g.last_drill;
  const drill = el("span", "drill " + (d ? d.result : "never"));
  if (d) {
    let t = "last drill: " + d.kind + " " + d.result + " " + ago(now - d.finished) + " ago";
    const times = [];
    if (d.failover_seconds !== null) times.push("takeover " + d.failover_seconds.toFixed(2) + "s");
    if (d.failback_seconds !== null) times.push("failback " + d.failback_seconds.toFixed(2) + "s");
    if (d.probes_lost !== null) times.push(d.probes_lost + " probes lost");
    if (times.length) t += " (" + times.join(", ") + ")";
    drill.textContent = t;
    if (d.detail) drill.title = d.detail;
  } else {
    drill.textContent = "never drilled";
  }
  p.append(drill);
  return p;
}

// "effective 0: card 0000:3b:00 shared" when failure domains lower the spare; "" otherwise.
function effective(g) {
  const d = g.domains;
  if (!d || d.effective_spare === null) return "";
  let t = "effective " + d.effective_spare;
  if (d.shared.length) t += " (" + d.shared[0].kind + " " + d.shared[0].id + " shared by " + d.shared[0].healthy_members + ")";
  return t;
}

function groupCard(g, now) {
  const card = el("article", "group");
  card.dataset.state = g.state;
  card.dataset.group = g.name;
  const h = el("h3");
  h.append(el("span", "name", g.name), el("span", "badge " + g.state, g.state.replace("_", " ")));
  if (g.by_design) h.append(el("span", "muted", "single by design"));
  card.append(h);
  const spares = g.members.filter(m => m.role === "spare").length;
  const facts = el("p", "facts");
  facts.append(el("span", "spare", "spare " + g.spare));
  const eff = effective(g);
  if (eff) {
    const lower = g.domains.effective_spare < g.spare;
    facts.append(" · ", el("span", "effective" + (lower ? " lower" : ""), eff));
  }
  let rest = " · " + g.members_healthy + "/" + (g.members.length - spares) + " healthy, needs " + g.members_required;
  if (spares) rest += " · +" + spares + " hot spare";
  if (g.stated_state) rest += " · hardware says " + g.stated_state + (g.evidence_disagreement ? " (disagrees)" : "");
  facts.append(rest);
  card.append(facts);
  if (g.state !== "redundant") card.append(el("p", "advice", g.advice));
  const t = el("table");
  const head = el("tr");
  for (const [c, cls] of [["member", ""], ["role", ""], ["health", ""], ["reason", ""], ["changes", "transitions"]]) {
    head.append(el("th", cls, c));
  }
  t.append(head);
  for (const m of g.members) {
    const tr = el("tr");
    tr.dataset.member = m.name;
    const [word, cls] = health(m);
    const hc = el("td", "health-cell");
    hc.append(el("span", "health " + cls, word));
    tr.append(el("td", "member", m.name), el("td", "role", m.role), hc,
      el("td", "reason", m.reason || ""), el("td", "transitions", m.transitions));
    t.append(tr);
  }
  card.append(t, history(g, now));
  return card;
}

function draw(s) {
  const now = s.generated_at;
  document.title = s.host.hostname + " · sparewatch";
  document.getElementById("host").textContent = s.host.hostname || "sparewatch";
  document.getElementById("version").textContent = "sparewatch " + s.host.agent_version;
  document.getElementById("verdict").textContent = s.verdict.summary;
  document.body.dataset.worst = s.verdict.worst || "none";
  const groups = document.getElementById("groups");
  groups.replaceChildren(...s.groups.map(g => groupCard(g, now)));
  const cols = document.getElementById("collectors");
  cols.replaceChildren(...s.collectors.map(c => {
    const word = !c.up ? "down" : (c.present ? "up" : "not present");
    const li = el("li", c.up ? "" : "down", c.name + " — " + word + (c.last_error ? ": " + c.last_error : ""));
    li.dataset.collector = c.name;
    return li;
  }));
}

function freshness() {
  const f = document.getElementById("freshness");
  if (!lastOk) return;
  const age = Date.now() - lastOk;
  f.className = age > STALE_MS ? "stale" : "muted";
  f.textContent = (age > STALE_MS ? "agent not answering: showing data from " : "updated ") +
    ago(age / 1000) + " ago (evaluated " + new Date(lastGenerated * 1000).toISOString().replace(/\.\d+Z$/, "Z") + ")";
}

async function poll() {
  try {
    const r = await fetch("api/v1/status", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const s = await r.json();
    draw(s);
    lastOk = Date.now();
    lastGenerated = s.generated_at;
  } catch (e) {
    if (!lastOk) document.getElementById("verdict").textContent = "cannot reach the agent: " + e.message;
  }
  freshness();
  setTimeout(poll, POLL_MS);
}

poll();
