// bridge's page: a Live tab (camera and microphone streamed over a WebSocket, one frame in flight)
// and a Files tab (uploads to POST /v1/predict and /v1/timeline). Plain JavaScript, no libraries.
"use strict";

const COLORS = { angry: "#d64545", disgust: "#5a9e3a", fear: "#8a56c2", happy: "#e8a317", neutral: "#8c94a6",
                 sad: "#3a78d0", surprise: "#e0702a" };
const PALETTE = ["#d64545", "#5a9e3a", "#8a56c2", "#e8a317", "#8c94a6", "#3a78d0", "#e0702a", "#1aa3a3", "#c2569c"];
let LABELS = [];
let MODALITIES = [];
const color = (name) => COLORS[name] || PALETTE[Math.max(LABELS.indexOf(name), 0) % PALETTE.length];
const $ = (id) => document.getElementById(id);

// --- shared rendering ---------------------------------------------------------------------------

function renderBars(el, probabilities) {
  el.textContent = "";
  for (const name of LABELS) {
    const p = probabilities[name] ?? 0;
    const row = document.createElement("div");
    row.className = "bar";
    row.dataset.label = name;
    row.innerHTML = `<span>${name}</span><div class="track"><div class="fill"></div></div><span class="pct"></span>`;
    row.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".fill").style.background = color(name);
    row.querySelector(".pct").textContent = `${(100 * p).toFixed(0)}%`;
    el.appendChild(row);
  }
}

function renderModalities(el, observed, reconstructed) {
  el.textContent = "";
  for (const [names, kind, title] of [[observed, "observed", "observed"], [reconstructed, "reconstructed", "reconstructed"]]) {
    for (const m of names) {
      const chip = document.createElement("span");
      chip.className = `chip ${kind}`;
      chip.textContent = `${m}: ${title}`;
      el.appendChild(chip);
    }
  }
}

function renderLegend(el) {
  el.textContent = "";
  for (const name of LABELS) {
    const s = document.createElement("span");
    s.style.setProperty("--c", color(name));
    s.textContent = name;
    el.appendChild(s);
  }
}

// One line per class over time; rows are {t0, t1, probabilities}; x from tMin to tMax seconds.
function drawTimeline(canvas, rows, tMin, tMax) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 40, right = 10, top = 10, bottom = 24;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#6b7385";
  ctx.strokeStyle = "#eef0f5";
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    const y = top + (1 - v) * (h - top - bottom);
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w - right, y); ctx.stroke();
    ctx.fillText(`${Math.round(v * 100)}%`, 4, y + 4);
  }
  const span = Math.max(tMax - tMin, 1e-6);
  const x = (t) => left + ((t - tMin) / span) * (w - left - right);
  const step = span > 40 ? 10 : span > 12 ? 5 : span > 4 ? 1 : 0.5;
  for (let t = Math.ceil(tMin / step) * step; t <= tMax + 1e-9; t += step) {
    ctx.fillText(`${+t.toFixed(1)} s`, x(t) - 10, h - 6);
  }
  for (const name of LABELS) {
    ctx.strokeStyle = color(name);
    ctx.lineWidth = 2;
    ctx.beginPath();
    let pen = false;
    for (const r of rows) {
      const p = r.probabilities[name];
      if (p === undefined) { pen = false; continue; }
      const px = x((r.t0 + r.t1) / 2), py = top + (1 - p) * (h - top - bottom);
      if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      pen = true;
    }
    ctx.stroke();
  }
}

// --- tabs and model info --------------------------------------------------------------------------

for (const tab of document.querySelectorAll("button.tab")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll("button.tab")) t.classList.toggle("active", t === tab);
    for (const p of document.querySelectorAll(".panel")) p.classList.toggle("active", p.id === tab.dataset.tab);
  });
}

fetch("/healthz").then((r) => r.json()).then((info) => {
  LABELS = info.labels;
  MODALITIES = info.modalities;
  $("model-info").textContent = `model: ${info.modalities.join(" + ")}, ${info.labels.length} classes`;
  renderBars($("live-bars"), {});
  renderLegend($("live-legend"));
  renderLegend($("files-legend"));
  for (const field of ["image", "video", "audio", "text"]) {
    const input = document.querySelector(`#files-form [name=${field}]`);
    if (!info.inputs.includes(field)) { input.disabled = true; input.title = "this model does not take it"; }
  }
});

