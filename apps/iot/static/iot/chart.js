/* A small time-series line chart on a canvas (no library: the demo runs offline). */
"use strict";
class TelemetryChart {
  constructor(canvas, windowSeconds = 300) {
    this.canvas = canvas;
    this.windowSeconds = windowSeconds;
    this.series = new Map();  // metric -> [[ts, value], ...] oldest first
    this.colors = ["#3158d4", "#1a8f5a", "#c27a00", "#c8343c", "#7b4fd0", "#0f8fa8"];
  }

  set(metric, points) { this.series.set(metric, points.slice()); }

  add(ts, metrics) {
    for (const [name, value] of Object.entries(metrics)) {
      if (!this.series.has(name)) this.series.set(name, []);
      const points = this.series.get(name);
      points.push([ts, value]);
      if (points.length > 5000) points.splice(0, points.length - 5000);
    }
  }

  color(i) { return this.colors[i % this.colors.length]; }

  draw() {
    const canvas = this.canvas, ctx = canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (canvas.width !== width * ratio) { canvas.width = width * ratio; canvas.height = height * ratio; }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    // The window shrinks to the data (at least a minute), so a new device's chart is
    // not a sliver at the right edge.
    const now = Date.now() / 1000;
    let earliest = now;
    for (const points of this.series.values()) {
      const first = points.find(p => p[0] >= now - this.windowSeconds);
      if (first) earliest = Math.min(earliest, first[0]);
    }
    const span = Math.max(60, Math.min(this.windowSeconds, (now - earliest) * 1.1));
    const start = now - span;
    const left = 8, right = width - 8, top = 12, bottom = height - 22;
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "#e3e6ec"; ctx.fillStyle = "#6b7385"; ctx.lineWidth = 1;
    for (let i = 0; i <= 5; i++) {  // time grid: every 2 minutes of the window
      const x = left + (right - left) * i / 5;
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
      const back = span * (5 - i) / 5;
      const label = i === 5 ? "now" : back < 120 ? "-" + Math.round(back) + " s" : "-" + Math.round(back / 60) + " min";
      ctx.fillText(label, Math.min(x + 3, right - 28), height - 6);
    }
    let drawn = 0, index = 0;
    for (const [name, all] of this.series) {
      const points = all.filter(p => p[0] >= start);
      const color = this.color(index++);
      if (!points.length) continue;
      drawn++;
      let lo = Math.min(...points.map(p => p[1])), hi = Math.max(...points.map(p => p[1]));
      if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
      const pad = (hi - lo) * 0.1; lo -= pad; hi += pad;
      const x = ts => left + (right - left) * (ts - start) / span;
      const y = v => bottom - (bottom - top) * (v - lo) / (hi - lo);
      ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
      points.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
      ctx.stroke();
      const last = points[points.length - 1];
      ctx.fillStyle = color; ctx.beginPath(); ctx.arc(x(last[0]), y(last[1]), 3.5, 0, 7); ctx.fill();
    }
    return drawn;
  }

  legend() {
    return [...this.series.entries()].map(([name, points], i) => {
      const last = points.length ? " " + (+points[points.length - 1][1].toFixed(2)) : "";
      return '<span class="iot-legend"><i style="background:' + this.color(i) + '"></i>' + Iot.esc(name)
        + "<b>" + Iot.esc(last) + "</b></span>";
    }).join("");
  }
}
