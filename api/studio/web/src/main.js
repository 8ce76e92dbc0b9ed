// The studio: stories and their lints, the graph, a node's YAML, a live
// test chat and the replay of stored chats.
import "./studio.css";
import { api, fullChat, setToken, token, Unauthorized } from "./api.js";
import { Graph, legend, typeClass } from "./graph.js";
import { attrTable, h, input as inputEl, response } from "./responses.js";

const $ = (id) => document.getElementById(id);

// Script errors are kept for the browser tests (and shown).
window.studioErrors = [];
window.addEventListener("error", (ev) => window.studioErrors.push(String(ev.message)));
window.addEventListener("unhandledrejection", (ev) => window.studioErrors.push(String(ev.reason)));

const state = {
  stories: [],
  lints: new Map(), // story id -> lints
  story: null, // {id, version, graph, source, lines, lints}
  chat: null, // live chat {id, status, node, attributes, steps, lastSeq}
  replay: null, // {chat, turns, at}
};

const graph = new Graph($("graph"), { onSelect: (id) => showNode(id) });
legend($("legend"));

// ---- token and errors

function askToken(message = "") {
  $("token-error").textContent = message;
  $("token-input").value = "";
  if (!$("token-dialog").open) $("token-dialog").showModal();
  $("token-input").focus();
}

$("token-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  setToken($("token-input").value.trim());
  $("token-dialog").close();
  await loadStories();
});

$("logout").addEventListener("click", () => {
  setToken("");
  askToken();
});

function fail(err) {
  if (err instanceof Unauthorized) {
    askToken("That token was refused. Try again.");
    return;
  }
  toast(err.message || String(err));
}

function toast(msg) {
  const t = h("div", { class: "toast", role: "alert" }, msg);
  document.body.append(t);
  setTimeout(() => t.remove(), 6000);
}

// ---- stories

