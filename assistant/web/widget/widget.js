/* Newsroom assistant widget: one script tag adds a chat button and panel (in a Shadow DOM) to any page.
 *   <script src="https://HOST/widget.js" data-token="..." data-title="Ask the newsroom" async></script>
 * No framework, no build step. Everything that comes from articles or answers is set with textContent. */
(function () {
  "use strict";
  var script = document.currentScript ||
    document.querySelector('script[src*="widget.js"][data-token]') ||
    document.querySelector('script[src*="widget.js"]');
  if (!script || window.__newsroomAssistantWidget) return;
  window.__newsroomAssistantWidget = true;

  var base = new URL(".", script.src);  // the API lives next to widget.js
  var token = script.getAttribute("data-token") || "";
  var title = script.getAttribute("data-title") || "Ask the newsroom";
  var history = [];
  var busy = false;

  var CSS = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}",
    ".launch{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:28px;",
    "padding:14px 20px;background:#1d4ed8;color:#fff;font-size:15px;font-weight:600;cursor:pointer;",
    "box-shadow:0 4px 14px rgba(0,0,0,.25)}",
    ".launch:focus-visible,button:focus-visible,summary:focus-visible,textarea:focus-visible,a:focus-visible",
    "{outline:3px solid #f59e0b;outline-offset:2px}",
    ".panel{position:fixed;right:20px;bottom:84px;z-index:2147483001;width:380px;max-height:min(600px,80vh);",
    "display:flex;flex-direction:column;background:#fff;color:#111827;border:1px solid #d1d5db;",
    "border-radius:12px;box-shadow:0 10px 30px rgba(0,0,0,.25);font-size:14px;line-height:1.45}",
    ".panel[hidden]{display:none}",
    "header{display:flex;align-items:center;justify-content:space-between;padding:10px 14px;",
    "border-bottom:1px solid #e5e7eb}",
    "h2{margin:0;font-size:16px}",
    ".close{border:0;background:none;font-size:22px;line-height:1;cursor:pointer;color:#374151;padding:4px 8px}",
    ".log{flex:1;overflow-y:auto;padding:10px 14px}",
    ".q{font-weight:600;margin:10px 0 4px;unicode-bidi:plaintext}",
    ".a{white-space:pre-wrap;margin:0 0 6px;unicode-bidi:plaintext}",
    ".a.refused,.status{color:#4b5563;font-style:italic}",
    ".err{color:#991b1b;background:#fef2f2;border:1px solid #fecaca;border-radius:6px;padding:6px 8px;margin:6px 0}",
    ".ref{border:0;background:#e0e7ff;color:#1e3a8a;border-radius:4px;padding:0 4px;font-size:12px;cursor:pointer}",
    "ol{list-style:none;padding:0;margin:6px 0 10px}",
    "details{border:1px solid #e5e7eb;border-radius:6px;margin:4px 0;padding:4px 8px}",
    "summary{cursor:pointer;font-weight:600;unicode-bidi:plaintext}",
    ".meta{color:#6b7280;font-size:12px;margin:4px 0}",
    "blockquote{margin:4px 0;padding-left:8px;border-left:3px solid #93c5fd;white-space:pre-wrap;unicode-bidi:plaintext}",
    "mark{background:#fde68a;color:inherit}",
    ".speaker{color:#374151;font-style:italic}",
    ".warn{color:#92400e;background:#fffbeb;border:1px solid #fcd34d;border-radius:6px;padding:6px 8px;margin:6px 0}",
    ".warn ul{margin:4px 0 0;padding-left:18px}",
    "details.unsupported{border-color:#fcd34d;background:#fffbeb}",
    "form{display:flex;gap:8px;padding:10px 14px;border-top:1px solid #e5e7eb}",
    "textarea{flex:1;resize:none;height:42px;padding:8px;border:1px solid #9ca3af;border-radius:6px;font-size:14px}",
    ".send{border:0;border-radius:6px;background:#1d4ed8;color:#fff;padding:0 14px;font-weight:600;cursor:pointer}",
    ".send:disabled{opacity:.5;cursor:default}",
    "@media (max-width:480px){.panel{left:0;right:0;bottom:0;width:100%;max-height:100%;height:100%;",
    "border-radius:0}.launch{right:12px;bottom:12px}}"
  ].join("");

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;
    return node;
  }

  var host = el("div", { id: "newsroom-assistant-widget" });
  var root = host.attachShadow({ mode: "open" });
  var launch = el("button", { class: "launch", type: "button", "aria-haspopup": "dialog",
    "aria-expanded": "false", "aria-controls": "nra-panel" }, title);
  var panel = el("section", { class: "panel", id: "nra-panel", role: "dialog", "aria-modal": "false",
    "aria-labelledby": "nra-title", hidden: "" });
  var header = el("header");
  var heading = el("h2", { id: "nra-title" }, title);
  var close = el("button", { class: "close", type: "button", "aria-label": "Close" }, "\u00d7");
  var log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Answers" });
  var form = el("form");
  var input = el("textarea", { "aria-label": "Your question", placeholder: "Ask a question about the news\u2026",
    maxlength: "2000", rows: "1" });
  var send = el("button", { class: "send", type: "submit" }, "Ask");
  header.append(heading, close);
  form.append(input, send);
  panel.append(header, log, form);
  // A constructed stylesheet, not a <style> element: it works on wiki pages whose CSP forbids inline styles.
  if (window.CSSStyleSheet && "replaceSync" in CSSStyleSheet.prototype && "adoptedStyleSheets" in root) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.append(el("style", null, CSS));
  }
  root.append(launch, panel);

  function open() {
    panel.hidden = false;
    launch.setAttribute("aria-expanded", "true");
    input.focus();
  }
  function shut() {
    panel.hidden = true;
    launch.setAttribute("aria-expanded", "false");
    launch.focus();
  }
  launch.addEventListener("click", function () { panel.hidden ? open() : shut(); });
  close.addEventListener("click", shut);
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") { e.preventDefault(); shut(); } });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit ? form.requestSubmit() : ask(); }
  });
  form.addEventListener("submit", function (e) { e.preventDefault(); ask(); });

  // Lets the host page (and tests) follow the conversation: only the event kind, never its content.
  function notify(kind) {
    host.dispatchEvent(new CustomEvent("newsroom-assistant", { detail: { event: kind }, bubbles: true, composed: true }));
  }

  function showError(box, message) {
    notify("error");
    box.replaceChildren(el("div", { class: "err", role: "alert" }, message));
  }

  function httpUrl(u) {
    try { var p = new URL(u); return p.protocol === "http:" || p.protocol === "https:" ? p.href : null; }
    catch (e) { return null; }
  }

  // The answer text with each [n] turned into a button that opens citation n; a cited sentence ends its line,
  // so the next one (a dateline such as "MOSCOW \u2014") does not run into it.
  function renderAnswer(node, text, items) {
    node.replaceChildren();
    var parts = String(text).split(/(\[\d+\])/);
    parts.forEach(function (part, i) {
      var m = /^\[(\d+)\]$/.exec(part);
      var target = m && items[m[1]];
      if (!m && i > 0 && /^\[\d+\]$/.test(parts[i - 1]) && /^[ \t]+[^\s\[]/.test(part)) {
        part = part.replace(/^[ \t]+/, "\n");
      }
      if (!target) { node.append(document.createTextNode(part)); return; }
      var b = el("button", { class: "ref", type: "button", "aria-label": "Show source " + m[1] }, part);
      b.addEventListener("click", function () {
        target.open = true;
        target.querySelector("summary").focus();
        var mark = target.querySelector('mark[data-n="' + m[1] + '"]');  // this number's quote in the passage
        if (mark) mark.scrollIntoView({ block: "nearest" });
      });
      node.append(b);
    });
  }

  // The passage with every quote of `cites` highlighted (quotes found by their text; a quote alone if absent).
  function quoteBlock(passage, cites) {
    var quote = el("blockquote");
    var spans = [];
    cites.forEach(function (c) {
      var at = c.quote ? passage.indexOf(c.quote) : -1;
      if (at >= 0) spans.push([at, at + c.quote.length, c.n, c.speaker]);
    });
    // " — Speaker" after a quote whose speaker is known (textContent, like every article field)
    function speaker(name) { return el("span", { class: "speaker" }, " \u2014 " + name); }
    if (!spans.length) {
      cites.forEach(function (c) {
        quote.append(el("mark", { "data-n": String(c.n) }, c.quote || ""));
        if (c.speaker) quote.append(speaker(c.speaker));
      });
      return quote;
    }
    spans.sort(function (a, b) { return a[0] - b[0]; });
    var pos = 0;
    spans.forEach(function (s) {
      var a = Math.max(s[0], pos);
      if (s[1] <= a) return;
      quote.append(document.createTextNode(passage.slice(pos, a)),
        el("mark", { "data-n": String(s[2]) }, passage.slice(a, s[1])));
      if (s[3]) quote.append(speaker(s[3]));
      pos = s[1];
    });
    quote.append(document.createTextNode(passage.slice(pos)));
    return quote;
  }

  // One collapsible source per cited passage (quotes from the same passage share it), in citation order.
  function renderCitations(box, answerNode, data) {
    var items = {};
    if (data.citations && data.citations.length) {
      var list = el("ol", { "aria-label": "Sources" });
      var groups = [];
      var byPassage = {};
      data.citations.forEach(function (c) {
        var key = c.passage ? c.article_id + "\u0000" + c.passage : "n" + c.n;
        if (!byPassage[key]) { byPassage[key] = []; groups.push(byPassage[key]); }
        byPassage[key].push(c);
      });
      groups.forEach(function (cites) {
        var c = cites[0];
        var numbers = cites.map(function (x) { return x.n; });
        var d = el("details", { "data-n": numbers.join(" ") });
        d.append(el("summary", null, numbers.map(function (n) { return "[" + n + "]"; }).join(" ") + " " +
          (c.title || "(untitled)")));
        var meta = [c.source, c.published_at].filter(Boolean);
        var bad = cites.filter(function (x) { return x.supported === false; });
        if (bad.length) {
          d.setAttribute("class", "unsupported");
          meta.push(bad.map(function (x) { return "[" + x.n + "]"; }).join(" ") +
            " does not support the sentence citing it");
        }
        if (meta.length) d.append(el("div", { class: "meta" }, meta.join(" \u00b7 ")));
        d.append(quoteBlock(c.passage || "", cites));
        var href = c.url && httpUrl(c.url);
        if (href) {
          var a = el("a", { href: href, target: "_blank", rel: "noopener noreferrer" }, "Read the article");
          d.append(a);
        }
        numbers.forEach(function (n) { items[n] = d; });
        var li = el("li");
        li.append(d);
        list.append(li);
      });
      box.append(list);
    }
    // The citation check: claims the cited passages do not back (the generative engine's), and the score.
    if (data.unsupported && data.unsupported.length) {
      var warn = el("div", { class: "warn", role: "note" },
        "\u26a0 Not supported by the passages they cite" +
        (typeof data.support === "number" ? " (support " + data.support.toFixed(2) + ")" : "") + ":");
      var ul = el("ul");
      data.unsupported.forEach(function (claim) { ul.append(el("li", null, String(claim))); });
      warn.append(ul);
      box.insertBefore(warn, box.querySelector("ol"));
    }
    renderAnswer(answerNode, data.answer || "", items);
    if (data.refused) answerNode.classList.add("refused");
    if (data.notice) box.append(el("div", { class: "meta" }, data.notice));
  }

  function statusMessage(status, body, retryAfter) {
    var detail = body && body.error ? body.error : "";
    if (status === 401) return "This widget's token is not valid (" + (detail || "unauthorized") +
      "). Ask the wiki admin to check data-token.";
    if (status === 403) return "The assistant refused this page: " + (detail || "origin not allowed") + ".";
    if (status === 429) return "Too many questions right now. Try again in " + (retryAfter || "a few") + " seconds.";
    if (status === 413) return "That question is too long.";
    return "The assistant could not answer: " + (detail || "error " + status) + (body && body.hint ? " (" + body.hint + ")" : "");
  }

  // fetch() fails without a status when the browser blocks the call (origin not allowed by CORS) or the
  // server is down; a no-cors probe of /healthz tells the two apart.
  function networkMessage() {
    return fetch(new URL("healthz", base), { mode: "no-cors", cache: "no-store" }).then(function () {
      return "This site (" + location.origin + ") is not allowed to use the assistant. " +
        "Ask the wiki admin to add it to the widget token's allowed origins.";
    }, function () {
      return "Cannot reach the assistant at " + base.host + ". Check your connection and try again.";
    });
  }

  function ask() {
    var question = input.value.trim();
    if (!question || busy) return;
    busy = true;
    send.disabled = true;
    input.value = "";
    var turn = el("div", { class: "turn" });
    var answerNode = el("p", { class: "a" });
    var status = el("div", { class: "status" }, "Searching the articles\u2026");
    turn.append(el("p", { class: "q" }, question), answerNode, status);
    log.append(turn);
    log.scrollTop = log.scrollHeight;
    var headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
    if (token) headers.Authorization = "Bearer " + token;
    var text = "";
    var final = null;
    var failed = false;

    function handle(event, data) {
      notify(event);
      if (event === "delta") {
        text += data.text || "";
        answerNode.textContent = text;
        log.scrollTop = log.scrollHeight;
      } else if (event === "notice") {  // e.g. the model server is down and the extractive engine answers
        status.textContent = data.notice || "";
      } else if (event === "citations") {
        final = data;
        status.remove();
        renderCitations(turn, answerNode, data);
      } else if (event === "error") {
        failed = true;
        showError(status, (data.error || "error") + (data.hint ? " (" + data.hint + ")" : ""));
      } else if (event === "done" && !final && !failed) {
        status.remove();
      }
    }

    fetch(new URL("api/ask/stream", base), {
      method: "POST", headers: headers, credentials: "omit",
      body: JSON.stringify({ question: question, history: history.slice(-6) })
    }).then(function (res) {
      if (!res.ok) {
        return res.json().catch(function () { return null; }).then(function (body) {
          showError(status, statusMessage(res.status, body, res.headers.get("Retry-After")));
        });
      }
      var reader = res.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          buffer += decoder.decode(chunk.value || new Uint8Array(), { stream: !chunk.done });
          var blocks = buffer.replace(/\r\n/g, "\n").split("\n\n");
          buffer = chunk.done ? "" : blocks.pop();
          blocks.forEach(function (block) {
            var event = "message", data = "";
            block.split("\n").forEach(function (line) {
              if (line.indexOf("event:") === 0) event = line.slice(6).trim();
              else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
            });
            if (!data) return;
            try { handle(event, JSON.parse(data)); } catch (e) { /* a malformed event is skipped */ }
          });
          if (!chunk.done) return pump();
        });
      }
      return pump();
    }).catch(function () {
      return networkMessage().then(function (msg) { showError(status, msg); });
    }).then(function () {
      if (final) history.push({ question: question, answer: final.answer || "" });
      busy = false;
      send.disabled = false;
      input.focus();
    });
  }

  function mount() { document.body.appendChild(host); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