// --- Live ---------------------------------------------------------------------------------------

const live = { ws: null, stream: null, audio: null, seq: 0, sentAt: new Map(), inFlight: false, updates: 0,
               history: [], rtts: [], started: 0, box: null, frameSize: [480, 360], last: null, timer: null };
const SEND_W = 480, SEND_H = 360, MIN_GAP_MS = 50, HISTORY_S = 30;
const grab = document.createElement("canvas");
grab.width = SEND_W; grab.height = SEND_H;

function status(text) { $("live-status").textContent = text; }

async function startLive() {
  $("live-start").disabled = true;
  const wantVideo = $("use-camera").checked, wantAudio = $("use-mic").checked && MODALITIES.includes("audio");
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: wantVideo ? { width: 640, height: 480 } : false,
                                                              audio: wantAudio });
  } catch (e) {
    status(`Cannot open the camera or microphone: ${e.message}. Allow them in the browser, or use the Files tab.`);
    $("live-start").disabled = false;
    return;
  }
  const video = $("live-video");
  video.srcObject = live.stream;
  await video.play().catch(() => {});
  const proto = location.protocol === "https:" ? "wss" : "ws";
  live.ws = new WebSocket(`${proto}://${location.host}/v1/live`);
  live.ws.binaryType = "arraybuffer";
  live.ws.onopen = async () => {
    status("Live: predicting on this server.");
    live.started = performance.now();
    sendText();
    if (live.stream.getAudioTracks().length) {
      try { await startAudio(); } catch (e) { status(`Live without the microphone: ${e.message}`); }
    }
    $("live-stop").disabled = false;
    sendFrame();
  };
  live.ws.onmessage = (event) => onUpdate(JSON.parse(event.data));
  live.ws.onclose = () => { if (live.stream) status("The connection to the server closed."); stopLive(false); };
  requestAnimationFrame(paint);
}

async function startAudio() {
  const ctx = new AudioContext({ sampleRate: 16000 });
  await ctx.audioWorklet.addModule("/static/pcm-worklet.js");
  const source = ctx.createMediaStreamSource(live.stream);
  const tap = new AudioWorkletNode(ctx, "pcm-tap");
  let pending = [], count = 0;
  tap.port.onmessage = (event) => {
    pending.push(event.data);
    count += event.data.length;
    if (count < ctx.sampleRate / 10) return; // about 100 ms per message
    const pcm = new Int16Array(count);
    const bytes = new Uint8Array(1 + 2 * count);
    let i = 0;
    for (const chunk of pending) for (const s of chunk) pcm[i++] = Math.max(-32768, Math.min(32767, Math.round(s * 32768)));
    bytes[0] = 65; // "A"
    bytes.set(new Uint8Array(pcm.buffer, 0, 2 * count), 1);
    pending = []; count = 0;
    if (live.ws && live.ws.readyState === WebSocket.OPEN) live.ws.send(bytes);
  };
  source.connect(tap);
  await ctx.resume();
  if (!live.ws || live.ws.readyState !== WebSocket.OPEN) { ctx.close(); return; } // stopped meanwhile
  live.audio = ctx;
  live.ws.send(JSON.stringify({ sample_rate: ctx.sampleRate }));
}

function sendText() {
  if (!live.ws || live.ws.readyState !== WebSocket.OPEN || !MODALITIES.includes("text")) return;
  const text = $("live-text").value;
  live.ws.send(JSON.stringify({ text: text.trim() ? text : null }));
}
let textTimer = null;
$("live-text").addEventListener("input", () => { clearTimeout(textTimer); textTimer = setTimeout(sendText, 250); });

