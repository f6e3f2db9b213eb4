// The edgekube dashboard: one EventSource on /events (a snapshot, then every change), rendered with preact + htm.
// Built by `make dashboard` (esbuild) into edgekube/master/dashboard/static/dashboard.js. No polling: the master
// pushes each change; a dropped stream reconnects by itself (EventSource) and starts from a new snapshot.
import { h, render } from "preact";
import { useEffect, useState } from "preact/hooks";
import htm from "htm";

const html = htm.bind(h);

const empty = () => ({
  role: "viewer", nodes: new Map(), pods: new Map(), controllers: new Map(), events: [], spark: new Map(),
});

function apply(state, msg) {
  switch (msg.op) {
    case "snapshot": {
      const next = empty();
      next.role = msg.role;
      for (const n of msg.nodes) next.nodes.set(n.name, n);
      for (const p of msg.pods) next.pods.set(p.key, p);
      for (const c of msg.controllers) next.controllers.set(c.key, c);
      next.events = msg.events;
      for (const [name, points] of Object.entries(msg.spark)) next.spark.set(name, points);
      return next;
    }
    case "put": {
      const table = { pod: state.pods, node: state.nodes, controller: state.controllers }[msg.kind];
      table.set(msg.kind === "node" ? msg.row.name : msg.row.key, msg.row);
      return { ...state };
    }
    case "del": {
      const table = { pod: state.pods, node: state.nodes, controller: state.controllers }[msg.kind];
      table.delete(msg.key);
      return { ...state };
    }
    case "events":
      return { ...state, events: msg.rows };
    case "spark": {
      const points = (state.spark.get(msg.node) || []).concat([msg.point]).slice(-120);
      state.spark.set(msg.node, points);
      return { ...state };
    }
    default:
      return state;
  }
}

const gib = (bytes) => (bytes / 1073741824).toFixed(bytes >= 10737418240 ? 0 : 1) + " GiB";

