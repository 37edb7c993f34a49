// Rate limiter playground: fires requests at /api/ratelimit/<policy>/<key> and charts the
// decisions. Plain JS and <canvas>, no dependencies.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const policies = JSON.parse($("rl-policies").textContent);
  const el = {
    policy: $("rl-policy"), key: $("rl-key"), burst: $("rl-burst"), cost: $("rl-cost"),
    fire: $("rl-fire"), one: $("rl-one"), peek: $("rl-peek"), steady: $("rl-steady"),
    rate: $("rl-rate"), rateLabel: $("rl-rate-label"), clear: $("rl-clear"), newKey: $("rl-newkey"),
    sent: $("rl-sent"), admitted: $("rl-admitted"), refused: $("rl-refused"), errors: $("rl-errors"),
    remaining: $("rl-remaining"), limit: $("rl-limit"), gauge: $("rl-gauge-fill"),
    headers: $("rl-headers"), body: $("rl-body"), lastStatus: $("rl-last-status"),
    log: $("rl-log"), retry: $("rl-retry"), canvas: $("rl-chart"),
  };
  const SHOWN_HEADERS = ["RateLimit-Policy", "RateLimit", "Retry-After"];
  // {at: decision time in server seconds (client time mapped to it when unknown), allowed}
  let events = [];
  let counts = { sent: 0, admitted: 0, refused: 0, errors: 0 };
  let clockOffset = null; // client s - server s, smallest seen (skew + min latency)
  let retryUntil = 0;
  let steadyTimer = null;

  function currentPolicy() {
    return policies.find((p) => p.name === el.policy.value) || policies[0];
  }
  function randomKey() {
    const hex = Math.floor(Math.random() * 0xffffff).toString(16).padStart(6, "0");
    return "visitor-" + hex;
  }
  function url() {
    return "/api/ratelimit/" + encodeURIComponent(el.policy.value) + "/" + encodeURIComponent(el.key.value);
  }

  async function request(method) {
    const init = { method, headers: {} };
    if (method === "POST") {
      const cost = parseInt(el.cost.value, 10) || 1;
      if (cost !== 1) {
        init.body = JSON.stringify({ cost });
        init.headers["Content-Type"] = "application/json";
      }
      counts.sent += 1;
    }
    let response, body;
    try {
      response = await fetch(url(), init);
      body = await response.json().catch(() => null);
    } catch (err) {
      counts.errors += 1;
      addLog({ status: "net", text: String(err.message || err) }, "err");
      render();
      return;
    }
    const received = Date.now();
    // Decision times stay in the server's seconds, compared exactly as the limiter does
    // (t - e < period); only drawing maps them to the client's clock.
    let at = received / 1000 - (clockOffset || 0);
    if (body && typeof body.at === "number") {
      const offset = received / 1000 - body.at;
      clockOffset = clockOffset === null ? offset : Math.min(clockOffset, offset);
      at = body.at;
    }
    const allowed = response.status === 200 && body && body.allowed;
    if (method === "POST") {
      if (response.status === 200) counts.admitted += 1;
      else if (response.status === 429) counts.refused += 1;
      else counts.errors += 1;
      if (response.status === 200 || response.status === 429) {
        events.push({ at, allowed: response.status === 200 });
      }
    }
    if (body && typeof body.remaining === "number") {
      showQuota(body.remaining, body.limit);
      if (response.status === 429 && body.retry_after) {
        retryUntil = Math.max(retryUntil, received + body.retry_after * 1000);
      }
    }
    showLast(method, response, body);
    const cls = response.status === 200 ? "ok" : response.status === 429 ? "bad" : "err";
    let text;
    if (response.status === 200 || response.status === 429) {
      text = method === "GET" ? "peek · " : "";
      const wait = body.retry_after;
      text += `${body.remaining} left` +
        (response.status === 429 ? ` · retry in ${wait.toFixed(wait < 1 ? 3 : 2)} s` : "");
    } else {
      text = (body && (body.message || body.error)) || response.statusText;
    }
    addLog({ status: response.status, text, allowed }, cls + (method === "GET" ? " peek" : ""));
    render();
  }

  function showQuota(remaining, limit) {
    el.remaining.textContent = remaining;
    el.limit.textContent = limit;
    const share = limit ? remaining / limit : 0;
    el.gauge.style.width = (share * 100).toFixed(1) + "%";
    el.gauge.style.background = share > 0.5 ? "var(--ok)" : share > 0 ? "var(--warn)" : "var(--bad)";
  }

  function showLast(method, response, body) {
    const badge = el.lastStatus;
    badge.className = "badge " + (response.status === 200 ? "ok" : response.status === 429 ? "bad" : "warn");
    badge.textContent = `${method} · ${response.status}`;
    const tbody = document.createElement("tbody");
    for (const name of SHOWN_HEADERS) {
      const value = response.headers.get(name);
      if (value === null) continue;
      const row = tbody.insertRow();
      row.insertCell().textContent = name;
      row.insertCell().textContent = value;
    }
    if (!tbody.rows.length) {
      const row = tbody.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 2;
      cell.className = "muted";
      cell.textContent = "no rate limit headers";
    }
    el.headers.replaceChildren(tbody);
    el.body.textContent = body ? JSON.stringify(body, null, 1) : "";
  }

  function addLog(entry, cls) {
    const li = document.createElement("li");
    li.className = cls;
    const now = new Date();
    const stamp = now.toLocaleTimeString([], { hour12: false }) + "." +
      String(now.getMilliseconds()).padStart(3, "0").slice(0, 1);
    li.innerHTML = '<span class="t"></span><span class="code"></span><span class="msg"></span>';
    li.children[0].textContent = stamp;
    li.children[1].textContent = entry.status;
    li.children[2].textContent = entry.text;
    el.log.prepend(li);
    while (el.log.children.length > 60) el.log.lastChild.remove();
  }

  function render() {
    el.sent.textContent = counts.sent;
    el.admitted.textContent = counts.admitted;
    el.refused.textContent = counts.refused;
    el.errors.textContent = counts.errors;
    draw();
  }

  // -- chart -------------------------------------------------------------------------
  function draw() {
    const canvas = el.canvas;
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width) return;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const policy = currentPolicy();
    const period = policy.period;
    const span = Math.min(180, Math.max(30, 3 * period));
    const slices = 60, slice = span / slices;
    const now = Date.now() / 1000 - (clockOffset || 0), start = now - span; // server seconds
    const pad = { left: 40, right: 12, top: 14, bottom: 26 };
    const plotW = width - pad.left - pad.right, plotH = height - pad.top - pad.bottom;

    const admitted = new Array(slices).fill(0), refused = new Array(slices).fill(0);
    const visible = events.filter((e) => e.at >= start - period);
    for (const e of visible) {
      if (e.at < start) continue;
      const i = Math.min(slices - 1, Math.floor((e.at - start) / slice));
      (e.allowed ? admitted : refused)[i] += 1;
    }
    // Admitted in the trailing period, as a step line through every admission.
    const admits = visible.filter((e) => e.allowed).map((e) => e.at).sort((a, b) => a - b);
    const points = [];
    const inWindow = (x) => {
      let n = 0;
      for (const t of admits) if (t <= x && x - t < period) n += 1;
      return n;
    };
    const xs = new Set([start, now]);
    for (const t of admits) {
      if (t >= start) xs.add(t);
      if (t + period >= start && t + period <= now) xs.add(t + period);
    }
    for (const x of [...xs].sort((a, b) => a - b)) points.push([x, inWindow(x)]);

    let maxY = policy.limit * 1.2;
    for (let i = 0; i < slices; i++) maxY = Math.max(maxY, admitted[i] + refused[i]);
    maxY = niceCeil(maxY);
    const X = (t) => pad.left + ((t - start) / span) * plotW;
    const Y = (v) => pad.top + plotH - (v / maxY) * plotH;

    // grid and axes
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#6b7385";
    ctx.strokeStyle = "#e9ecf1";
    ctx.lineWidth = 1;
    const step = niceStep(maxY / 4);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let v = 0; v <= maxY + 1e-9; v += step) {
      const y = Math.round(Y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(pad.left, y); ctx.lineTo(width - pad.right, y); ctx.stroke();
      ctx.fillText(String(Math.round(v)), pad.left - 6, y);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const tickS = span <= 30 ? 5 : span <= 90 ? 15 : 30;
    for (let s = 0; s <= span + 1e-9; s += tickS) {
      const x = X(now - s);
      ctx.fillText(s === 0 ? "now" : `−${s}s`, x, height - pad.bottom + 7);
    }

    // bars
    const barW = Math.max(1, plotW / slices - 2);
    for (let i = 0; i < slices; i++) {
      const x = pad.left + i * (plotW / slices) + 1;
      if (admitted[i]) {
        ctx.fillStyle = "#2fa36b";
        ctx.fillRect(x, Y(admitted[i]), barW, Y(0) - Y(admitted[i]));
      }
      if (refused[i]) {
        ctx.fillStyle = "#e06a70";
        ctx.fillRect(x, Y(admitted[i] + refused[i]), barW, Y(admitted[i]) - Y(admitted[i] + refused[i]));
      }
    }

    // limit line
    ctx.save();
    ctx.setLineDash([6, 4]);
    ctx.strokeStyle = "#8a93a6";
    ctx.lineWidth = 1.5;
    const ly = Math.round(Y(policy.limit)) + 0.5;
    ctx.beginPath(); ctx.moveTo(pad.left, ly); ctx.lineTo(width - pad.right, ly); ctx.stroke();
    ctx.restore();
    ctx.fillStyle = "#6b7385";
    ctx.textAlign = "left";
    ctx.textBaseline = "bottom";
    ctx.fillText(`limit ${policy.limit} per ${policy.period} s`, pad.left + 6, ly - 3);

    // trailing-window line
    if (points.length) {
      ctx.strokeStyle = "#3158d4";
      ctx.lineWidth = 2;
      ctx.beginPath();
      let prev = null;
      for (const [x, v] of points) {
        const px = X(Math.max(x, start)), py = Y(v);
        if (prev === null) ctx.moveTo(px, py);
        else ctx.lineTo(px, Y(prev));
        ctx.lineTo(px, py);
        prev = v;
      }
      ctx.stroke();
    }

    // countdown
    const left = retryUntil - Date.now();
    el.retry.textContent = left > 0 ? `next admission in ${(left / 1000).toFixed(1)} s` : "";
    el.retry.hidden = !(left > 0);
    events = events.filter((e) => e.at >= start - period);
  }

  function niceStep(raw) {
    const mag = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-9))));
    for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * mag) return Math.max(1, m * mag);
    return 10 * mag;
  }
  function niceCeil(v) {
    const step = niceStep(v / 4);
    return Math.ceil(v / step) * step;
  }

  // -- actions -------------------------------------------------------------------------
  async function fireBurst() {
    const n = Math.max(1, Math.min(500, parseInt(el.burst.value, 10) || 1));
    el.fire.disabled = true;
    try {
      await Promise.all(Array.from({ length: n }, () => request("POST")));
    } finally {
      el.fire.disabled = false;
    }
  }
  function setSteady() {
    if (steadyTimer) clearInterval(steadyTimer);
    steadyTimer = null;
    const rate = parseInt(el.rate.value, 10);
    el.rateLabel.textContent = `${rate} req/s`;
    if (el.steady.checked) steadyTimer = setInterval(() => request("POST"), 1000 / rate);
  }
  function reset() {
    events = [];
    counts = { sent: 0, admitted: 0, refused: 0, errors: 0 };
    retryUntil = 0;
    el.log.replaceChildren();
    const p = currentPolicy();
    el.cost.max = p.limit;
    showQuota(p.limit, p.limit);
    el.remaining.textContent = "–";
    render();
  }

  el.fire.addEventListener("click", fireBurst);
  el.one.addEventListener("click", () => request("POST"));
  el.peek.addEventListener("click", () => request("GET"));
  el.steady.addEventListener("change", setSteady);
  el.rate.addEventListener("input", setSteady);
  el.clear.addEventListener("click", reset);
  el.newKey.addEventListener("click", () => { el.key.value = randomKey(); reset(); request("GET"); });
  el.policy.addEventListener("change", () => { reset(); request("GET"); });
  window.addEventListener("resize", draw);

  el.key.value = randomKey();
  reset();
  request("GET");
  setInterval(draw, 200);
})();