async function sendFrame() {
  if (!live.ws || live.ws.readyState !== WebSocket.OPEN || live.inFlight) return;
  live.inFlight = true;
  const video = $("live-video");
  let jpeg = new ArrayBuffer(0);
  if (live.stream.getVideoTracks().length && video.videoWidth) {
    const g = grab.getContext("2d");
    g.drawImage(video, 0, 0, SEND_W, SEND_H);
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.85));
    jpeg = await blob.arrayBuffer();
  }
  const seq = ++live.seq;
  const header = new Uint8Array(5);
  header[0] = 70; // "F"
  new DataView(header.buffer).setUint32(1, seq, true);
  const message = new Uint8Array(5 + jpeg.byteLength);
  message.set(header, 0);
  message.set(new Uint8Array(jpeg), 5);
  if (!live.ws || live.ws.readyState !== WebSocket.OPEN) { live.inFlight = false; return; } // stopped meanwhile
  live.sentAt.set(seq, performance.now());
  live.ws.send(message);
}

function onUpdate(u) {
  if (u.error) { // the stream goes on: try the next frame a little later
    status(`Server: ${u.error}`);
    live.inFlight = false;
    live.timer = setTimeout(sendFrame, 1000);
    return;
  }
  const now = performance.now();
  const sent = live.sentAt.get(u.seq);
  live.sentAt.delete(u.seq);
  if (sent !== undefined) live.rtts.push(now - sent);
  if (live.rtts.length > 100) live.rtts.shift();
  live.updates += 1;
  live.box = u.box;
  if (u.width) live.frameSize = [u.width, u.height];
  $("live-view").dataset.box = u.box ? u.box.join(",") : "";
  const label = $("live-label");
  label.dataset.updates = String(live.updates);
  if (u.label) {
    live.last = u;
    label.textContent = u.label;
    $("live-prob").textContent = `${(100 * u.probabilities[u.label]).toFixed(0)}% ` +
      `(from ${u.observed.join(" + ")})`;
    renderBars($("live-bars"), u.probabilities);
    renderModalities($("live-modalities"), u.observed, u.reconstructed);
    const t = (now - live.started) / 1000;
    live.history.push({ t0: t, t1: t, probabilities: u.probabilities });
  } else {
    $("live-prob").textContent = u.notes.join("; ") || "nothing to predict from yet";
  }
  while (live.history.length && live.history[0].t0 < (now - live.started) / 1000 - HISTORY_S) live.history.shift();
  const sorted = [...live.rtts].sort((a, b) => a - b);
  const rate = live.updates / Math.max((now - live.started) / 1000, 1e-3);
  $("live-stats").textContent = `${rate.toFixed(1)} updates/s, round trip median ` +
    `${sorted.length ? sorted[Math.floor(sorted.length / 2)].toFixed(0) : "-"} ms`;
  live.inFlight = false;
  const wait = Math.max(0, MIN_GAP_MS - (performance.now() - (sent ?? now)));
  live.timer = setTimeout(sendFrame, wait);
}

function paint() {
  if (!live.stream) return;
  const canvas = $("live-view"), ctx = canvas.getContext("2d"), video = $("live-video");
  ctx.fillStyle = "#1d2330";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (video.videoWidth) ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
  if (live.box) {
    const [x, y, w, h] = live.box, sx = canvas.width / live.frameSize[0], sy = canvas.height / live.frameSize[1];
    ctx.strokeStyle = "#2fd36b";
    ctx.lineWidth = 3;
    ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
    if (live.last && live.last.label) {
      const text = `${live.last.label} ${(100 * live.last.probabilities[live.last.label]).toFixed(0)}%`;
      ctx.font = "bold 22px system-ui, sans-serif";
      const tw = ctx.measureText(text).width;
      ctx.fillStyle = "rgba(0,0,0,.6)";
      ctx.fillRect(x * sx, Math.max(y * sy - 30, 0), tw + 12, 28);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, x * sx + 6, Math.max(y * sy - 9, 21));
    }
  }
  const t = (performance.now() - live.started) / 1000;
  drawTimeline($("live-timeline"), live.history, Math.max(0, t - HISTORY_S), Math.max(t, 1));
  requestAnimationFrame(paint);
}

function stopLive(closeSocket = true) {
  clearTimeout(live.timer);
  if (live.stream) for (const track of live.stream.getTracks()) track.stop();
  live.stream = null;
  if (live.audio) live.audio.close();
  live.audio = null;
  if (closeSocket && live.ws) live.ws.close();
  live.ws = null;
  live.inFlight = false;
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
}