async function loadStories() {
  try {
    state.stories = (await api.stories()).sort((a, b) => a.id.localeCompare(b.id));
  } catch (err) {
    return fail(err);
  }
  renderStories();
  // Lints of every story (the stored ones load, so these are warnings).
  await Promise.all(state.stories.map(async (s) => {
    try {
      const src = await api.source(s.id);
      state.lints.set(s.id, (await api.validate(src)).lints || []);
    } catch (err) {
      state.lints.set(s.id, [{ severity: "error", message: err.message, line: 0, column: 0 }]);
    }
  }));
  renderStories();
  $("stories").dataset.ready = "lints";
  const want = decodeURIComponent(location.hash.replace(/^#story=/, ""));
  if (!state.story && want && state.stories.some((s) => s.id === want)) openStory(want);
}

function lintBadges(lints) {
  if (!lints) return h("span", { class: "badge muted" }, "…");
  const errs = lints.filter((l) => l.severity === "error").length;
  const warns = lints.length - errs;
  if (!lints.length) return h("span", { class: "badge ok", title: "no lints" }, "✓");
  return h("span", {},
    errs ? h("span", { class: "badge err", title: `${errs} errors` }, errs) : null,
    warns ? h("span", { class: "badge warn", title: `${warns} warnings` }, warns) : null);
}

function renderStories() {
  const ul = $("stories");
  ul.replaceChildren();
  if (!state.stories.length) ul.append(h("li", { class: "muted" }, "No stories yet. PUT one to /v1/stories/:id."));
  for (const s of state.stories) {
    ul.append(h("li", {
      class: "item" + (state.story?.id === s.id ? " active" : ""), "data-story": s.id,
      onclick: () => openStory(s.id),
    },
    h("div", { class: "row" }, h("b", {}, s.id), h("span", { class: "spacer" }), lintBadges(state.lints.get(s.id))),
    h("div", { class: "sub" }, `${s.name || s.id} · v${s.version}`)));
  }
}

async function openStory(id, version = 0) {
  try {
    const [g, source] = await Promise.all([api.graph(id, version), api.source(id, version)]);
    const meta = state.stories.find((s) => s.id === id);
    state.story = {
      id, version: version || meta?.version || 0, graph: g, source, lines: source.split("\n"),
      lints: version ? (await api.validate(source)).lints || [] : state.lints.get(id) || (await api.validate(source)).lints || [],
    };
  } catch (err) {
    return fail(err);
  }
  history.replaceState(null, "", "#story=" + encodeURIComponent(id));
  $("empty").hidden = true;
  $("story-title").textContent = `${id} · v${state.story.version}`;
  $("graph-info").textContent = `${state.story.graph.nodes.length} nodes · ${state.story.graph.edges.length} edges`;
  graph.draw(state.story.graph);
  graph.markLints(state.story.lints);
  renderStories();
  renderLints();
  if (!state.chat || state.chat.storyId !== id) resetChat();
  else highlightChat();
  await loadChats();
}

function nodeOf(id) {
  return state.story?.graph.nodes.find((n) => n.id === id);
}

// nodeRange is the lines (1-based, inclusive) of node id's YAML: from its
// key to the line before the next node's, without trailing blank lines.
function nodeRange(id) {
  const nodes = [...state.story.graph.nodes].sort((a, b) => a.line - b.line);
  const i = nodes.findIndex((n) => n.id === id);
  if (i < 0 || !nodes[i].line) return null;
  const from = nodes[i].line;
  let to = i + 1 < nodes.length ? nodes[i + 1].line - 1 : state.story.lines.length;
  const indent = (state.story.lines[from - 1].match(/^\s*/) || [""])[0].length;
  // Stop at a line less indented than the node key (the end of nodes:).
  for (let l = from + 1; l <= to; l++) {
    const s = state.story.lines[l - 1];
    if (s.trim() && !s.trim().startsWith("#") && (s.match(/^\s*/) || [""])[0].length < indent) {
      to = l - 1;
      break;
    }
  }
  while (to > from && !state.story.lines[to - 1].trim()) to--;
  return [from, to];
}

function showNode(id) {
  const n = nodeOf(id);
  if (!n) return;
  graph.select(id);
  const pane = $("tab-node");
  pane.replaceChildren();
  const lints = state.story.lints.filter((l) => l.node === id);
  const range = nodeRange(id);
  const out = h("div", { class: "node-detail", "data-node": id },
    h("div", { class: "node-head" },
      h("span", { class: `type-badge t-${typeClass(n.type)}` }, n.type),
      h("b", { class: "node-id" }, n.id),
      n.name !== n.id ? h("span", { class: "muted" }, " " + n.name) : null,
      n.id === state.story.graph.start ? h("span", { class: "badge ok" }, "start") : null),
    lints.length
      ? h("ul", { class: "lints" }, lints.map(lintItem))
      : h("p", { class: "muted small" }, "No lints for this node."),
    range ? yamlView(range[0], range[1], lints) : h("p", { class: "muted" }, "no source lines"),
    edgesOf(id));
  pane.append(out);
  showTab("node");
}

function yamlView(from, to, lints) {
  const marked = new Set(lints.map((l) => l.line));
  const pre = h("pre", { class: "yaml" });
  for (let l = from; l <= to; l++) {
    pre.append(h("span", { class: "ln" + (marked.has(l) ? " marked" : ""), "data-line": l },
      h("span", { class: "lnum" }, String(l)), h("span", { class: "code" }, state.story.lines[l - 1] || " ")));
  }
  return pre;
}

function edgesOf(id) {
  const out = state.story.graph.edges.filter((e) => e.from === id);
  const inc = state.story.graph.edges.filter((e) => e.to === id);
  const link = (nid) => h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); showNode(nid); } }, nid);
  return h("div", { class: "edges-list" },
    h("h3", {}, "Goes to"),
    out.length ? h("ul", {}, out.map((e) => h("li", {}, h("span", { class: "kind " + e.kind }, e.kind), " ", e.label && e.label !== e.kind ? h("code", {}, e.label) : null, " → ", link(e.to))))
      : h("p", { class: "muted small" }, "nothing: the chat ends or waits here"),
    h("h3", {}, "Comes from"),
    inc.length ? h("ul", {}, inc.map((e) => h("li", {}, link(e.from), " ", h("span", { class: "kind " + e.kind }, e.kind))))
      : h("p", { class: "muted small" }, id === state.story.graph.start ? "the start" : "nowhere"));
}

function lintItem(l) {
  return h("li", { class: "lint " + (l.severity || "error") },
    h("span", { class: "where" }, `${l.file || ""}:${l.line}:${l.column}`), " ",
    l.node ? h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); showNode(l.node); } }, l.node) : null, " ",
    l.message);
}

