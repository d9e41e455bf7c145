// The page of `ncomp serve`: pick a model, watch its screen, drive it. Plain JS, no build step.
// Protocol: see neuralcomputer/runtime/server.py (JSON ops up; JSON status + PNG frames down).
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");
const canvas = $("screen");
const ctx = canvas.getContext("2d");

const s = {
  ws: null,
  models: [],
  info: null,            // the open model: {name, kind, size: [H, W], screen: [W, H], fps}
  closedReason: null,
  // frames: decoded in arrival order, shown at the model's frame rate
  decode: Promise.resolve(),
  ready: [],             // ImageBitmap, or null for "same as the previous frame"
  shown: 0,
  shownTimes: [],
  player: null,
  // desktop input gathered during one frame interval, sent as one frame record
  events: [],
  pointer: null,
  buttons: new Set(),    // mouse buttons pressed on the canvas and not yet released
  unanswered: new Set(), // ids of desktop steps sent and not answered yet
  settle: 0,             // frames still to step with no input: the screen answers a click a few frames late
  ticker: null,
  nextId: 1,
};

function withToken(path) {
  const url = new URL(path, location.href);
  if (token) url.searchParams.set("token", token);
  return url;
}

function log(text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  const list = $("log");
  list.prepend(li);
  while (list.children.length > 60) list.lastChild.remove();
}

function setConn(text, cls) {
  const pill = $("conn");
  pill.textContent = text;
  pill.className = "pill" + (cls ? " " + cls : "");
}

function send(msg) {
  if (!s.ws || s.ws.readyState !== WebSocket.OPEN) return false;
  s.ws.send(JSON.stringify(msg));
  return true;
}

// ---- connection -------------------------------------------------------------------------------

async function start() {
  const reply = await fetch(withToken("/api/models"));
  if (!reply.ok) { setConn("refused (" + reply.status + ")", "bad"); return; }
  s.models = (await reply.json()).models;
  const select = $("model");
  for (const m of s.models) {
    const opt = document.createElement("option");
    opt.value = m.name;
    opt.textContent = `${m.name} (${m.kind}, ${m.size[1]}×${m.size[0]})`;
    select.append(opt);
  }
  const wanted = new URLSearchParams(location.search).get("model");
  if (wanted && s.models.some((m) => m.name === wanted)) select.value = wanted;
  connect();
}

function connect() {
  // One session at a time: a socket left open would hold a server slot until its idle timeout, and
  // its late events must not touch the new one (every handler checks it is still the current socket).
  const old = s.ws;
  if (old) {
    old.onopen = old.onmessage = old.onclose = null;
    old.close();
  }
  const url = withToken("/ws");
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  s.closedReason = null;
  s.info = null;  // no input for the old session's model until the new one is ready
  s.unanswered.clear();
  for (const frame of s.ready) if (frame) frame.close();  // nor its frames still to be shown
  s.ready = [];
  const ws = new WebSocket(url);
  s.ws = ws;
  ws.binaryType = "blob";
  setConn("connecting…");
  $("reconnect").hidden = true;
  // The model selected when the socket opens (it may have changed while connecting).
  ws.onopen = () => { if (s.ws === ws) send({ op: "open", model: $("model").value, id: s.nextId++ }); };
  ws.onmessage = (ev) => {
    if (s.ws !== ws) return;
    if (typeof ev.data === "string") onJson(JSON.parse(ev.data)); else onFrame(ev.data);
  };
  ws.onclose = (ev) => {
    if (s.ws !== ws) return;
    const why = s.closedReason || ev.reason || `connection closed (${ev.code})`;
    setConn("disconnected", "bad");
    $("state").textContent = why;
    log("closed: " + why, "error");
    $("reconnect").hidden = false;
    s.ws = null;
  };
}

function onJson(msg) {
  switch (msg.type) {
    case "hello": setConn("connected", "ok"); break;
    case "queued": setConn(`waiting for a free slot: #${msg.position}`); break;
    case "admitted": setConn("connected", "ok"); break;
    case "started": $("state").textContent = msg.op === "step" ? "generating…" : msg.op + "…"; break;
    case "same": onFrame(null); break;
    case "ready": onReady(msg); break;
    case "reset": $("state").textContent = "ready"; s.unanswered.clear(); log("reset"); break;
    case "step": onStep(msg); break;
    case "settings": showSettings(msg.settings); log("settings: " + JSON.stringify(msg.settings)); break;
    case "pong": if (typeof msg.t === "number") $("rtt").textContent = `${Math.round(performance.now() - msg.t)} ms`; break;
    case "error":
      log(msg.error, "error");
      // Only an error about a desktop step we sent answers it (not, say, a rate-limited ping's). The
      // session runs its ops in order, so ids before it are done too (some were merged into it).
      if (s.unanswered.has(msg.id)) answered(msg.id);
      $("state").textContent = msg.fatal ? "dropped: " + msg.error : "ready";
      break;
    case "closed": s.closedReason = msg.reason; break;
  }
}

