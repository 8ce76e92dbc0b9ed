// The API client: every call carries the token kept in session storage; a
// 401 forgets it and asks again.
const KEY = "storyflow.token";

export class Unauthorized extends Error {}

export function token() {
  return sessionStorage.getItem(KEY) || "";
}

export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

export async function call(method, path, body, { raw = false, type = "application/json" } = {}) {
  const headers = { Authorization: "Bearer " + token() };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = type;
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    setToken("");
    throw new Unauthorized("the API token was refused");
  }
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try {
      const e = await res.json();
      if (e.error) msg = e.error;
    } catch (_) {}
    throw new Error(msg);
  }
  return raw ? res.text() : res.json();
}

export const api = {
  stories: () => call("GET", "/v1/stories"),
  source: (id, version) => call("GET", `/v1/stories/${enc(id)}${version ? "?version=" + version : ""}`, undefined, { raw: true }),
  graph: (id, version) => call("GET", `/v1/stories/${enc(id)}/graph?format=json${version ? "&version=" + version : ""}`),
  validate: (yaml) => call("POST", "/v1/stories/validate", yaml, { type: "application/yaml" }),
  startChat: (storyId, userAttributes) => call("POST", "/v1/chats", { storyId, userId: "studio", userAttributes }),
  send: (chatId, input) => call("POST", `/v1/chats/${enc(chatId)}/messages`, input),
  chats: (storyId) => call("GET", `/v1/chats?storyId=${enc(storyId)}&limit=1000`),
  chat: (chatId, after = 0) => call("GET", `/v1/chats/${enc(chatId)}?after=${after}`),
  chatTest: (chatId) => call("GET", `/v1/chats/${enc(chatId)}/test`, undefined, { raw: true }),
};

// fullChat reads a chat and its whole transcript, page by page (at most
// maxEntries entries, the last ones kept).
export async function fullChat(chatId, maxEntries = 5000) {
  const chat = await api.chat(chatId, 0);
  let entries = chat.transcript;
  while (entries.length > 0 && entries[entries.length - 1].seq < chat.seq) {
    const next = await api.chat(chatId, entries[entries.length - 1].seq);
    if (next.transcript.length === 0) break;
    entries = entries.concat(next.transcript);
    if (entries.length > maxEntries) entries = entries.slice(entries.length - maxEntries);
  }
  chat.transcript = entries;
  return chat;
}

function enc(s) {
  return encodeURIComponent(s);
}
