// Rendering of bot responses (SPEC §2): text, randomText, image,
// quickReplies, buttons and cards. Postback and goto buttons call press;
// url, webview and phone buttons are links.
export function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

// button renders one button; press is null for buttons of a past turn.
export function button(b, press) {
  const title = b.title || b.value;
  switch (b.type) {
    case "url":
    case "webview":
      return h("a", { class: "btn link-btn", href: b.value, target: "_blank", rel: "noopener noreferrer", title: b.value },
        title || b.value, " ↗");
    case "phone":
      return h("a", { class: "btn link-btn", href: "tel:" + b.value, title: b.value }, "☎ " + title);
    default: {
      const el = h("button", {
        type: "button", class: "btn " + b.type, "data-value": b.value, "data-type": b.type,
        title: `${b.type}: ${b.value}`, disabled: !press,
        onclick: () => press && press(b),
      }, b.type === "goto" ? "→ " + title : title);
      return el;
    }
  }
}

// response renders one bot response.
export function response(r, press) {
  switch (r.type) {
    case "text":
      return h("div", { class: "msg bot text" }, r.message);
    case "randomText":
      return h("div", { class: "msg bot text" }, (r.messages || [])[0] ?? "");
    case "image":
      return h("div", { class: "msg bot image" },
        h("img", { src: r.imageUrl, alt: "image " + r.imageUrl, loading: "lazy", referrerpolicy: "no-referrer" }));
    case "quickReplies":
      return h("div", { class: "msg bot quick" },
        h("div", { class: "title" }, r.title),
        h("div", { class: "quick-replies" }, (r.buttons || []).map((b) => button(b, press))));
    case "buttons":
      return h("div", { class: "msg bot buttons" },
        h("div", { class: "title" }, r.title),
        h("div", { class: "button-list" }, (r.buttons || []).map((b) => button(b, press))));
    case "cards":
      return h("div", { class: "msg bot cards" },
        (r.elements || []).map((c) =>
          h("div", { class: "card" },
            c.imageUrl ? h("img", { src: c.imageUrl, alt: c.title, loading: "lazy", referrerpolicy: "no-referrer" }) : null,
            h("div", { class: "card-title" }, c.title),
            c.subtitle ? h("div", { class: "card-sub" }, c.subtitle) : null,
            h("div", { class: "button-list" }, (c.buttons || []).map((b) => button(b, press))))));
    default:
      return h("div", { class: "msg bot other" }, h("code", {}, JSON.stringify(r)));
  }
}

// input renders a user's input.
export function input(in_) {
  if (in_.goto) return h("div", { class: "msg user" }, h("span", { class: "tag" }, "goto"), " " + in_.goto);
  if (in_.postback) return h("div", { class: "msg user" }, h("span", { class: "tag" }, "postback"), " " + in_.postback);
  return h("div", { class: "msg user" }, in_.text ?? "");
}

// attrTable fills table with attrs, marking the keys that changed since prev.
export function attrTable(table, attrs, prev = {}) {
  table.replaceChildren();
  const keys = Object.keys(attrs || {}).sort();
  if (keys.length === 0) {
    table.append(h("tr", {}, h("td", { class: "muted" }, "none")));
    return;
  }
  for (const k of keys) {
    const v = JSON.stringify(attrs[k]);
    const changed = !(k in prev) || JSON.stringify(prev[k]) !== v;
    table.append(h("tr", { class: changed ? "changed" : "", "data-key": k }, h("th", {}, k), h("td", {}, v)));
  }
  for (const k of Object.keys(prev || {})) {
    if (!(k in (attrs || {}))) table.append(h("tr", { class: "removed" }, h("th", {}, k), h("td", {}, "removed")));
  }
}
