/* The device list: polls GET /api/devices/ for live badges; creates devices. */
"use strict";
(() => {
  const rows = document.getElementById("device-rows");
  const empty = document.getElementById("empty");
  const refreshed = document.getElementById("refreshed");
  let devices = [];

  function render() {
    rows.innerHTML = devices.map(d => {
      const online = d.connection.state === "connected";
      const href = "/devices/" + encodeURIComponent(d.device_id) + "/";
      return '<tr data-device="' + Iot.esc(d.device_id) + '">'
        + '<td><a class="iot-device-link" href="' + href + '">' + Iot.esc(d.device_id) + "</a></td>"
        + '<td><span class="badge ' + (online ? "ok" : "bad") + '">' + (online ? "online" : "offline") + "</span></td>"
        + '<td class="mono">v' + d.version + "</td>"
        + '<td class="muted">' + Iot.ago(d.connection.last_seen) + "</td>"
        + '<td class="muted">' + Iot.ago(d.timestamp) + "</td></tr>";
    }).join("");
    empty.hidden = devices.length > 0;
    document.getElementById("stat-total").textContent = devices.length;
    document.getElementById("stat-online").textContent = devices.filter(d => d.connection.state === "connected").length;
  }

  async function poll() {
    try {
      devices = (await Iot.api("GET", "")).devices;
      render();
      refreshed.textContent = "live · updated " + new Date().toLocaleTimeString();
    } catch (e) {
      refreshed.textContent = "refresh failed: " + e.message;
    }
  }

  document.getElementById("create-form").addEventListener("submit", async event => {
    event.preventDefault();
    const error = document.getElementById("create-error");
    error.textContent = "";
    const id = document.getElementById("create-id").value.trim();
    const raw = document.getElementById("create-desired").value.trim();
    const body = {};
    if (id) body.device_id = id;
    if (raw) {
      try { body.desired = JSON.parse(raw); } catch (e) { error.textContent = "desired: not JSON"; return; }
    }
    try {
      const twin = await Iot.api("POST", "", body);
      location.href = "/devices/" + encodeURIComponent(twin.device_id) + "/";
    } catch (e) {
      error.textContent = e.status === 409 ? "a device with this id exists" : e.message;
    }
  });

  poll();
  setInterval(poll, 2000);
})();
