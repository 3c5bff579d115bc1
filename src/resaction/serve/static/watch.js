"use strict";

// The live cameras page: a tile per camera (latest frame, label, score, state) and the event
// list with each event's clip and its explanation, kept current by the server-sent events of
// /watch/stream. The stream is read with fetch,
// not EventSource, so it carries the same Authorization header as every other call.

const TOKEN_KEY = "resaction-token";
const RECONNECT_MS = 2000;
const EVENT_LIMIT = 50;

const $ = (id) => document.getElementById(id);
const tiles = new Map();
const rows = new Map();
const state = { clipUrl: null, generation: 0 };

function token() { return sessionStorage.getItem(TOKEN_KEY); }
function authHeaders() { const value = token(); return value ? { Authorization: `Bearer ${value}` } : {}; }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).message || message; } catch { /* not JSON */ }
    throw new ApiError(response.status, message);
  }
  return response;
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

const percent = (value) => `${(value * 100).toFixed(1)}%`;
const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// An <img> or <video> source: the URL itself, or a blob fetched with the token.
async function mediaUrl(url) {
  if (!token()) return url;
  return URL.createObjectURL(await (await api(url)).blob());
}

function setLive(ok, text) {
  $("live-dot").className = `dot ${ok ? "ok" : "bad"}`;
  $("live-text").textContent = text;
}

function showError(message) {
  $("error-box").textContent = message || "";
  $("error-box").hidden = !message;
}

// ---- camera tiles --------------------------------------------------------------------------

function tileFor(name) {
  if (tiles.has(name)) return tiles.get(name);
  const root = el("article", { class: "tile", "data-camera": name });
  const view = el("div", { class: "view" });
  const img = el("img", { class: "frame", alt: `latest frame of ${name}` });
  img.hidden = true;
  const empty = el("span", { class: "no-frame" }, "no live frame");
  const age = el("span", { class: "age" });
  view.append(img, empty, age);
  const info = el("div", { class: "info" });
  const badge = el("span", { class: "badge state" }, "…");
  const label = el("span", { class: "cam-label" }, "–");
  const score = el("span", { class: "cam-score" }, "");
  info.append(el("span", { class: "cam-name" }, name), badge, label, score);
  root.append(view, info);
  $("tiles").append(root);
  const option = el("option", { value: name }, name);
  $("camera-filter").append(option);
  const tile = { root, img, empty, age, badge, label, score, seq: null, busy: false, url: null };
  tiles.set(name, tile);
  return tile;
}

function updateTile(camera) {
  const tile = tileFor(camera.name);
  tile.badge.textContent = camera.state;
  tile.badge.className = `badge state ${camera.state}`;
  tile.badge.title = camera.message || "";
  tile.label.textContent = camera.label || "–";
  tile.score.textContent = camera.label ? percent(camera.score) : "";
  tile.root.classList.toggle("alert", camera.open_events.length > 0);
  if (camera.frame_seq !== null && camera.frame_seq !== tile.seq && !tile.busy) refreshFrame(camera.name, tile);
}

async function refreshFrame(name, tile) {
  tile.busy = true;
  try {
    const response = await api(`/cameras/${encodeURIComponent(name)}/frame.jpg`);
    const url = URL.createObjectURL(await response.blob());
    if (tile.url) URL.revokeObjectURL(tile.url);
    tile.url = url;
    tile.img.src = url;
    tile.img.hidden = false;
    tile.empty.hidden = true;
    tile.seq = Number(response.headers.get("X-Frame-Seq"));
    tile.age.textContent = `${Number(response.headers.get("X-Frame-Age")).toFixed(1)} s`;
  } catch (error) {
    tile.img.hidden = true;
    tile.empty.hidden = false;
    tile.empty.textContent = error.status === 503 ? "no live frame" : error.message;
    tile.age.textContent = "";
    if (error.status === 401) askForToken();
  } finally {
    tile.busy = false;
  }
}

// ---- events ----------------------------------------------------------------------------------

function eventRow(event) {
  let row = rows.get(event.id);
  if (!row) {
    row = el("tr", { "data-event": event.id });
    rows.set(event.id, row);
    const body = $("events").tBodies[0];
    body.querySelector(".empty-row")?.remove();
    body.prepend(row);
  }
  return row;
}