function renderLints() {
  const lints = state.story.lints;
  $("lint-count").textContent = lints.length ? `(${lints.length})` : "";
  const pane = $("tab-lints");
  pane.replaceChildren(lints.length ? h("ul", { class: "lints" }, lints.map(lintItem)) : h("p", { class: "muted" }, "No lints: the story loads cleanly."));
}

// ---- tabs and tools

function showTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.id === "tab-" + name);
}
for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
$("fit").addEventListener("click", () => graph.fit(true));
$("zoom-in").addEventListener("click", () => graph.zoomBy(1.25));
$("zoom-out").addEventListener("click", () => graph.zoomBy(0.8));
$("direction").addEventListener("click", () => {
  const d = graph.toggleDirection();
  if (state.story) graph.markLints(state.story.lints);
  $("direction").textContent = d === "TB" ? "↕ Top-down" : "↔ Left-right";
  if (state.replay) showTurn(state.replay.at);
  else highlightChat();
});

// ---- live test chat

function resetChat() {
  state.chat = null;
  $("chat-log").replaceChildren(h("p", { class: "muted" }, "Start a chat to talk to this story. Its path is drawn on the graph."));
  $("chat-status").textContent = "";
  $("chat-input").disabled = true;
  $("chat-send").disabled = true;
  attrTable($("chat-attrs"), {});
}

$("chat-start").addEventListener("click", async () => {
  if (!state.story) return toast("Pick a story first.");
  let ua = {};
  try {
    const t = $("chat-user-attrs").value.trim();
    ua = t ? JSON.parse(t) : {};
  } catch (err) {
    return toast("User attributes must be a JSON object: " + err.message);
  }
  state.replay = null;
  $("chat-log").replaceChildren();
  try {
    const a = await api.startChat(state.story.id, ua);
    state.chat = { id: a.chatId, storyId: state.story.id, steps: [], recent: [], lastSeq: 0, attributes: {} };
    await afterTurn(a);
  } catch (err) {
    fail(err);
  }
  showTab("chat");
  loadChats();
});

$("chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text) return;
  $("chat-input").value = "";
  sendInput({ text });
});

async function sendInput(input) {
  if (!state.chat) return;
  for (const b of $("chat-log").querySelectorAll("button.btn")) b.disabled = true;
  $("chat-log").append(inputEl(input));
  try {
    await afterTurn(await api.send(state.chat.id, input));
  } catch (err) {
    fail(err);
  }
}

function press(b) {
  sendInput(b.type === "goto" ? { goto: b.value } : { postback: b.value });
}

// afterTurn shows a turn's answer and reads its trace from the transcript.
async function afterTurn(a) {
  const c = state.chat;
  const log = $("chat-log");
  for (const r of a.responses || []) log.append(response(r, press));
  attrTable($("chat-attrs"), a.attributes, c.attributes);
  c.attributes = a.attributes || {};
  c.status = a.status;
  c.node = a.node;
  try {
    const full = await api.chat(c.id, c.lastSeq);
    c.recent = [];
    for (const e of full.transcript) {
      if (e.steps) c.recent.push(...e.steps);
      c.lastSeq = Math.max(c.lastSeq, e.seq);
    }
    c.steps.push(...c.recent);
  } catch (err) {
    fail(err);
  }
  const open = a.status === "active";
  $("chat-status").textContent = open ? `waiting at ${a.node}` : a.status;
  $("chat-status").className = "status " + a.status;
  $("chat-input").disabled = !open;
  $("chat-send").disabled = !open;
  log.scrollTop = log.scrollHeight;
  highlightChat();
  if (open) $("chat-input").focus();
}

function highlightChat() {
  const c = state.chat;
  if (!c || !state.story || c.storyId !== state.story.id) return graph.highlight({});
  graph.highlight({ steps: c.steps, recent: c.recent, current: c.node });
}

// ---- stored chats and replay

