// The creator's stream page: reveal the key on demand; live status.
import { mountChat } from "./chat.js";
import {
  formatElapsed,
  listRefresher,
  serverOffset,
  showReconnectNotice,
  showViewers,
  statusLabel,
  watchStream,
} from "./live.js";

const head = document.querySelector("[data-stream]");
const reveal = document.getElementById("reveal-key");

const revealError = document.getElementById("reveal-error");

async function revealKey() {
  revealError.hidden = true;
  let reply;
  try {
    reply = await fetch(head.dataset.keyUrl, { credentials: "same-origin" });
  } catch {
    reply = null;
  }
  if (!reply?.ok) {
    const why = reply ? `the server answered ${reply.status}` : "the server could not be reached";
    revealError.textContent = `The key could not be loaded (${why}). Try again.`;
    revealError.hidden = false;
    return;
  }
  const settings = await reply.json();
  const fields = {
    "stream-key": settings.stream_key,
    "webrtc-url": settings.webrtc_url,
    "whip-url": settings.whip_url,
    "srt-url": settings.srt_url,
  };
  for (const [id, value] of Object.entries(fields)) {
    const element = document.getElementById(id);
    if (!element || value == null) continue; // no WebRTC on this engine: no field
    element.textContent = value;
    element.dataset.masked = "false";
  }
  reveal.textContent = "Hide key";
  reveal.dataset.revealed = "true";
}

function hideKey() {
  for (const id of ["stream-key", "webrtc-url", "whip-url", "srt-url"]) {
    const element = document.getElementById(id);
    if (!element) continue;
    element.textContent = "••••••••••••••••";
    element.dataset.masked = "true";
  }
  reveal.textContent = "Reveal key";
  reveal.dataset.revealed = "false";
}

if (reveal) {
  reveal.addEventListener("click", () => (reveal.dataset.revealed === "true" ? hideKey() : revealKey()));
  reveal.disabled = false; // rendered disabled: a click before this script ran did nothing
}

// --- Multistream: presets fill in the form; the list follows the relays ---

const targetForm = document.querySelector("form[data-presets]");
const targetRows = document.getElementById("target-rows");
const refreshTargets = targetRows ? listRefresher(targetRows) : () => {};

if (targetForm) {
  const presets = JSON.parse(targetForm.dataset.presets);
  const preset = targetForm.querySelector("select[name='preset']");
  const name = targetForm.querySelector("input[name='name']");
  const url = targetForm.querySelector("input[name='url']");
  const presetNames = new Set(Object.values(presets).map((p) => p.name));
  preset.addEventListener("change", () => {
    const chosen = presets[preset.value];
    if (!chosen) {
      url.value = "";
      url.focus();
      return;
    }
    url.value = chosen.url;
    // A name the creator typed stays; a preset's own name follows the preset.
    if (!name.value || presetNames.has(name.value)) name.value = chosen.name;
    targetForm.querySelector("input[name='key']").focus();
  });
}

// --- Live status, elapsed time and ingest health, pushed by the websocket ---

const statusBox = document.getElementById("live-status");
const elapsed = document.getElementById("elapsed");
const health = document.getElementById("ingest-health");
const rows = document.getElementById("broadcast-rows");
const refreshBroadcasts = listRefresher(rows);
let elapsedTimer = null;
// What the page was rendered with: a different first event means the list is stale.
let lastStatus = head?.dataset.status ?? null;
let lastBroadcastId;

function showStatus(event) {
  const badge = statusBox.querySelector("[data-testid='stream-status']");
  badge.textContent = statusLabel(event.status);
  head.dataset.status = event.status; // what confirm.js asks before ending a broadcast
  showReconnectNotice(document, event);
  badge.className = `status status-${event.status}${event.disabled ? " status-disabled" : ""}`;
  let disabledTag = statusBox.querySelector("[data-testid='stream-disabled']");
  if (event.disabled && !disabledTag) {
    disabledTag = document.createElement("span");
    disabledTag.className = "status status-disabled";
    disabledTag.dataset.testid = "stream-disabled";
    disabledTag.textContent = "disabled";
    statusBox.append(" ", disabledTag);
  } else if (!event.disabled && disabledTag) {
    disabledTag.remove();
  }
}

function showElapsed(event) {
  window.clearInterval(elapsedTimer);
  elapsedTimer = null;
  // A reconnecting broadcast goes on: its clock keeps running.
  const underWay = event.status === "live" || event.status === "reconnecting";
  const started = underWay && event.broadcast ? Date.parse(event.broadcast.started_at) : NaN;
  if (Number.isNaN(started)) {
    elapsed.textContent = "";
    elapsed.hidden = true;
    return;
  }
  const offset = serverOffset(event);
  const tick = () => { elapsed.textContent = formatElapsed(Date.now() + offset - started); };
  tick();
  elapsed.hidden = false;
  elapsedTimer = window.setInterval(tick, 1000);
}

function showHealth(event) {
  health.hidden = false;
  health.replaceChildren();
  const title = document.createElement("h2");
  title.textContent = "Ingest health";
  const line = document.createElement("p");
  if (event.error) {
    line.textContent = event.error;
    line.className = "error";
  } else if (!event.publishing) {
    line.textContent = "Waiting for the encoder…";
  } else {
    // null: the first sample of a new publisher, before a rate can be measured.
    const parts = [event.kbps == null ? "measuring bitrate…" : `${event.kbps.toLocaleString()} kbit/s`];
    if (event.video_codec) parts.push(event.video_codec);
    if (event.width && event.height) parts.push(`${event.width}×${event.height}`);
    if (event.fps) parts.push(`${Math.round(event.fps)} fps`);
    if (event.audio_codec) parts.push(`audio ${event.audio_codec}`);
    line.textContent = parts.join(" · ");
  }
  health.append(title, line);
}

function onEvent(event) {
  if (event.type === "status") {
    showStatus(event);
    showElapsed(event);
    if (event.status !== "live") health.hidden = true;
    const broadcastId = event.broadcast ? event.broadcast.id : null;
    const newBroadcast = lastBroadcastId !== undefined && broadcastId !== lastBroadcastId;
    if (event.status !== lastStatus || newBroadcast) {
      refreshBroadcasts();
    }
    lastStatus = event.status;
    lastBroadcastId = broadcastId;
  } else if (event.type === "health") {
    if (lastStatus === "live") showHealth(event);
  } else if (event.type === "replay") {
    refreshBroadcasts();
  } else if (event.type === "viewers") {
    showViewers(document, event);
  } else if (event.type === "targets") {
    refreshTargets();
  }
}

if (head && statusBox) {
  // The chat the creator moderates from here shares the page's socket.
  let socket = null;
  const panel = document.querySelector("[data-chat]");
  const chat = panel ? mountChat(panel, { send: (frame) => socket?.send(frame) ?? false }) : {};
  socket = watchStream(head.dataset.stream, {
    onEvent: (event) => {
      onEvent(event);
      chat.onEvent?.(event);
    },
    onConnection: (open, details = {}) => {
      statusBox.dataset.connected = details.refused ? "refused" : String(open);
      chat.onConnection?.(open, details);
    },
  });
  if (rows.querySelector("[data-replay-pending]")) refreshBroadcasts();
}
