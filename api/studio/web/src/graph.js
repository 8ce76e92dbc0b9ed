// The graph: a story's nodes laid out in layers by dagre and drawn as SVG,
// with pan and zoom (d3-zoom). Node types differ by shape and colour; edges
// by kind (next, route, else, failure, goto and buttons).
import dagre from "@dagrejs/dagre";
import { select } from "d3-selection";
import { zoom, zoomIdentity, zoomTransform } from "d3-zoom";

const SVG = "http://www.w3.org/2000/svg";
const W = 200; // node width
const H = 54; // node height

// Node types: shape and colour class. Unknown (custom) types are "custom".
export const TYPES = {
  message: { shape: "round", label: "message" },
  question: { shape: "pill", label: "question" },
  condition: { shape: "hexagon", label: "condition" },
  webhook: { shape: "parallelogram", label: "webhook" },
  set: { shape: "rect", label: "set" },
  emit: { shape: "flag", label: "emit" },
  handoff: { shape: "octagon", label: "handoff" },
  end: { shape: "end", label: "end" },
};
const EDGE_KINDS = ["next", "route", "else", "failure", "goto"];

function el(name, attrs = {}, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function clip(s, n) {
  s = String(s ?? "");
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

export function typeClass(type) {
  return TYPES[type] ? type : "custom";
}

// shapePath is the outline of a node of the given shape, w×h at 0,0.
function shape(kind, w, h, parent) {
  switch (kind) {
    case "pill":
      return el("rect", { width: w, height: h, rx: h / 2 }, parent);
    case "round":
      return el("rect", { width: w, height: h, rx: 10 }, parent);
    case "hexagon": {
      const d = 14;
      return el("polygon", { points: `${d},0 ${w - d},0 ${w},${h / 2} ${w - d},${h} ${d},${h} 0,${h / 2}` }, parent);
    }
    case "parallelogram": {
      const d = 12;
      return el("polygon", { points: `${d},0 ${w},0 ${w - d},${h} 0,${h}` }, parent);
    }
    case "flag": {
      const d = 12;
      return el("polygon", { points: `0,0 ${w},0 ${w - d},${h / 2} ${w},${h} 0,${h}` }, parent);
    }
    case "octagon": {
      const d = 12;
      return el("polygon", {
        points: `${d},0 ${w - d},0 ${w},${d} ${w},${h - d} ${w - d},${h} ${d},${h} 0,${h - d} 0,${d}`,
      }, parent);
    }
    case "end": {
      const g = el("g", {}, parent);
      el("rect", { width: w, height: h, rx: h / 2 }, g);
      el("rect", { x: 4, y: 4, width: w - 8, height: h - 8, rx: (h - 8) / 2, class: "inner" }, g);
      return g;
    }
    default:
      return el("rect", { width: w, height: h, rx: 2 }, parent);
  }
}

// edgePath draws a smooth path through dagre's points.
function edgePath(points) {
  let d = `M${points[0].x},${points[0].y}`;
  if (points.length === 2) return d + `L${points[1].x},${points[1].y}`;
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i];
    const n = points[i + 1];
    const mx = i === points.length - 2 ? n.x : (p.x + n.x) / 2;
    const my = i === points.length - 2 ? n.y : (p.y + n.y) / 2;
    d += `Q${p.x},${p.y} ${mx},${my}`;
  }
  return d;
}