function onReady(msg) {
  s.info = msg;
  s.unanswered.clear();
  s.events = [];
  const [h, w] = msg.size;
  canvas.width = w;
  canvas.height = h;
  // Scale up by a whole factor so model pixels stay square and sharp.
  const scale = Math.max(1, Math.floor(Math.min(960 / w, 620 / h)));
  canvas.style.width = `${w * scale}px`;
  canvas.style.height = `${h * scale}px`;
  document.body.classList.toggle("terminal", msg.kind === "terminal");
  document.body.classList.toggle("desktop", msg.kind === "desktop");
  // A desktop model takes input in its screen's coordinates (the recorded desktop's size) but draws
  // smaller frames: say both, so neither size reads as a mistake.
  const [sw, sh] = msg.screen;
  const sizes = sw === w && sh === h ? `${w}×${h}` : `${sw}×${sh} (input), drawn at ${w}×${h}`;
  $("hint").textContent = msg.kind === "desktop"
    ? `Desktop ${sizes}: move, click, scroll and type on the screen (click it first for keys).`
    : `Terminal ${w}×${h}: each command renders ${msg.fps} frames/s of video.`;
  showSettings(msg.settings);
  startPlayer(msg.fps);
  startTicker(msg.fps);
  $("state").textContent = "ready";
  send({ op: "ping", t: performance.now() });
  log(`opened ${msg.name} (${msg.kind}) in ${msg.latency_s.toFixed(2)} s`);
  if (msg.kind === "terminal") $("command").focus(); else canvas.focus();
}

function onStep(msg) {
  $("state").textContent = "ready";
  $("latency").textContent = `${msg.latency_s.toFixed(2)} s`;
  $("gen-fps").textContent = msg.fps ? `${msg.fps.toFixed(1)} frames/s` : "–";
  if (s.info && s.info.kind === "desktop") {
    answered(msg.id);  // with the steps merged into it (msg.coalesced), all sent before it
  } else {
    log(`$ ${msg.record.action.text}  →  ${msg.frames} frames in ${msg.compute_s.toFixed(2)} s`);
  }
  const engine = msg.record && msg.record.engine;
  if (engine) $("engine-output").textContent = engine.screen_text;
}

// ---- frames -----------------------------------------------------------------------------------

function answered(id) {
  for (const sent of s.unanswered) if (sent <= id) s.unanswered.delete(sent);
}

function onFrame(blob) {
  // Decode in arrival order (createImageBitmap may finish out of order), then queue for the player.
  const ws = s.ws;
  s.decode = s.decode.then(async () => {
    const frame = blob === null ? null : await createImageBitmap(blob);
    if (s.ws === ws) s.ready.push(frame);
    else if (frame) frame.close();  // a frame of a session we left
  }).catch((err) => log("frame decode failed: " + err, "error"));
}

function startPlayer(fps) {
  clearInterval(s.player);
  s.player = setInterval(() => {
    if (!s.ready.length) return;
    // A desktop more than a second behind (a fast GPU): skip ahead rather than lag. Never a terminal:
    // its whole clip arrives at once and is meant to be watched frame by frame.
    let skipped = null;  // the newest picture skipped: a "same" (null) frame after it repeats it
    while (isDesktop() && s.ready.length > Math.max(2, fps)) {
      const dropped = s.ready.shift();
      if (dropped !== null) {
        if (skipped) skipped.close();
        skipped = dropped;
      }
    }
    let frame = s.ready.shift();
    if (frame === null) frame = skipped;
    else if (skipped) skipped.close();
    if (frame !== null) {
      ctx.drawImage(frame, 0, 0, canvas.width, canvas.height);
      frame.close();
    }
    s.shown++;
    canvas.dataset.frames = String(s.shown);
    $("frames").textContent = String(s.shown);
    const now = performance.now();
    s.shownTimes.push(now);
    while (s.shownTimes.length && now - s.shownTimes[0] > 1000) s.shownTimes.shift();
    $("show-fps").textContent = `${s.shownTimes.length} fps`;
  }, 1000 / fps);
}

// ---- settings ---------------------------------------------------------------------------------

// Edits not yet applied are the user's: a settings message (the model's on open, which can arrive after
// the first frame and a click) shows the server's values only while the form holds no edit of its own.
let settingsEdited = false;
for (const id of ["steps", "seed", "deterministic", "hybrid"]) $(id).addEventListener("input", () => { settingsEdited = true; });

function showSettings(settings) {
  if (settingsEdited) return;
  $("steps").value = settings.steps;
  $("seed").value = settings.seed;
  $("deterministic").checked = settings.deterministic;
  $("hybrid").checked = settings.hybrid;
  $("engine-panel").hidden = !settings.hybrid;
}

$("apply").onclick = () => {
  const msg = { op: "settings", id: s.nextId++, steps: Number($("steps").value), seed: Number($("seed").value),
    deterministic: $("deterministic").checked };
  if (s.info && s.info.kind === "terminal") msg.hybrid = $("hybrid").checked;
  settingsEdited = false;  // the server's answer is these settings as it took them
  send(msg);
};