$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", () => { stopLive(); status("Stopped."); });

// --- Files --------------------------------------------------------------------------------------

let downloads = [];

function setDownload(a, body, type) {
  const url = URL.createObjectURL(new Blob([body], { type }));
  downloads.push(url);
  a.href = url;
}

async function postForm(url, form) {
  const response = await fetch(url, { method: "POST", body: form });
  const body = await response.text();
  if (!response.ok) {
    let message = body;
    try { message = JSON.parse(body).error; } catch (e) { /* not JSON */ }
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

$("files-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const error = $("files-error");
  error.textContent = "";
  for (const url of downloads) URL.revokeObjectURL(url);
  downloads = [];
  const data = new FormData();
  for (const field of ["image", "audio", "video"]) {
    const input = form.elements[field];
    if (input.files.length) data.append(field, input.files[0]);
  }
  const text = form.elements.text.value;
  if (text.trim()) data.append("text", text);
  if (![...data.keys()].length) { error.textContent = "Give at least one of a video, an image, an audio file or a text."; return; }
  $("files-submit").disabled = true;
  $("files-submit").textContent = "Predicting...";
  try {
    const prediction = JSON.parse(await postForm("/v1/predict", data));
    showPrediction(prediction);
    const video = form.elements.video.files[0];
    $("files-timeline-box").hidden = !video;
    if (video) {
      const t = new FormData();
      t.append("video", video);
      if (text.trim()) t.append("text", text);
      t.append("window", form.elements.window.value || "2");
      if (form.elements.hop.value) t.append("hop", form.elements.hop.value);
      try {
        const body = await postForm("/v1/timeline", t);
        showTimeline(JSON.parse(body), body);
        t.set("format", "csv");
        setDownload($("download-csv"), await postForm("/v1/timeline", t), "text/csv");
      } catch (e) {
        $("files-timeline-box").hidden = true;
        error.textContent = `Timeline: ${e.message}`;
      }
    }
  } catch (e) {
    error.textContent = e.message;
    $("files-result").hidden = true;
  } finally {
    $("files-submit").disabled = false;
    $("files-submit").textContent = "Predict";
  }
});

function showPrediction(p) {
  $("files-result").hidden = false;
  $("files-label").textContent = p.label;
  $("files-prob").textContent = `${(100 * p.probabilities[p.label]).toFixed(1)}%`;
  renderBars($("files-bars"), p.probabilities);
  renderModalities($("files-modalities"), p.observed, p.reconstructed);
  const notes = $("files-notes");
  notes.textContent = "";
  const faceNote = p.face_frames ? [`face found in ${p.face_frames.with_face} of ${p.face_frames.searched} frames`] : [];
  for (const n of [...faceNote, ...p.notes]) {
    const li = document.createElement("li");
    li.textContent = n;
    notes.appendChild(li);
  }
  const body = document.querySelector("#files-explanation tbody");
  body.textContent = "";
  for (const [m, e] of Object.entries(p.explanation)) {
    const tr = document.createElement("tr");
    const change = e.top_change_without === null ? "(only modality)" :
      `${p.label} ${e.top_change_without >= 0 ? "+" : ""}${(100 * e.top_change_without).toFixed(1)} points`;
    tr.innerHTML = "<td></td><td></td><td class=num></td><td class=num></td>";
    tr.children[0].textContent = m;
    tr.children[1].textContent = e.alone_label;
    tr.children[2].textContent = `${(100 * e.alone_probabilities[e.alone_label]).toFixed(1)}%`;
    tr.children[3].textContent = change;
    body.appendChild(tr);
  }
}

function showTimeline(result, body) {
  const rows = result.timeline.map((r) => ({ t0: r.start, t1: r.end, probabilities: r.probabilities }));
  const end = result.timeline.length ? result.timeline[result.timeline.length - 1].end : result.window;
  $("files-timeline-info").textContent = `(${result.timeline.length} windows of ${result.window} s, ${result.hop} s apart)`;
  $("files-timeline").dataset.windows = String(result.timeline.length);
  drawTimeline($("files-timeline"), rows, 0, end);
  setDownload($("download-json"), body, "application/json");
}
