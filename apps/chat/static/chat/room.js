// Chat room client: WebSocket protocol of CONTRACT § Chat, no build step.
//
// Exactly-once sends: every message gets a client_msg_id and stays "pending" until its
// ack; after a reconnect, pending messages are sent again with the same id, and the
// room stores each id once for this page: hello carries `client_id`, a random id the page
// keeps across reconnects, so nobody else can claim our client_msg_ids. Resume: hello carries `since` (the newest id seen), so a
// reconnect gets exactly the messages it missed.
(() => {
  "use strict";

  const app = document.getElementById("chat");
  const room = app.dataset.room;
  const isPrivate = app.dataset.private === "1";
  const maxText = Number(app.dataset.maxText);
  const $ = (id) => document.getElementById(id);
  const list = $("message-list");
  const scroller = $("messages");
  const text = $("text");
  const sendButton = $("send");
  const conn = $("conn");

  const GROUP_SECONDS = 300;
  const TYPING_SEND_EVERY = 2500;
  const TYPING_SHOW_FOR = 4000;

  let name = localStorage.getItem("chat.name") || "";
  // 128 random bits, base64url: the sender of this page's messages (CONTRACT § Chat).
  const clientId = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  let ws = null;
  let ready = false;
  let everReady = false;
  let lastId = 0; // newest message id seen (for `since`)
  let oldestId = null; // oldest message id shown (for history paging)
  let attempts = 0;
  let reconnectTimer = null;
  let lastTypingSent = 0;
  let historyLoading = false;
  let backlogFirst = null; // first backlog message id after the latest hello
  let roster = new Set();
  const rendered = new Map(); // message id -> <li>
  const pending = new Map(); // client_msg_id -> {text, li, failed}
  const typing = new Map(); // name -> timeout handle

  // -- helpers -------------------------------------------------------------------------

  // Ten distinct avatar colours, picked by an FNV-1a hash of the name.
  const COLOURS = ["#d9534f", "#e07b24", "#c79a00", "#3a9d5d", "#1f9aa8",
    "#3468d6", "#6a4fcf", "#b3479e", "#7a8699", "#a0522d"];

  function colour(value) {
    let h = 0x811c9dc5;
    for (const byte of new TextEncoder().encode(value)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
    return COLOURS[h % COLOURS.length];
  }

  function avatar(who, el = document.createElement("span")) {
    el.className = "avatar";
    el.textContent = [...who.trim()][0] || "?";
    el.style.background = colour(who);
    return el;
  }

  function clock(ts) {
    return new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 90;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
  }

  function toast(message, kind = "error", ms = 5000) {
    // The same notice again restarts its timer instead of stacking a copy.
    let el = [...$("toasts").children].find((t) => t.textContent === message);
    if (!el) {
      el = document.createElement("div");
      el.className = `toast ${kind}`;
      el.textContent = message;
      $("toasts").append(el);
    }
    clearTimeout(el.timer);
    el.timer = setTimeout(() => el.remove(), ms);
  }

  function setConnection(state) {
    const labels = {
      online: ["ok", "Connected"],
      connecting: ["warn", "Connecting…"],
      reconnecting: ["warn", "Reconnecting…"],
      offline: ["bad", "Offline"],
    };
    const [cls, label] = labels[state];
    conn.className = `badge ${cls}`;
    conn.textContent = label;
    conn.dataset.state = state;
    sendButton.disabled = state !== "online" || !text.value.trim();
  }

  // -- messages ------------------------------------------------------------------------

  function messageElement(m, mine) {
    const li = document.createElement("li");
    li.className = "msg" + (mine ? " mine" : "");
    li.dataset.name = m.name;
    li.dataset.ts = m.ts;
    li.append(avatar(m.name));
    const meta = document.createElement("div");
    meta.className = "meta";
    const author = document.createElement("span");
    author.className = "author";
    author.textContent = m.name;
    const time = document.createElement("time");
    time.className = "time";
    time.textContent = clock(m.ts);
    time.title = new Date(m.ts * 1000).toLocaleString();
    meta.append(author, time);
    const body = document.createElement("div");
    body.className = "body";
    body.textContent = m.text;
    li.append(meta, body);
    if (m.id != null) li.dataset.id = m.id;
    return li;
  }

  function regroup(li) {
    if (!li || !li.classList.contains("msg")) return;
    const prev = li.previousElementSibling;
    const same =
      prev &&
      prev.classList.contains("msg") &&
      prev.dataset.name === li.dataset.name &&
      Number(li.dataset.ts) - Number(prev.dataset.ts) < GROUP_SECONDS;
    li.classList.toggle("cont", Boolean(same));
  }

  // Insert by id: the list is kept in id order; pending messages stay last.
  function insertMessage(m) {
    if (rendered.has(m.id)) return;
    const mine = m.name === name;
    let li = null;
    const own = m.client_msg_id != null && mine ? pending.get(m.client_msg_id) : null;
    if (own) {
      li = own.li;
      pending.delete(m.client_msg_id);
      li.classList.remove("pending", "failed");
      li.querySelector(".status")?.remove();
      li.dataset.id = m.id;
      li.dataset.ts = m.ts;
      li.querySelector(".time").textContent = clock(m.ts);
      li.remove();
    } else {
      li = messageElement(m, mine);
    }
    rendered.set(m.id, li);
    let before = null;
    for (const node of list.children) {
      if (node.classList.contains("pending") || node.classList.contains("failed")) {
        before = node;
        break;
      }
      const id = Number(node.dataset.id);
      if (node.dataset.id && id > m.id) {
        before = node;
        break;
      }
    }
    // Fast path for the common case (a new message at the end) is the loop ending early
    // on the first pending node or running to the end.
    list.insertBefore(li, before);
    regroup(li);
    regroup(li.nextElementSibling);
    lastId = Math.max(lastId, m.id);
    oldestId = oldestId === null ? m.id : Math.min(oldestId, m.id);
    if (typing.has(m.name)) stopTyping(m.name);
  }

  function note(message, cls = "") {
    const li = document.createElement("li");
    li.className = `note ${cls}`.trim();
    li.textContent = message;
    const stick = nearBottom();
    let before = null;
    for (const node of list.children) {
      if (node.classList.contains("pending") || node.classList.contains("failed")) {
        before = node;
        break;
      }
    }
    list.insertBefore(li, before);
    if (stick) scrollToBottom();
  }

  function addPending(body) {
    const id = newId();
    const li = messageElement({ name, text: body, ts: Date.now() / 1000 }, true);
    li.classList.add("pending");
    list.append(li);
    regroup(li);
    pending.set(id, { text: body, li, failed: false });
    scrollToBottom();
    return id;
  }

  function markFailed(id, reason) {
    const entry = pending.get(id);
    if (!entry) return;
    entry.failed = true;
    entry.li.classList.remove("pending");
    entry.li.classList.add("failed");
    entry.li.querySelector(".status")?.remove();
    const status = document.createElement("div");
    status.className = "status";
    status.textContent = `Not sent: ${reason}`;
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "secondary";
    retry.textContent = "Retry";
    retry.addEventListener("click", () => {
      entry.failed = false;
      entry.li.classList.remove("failed");
      entry.li.classList.add("pending");
      status.remove();
      transmit(id);
    });
    status.append(retry);
    entry.li.append(status);
  }

  function transmit(id) {
    const entry = pending.get(id);
    if (entry && ready && ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "send", text: entry.text, client_msg_id: id }));
    }
  }

  // -- roster and typing -----------------------------------------------------------------

  function renderRoster() {
    const ul = $("roster");
    ul.replaceChildren();
    const everyone = [...new Set([name, ...roster])].filter(Boolean);
    everyone.sort((a, b) => (a === name ? -1 : b === name ? 1 : a.localeCompare(b)));
    for (const who of everyone) {
      const li = document.createElement("li");
      li.dataset.name = who;
      const dot = document.createElement("span");
      dot.className = "presence";
      const label = document.createElement("span");
      label.className = "who";
      label.textContent = who;
      li.append(avatar(who), dot, label);
      if (who === name) {
        const you = document.createElement("span");
        you.className = "you";
        you.textContent = "(you)";
        li.append(you);
      }
      if (typing.has(who)) li.classList.add("is-typing");
      ul.append(li);
    }
    $("online-count").textContent = ready ? everyone.length : 0;
  }

  function renderTyping() {
    const names = [...typing.keys()];
    const el = $("typing");
    if (names.length === 0) el.textContent = "";
    else if (names.length === 1) el.textContent = `${names[0]} is typing…`;
    else if (names.length === 2) el.textContent = `${names[0]} and ${names[1]} are typing…`;
    else el.textContent = "Several people are typing…";
    for (const li of $("roster").children) {
      li.classList.toggle("is-typing", typing.has(li.dataset.name));
    }
  }

  function startTyping(who) {
    clearTimeout(typing.get(who));
    typing.set(
      who,
      setTimeout(() => stopTyping(who), TYPING_SHOW_FOR),
    );
    renderTyping();
  }

  function stopTyping(who) {
    clearTimeout(typing.get(who));
    typing.delete(who);
    renderTyping();
  }

  // -- protocol --------------------------------------------------------------------------

  const handlers = {
    roster(frame) {
      roster = new Set(frame.users);
      renderRoster();
    },
    msg(frame) {
      if (!ready && backlogFirst === null) backlogFirst = frame.id;
      const stick = nearBottom() || frame.name === name;
      insertMessage(frame);
      if (stick) scrollToBottom();
    },
    ready(frame) {
      ready = true;
      attempts = 0;
      setConnection("online");
      if (frame.truncated && backlogFirst !== null) {
        // More than 1,000 missed: drop what is older than the gap and page back instead.
        for (const [id, li] of rendered) {
          if (id < backlogFirst) {
            li.remove();
            rendered.delete(id);
          }
        }
        for (const li of [...list.querySelectorAll(".note")]) li.remove();
        oldestId = backlogFirst;
        $("history-start").hidden = true;
        $("load-older").hidden = false;
        note("You were away for a while: older messages are above.", "gap");
      } else if (!everReady) {
        if (rendered.size < 100) showHistoryStart();
        else $("load-older").hidden = false;
      }
      backlogFirst = null;
      everReady = true;
      renderRoster();
      for (const [id, entry] of pending) if (!entry.failed) transmit(id);
      scrollToBottom();
    },
    joined(frame) {
      roster.add(frame.name);
      renderRoster();
      note(`${frame.name} joined`);
    },
    left(frame) {
      roster.delete(frame.name);
      stopTyping(frame.name);
      renderRoster();
      note(`${frame.name} left`);
    },
    typing(frame) {
      if (frame.name !== name) startTyping(frame.name);
    },
    ack(frame) {
      // The msg frame normally arrived first and settled the pending entry.
      const entry = pending.get(frame.client_msg_id);
      if (entry) {
        pending.delete(frame.client_msg_id);
        entry.li.classList.remove("pending");
        entry.li.dataset.id = frame.id;
        rendered.set(frame.id, entry.li);
      }
    },
    history(frame) {
      historyLoading = false;
      const first = list.firstElementChild;
      const height = scroller.scrollHeight;
      for (const m of frame.messages) insertMessage(m);
      scroller.scrollTop += scroller.scrollHeight - height;
      if (first) regroup(first);
      if (frame.has_more) $("load-older").hidden = false;
      else showHistoryStart();
    },
    error(frame) {
      const id = frame.client_msg_id;
      switch (frame.code) {
        case "rate_limited": {
          const wait = Math.max(1, Math.ceil(frame.retry_after || 1));
          toast(`You're sending messages too fast. Try again in ${wait} s.`);
          if (id) markFailed(id, "too many messages");
          break;
        }
        case "too_long":
          toast(`Message too long: at most ${maxText} characters.`);
          if (id) markFailed(id, "too long");
          break;
        case "bad_name":
          askName(frame.message);
          break;
        default:
          toast(frame.message || frame.code);
          if (id) markFailed(id, frame.message || frame.code);
      }
    },
  };

  function showHistoryStart() {
    $("load-older").hidden = true;
    $("history-start").hidden = false;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    if (!name) return askName();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/chat/${encodeURIComponent(room)}/`);
    ws = socket;
    setConnection(everReady ? "reconnecting" : "connecting");
    socket.addEventListener("open", () => {
      const hello = { type: "hello", name, client_id: clientId };
      if (lastId > 0) hello.since = lastId;
      socket.send(JSON.stringify(hello));
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      const handler = handlers[frame.type];
      if (handler) handler(frame);
    });
    socket.addEventListener("close", () => {
      if (ws !== socket) return; // replaced on purpose (name change)
      ready = false;
      roster = new Set();
      for (const who of [...typing.keys()]) stopTyping(who);
      renderRoster();
      attempts += 1;
      // Backoff with jitter: 0.5 s, 1 s, 2 s … at most 10 s.
      const delay = Math.min(10000, 500 * 2 ** (attempts - 1)) * (0.75 + Math.random() / 2);
      setConnection(attempts > 3 ? "offline" : "reconnecting");
      reconnectTimer = setTimeout(connect, delay);
    });
  }

  function reconnectNow() {
    const old = ws;
    ws = null;
    ready = false;
    if (old) old.close();
    connect();
  }

  // -- name ------------------------------------------------------------------------------

  function showName() {
    $("me-name").textContent = name || "—";
    avatar(name || "?", $("me-avatar"));
  }

  function askName(error = "") {
    const dialog = $("name-dialog");
    $("name-input").value = name;
    $("name-error").textContent = error;
    if (!dialog.open) dialog.showModal();
    $("name-input").focus();
  }

  $("name-form").addEventListener("submit", (event) => {
    const value = $("name-input").value.trim();
    if (!value) {
      event.preventDefault();
      return;
    }
    const changed = value !== name;
    name = value;
    localStorage.setItem("chat.name", name);
    showName();
    renderRoster();
    if (changed || !ws) reconnectNow();
  });
  $("change-name").addEventListener("click", () => askName());

  // -- composer --------------------------------------------------------------------------

  function autosize() {
    text.style.height = "auto";
    text.style.height = `${Math.min(text.scrollHeight, 160)}px`;
  }

  function updateComposer() {
    const length = text.value.length;
    const counter = $("counter");
    counter.hidden = length < maxText - 200;
    counter.textContent = `${maxText - length}`;
    counter.classList.toggle("over", length > maxText);
    sendButton.disabled = !ready || !text.value.trim();
  }

  text.addEventListener("input", () => {
    autosize();
    updateComposer();
    const now = Date.now();
    if (ready && text.value && now - lastTypingSent > TYPING_SEND_EVERY) {
      lastTypingSent = now;
      ws.send(JSON.stringify({ type: "typing" }));
    }
  });

  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = text.value;
    if (!body.trim() || !ready) return;
    if (body.length > maxText) {
      toast(`Message too long: at most ${maxText} characters.`);
      return;
    }
    const id = addPending(body);
    transmit(id);
    lastTypingSent = 0;
    text.value = "";
    autosize();
    updateComposer();
  });

  $("load-older").addEventListener("click", () => {
    if (historyLoading || !ready) return;
    historyLoading = true;
    const request = { type: "history", limit: 50 };
    if (oldestId !== null) request.before = oldestId;
    ws.send(JSON.stringify(request));
  });

  scroller.addEventListener("scroll", () => {
    if (scroller.scrollTop < 40 && !$("load-older").hidden) $("load-older").click();
  });

  if (isPrivate) {
    $("copy-link").addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(location.href);
        toast("Invite link copied.", "info", 2500);
      } catch {
        window.prompt("Copy this invite link:", location.href);
      }
    });
  }

  showName();
  renderRoster();
  connect();
})();
