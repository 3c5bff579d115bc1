"use strict";

// The resaction page: upload a video as a timeline job, follow it, then show the top-k
// labels, the timeline chart, the annotated video and, on request, the explanation of a segment
// or of the whole video. Plain DOM, no framework, no build step.

const PALETTE = ["#2f6fed", "#e4572e", "#17a589", "#a05ad8", "#f2a541", "#3aa0c8", "#c2477a", "#6c8a2b"];
const POLL_MS = 500;
const SVG_NS = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "resaction-token";

const $ = (id) => document.getElementById(id);
const state = {
  job: null, duration: 0, colours: new Map(), playhead: null, objectUrl: null, busy: false,
  explainUrl: null, explainSeq: 0,
};

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function authHeaders() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
  return response;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.message || body.detail || `${response.status} ${response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

function colourOf(label) {
  if (!state.colours.has(label)) state.colours.set(label, PALETTE[state.colours.size % PALETTE.length]);
  return state.colours.get(label);
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function seconds(value) { return `${value.toFixed(2)} s`; }
function percent(value) { return `${(value * 100).toFixed(value >= 0.995 || value < 0.1 ? 1 : 0)}%`; }
function megabytes(bytes) { return `${(bytes / 1048576).toFixed(1)} MB`; }

// ---- model and token ---------------------------------------------------------------------

async function loadModel() {
  try {
    const model = await (await api("/model")).json();
    $("auth-card").hidden = true;
    $("intake").hidden = false;
    $("health-dot").className = "dot ok";
    $("model-text").textContent =
      `${model.name} · ${model.num_classes} classes · ${model.backend} · clip ${model.input.clip_len}×${model.input.crop}px`;
    $("model-text").title = model.classes.join(", ");
    $("limits-hint").textContent =
      `MP4, AVI, MKV, MOV or WebM · up to ${model.limits.max_upload_mb} MB and ${model.limits.max_duration_s} s`;
    $("opt-topk").max = String(model.num_classes);
    $("opt-topk").value = String(Math.min(5, model.num_classes));
    setExplainMethods(model.backend);
  } catch (error) {
    $("health-dot").className = "dot bad";
    if (error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      $("model-text").textContent = "token required";
      $("auth-card").hidden = false;
      $("intake").hidden = true;
    } else {
      $("model-text").textContent = `server unavailable: ${error.message}`;
    }
  }
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
  loadModel();
});

// ---- choosing a file -----------------------------------------------------------------------

const dropzone = $("dropzone");
$("file-input").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) start(file);
  event.target.value = "";
});
for (const name of ["dragenter", "dragover"]) {
  dropzone.addEventListener(name, (event) => { event.preventDefault(); dropzone.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  dropzone.addEventListener(name, (event) => { event.preventDefault(); dropzone.classList.remove("over"); });
}
dropzone.addEventListener("drop", (event) => {
  const [file] = event.dataTransfer.files;
  if (file) start(file);
});

// ---- a job from upload to result ---------------------------------------------------------

function setStatus(kind, text) {
  const badge = $("status-badge");
  badge.className = `badge ${kind}`;
  badge.textContent = text || kind;
}

function setMeter(bar, label, fraction) {
  const clipped = Math.max(0, Math.min(1, fraction));
  $(bar).style.width = `${(clipped * 100).toFixed(1)}%`;
  $(label).textContent = `${Math.round(clipped * 100)}%`;
}

function showError(message) {
  $("error-box").textContent = message;
  $("error-box").hidden = false;
  setStatus("failed");
  setBusy(false);
}

function setBusy(busy) {
  state.busy = busy;
  dropzone.classList.toggle("busy", busy);
}

function reset(file) {
  $("status-card").hidden = false;
  $("results").hidden = true;
  $("error-box").hidden = true;
  $("file-name").textContent = file.name;
  $("file-facts").textContent = megabytes(file.size);
  $("stage-text").textContent = "Processing";
  setMeter("upload-bar", "upload-pct", 0);
  setMeter("process-bar", "process-pct", 0);
  setStatus("uploading");
  state.colours.clear();
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = null;
  $("video").removeAttribute("src");
  resetExplanation();
}

function start(file) {
  if (state.busy) return;
  setBusy(true);
  reset(file);
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("annotate", $("opt-annotate").checked ? "true" : "false");
  form.append("topk", $("opt-topk").value || "5");
  form.append("stride", $("opt-stride").value || "8");
  const request = new XMLHttpRequest();
  request.open("POST", "/jobs");
  for (const [key, value] of Object.entries(authHeaders())) request.setRequestHeader(key, value);
  request.responseType = "json";
  request.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) setMeter("upload-bar", "upload-pct", event.loaded / event.total);
  });
  request.addEventListener("load", () => {
    const body = request.response || {};
    if (request.status !== 202) {
      showError(body.message || `upload refused (${request.status})`);
      return;
    }
    setMeter("upload-bar", "upload-pct", 1);
    describeVideo(file, body.video);
    follow(body.id);
  });
  request.addEventListener("error", () => showError("the upload failed: the server cannot be reached"));
  request.send(form);
}

function describeVideo(file, video) {
  if (!video) return;
  $("file-facts").textContent =
    `${megabytes(file.size)} · ${video.width}×${video.height} · ${video.fps} fps · ${seconds(video.duration)}`;
}

async function follow(jobId) {
  setStatus("queued");
  for (;;) {
    let job;
    try {
      job = await (await api(`/jobs/${jobId}`)).json();
    } catch (error) {
      showError(error.message);
      return;
    }
    setStatus(job.status);
    $("stage-text").textContent = `Processing · ${job.stage}`;
    setMeter("process-bar", "process-pct", job.progress);
    if (job.status === "failed") { showError(job.error || "the job failed"); return; }
    if (job.status === "done") { await showResult(job); return; }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function showResult(job) {
  try {
    const timeline = await (await api(`/jobs/${job.id}/timeline`)).json();
    state.job = job;
    state.duration = timeline.duration;
    $("results").hidden = false;
    renderTopk(job.result.prediction);
    renderFacts(job);
    renderTimeline(timeline);
    renderDownloads(job);
    renderExplainWhole(job);
    await renderVideo(job);
    $("stage-text").textContent = `Processed in ${wallSeconds(job).toFixed(1)} s`;
  } catch (error) {
    showError(error.message);
    return;
  }
  setBusy(false);
}

// ---- results -------------------------------------------------------------------------------

function renderTopk(prediction) {
  const list = $("topk");
  list.replaceChildren();
  $("topk-note").textContent = `· ${prediction.num_views} views`;
  for (const entry of prediction.topk) {
    const item = el("li");
    item.append(el("span", { class: "label", title: entry.label }, entry.label));
    item.append(el("span", { class: "prob" }, percent(entry.prob)));
    const track = el("span", { class: "track" });
    const fill = el("span");
    fill.style.background = colourOf(entry.label);
    fill.style.width = `${Math.max(0.5, entry.prob * 100).toFixed(1)}%`;
    track.append(fill);
    item.append(track);
    list.append(item);
  }
}

function wallSeconds(job) { return Math.max(0, (job.finished || 0) - (job.started || 0)); }

function renderFacts(job) {
  const video = job.video;
  const rows = [
    ["Video", `${video.width}×${video.height} · ${video.fps} fps · ${seconds(video.duration)}`],
    ["Windows", `${job.result.num_windows} (stride ${job.options.stride} frames)`],
    ["Segments", String(job.result.segments.length)],
    ["Processing", `${wallSeconds(job).toFixed(1)} s`],
  ];
  const list = $("facts");
  list.replaceChildren();
  for (const [term, value] of rows) list.append(el("dt", {}, term), el("dd", {}, value));
}

async function renderVideo(job) {
  const video = $("video");
  const annotated = job.result.annotated;
  $("video-empty").hidden = annotated;
  video.hidden = !annotated;
  if (!annotated) return;
  const url = `/jobs/${job.id}/annotated.mp4`;
  if (token()) {
    const blob = await (await api(url)).blob();
    state.objectUrl = URL.createObjectURL(blob);
    video.src = state.objectUrl;
  } else {
    video.src = url;
  }
  video.play().catch(() => {});
}

function renderDownloads(job) {
  const links = [
    ["segments.csv", `/jobs/${job.id}/timeline?format=csv`],
    ["timeline.json", `/jobs/${job.id}/timeline`],
    ["plot.png", `/jobs/${job.id}/timeline.png`],
  ];
  if (job.result.annotated) links.push(["annotated.mp4", `/jobs/${job.id}/annotated.mp4`]);
  const nav = $("downloads");
  nav.replaceChildren();
  for (const [label, href] of links) {
    const link = el("a", { href, download: "" }, label);
    if (token()) link.addEventListener("click", (event) => { event.preventDefault(); download(href, label); });
    nav.append(link);
  }
}

async function download(href, name) {
  const blob = await (await api(href)).blob();
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name });
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function seek(time) {
  const video = $("video");
  if (!video.hidden && Number.isFinite(time)) video.currentTime = Math.max(0, time);
}

function renderTimeline(timeline) {
  const chart = timeline.chart;
  for (const series of chart.series) colourOf(series.label);
  for (const segment of timeline.segments) colourOf(segment.label);
  $("timeline-note").textContent =
    `· ${timeline.segments.length} segment${timeline.segments.length === 1 ? "" : "s"} over ${seconds(timeline.duration)}`;
  drawChart(chart, timeline.segments, timeline.duration);
  renderLegend(chart, timeline.segments);
  renderSegments(timeline.segments);
}

function drawChart(chart, segments, duration) {
  const width = Math.max(320, $("timeline-chart").clientWidth || 900);
  const margin = { left: 44, right: 16, top: 12, bottom: 30 };
  const bandHeight = 26;
  const plotTop = margin.top + bandHeight + 12;
  const plotHeight = 150;
  const height = plotTop + plotHeight + margin.bottom;
  const end = Math.max(duration, 1e-6);
  const x = (t) => margin.left + (t / end) * (width - margin.left - margin.right);
  const y = (p) => plotTop + (1 - p) * plotHeight;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });

  const grid = svg("g", { class: "grid" });
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    grid.append(svg("line", { x1: margin.left, x2: width - margin.right, y1: y(p), y2: y(p) }));
  }
  root.append(grid);

  const axis = svg("g", { class: "axis" });
  for (const p of [0, 0.5, 1]) {
    axis.append(svg("text", { x: margin.left - 8, y: y(p) + 4, "text-anchor": "end" }, p.toFixed(1)));
  }
  for (const t of ticks(end, 8)) {
    axis.append(svg("line", { x1: x(t), x2: x(t), y1: plotTop + plotHeight, y2: plotTop + plotHeight + 4 }));
    axis.append(svg("text", { x: x(t), y: plotTop + plotHeight + 18, "text-anchor": "middle" }, `${formatTick(t)}s`));
  }
  axis.append(svg("text", { x: margin.left - 8, y: margin.top + bandHeight / 2 + 4, "text-anchor": "end" }, "label"));
  root.append(axis);

  root.append(svg("rect", {
    x: margin.left, y: margin.top, width: width - margin.left - margin.right, height: bandHeight,
    rx: 4, fill: "#f1f3f6",
  }));
  for (const segment of segments) {
    const group = svg("g", { class: "seg" });
    const left = x(segment.start);
    const span = Math.max(1.5, x(segment.end) - left);
    const rect = svg("rect", {
      x: left, y: margin.top, width: span, height: bandHeight, rx: 4, fill: colourOf(segment.label),
    });
    rect.append(svg("title", {}, `${segment.label}: ${seconds(segment.start)} – ${seconds(segment.end)} (${percent(segment.confidence)})`));
    rect.addEventListener("click", () => seek(segment.start));
    group.append(rect);
    if (span > segment.label.length * 6.5 + 10) {
      group.append(svg("text", { x: left + 8, y: margin.top + bandHeight / 2 + 4 }, segment.label));
    }
    root.append(group);
  }

  root.append(svg("line", {
    class: "threshold", x1: margin.left, x2: width - margin.right, y1: y(chart.threshold), y2: y(chart.threshold),
  }));
  for (const series of chart.series) {
    const points = chart.times.map((t, i) => `${x(t).toFixed(1)},${y(series.probs[i]).toFixed(1)}`);
    if (points.length === 1) points.push(`${x(end).toFixed(1)},${y(series.probs[0]).toFixed(1)}`);
    root.append(svg("polyline", {
      points: points.join(" "), fill: "none", stroke: colourOf(series.label), "stroke-width": 2,
      "stroke-linejoin": "round", "stroke-linecap": "round",
    }));
  }

  const playhead = svg("line", { class: "playhead", x1: x(0), x2: x(0), y1: margin.top, y2: plotTop + plotHeight });
  root.append(playhead);
  state.playhead = { node: playhead, x };

  const hit = svg("rect", {
    x: margin.left, y: plotTop, width: width - margin.left - margin.right, height: plotHeight,
    fill: "transparent", cursor: "pointer",
  });
  hit.addEventListener("click", (event) => {
    const box = root.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * width;
    seek(((px - margin.left) / (width - margin.left - margin.right)) * end);
  });
  root.append(hit);
  $("timeline-chart").replaceChildren(root);
}

function ticks(end, count) {
  const raw = end / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const out = [];
  for (let t = 0; t <= end + 1e-9; t += step) out.push(t);
  return out;
}

function formatTick(t) { return Number.isInteger(t) ? String(t) : t.toFixed(1); }

function renderLegend(chart, segments) {
  const legend = $("legend");
  legend.replaceChildren();
  const labels = new Set([...chart.series.map((s) => s.label), ...segments.map((s) => s.label)]);
  for (const label of labels) {
    const item = el("span");
    const mark = el("i");
    mark.style.background = colourOf(label);
    item.append(mark, label);
    legend.append(item);
  }
  const threshold = el("span", {}, `threshold ${chart.threshold}`);
  threshold.prepend(el("i", { class: "dashed" }));
  legend.append(threshold);
}

function renderSegments(segments) {
  const body = $("segments").querySelector("tbody");
  body.replaceChildren();
  if (!segments.length) {
    const row = el("tr", { class: "empty-row" });
    row.append(el("td", { colspan: "6" }, "No segment reached the threshold; the chart shows the scores."));
    body.append(row);
    return;
  }
  for (const segment of segments) {
    const row = el("tr", { class: "clickable" });
    const label = el("td");
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = colourOf(segment.label);
    label.append(swatch, segment.label);
    row.append(
      label,
      el("td", { class: "num" }, seconds(segment.start)),
      el("td", { class: "num" }, seconds(segment.end)),
      el("td", { class: "num" }, seconds(segment.duration)),
      el("td", { class: "num" }, percent(segment.confidence)),
      el("td", {}),
    );
    row.lastChild.append(explainLink(state.job, segment, "explain"));
    row.addEventListener("click", () => seek(segment.start));
    body.append(row);
  }
}

// ---- explanations -----------------------------------------------------------------------------

// Grad-CAM needs gradients: a model served from an ONNX file offers occlusion only.
function setExplainMethods(backend) {
  const select = $("explain-method");
  const gradients = backend === "torch";
  for (const option of select.options) option.disabled = !gradients && option.value !== "occlusion";
  select.value = gradients ? "gradcam" : "occlusion";
}

function explainQuery(segment) {
  const query = new URLSearchParams({ method: $("explain-method").value });
  if (segment) {
    query.set("label", segment.label);
    query.set("start", String(segment.start));
    query.set("end", String(segment.end));
  }
  return query;
}

function explainLink(job, segment, text) {
  const link = el("a", { class: "explain", href: `/jobs/${job.id}/explain.mp4?${explainQuery(segment)}` }, text);
  link.addEventListener("click", (event) => {
    event.preventDefault();
    event.stopPropagation(); // the row's own click seeks the annotated video
    showExplanation(job, segment);
  });
  return link;
}

function renderExplainWhole(job) {
  const old = $("explain-whole");
  const link = explainLink(job, null, old.textContent);
  link.id = "explain-whole";
  old.replaceWith(link);
}

function resetExplanation() {
  state.explainSeq++;
  if (state.explainUrl) URL.revokeObjectURL(state.explainUrl);
  state.explainUrl = null;
  $("explain-video").removeAttribute("src");
  $("explain-frame").hidden = true;
  $("explain-status").textContent = "Choose “explain” on a segment, or the whole video.";
}

// The MP4 is fetched (with the token, when there is one) rather than given to the <video> as a
// URL, so a refusal shows its one-line message instead of a broken player.
async function showExplanation(job, segment) {
  const seq = ++state.explainSeq;
  const query = explainQuery(segment);
  const what = segment ? `${segment.label}, ${seconds(segment.start)} – ${seconds(segment.end)}` : "the whole video";
  const slow = query.get("method") === "occlusion" ? " (occlusion runs one pass per patch: it may take minutes)" : "";
  $("explain-status").textContent = `Explaining ${what}…${slow}`;
  try {
    const blob = await (await api(`/jobs/${job.id}/explain.mp4?${query}`)).blob();
    const facts = await (await api(`/jobs/${job.id}/explain.json?${query}`)).json();
    if (seq !== state.explainSeq) return;
    if (state.explainUrl) URL.revokeObjectURL(state.explainUrl);
    state.explainUrl = URL.createObjectURL(blob);
    const [start, end] = facts.range_s;
    $("explain-status").textContent =
      `${facts.method} for ${facts.target.label} (${percent(facts.target.probability)} on the clip) · ` +
      `${facts.frames.length} frames from ${seconds(start)} to ${seconds(end)}`;
    $("explain-frame").hidden = false;
    const video = $("explain-video");
    video.src = state.explainUrl;
    video.play().catch(() => {});
  } catch (error) {
    if (seq === state.explainSeq) $("explain-status").textContent = `Cannot explain ${what}: ${error.message}`;
  }
}

$("video").addEventListener("timeupdate", () => {
  const head = state.playhead;
  if (!head) return;
  const at = head.x(Math.min($("video").currentTime, state.duration));
  head.node.setAttribute("x1", at);
  head.node.setAttribute("x2", at);
});

window.addEventListener("resize", () => {
  if (!state.job || $("results").hidden) return;
  api(`/jobs/${state.job.id}/timeline`).then((r) => r.json()).then((t) => drawChart(t.chart, t.segments, t.duration)).catch(() => {});
});

loadModel();
