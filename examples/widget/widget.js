// storyflow example chat widget: a launcher and a chat panel that talk to
// POST {api}/v1/widget/{story} in the Chat Widget format ({prompt,
// session_id} -> {output} or {content, content_type, content_attributes}).
// Settings: the script tag's data-api, data-story and data-title, or the
// page's ?api=, ?story= and ?open=1.
(function () {
  "use strict";
  var script = document.currentScript;
  var params = new URLSearchParams(location.search);
  var api = (params.get("api") || script.dataset.api || location.origin).replace(/\/+$/, "");
  var story = params.get("story") || script.dataset.story || "support";
  var title = script.dataset.title || "Chat";

  // One session per story and browser tab.
  var key = "storyflow-session-" + story;
  var session = sessionStorage.getItem(key);
  if (!session) {
    session = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now());
    sessionStorage.setItem(key, session);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  var launcher = el("button", "sfw-launcher");
  // A speech bubble (static markup, no emoji font needed).
  launcher.innerHTML = '<svg width="26" height="26" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" ' +
    'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><path d="M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"/></svg>';
  launcher.setAttribute("aria-label", "Open the chat");
  var panel = el("section", "sfw-panel");
  panel.setAttribute("aria-label", title);
  var head = el("div", "sfw-head");
  head.appendChild(el("span", null, title));
  var close = el("button", null, "×");
  close.setAttribute("aria-label", "Close the chat");
  head.appendChild(close);
  var log = el("div", "sfw-log");
  log.setAttribute("role", "log");
  var form = el("form", "sfw-form");
  var input = el("input");
  input.name = "prompt";
  input.maxLength = 1000;
  input.autocomplete = "off";
  input.placeholder = "Type a message…";
  var send = el("button", null, "Send");
  send.type = "submit";
  form.appendChild(input);
  form.appendChild(send);
  panel.appendChild(head);
  panel.appendChild(log);
  panel.appendChild(form);
  document.body.appendChild(panel);
  document.body.appendChild(launcher);

  function open(on) {
    panel.classList.toggle("sfw-open", on);
    if (on) input.focus();
  }
  launcher.addEventListener("click", function () { open(!panel.classList.contains("sfw-open")); });
  close.addEventListener("click", function () { open(false); });
  if (params.get("open") === "1") open(true);

  function add(node) {
    log.appendChild(node);
    log.scrollTop = log.scrollHeight;
    return node;
  }

  // Buttons: postback and goto send their value (the title is shown);
  // url and webview open the link; phone calls.
  function button(b) {
    var a;
    if (b.type === "url" || b.type === "webview") {
      a = el("a", "sfw-btn", b.title || b.value);
      a.href = b.value;
      a.target = "_blank";
      a.rel = "noopener";
    } else if (b.type === "phone") {
      a = el("a", "sfw-btn", b.title);
      a.href = "tel:" + b.value;
    } else {
      a = el("button", "sfw-btn", b.title);
      a.type = "button";
      a.dataset.value = b.value;
      a.addEventListener("click", function () { ask(b.value, b.title); });
    }
    a.dataset.type = b.type;
    return a;
  }

  function choices(list) {
    var box = el("div", "sfw-choices");
    list.forEach(function (b) { box.appendChild(button(b)); });
    return box;
  }

  // render shows one response of storyflow's model.
  function render(r) {
    switch (r.type) {
      case "text":
      case "randomText":
        add(el("div", "sfw-msg sfw-bot", r.message || (r.messages || [""])[0]));
        break;
      case "image":
        var img = el("img", "sfw-img");
        img.src = r.imageUrl;
        img.alt = "";
        add(img);
        break;
      case "file":
        var f = el("a", "sfw-msg sfw-bot", "📎 " + r.fileUrl.split("/").pop());
        f.href = r.fileUrl;
        f.target = "_blank";
        add(f);
        break;
      case "quickReplies":
      case "buttons":
        add(el("div", "sfw-msg sfw-bot", r.title));
        add(choices(r.buttons || []));
        break;
      case "cards":
        var row = el("div", "sfw-cards");
        (r.elements || []).forEach(function (c) {
          var card = el("div", "sfw-card");
          if (c.imageUrl) {
            var i = el("img");
            i.src = c.imageUrl;
            i.alt = "";
            card.appendChild(i);
          }
          var body = el("div", "sfw-card-body");
          body.appendChild(el("div", "sfw-card-title", c.title));
          body.appendChild(el("div", "sfw-card-sub", c.subtitle));
          body.appendChild(choices(c.buttons || []));
          card.appendChild(body);
          row.appendChild(card);
        });
        add(row);
        break;
    }
  }

  // show renders an answer: storyflow's responses when present, else the
  // Chat Widget's own shapes (for other backends).
  function show(a) {
    if (a.output != null) {
      if (a.output !== "") add(el("div", "sfw-msg sfw-bot", a.output));
    } else {
      var attrs = a.content_attributes || {};
      if (attrs.responses) {
        attrs.responses.forEach(render);
      } else {
        if (a.content) add(el("div", "sfw-msg sfw-bot", a.content));
        if (attrs.items) {
          add(choices(attrs.items.map(function (it) {
            return it.value ? { type: it.type || "postback", title: it.title, value: it.value } : { type: "url", title: it.title, value: it.link };
          })));
        }
      }
    }
    // A question with a validator: the input takes that kind of value.
    var field = a.content_type === "form" && attrs && attrs.form && attrs.form.fields && attrs.form.fields[0];
    input.type = field ? field.type : "text";
    input.placeholder = field ? field.label : "Type a message…";
  }

  var busy = false;
  function ask(prompt, shown) {
    if (busy || !prompt) return;
    busy = true;
    send.disabled = true;
    log.querySelectorAll(".sfw-choices button").forEach(function (b) { b.disabled = true; });
    add(el("div", "sfw-msg sfw-user", shown || prompt));
    var typing = add(el("div", "sfw-typing", "…"));
    fetch(api + "/v1/widget/" + encodeURIComponent(story), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt: prompt, session_id: session })
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (body) {
        if (res.status === 429) {
          throw new Error("Too many messages; try again in " + (res.headers.get("Retry-After") || "a few") + " s.");
        }
        if (!res.ok) throw new Error(body.error || ("error " + res.status));
        return body;
      });
    }).then(show, function (err) {
      add(el("div", "sfw-note", err.message || "The chat is unreachable."));
    }).then(function () {
      typing.remove();
      busy = false;
      send.disabled = false;
      input.focus();
    });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var v = input.value.trim();
    if (!v) return;
    input.value = "";
    ask(v);
  });
})();