function Sparkline({ points, index, label, format }) {
  const values = points.map((p) => p[index]);
  if (values.length < 2) return html`<div class="spark empty">${label}: collecting…</div>`;
  // Scaled to the window's own range (a flat line in the middle when nothing changed), so small changes show.
  const max = Math.max(...values), min = Math.min(...values), span = max - min;
  const w = 120, hgt = 28;
  const y = (v) => (span ? hgt - 2 - ((v - min) / span) * (hgt - 4) : hgt / 2);
  const line = values.map((v, i) => `${((i / (values.length - 1)) * w).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  return html`<div class="spark" title=${`${label}, last ${values.length} samples`}>
    <span>${label} ${format(values[values.length - 1])}</span>
    <svg viewBox="0 0 ${w} ${hgt}" preserveAspectRatio="none" aria-hidden="true">
      <polyline points=${line} fill="none" stroke="currentColor" stroke-width="1.5" vector-effect="non-scaling-stroke" />
    </svg>
  </div>`;
}

function Leds({ leds }) {
  const pattern = leds.pattern || "unknown";
  return html`<div class="leds" data-leds=${pattern} title=${leds.description || ""}>
    <span class=${"led " + pattern.toLowerCase()}></span> LEDs: <b>${pattern}</b>
  </div>`;
}

function NodeCard({ node, pods, spark, admin }) {
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState("");
  const identify = async () => {
    setBusy(true);
    setNote("");
    try {
      const res = await fetch(`/api/nodes/${encodeURIComponent(node.name)}/identify`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Edgekube-Dashboard": "1" },
        body: JSON.stringify({ seconds: 30 }),
      });
      const body = await res.json();
      setNote(res.ok ? "blinking for 30 s" : body.error || res.statusText);
    } catch (err) {
      setNote(String(err));
    } finally {
      setBusy(false);
    }
  };
  const state = node.ready ? "Ready" : "NotReady";
  return html`<section class=${"card node " + state.toLowerCase()} data-node=${node.name}>
    <header>
      <h2>${node.name}</h2>
      <span class=${"badge " + state.toLowerCase()} data-ready=${state} title=${node.reason}>${state}</span>
      ${node.unschedulable && html`<span class="badge cordoned">Cordoned</span>`}
    </header>
    <${Leds} leds=${node.leds} />
    <div class="figures">
      ${node.temperature !== undefined && html`<span data-temperature>${node.temperature.toFixed(1)} °C</span>`}
      ${node.cpu !== undefined && html`<span>CPU ${node.cpu.toFixed(2)}${node.cpuCapacity ? ` / ${node.cpuCapacity}` : ""}</span>`}
      ${node.memory !== undefined && html`<span>Mem ${gib(node.memory)}${node.memoryTotal ? ` / ${gib(node.memoryTotal)}` : ""}</span>`}
    </div>
    <div class="sparks">
      <${Sparkline} points=${spark} index=${1} label="CPU" format=${(v) => v.toFixed(2)} />
      <${Sparkline} points=${spark} index=${2} label="Mem" format=${gib} />
    </div>
    <${PodTable} pods=${pods} />
    <footer>
      <button data-identify=${node.name} onClick=${identify} disabled=${!admin || busy || !node.ready}
        title=${admin ? "blink this node's LEDs for 30 s" : "identify needs the admin role"}>Identify</button>
      <span class="note">${note}</span>
    </footer>
  </section>`;
}

function PodTable({ pods }) {
  if (!pods.length) return html`<p class="none">no pods</p>`;
  return html`<table class="pods">
    <thead><tr><th>Pod</th><th>Ready</th><th>Status</th><th>Restarts</th></tr></thead>
    <tbody>
      ${pods.map((p) => html`<tr key=${p.key} data-pod=${p.key}>
        <td>${p.namespace === "default" ? p.name : p.key}</td><td>${p.ready}</td>
        <td class=${"phase " + p.phase.toLowerCase()}>${p.phase}</td><td>${p.restarts}</td>
      </tr>`)}
    </tbody>
  </table>`;
}

function Controllers({ controllers }) {
  if (!controllers.length) return null;
  return html`<section class="card wide">
    <h2>Controllers</h2>
    <table class="controllers">
      <thead><tr><th>Kind</th><th>Name</th><th>Ready</th><th>Progress</th></tr></thead>
      <tbody>
        ${controllers.map((c) => {
          const pct = c.desired ? Math.min(100, Math.round((100 * c.ready) / c.desired)) : 100;
          const detail = c.kind === "Deployment"
            ? `${c.updated}/${c.desired} up-to-date, ${c.available} available${c.paused ? ", paused" : ""}${c.progress ? ` (${c.progress})` : ""}`
            : `${c.current} current, ${c.available} available`;
          return html`<tr key=${c.key} data-controller=${c.key}>
            <td>${c.kind}</td><td>${c.namespace === "default" ? c.name : `${c.namespace}/${c.name}`}</td>
            <td>${c.ready}/${c.desired}</td>
            <td><div class="bar"><div style=${`width:${pct}%`}></div></div><small>${detail}</small></td>
          </tr>`;
        })}
      </tbody>
    </table>
  </section>`;
}

function Events({ events }) {
  return html`<section class="card wide">
    <h2>Recent events</h2>
    ${events.length === 0 && html`<p class="none">none yet</p>`}
    <ul class="events">
      ${events.map((e) => html`<li key=${e.key} class=${e.type.toLowerCase()}>
        <time>${e.last.replace("T", " ").replace(/\.\d+/, "").replace("Z", "")}</time>
        <b>${e.reason}</b> <code>${e.object}</code> ${e.message}${e.count > 1 ? ` (×${e.count})` : ""}
      </li>`)}
    </ul>
  </section>`;
}

function App() {
  const [state, setState] = useState(empty);
  const [link, setLink] = useState("connecting");
  useEffect(() => {
    const source = new EventSource("/events");
    source.onopen = () => setLink("live");
    source.onmessage = (ev) => setState((s) => apply(s, JSON.parse(ev.data)));
    source.onerror = () => setLink(source.readyState === EventSource.CLOSED ? "logged out" : "reconnecting");
    return () => source.close();
  }, []);
  const byNode = new Map();
  for (const p of state.pods.values()) {
    const list = byNode.get(p.node) || [];
    list.push(p);
    byNode.set(p.node, list);
  }
  for (const list of byNode.values()) list.sort((a, b) => a.key.localeCompare(b.key));
  const nodes = [...state.nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
  const ready = nodes.filter((n) => n.ready).length;
  const pending = byNode.get("") || [];
  const controllers = [...state.controllers.values()].sort((a, b) => a.key.localeCompare(b.key));
  return html`<div>
    <header class="top">
      <h1>edgekube</h1>
      <span data-summary>${ready}/${nodes.length} nodes Ready · ${state.pods.size} pods</span>
      <span class=${"link " + link.replace(" ", "-")} data-link=${link}>${link}</span>
      <span class="role" data-role=${state.role}>${state.role}</span>
    </header>
    ${link === "logged out" && html`<p class="banner">Logged out. Run <code>ekctl dashboard</code> and open its URL.</p>`}
    <main class="grid">
      ${nodes.map((n) => html`<${NodeCard} key=${n.name} node=${n} pods=${byNode.get(n.name) || []}
        spark=${state.spark.get(n.name) || []} admin=${state.role === "admin"} />`)}
      ${pending.length > 0 && html`<section class="card node" data-node="">
        <header><h2>Not scheduled</h2></header><${PodTable} pods=${pending} /></section>`}
      <${Controllers} controllers=${controllers} />
      <${Events} events=${state.events} />
    </main>
  </div>`;
}

render(html`<${App} />`, document.getElementById("app"));
