/* One device: the twin live over the watch socket, the desired editor, the telemetry
   chart, and a simulated device over the device socket. */
"use strict";
(() => {
  const deviceId = JSON.parse(document.getElementById("device-id-data").textContent);
  // The simulated device beats three times per heartbeat timeout (at most every 5 s).
  const heartbeatTimeout = JSON.parse(document.getElementById("heartbeat-timeout").textContent);
  const heartbeatMs = Math.max(250, Math.min(5000, heartbeatTimeout * 1000 / 3));
  const path = encodeURIComponent(deviceId);
  const $ = id => document.getElementById(id);
  const editor = $("desired-editor");
  const chart = new TelemetryChart($("chart"));
  let twin = null;
  let editorDirty = false;

  function log(text, kind = "") {
    const item = document.createElement("li");
    item.className = kind;
    item.innerHTML = '<time>' + new Date().toLocaleTimeString() + "</time> " + Iot.esc(text);
    $("log").prepend(item);
    while ($("log").children.length > 60) $("log").lastChild.remove();
  }

  function showError(text) { $("page-error").textContent = text || ""; }

  // -- the twin --------------------------------------------------------------------------
  function render() {
    const state = twin ? twin.state : {desired: {}, reported: {}, delta: {}};
    $("version").textContent = twin ? "version " + twin.version : "no twin yet";
    $("updated").textContent = twin ? "updated " + Iot.ago(twin.timestamp) : "first save creates it";
    const delta = state.delta || {};
    const pending = Object.keys(delta).length > 0;
    $("delta").innerHTML = Iot.renderJson(delta, delta, "j-delta");
    $("delta-panel").classList.toggle("pending", pending);
    $("delta-state").className = "badge " + (pending ? "warn" : "ok");
    $("delta-state").textContent = pending ? "pending" : "in sync";
    $("reported").innerHTML = Iot.renderJson(state.reported);
    $("desired").innerHTML = Iot.renderJson(state.desired, delta, "j-delta");
    $("document").innerHTML = Iot.renderJson(twin);
    if (!editorDirty) editor.value = JSON.stringify(state.desired, null, 2);
    if (twin) setConnection(twin.connection);
  }

  function setConnection(connection) {
    Iot.badge($("conn-badge"), connection.state === "connected");
    $("last-seen").textContent = Iot.ago(connection.last_seen);
  }

  async function load() {
    try {
      twin = await Iot.api("GET", path + "/twin");
    } catch (e) {
      if (e.status !== 404) showError(e.message);
      twin = null;
    }
    render();
  }

  editor.addEventListener("input", () => { editorDirty = true; });
  $("reset-desired").addEventListener("click", () => { editorDirty = false; render(); });

  /* The merge patch turning `before` into `after`: removed keys become null. */
  function patchFor(before, after) {
    const patch = {};
    for (const key of Object.keys(before)) if (!(key in after)) patch[key] = null;
    for (const [key, value] of Object.entries(after)) {
      const old = before[key];
      const objects = [old, value].every(v => v && typeof v === "object" && !Array.isArray(v));
      if (objects) {
        const sub = patchFor(old, value);
        if (Object.keys(sub).length) patch[key] = sub;
      } else if (JSON.stringify(old) !== JSON.stringify(value)) {
        patch[key] = value;
      }
    }
    return patch;
  }

  $("save-desired").addEventListener("click", async () => {
    const status = $("save-status");
    let wanted;
    try {
      wanted = JSON.parse(editor.value);
    } catch (e) {
      status.textContent = "not valid JSON";
      return;
    }
    if (!wanted || typeof wanted !== "object" || Array.isArray(wanted)) {
      status.textContent = "desired must be a JSON object";
      return;
    }
    const body = {state: {desired: patchFor(twin ? twin.state.desired : {}, wanted)}};
    if (twin) body.version = twin.version;
    status.textContent = "saving…";
    try {
      twin = await Iot.api("PATCH", path + "/twin", body);
      editorDirty = false;
      status.textContent = "saved as version " + twin.version;
      log("desired saved (version " + twin.version + ")", "out");
      render();
    } catch (e) {
      if (e.status === 409) {
        status.textContent = "the twin changed meanwhile (now version " + e.body.version + "); reloaded — review and save again";
        editorDirty = false;
        await load();
      } else {
        status.textContent = e.message;
      }
    }
  });

  $("delete-twin").addEventListener("click", async () => {
    if (!confirm("Delete the twin of " + deviceId + "?")) return;
    try {
      await Iot.api("DELETE", path + "/twin");
      log("twin deleted");
      twin = null;
      editorDirty = false;
      render();
    } catch (e) { showError(e.message); }
  });

  // -- the watch socket ------------------------------------------------------------------
  function socketUrl(suffix) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/devices/" + path + "/" + suffix;
  }

  let watchDelay = 500;
  function watch() {
    const ws = new WebSocket(socketUrl("watch/"));
    ws.onopen = () => { watchDelay = 500; };
    ws.onmessage = event => {
      const msg = JSON.parse(event.data);
      if (msg.type === "twin") {
        if (msg.twin || twin) {
          const before = twin ? twin.version : null;
          twin = msg.twin;
          if (twin && twin.version !== before) log("twin version " + twin.version);
          render();
        }
      } else if (msg.type === "online" || msg.type === "offline") {
        setConnection(msg.connection);
        log("device " + msg.type, msg.type);
      } else if (msg.type === "telemetry") {
        chart.add(msg.ts, msg.metrics);
      }
    };
    ws.onclose = () => {
      setTimeout(watch, watchDelay);
      watchDelay = Math.min(watchDelay * 2, 8000);
    };
  }

  // -- telemetry -------------------------------------------------------------------------
  async function loadTelemetry() {
    try {
      const since = Date.now() / 1000 - chart.windowSeconds;
      const {metrics} = await Iot.api("GET", path + "/metrics");
      for (const metric of metrics) {
        const data = await Iot.api("GET", path + "/telemetry?metric=" + encodeURIComponent(metric) + "&since=" + since + "&limit=10000");
        chart.set(metric, data.points);
      }
    } catch (e) { /* no telemetry yet */ }
  }

  function drawChart() {
    const drawn = chart.draw();
    $("chart-empty").hidden = drawn > 0;
    $("chart-legend").innerHTML = chart.legend();
  }

  // -- the simulated device --------------------------------------------------------------
  class SimulatedDevice {
    constructor() {
      this.version = -1;
      this.temp = 20 + Math.random() * 3;
      this.humidity = 40 + Math.random() * 10;
      this.timers = [];
      this.stopped = false;
      this.connect();
    }

    connect() {
      this.ws = new WebSocket(socketUrl(""));
      this.ws.onopen = () => {
        log("simulated device connected", "device");
        this.timers.push(setInterval(() => this.send({type: "heartbeat"}), heartbeatMs));
        this.timers.push(setInterval(() => this.telemetry(), 2000));
      };
      this.ws.onmessage = event => this.receive(JSON.parse(event.data));
      this.ws.onclose = () => {
        this.timers.forEach(clearInterval);
        this.timers = [];
        if (!this.stopped) {
          log("simulated device lost its socket; reconnecting", "offline");
          setTimeout(() => { if (!this.stopped) this.connect(); }, 1000);
        }
      };
    }

    send(message) {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    }

    receive(msg) {
      if (msg.type === "twin") {
        // Connect (or reconnect): the final state; anything older is ignored from now on.
        this.version = msg.twin.version;
        this.reported = msg.twin.state.reported;
        const delta = msg.twin.state.delta;
        if (Object.keys(delta).length) this.apply(delta, msg.twin.version);
      } else if (msg.type === "delta") {
        if (msg.version <= this.version) {
          log("device ignored an old delta (version " + msg.version + ")", "device");
          return;
        }
        this.version = msg.version;
        log("device received delta " + JSON.stringify(msg.state) + " (version " + msg.version + ")", "device");
        this.apply(msg.state, msg.version);
      } else if (msg.type === "accepted") {
        this.version = Math.max(this.version, msg.version);
        log("device report accepted (version " + msg.version + ")", "device");
      } else if (msg.type === "rejected") {
        log("device report rejected: " + msg.error, "offline");
      }
    }

    apply(delta, version) {
      // A real device takes a moment to act on a change before it reports it.
      const timer = setTimeout(() => {
        if (version < this.version) return;  // a newer delta will be applied instead
        this.reported = Object.assign({}, this.reported, delta);
        this.send({type: "report", state: delta, client_token: "sim-" + version});
      }, 1500);
      this.timers.push(timer);
    }

    telemetry() {
      const target = this.reported && typeof this.reported.target_temp === "number" ? this.reported.target_temp : 21.5;
      this.temp += (target - this.temp) * 0.15 + (Math.random() - 0.5) * 0.4;
      this.humidity = Math.min(90, Math.max(20, this.humidity + (Math.random() - 0.5) * 1.5));
      this.send({type: "telemetry", metrics: {temp: +this.temp.toFixed(2), humidity: +this.humidity.toFixed(1)}});
    }

    stop() {
      this.stopped = true;
      this.timers.forEach(t => { clearInterval(t); clearTimeout(t); });
      this.ws.close();
      log("simulated device stopped", "device");
    }
  }

  let simulated = null;
  $("simulate").addEventListener("change", event => {
    if (event.target.checked) simulated = new SimulatedDevice();
    else if (simulated) { simulated.stop(); simulated = null; }
  });

  load().then(watch);
  loadTelemetry().then(drawChart);
  setInterval(drawChart, 1000);
  setInterval(() => { if (twin) { $("updated").textContent = "updated " + Iot.ago(twin.timestamp); setConnection(twin.connection); } }, 5000);
})();