// jump is a goto button's curve from node a to node b (dagre nodes), bent
// sideways so that it stays clear of the edges of the layout.
function jump(a, b) {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const side = dx >= 0 ? 1 : -1;
  const x1 = a.x + side * (W / 2);
  const y1 = a.y;
  const x2 = b.x - side * (W / 2) * (Math.abs(dx) > W ? 1 : -1);
  const y2 = b.y;
  const bend = Math.max(60, Math.min(220, Math.abs(dy) / 3));
  const c1x = x1 + side * bend;
  const c2x = x2 + (Math.abs(dx) > W ? -side : side) * bend;
  const d = `M${x1},${y1}C${c1x},${y1} ${c2x},${y2} ${x2},${y2}`;
  // The label sits near the button's node (t = 0.3), clear of the
  // labels between the layers.
  const t = 0.3;
  const at = (p0, p1, p2, p3) => (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t * t * p2 + t ** 3 * p3;
  return { d, x: at(x1, c1x, c2x, x2), y: at(y1, y1, y2, y2) };
}

export function edgeLabel(e) {
  if (e.kind === "next") return "";
  if (e.kind === "route" || e.kind === "goto") return e.label || e.kind;
  return e.label || e.kind;
}

export class Graph {
  constructor(svg, { onSelect } = {}) {
    this.svg = svg;
    this.onSelect = onSelect || (() => {});
    this.dir = "TB";
    this.zoom = zoom().scaleExtent([0.05, 3]).extent(() => {
      const r = this.svg.getBoundingClientRect();
      return [[0, 0], [r.width, r.height]];
    }).on("zoom", (ev) => {
      if (this.root) this.root.setAttribute("transform", ev.transform.toString());
    });
    select(svg).call(this.zoom).on("dblclick.zoom", null);
  }

  // draw lays out and draws g ({id, start, nodes, edges}).
  draw(g) {
    // The same button in a prompt and its retry is one edge.
    const seen = new Set();
    g = { ...g, edges: g.edges.filter((e) => {
      const k = [e.from, e.to, e.kind, e.label].join("\u0000");
      return !seen.has(k) && seen.add(k);
    }) };
    this.data = g;
    const layout = new dagre.graphlib.Graph({ multigraph: true });
    layout.setGraph({ rankdir: this.dir, nodesep: 28, ranksep: 56, edgesep: 14, marginx: 20, marginy: 20 });
    layout.setDefaultEdgeLabel(() => ({}));
    for (const n of g.nodes) layout.setNode(n.id, { width: W, height: H });
    g.edges.forEach((e, i) => {
      // Goto buttons jump anywhere: they are drawn over the layout, not in it.
      if (e.kind === "goto") return;
      const label = clip(edgeLabel(e), 30);
      layout.setEdge(e.from, e.to, {
        width: label ? label.length * 6.4 + 10 : 0,
        height: label ? 18 : 0,
        labelpos: "c",
      }, "e" + i);
    });
    const t0 = performance.now();
    dagre.layout(layout);
    const svg = this.svg;
    svg.dataset.layoutMs = Math.round(performance.now() - t0);
    svg.replaceChildren();
    const defs = el("defs", {}, svg);
    for (const k of EDGE_KINDS.concat(["taken"])) {
      const m = el("marker", {
        id: "arrow-" + k, viewBox: "0 0 10 10", refX: 9, refY: 5,
        markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse", class: "arrow " + k,
      }, defs);
      el("path", { d: "M0,0L10,5L0,10z" }, m);
    }
    this.root = el("g", { class: "root" }, svg);
    const edgesG = el("g", { class: "edges" }, this.root);
    const labelsG = el("g", { class: "edge-labels" }, this.root);
    const nodesG = el("g", { class: "nodes" }, this.root);
    this.edgeEls = [];
    g.edges.forEach((e, i) => {
      const le = e.kind === "goto" ? jump(layout.node(e.from), layout.node(e.to)) : layout.edge({ v: e.from, w: e.to, name: "e" + i });
      const kind = EDGE_KINDS.includes(e.kind) ? e.kind : "next";
      const path = el("path", {
        d: le.d || edgePath(le.points), class: "edge " + kind, "marker-end": `url(#arrow-${kind})`,
        "data-from": e.from, "data-to": e.to, "data-kind": e.kind,
      }, edgesG);
      const full = edgeLabel(e);
      let lab = null;
      if (full) {
        lab = el("g", { class: "edge-label " + kind, transform: `translate(${le.x},${le.y})` }, labelsG);
        const text = clip(full, 30);
        const w = text.length * 6.4 + 10;
        el("rect", { x: -w / 2, y: -9, width: w, height: 18, rx: 4 }, lab);
        const t = el("text", { "text-anchor": "middle", y: 4 }, lab);
        t.textContent = text;
        el("title", {}, lab).textContent = `${e.kind}: ${full}`;
      }
      this.edgeEls.push({ e, path, lab });
    });
    this.nodeEls = new Map();
    const bounds = { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
    for (const n of g.nodes) {
      const p = layout.node(n.id);
      const x = p.x - W / 2;
      const y = p.y - H / 2;
      bounds.x0 = Math.min(bounds.x0, x);
      bounds.y0 = Math.min(bounds.y0, y);
      bounds.x1 = Math.max(bounds.x1, x + W);
      bounds.y1 = Math.max(bounds.y1, y + H);
      const t = TYPES[n.type];
      const ng = el("g", {
        class: `node t-${typeClass(n.type)}${n.id === g.start ? " start" : ""}`,
        transform: `translate(${x},${y})`, "data-id": n.id, tabindex: 0, role: "button",
      }, nodesG);
      el("title", {}, ng).textContent = `${n.id}${n.name !== n.id ? " — " + n.name : ""} (${n.type}), line ${n.line}`;
      shape(t ? t.shape : "rect", W, H, ng).classList.add("shape");
      const id = el("text", { x: W / 2, y: 22, "text-anchor": "middle", class: "nid" }, ng);
      id.textContent = clip(n.id, 26);
      const sub = el("text", { x: W / 2, y: 40, "text-anchor": "middle", class: "nsub" }, ng);
      sub.textContent = clip((n.name && n.name !== n.id ? n.name + " · " : "") + n.type, 32);
      if (n.id === g.start) {
        const s = el("g", { class: "start-mark", transform: this.dir === "TB" ? `translate(${W / 2},-14)` : `translate(-14,${H / 2})` }, ng);
        el("circle", { r: 6 }, s);
      }
      ng.addEventListener("click", (ev) => {
        ev.stopPropagation();
        this.onSelect(n.id);
      });
      ng.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") this.onSelect(n.id);
      });
      this.nodeEls.set(n.id, { n, g: ng, cx: p.x, cy: p.y });
    }
    // Edges may reach past the nodes.
    const bb = this.root.getBBox();
    this.bounds = bb.width > 0
      ? { x0: Math.min(bounds.x0, bb.x), y0: Math.min(bounds.y0, bb.y), x1: Math.max(bounds.x1, bb.x + bb.width), y1: Math.max(bounds.y1, bb.y + bb.height) }
      : bounds;
    this.fit();
  }

  // fit shows the whole graph, or for a large one a readable part of it
  // around the start node.
  fit(whole = false) {
    if (!this.bounds || !isFinite(this.bounds.x0)) return;
    const r = this.svg.getBoundingClientRect();
    const b = this.bounds;
    const w = b.x1 - b.x0 + 40;
    const h = b.y1 - b.y0 + 40;
    let k = Math.min(r.width / w, r.height / h, 1.2);
    let t;
    if (!whole && k < 0.4) {
      k = 0.7;
      const s = this.nodeEls.get(this.data.start) || this.nodeEls.values().next().value;
      t = zoomIdentity.translate(r.width / 2 - s.cx * k, 60 - (s.cy - H / 2) * k).scale(k);
    } else {
      t = zoomIdentity
        .translate(r.width / 2 - ((b.x0 + b.x1) / 2) * k, r.height / 2 - ((b.y0 + b.y1) / 2) * k)
        .scale(k);
    }
    select(this.svg).call(this.zoom.transform, t);
  }

  zoomBy(f) {
    select(this.svg).call(this.zoom.scaleBy, f);
  }

  // center pans to node id if it is out of view.
  center(id) {
    const ne = this.nodeEls.get(id);
    if (!ne) return;
    const r = this.svg.getBoundingClientRect();
    const box = ne.g.getBoundingClientRect();
    if (box.left >= r.left && box.right <= r.right && box.top >= r.top && box.bottom <= r.bottom - 50) return;
    const k = zoomTransform(this.svg).k;
    select(this.svg).call(this.zoom.transform, zoomIdentity.translate(r.width / 2 - ne.cx * k, r.height / 2 - ne.cy * k).scale(k));
  }

  toggleDirection() {
    this.dir = this.dir === "TB" ? "LR" : "TB";
    if (this.data) this.draw(this.data);
    return this.dir;
  }

  // markLints puts a dot on the nodes that have lints (red for errors).
  markLints(lints) {
    for (const l of lints) {
      const ne = this.nodeEls.get(l.node);
      if (!ne) continue;
      const sev = l.severity === "warning" ? "warning" : "error";
      let dot = ne.g.querySelector("circle.lint-dot");
      if (!dot) dot = el("circle", { class: "lint-dot", cx: W - 6, cy: 6, r: 6 }, ne.g);
      if (sev === "error" || !dot.classList.contains("error")) dot.setAttribute("class", "lint-dot " + sev);
    }
  }

  select(id) {
    for (const { g } of this.nodeEls.values()) g.classList.remove("selected");
    this.nodeEls.get(id)?.g.classList.add("selected");
  }

  // highlight marks the path taken (steps: [{node, next}]), the steps of
  // the last turn more strongly, and the current node.
  highlight({ steps = [], recent = [], current = "" } = {}) {
    for (const { g } of this.nodeEls.values()) g.classList.remove("visited", "recent", "current");
    for (const x of this.edgeEls) {
      x.path.classList.remove("taken", "recent");
      x.path.setAttribute("marker-end", `url(#arrow-${EDGE_KINDS.includes(x.e.kind) ? x.e.kind : "next"})`);
      x.lab?.classList.remove("taken");
    }
    const mark = (list, cls) => {
      for (const s of list) {
        this.nodeEls.get(s.node)?.g.classList.add(cls === "taken" ? "visited" : "recent");
        if (!s.next) continue;
        const x = this.pickEdge(s);
        if (x) {
          x.path.classList.add(cls);
          x.path.setAttribute("marker-end", "url(#arrow-taken)");
          x.lab?.classList.add("taken");
        }
      }
    };
    mark(steps, "taken");
    mark(recent, "recent");
    if (current) {
      this.nodeEls.get(current)?.g.classList.add("current");
      this.center(current);
    }
  }

  // pickEdge finds the edge a step took: its route, its failure branch when
  // it failed, else any edge to the next node.
  pickEdge(s) {
    const from = this.edgeEls.filter((x) => x.e.from === s.node && x.e.to === s.next);
    if (from.length <= 1) return from[0];
    if (s.route) {
      const routes = this.edgeEls.filter((x) => x.e.from === s.node && x.e.kind === "route");
      if (routes[s.route - 1]) return routes[s.route - 1];
    }
    if (s.error) return from.find((x) => x.e.kind === "failure") || from[0];
    return from.find((x) => x.e.kind === "next" || x.e.kind === "else") || from[0];
  }
}

