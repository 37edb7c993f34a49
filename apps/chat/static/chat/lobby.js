// Chat lobby: join a public room by name, create a private room, relative times.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const nameInput = $("join-name");
  const roomInput = $("join-room");
  const error = $("lobby-error");
  nameInput.value = localStorage.getItem("chat.name") || "";

  function rememberName() {
    const name = nameInput.value.trim();
    if (name) localStorage.setItem("chat.name", name);
  }

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const room = roomInput.value.trim();
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(room)) {
      error.textContent = "Room names are 1-64 letters, digits, _ or -.";
      return;
    }
    rememberName();
    location.href = `/chat/${encodeURIComponent(room)}/`;
  });

  $("create-private").addEventListener("click", async () => {
    error.textContent = "";
    rememberName();
    try {
      const response = await fetch("/api/chat/rooms", { method: "POST" });
      const body = await response.json();
      if (response.status !== 201) throw new Error(body.message || response.statusText);
      location.href = `/chat/${body.room}/`;
    } catch (e) {
      error.textContent = `Could not create a room: ${e.message}`;
    }
  });

  const units = [["day", 86400], ["hour", 3600], ["minute", 60]];
  const format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  for (const el of document.querySelectorAll("time[data-ts]")) {
    const seconds = Number(el.dataset.ts) - Date.now() / 1000;
    el.title = new Date(Number(el.dataset.ts) * 1000).toLocaleString();
    const unit = units.find(([, size]) => Math.abs(seconds) >= size);
    el.textContent = unit ? format.format(Math.round(seconds / unit[1]), unit[0]) : "just now";
  }
})();