$("model").onchange = () => {
  settingsEdited = false;  // another model: its own settings
  if (!s.ws || s.ws.readyState >= WebSocket.CLOSING) connect();
  else if (s.ws.readyState === WebSocket.OPEN) send({ op: "open", model: $("model").value, id: s.nextId++ });
  // else still connecting: its onopen opens the model selected by then
};
$("reset").onclick = () => send({ op: "reset", id: s.nextId++ });
$("reconnect").onclick = () => connect();

// ---- terminal ---------------------------------------------------------------------------------

$("command-form").onsubmit = (ev) => {
  ev.preventDefault();
  const text = $("command").value.trim();
  if (!text) return;
  if (send({ op: "step", id: s.nextId++, action: { type: "command", text } })) $("command").value = "";
};

// ---- desktop ----------------------------------------------------------------------------------

// Browser key names -> the X keysym names the models were trained on (neuralcomputer/data/desktop/actions.py).
const KEYSYMS = {
  Enter: "Return", Backspace: "BackSpace", Tab: "Tab", Escape: "Escape", " ": "space", Delete: "Delete",
  Home: "Home", End: "End", PageUp: "Page_Up", PageDown: "Page_Down", ArrowLeft: "Left", ArrowRight: "Right",
  ArrowUp: "Up", ArrowDown: "Down", Control: "ctrl", Shift: "shift", Alt: "alt", Meta: "super",
};

function keysym(ev) {
  if (KEYSYMS[ev.key]) return KEYSYMS[ev.key];
  if (/^F([1-9]|1[0-2])$/.test(ev.key)) return ev.key;
  return ev.key.length === 1 ? ev.key : null;
}

function screenXY(ev) {
  // Page pixels -> the model's screen coordinates (what the training data's actions use).
  const r = canvas.getBoundingClientRect();
  const [w, h] = s.info.screen;
  const x = Math.min(w - 1, Math.max(0, Math.floor(((ev.clientX - r.left) / r.width) * w)));
  const y = Math.min(h - 1, Math.max(0, Math.floor(((ev.clientY - r.top) / r.height) * h)));
  return [x, y];
}

function isDesktop() { return s.info && s.info.kind === "desktop"; }

function pushMove(ev) {
  const [x, y] = screenXY(ev);
  const last = s.events[s.events.length - 1];
  if (last && last.type === "move") { last.x = x; last.y = y; } else s.events.push({ type: "move", x, y });
  s.pointer = [x, y];
}

canvas.addEventListener("mousemove", (ev) => { if (isDesktop()) pushMove(ev); });
canvas.addEventListener("mousedown", (ev) => {
  if (!isDesktop()) return;
  ev.preventDefault();
  canvas.focus();
  pushMove(ev);
  s.buttons.add(ev.button + 1);
  s.events.push({ type: "down", button: ev.button + 1 });  // DOM 0/1/2 -> X 1 left, 2 middle, 3 right
});
window.addEventListener("mouseup", (ev) => {
  // On the window: a drag that ends off the canvas must still release the button.
  if (!isDesktop() || !s.buttons.delete(ev.button + 1)) return;
  pushMove(ev);
  s.events.push({ type: "up", button: ev.button + 1 });
});
canvas.addEventListener("wheel", (ev) => {
  if (!isDesktop()) return;
  ev.preventDefault();
  pushMove(ev);
  s.events.push({ type: "scroll", dx: Math.sign(ev.deltaX), dy: Math.sign(ev.deltaY) });  // one notch per event
}, { passive: false });
canvas.addEventListener("contextmenu", (ev) => { if (isDesktop()) ev.preventDefault(); });
for (const [name, type] of [["keydown", "key_down"], ["keyup", "key_up"]]) {
  canvas.addEventListener(name, (ev) => {
    if (!isDesktop()) return;
    const key = keysym(ev);
    if (!key) return;
    ev.preventDefault();
    s.events.push({ type, key });
  });
}

const SETTLE_S = 1.0;

function startTicker(fps) {
  // At the model's frame rate, send what happened since the last frame as one frame record. While two
  // steps are unanswered, keep gathering (the server also merges), so input never piles up.
  clearInterval(s.ticker);
  // After the last input, time goes on for a second (SETTLE_S) with empty frames: a menu or window
  // opens a few frames after the click that asked for it (measured on the recordings: 1 to 13 frames).
  s.ticker = setInterval(() => {
    if (!isDesktop() || s.unanswered.size >= 2) return;
    if (s.events.length) s.settle = Math.round(SETTLE_S * fps);
    else if (s.settle > 0) s.settle--;
    else return;
    const action = { type: "frame", events: s.events.slice(0, 500) };  // the server takes at most 512
    if (s.pointer) action.pointer = s.pointer;
    const id = s.nextId++;
    if (send({ op: "step", id, action })) {
      s.unanswered.add(id);
      s.events = s.events.slice(500);  // the rest (a key_up, a button up) goes with the next frame
    }
  }, 1000 / fps);
}

// ---- ping: round-trip time (pings do not keep an idle session alive) ----------------------------

setInterval(() => send({ op: "ping", t: performance.now() }), 5000);

start().catch((err) => { setConn("error", "bad"); log(String(err), "error"); });