async function loadChats() {
  const ul = $("chats");
  if (!state.story) return;
  let chats;
  try {
    chats = await api.chats(state.story.id);
  } catch (err) {
    return fail(err);
  }
  chats.sort((a, b) => (b.updatedAt || "").localeCompare(a.updatedAt || ""));
  ul.replaceChildren();
  if (!chats.length) ul.append(h("li", { class: "muted" }, "No chats yet."));
  for (const c of chats.slice(0, 50)) {
    ul.append(h("li", {
      class: "item" + (state.replay?.chat.id === c.id ? " active" : ""), "data-chat": c.id,
      onclick: () => openReplay(c.id),
    },
    h("div", { class: "row" }, h("code", {}, c.id.slice(0, 12)), h("span", { class: "spacer" }), h("span", { class: "status " + c.status }, c.status)),
    h("div", { class: "sub" }, `${c.userId} · ${new Date(c.updatedAt).toLocaleString()} · at ${c.node}`)));
  }
}
$("chats-reload").addEventListener("click", () => loadChats());
$("chat-open").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = $("chat-id").value.trim();
  if (id) openReplay(id);
});

// turnsOf groups a transcript into turns: each begins at an entry with
// steps (the engine's trace) or at a user input.
export function turnsOf(entries) {
  const turns = [];
  let t = null;
  for (const e of entries) {
    if (!t || e.from === "user" || (e.steps && t.entries.length && t.entries.some((x) => x.steps))) {
      t = { input: null, steps: [], entries: [], responses: [], notes: [] };
      turns.push(t);
    }
    t.entries.push(e);
    if (e.from === "user") t.input = e.input;
    if (e.steps) t.steps = e.steps.map((s) => ({ ...s }));
    if (e.response) t.responses.push(e);
    if (e.from === "node") t.notes.push(e);
  }
  for (const t of turns) {
    // What each node noted (a webhook's answer) goes with its step, in order.
    const notes = [...t.notes];
    for (const s of t.steps) {
      const k = notes.findIndex((n) => n.node === s.node);
      if (k >= 0) s.detail = notes.splice(k, 1)[0].data;
    }
    // A question that waits again at once did not take the answer.
    if (t.input && !t.input.goto && t.steps.length === 1 && t.steps[0].end === "wait") t.steps[0].retry = true;
  }
  // Chats recorded before the trace: the nodes that answered.
  for (const t of turns) {
    if (t.steps.length) continue;
    const seen = [];
    for (const e of t.responses) if (e.node && !seen.includes(e.node)) seen.push(e.node);
    t.steps = seen.map((node, i) => ({ node, next: seen[i + 1] || "" }));
    t.untraced = true;
  }
  return turns;
}

async function openReplay(chatId) {
  let chat;
  try {
    chat = await fullChat(chatId);
    if (!state.story || state.story.id !== chat.storyId || state.story.version !== chat.storyVersion) {
      await openStory(chat.storyId, chat.storyVersion);
    }
  } catch (err) {
    return fail(err);
  }
  state.replay = { chat, turns: turnsOf(chat.transcript), at: 0 };
  for (const li of $("chats").children) li.classList.toggle("active", li.dataset.chat === chatId);
  showTurn(0);
  showTab("replay");
}

// saveTest downloads a stored chat as a story test case (GET
// /v1/chats/:id/test): its webhook answers as mocks, personal data marked
// for redaction.
async function saveTest(chat) {
  let yaml;
  try {
    yaml = await api.chatTest(chat.id);
  } catch (err) {
    return fail(err);
  }
  const a = h("a", { href: URL.createObjectURL(new Blob([yaml], { type: "application/yaml" })), download: `${chat.storyId}-${chat.id}.test.yaml` });
  document.body.append(a);
  a.click();
  a.remove();
  $("replay-test").dataset.saved = String(yaml.length);
}

function why(s) {
  const g = state.story.graph;
  const type = nodeOf(s.node)?.type || "?";
  if (s.end === "wait" && s.retry) return "the answer is not valid: the retry is sent, it waits again";
  if (s.end === "wait") return type === "question" ? "asks and waits for the answer" : "waits for input";
  if (s.end === "completed") return "the chat is completed";
  if (s.end === "handoff") return "hands the chat to a human";
  if (s.end === "failed") return "the chat failed: " + s.error;
  if (s.end === "error") return "failed with no branch: the apology is sent, the chat waits";
  if (!s.next) return "";
  const edges = g.edges.filter((e) => e.from === s.node && e.to === s.next);
  if (s.route) {
    const r = g.edges.filter((e) => e.from === s.node && e.kind === "route")[s.route - 1];
    return `route ${s.route} holds: ${r ? r.label : "?"}`;
  }
  if (s.error) {
    return (edges.some((e) => e.kind === "failure") ? "failure branch: " : "onError: ") + s.error;
  }
  if (edges.some((e) => e.kind === "else")) return "no route holds: else";
  if (type === "question") return "the answer is valid: next";
  if (edges.some((e) => e.kind === "goto")) return "goto button";
  if (!edges.length && s.node) return "goto";
  return type === "webhook" || type === "condition" ? "no route holds: next" : "next";
}