async function showEvent(event) {
  const filter = $("camera-filter").value;
  if (filter && event.camera !== filter) return;
  const row = eventRow(event);
  const previous = row.dataset.state;
  row.dataset.state = event.state;
  const duration = event.ended_at ? `${(event.ended_at - event.started_at).toFixed(1)} s` : "…";
  const cells = [
    el("td", { class: "snap" }),
    el("td", {}, event.camera),
    el("td", {}, event.label),
    el("td", {}),
    el("td", {}, clock(event.started_at)),
    el("td", { class: "num" }, duration),
    el("td", { class: "num" }, percent(event.peak)),
    el("td", { class: "clip" }),
    el("td", { class: "why" }),
  ];
  cells[3].append(el("span", { class: `badge ${event.state}` }, event.state));
  if (event.links.clip) {
    const link = el("a", { href: event.links.clip, class: "play" }, "play");
    link.addEventListener("click", (click) => { click.preventDefault(); playClip(event); });
    cells[7].append(link);
    const why = el("a", { href: event.links.explain, class: "explain" }, "explain");
    why.addEventListener("click", (click) => { click.preventDefault(); playClip(event, true); });
    cells[8].append(why);
  } else {
    cells[7].textContent = event.state === "open" ? "recording…" : "–";
    cells[8].textContent = "–";
  }
  const keep = previous && row.querySelector(".snap img");
  row.replaceChildren(...cells);
  if (keep) cells[0].append(keep);
  else if (event.links.snapshot) addSnapshot(cells[0], event);
}

async function addSnapshot(cell, event) {
  try {
    cell.append(el("img", { class: "thumb", alt: `snapshot of ${event.camera}`, src: await mediaUrl(event.links.snapshot) }));
  } catch { /* the row stays without its picture */ }
}

async function playClip(event, explained = false) {
  const what = `${event.label} on ${event.camera} at ${clock(event.started_at)}`;
  try {
    const video = $("clip-video");
    if (explained) {
      $("player-title").textContent = `Explaining ${what}…`;
      $("player").hidden = false;
    }
    const url = explained ? event.links.explain : event.links.clip;
    // an explanation is always fetched, so a refusal shows its message, not a broken player
    const source = explained ? URL.createObjectURL(await (await api(url)).blob()) : await mediaUrl(url);
    if (state.clipUrl && state.clipUrl.startsWith("blob:")) URL.revokeObjectURL(state.clipUrl);
    state.clipUrl = source;
    $("player-title").textContent = explained ? `Why ${what}: where and when the model looked` : what;
    $("player").hidden = false;
    video.src = state.clipUrl;
    video.play().catch(() => {});
  } catch (error) {
    showError(`cannot play the ${explained ? "explanation" : "clip"}: ${error.message}`);
  }
}

async function loadEvents() {
  const camera = $("camera-filter").value;
  const query = new URLSearchParams({ limit: String(EVENT_LIMIT) });
  if (camera) query.set("camera", camera);
  const { events } = await (await api(`/events?${query}`)).json();
  rows.clear();
  const body = $("events").tBodies[0];
  body.replaceChildren();
  if (!events.length) body.append(emptyRow());
  for (const event of events.reverse()) showEvent(event);
  $("events-note").textContent = `latest ${EVENT_LIMIT}, newest first`;
}

function emptyRow() {
  const row = el("tr", { class: "empty-row" });
  row.append(el("td", { colspan: "9" }, "No events yet."));
  return row;
}

// ---- the live stream -------------------------------------------------------------------------

function handle(block) {
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (!data.length) return;
  const message = JSON.parse(data.join("\n"));
  if (kind === "cameras") {
    for (const camera of message.cameras) updateTile(camera);
    if (message.error) showError(message.error);
    const live = message.cameras.filter((camera) => camera.state === "live").length;
    setLive(true, `${live} of ${message.cameras.length} cameras live`);
  } else if (kind === "event") {
    showEvent(message);
  } else if (kind === "resync") {
    loadEvents().catch(() => {});
  }
}

async function follow() {
  const generation = ++state.generation;
  while (generation === state.generation) {
    try {
      const response = await api("/watch/stream", { headers: { Accept: "text/event-stream" } });
      showError("");
      await loadEvents();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handle(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      if (error.status === 401) { askForToken(); return; }
      if (error.status === 404) { showError(error.message); setLive(false, "not watching"); return; }
    }
    setLive(false, "reconnecting…");
    await sleep(RECONNECT_MS);
  }
}

function askForToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.generation++;
  setLive(false, "token required");
  $("auth-card").hidden = false;
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
  $("auth-card").hidden = true;
  follow();
});

$("camera-filter").addEventListener("change", () => loadEvents().catch((error) => showError(error.message)));

follow();
