/* Shared helpers of the device pages: API calls, times, JSON rendering. */
"use strict";
const Iot = (() => {
  async function api(method, path, body) {
    const options = {method, headers: {}};
    if (body !== undefined) {
      options.body = JSON.stringify(body);
      options.headers["Content-Type"] = "application/json";
    }
    const response = await fetch("/api/devices/" + path, options);
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const error = new Error((data && data.message) || response.statusText);
      error.status = response.status;
      error.body = data;
      throw error;
    }
    return data;
  }

  function ago(ts) {
    if (ts === null || ts === undefined) return "never";
    const s = Math.max(0, Date.now() / 1000 - ts);
    if (s < 2) return "just now";
    if (s < 60) return Math.floor(s) + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(ts * 1000).toLocaleString();
  }

  function esc(text) {
    return String(text).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  }

  /* Pretty JSON as HTML; keys whose path is in `marks` (a tree like the delta) are
     highlighted with `markClass`. */
  function renderJson(value, marks, markClass, indent = 0) {
    const pad = "  ".repeat(indent);
    if (value === null) return '<span class="j-null">null</span>';
    if (Array.isArray(value)) {
      if (!value.length) return "[]";
      return "[" + value.map(v => "\n" + pad + "  " + renderJson(v, null, markClass, indent + 1)).join(",") + "\n" + pad + "]";
    }
    if (typeof value === "object") {
      const keys = Object.keys(value);
      if (!keys.length) return "{}";
      const rows = keys.map(k => {
        const mark = marks && typeof marks === "object" && k in marks ? marks[k] : null;
        const deeper = mark !== null && typeof mark === "object" && !Array.isArray(mark)
          && value[k] !== null && typeof value[k] === "object" && !Array.isArray(value[k]);
        const inner = '<span class="j-key">"' + esc(k) + '"</span>: '
          + renderJson(value[k], deeper ? mark : null, markClass, indent + 1);
        const whole = mark !== null && !deeper;
        return "\n" + pad + "  " + (whole ? '<span class="' + markClass + '">' + inner + "</span>" : inner);
      });
      return "{" + rows.join(",") + "\n" + pad + "}";
    }
    if (typeof value === "string") return '<span class="j-str">"' + esc(value) + '"</span>';
    if (typeof value === "boolean") return '<span class="j-bool">' + value + "</span>";
    return '<span class="j-num">' + esc(value) + "</span>";
  }

  function badge(el, connected) {
    el.className = "badge " + (connected ? "ok" : "bad");
    el.textContent = connected ? "online" : "offline";
  }

  return {api, ago, esc, renderJson, badge};
})();