function webhookDetail(d) {
  if (!d) return null;
  if (!("webhook" in d)) return h("code", { class: "detail" }, JSON.stringify(d));
  const parts = [h("b", {}, d.webhook), ` answered ${d.status || "nothing"}`];
  if (d.error) parts.push(h("span", { class: "err" }, ": " + d.error));
  if (d.attributes) parts.push(", attributes ", h("code", {}, JSON.stringify(d.attributes)));
  return h("div", { class: "detail webhook" }, "↪ ", parts);
}

function showTurn(i) {
  const r = state.replay;
  if (!r) return;
  r.at = Math.max(0, Math.min(i, r.turns.length - 1));
  const t = r.turns[r.at];
  const pane = $("tab-replay");
  const nodeLink = (id) => h("a", { href: "#", class: "node-link", onclick: (ev) => { ev.preventDefault(); showNode(id); } }, id);
  pane.replaceChildren(
    h("div", { class: "replay-head" },
      h("div", {}, h("b", {}, "Chat "), h("code", {}, r.chat.id), " ", h("span", { class: "status " + r.chat.status }, r.chat.status)),
      h("div", { class: "replay-nav" },
        h("button", { type: "button", id: "replay-prev", disabled: r.at === 0, onclick: () => showTurn(r.at - 1) }, "◀ Prev"),
        h("span", { id: "replay-pos" }, `Turn ${r.at + 1} of ${r.turns.length}`),
        h("button", { type: "button", id: "replay-next", disabled: r.at >= r.turns.length - 1, onclick: () => showTurn(r.at + 1) }, "Next ▶"),
        h("button", { type: "button", id: "replay-test", title: "this chat as a story test case (storyflow test)", onclick: () => saveTest(r.chat) }, "Save as test"))),
    h("ol", { class: "turns" }, r.turns.map((tt, k) => h("li", {
      class: k === r.at ? "active" : "", onclick: () => showTurn(k),
    }, tt.input ? inputLabel(tt.input) : k === 0 ? "start" : "—"))),
    h("div", { class: "turn" },
      t.input ? inputEl(t.input) : h("div", { class: "muted small" }, r.at === 0 ? "The chat starts." : ""),
      h("h3", {}, t.untraced ? "Nodes that answered (no trace recorded)" : "Nodes run"),
      h("ol", { class: "steps" }, t.steps.map((s) => h("li", { class: "step" + (s.error ? " failed" : "") },
        nodeLink(s.node), " ", h("span", { class: "muted" }, nodeOf(s.node)?.type || ""),
        s.next ? [" → ", nodeLink(s.next)] : null,
        h("div", { class: "why" }, why(s)),
        webhookDetail(s.detail)))),
      h("h3", {}, "Bot"),
      t.responses.length ? t.responses.map((e) => response(e.response, null)) : h("p", { class: "muted small" }, "no responses")),
    h("h3", {}, "Attributes at the end of the chat"),
    (() => { const tb = h("table", { class: "attrs" }); attrTable(tb, r.chat.attributes, r.chat.attributes); return tb; })());
  const before = r.turns.slice(0, r.at).flatMap((x) => x.steps);
  const last = t.steps[t.steps.length - 1];
  graph.highlight({ steps: before, recent: t.steps, current: last ? last.node : "" });
}

function inputLabel(i) {
  return i.goto ? "→ " + i.goto : i.postback ? "◉ " + i.postback : "“" + (i.text.length > 24 ? i.text.slice(0, 23) + "…" : i.text) + "”";
}

// ---- start

window.addEventListener("resize", () => graph.fit());
resetChat();
if (token()) loadStories();
else askToken();