// legend fills el with the node types and edge kinds.
export function legend(el) {
  const parts = [];
  for (const [type, t] of Object.entries(TYPES)) {
    parts.push(`<span class="lg node t-${type}"><svg width="26" height="16">${miniShape(t.shape)}</svg>${t.label}</span>`);
  }
  const kinds = { next: "next", route: "route", else: "else", failure: "failure", goto: "goto button" };
  for (const [k, label] of Object.entries(kinds)) {
    parts.push(`<span class="lg"><svg width="26" height="10"><line x1="0" y1="5" x2="26" y2="5" class="edge ${k}"/></svg>${label}</span>`);
  }
  el.innerHTML = parts.join("");
}

function miniShape(kind) {
  switch (kind) {
    case "pill":
      return '<rect class="shape" x="1" y="2" width="24" height="12" rx="6"/>';
    case "round":
      return '<rect class="shape" x="1" y="2" width="24" height="12" rx="4"/>';
    case "hexagon":
      return '<polygon class="shape" points="5,2 21,2 25,8 21,14 5,14 1,8"/>';
    case "parallelogram":
      return '<polygon class="shape" points="5,2 25,2 21,14 1,14"/>';
    case "flag":
      return '<polygon class="shape" points="1,2 25,2 21,8 25,14 1,14"/>';
    case "octagon":
      return '<polygon class="shape" points="5,2 21,2 25,6 25,10 21,14 5,14 1,10 1,6"/>';
    case "end":
      return '<rect class="shape" x="1" y="2" width="24" height="12" rx="6"/><rect class="shape inner" x="3.5" y="4.5" width="19" height="7" rx="3.5"/>';
    default:
      return '<rect class="shape" x="1" y="2" width="24" height="12" rx="1"/>';
  }
}
