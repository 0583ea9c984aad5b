// The go-live page: preview, go live (WHIP first when the engine speaks it,
// the WebSocket otherwise or when WebRTC cannot connect), health, stop.
import { mountChat } from "../chat.js";
import { confirmAction } from "../confirm.js";
import { formatElapsed, showReconnectNotice, showViewers, statusLabel, watchStream } from "../live.js";
import { HealthMeter, serverView } from "./health.js";
import { applyTrackState, LevelMeter } from "./controls.js";
import { listDevices, openCamera, openScreen, stopStream } from "./media.js";
import { captureErrorMessage, MESSAGES, PublishError } from "./messages.js";
import { SocketPublisher } from "./socket.js";
import { WhipPublisher } from "./whip.js";

const MAX_RETRIES = 5;
// The session this page just left (WebRTC that did not connect, a dropped
// socket) may hold the stream for a moment until the engine reports its end.
const BUSY_RETRIES = 4;
const HEALTH_EVERY_MS = 2000;

const root = document.getElementById("golive");
const $ = (id) => document.getElementById(id);
const ui = {
  preview: $("preview"),
  goLive: $("go-live"),
  stop: $("stop"),
  message: $("golive-message"),
  path: $("ingest-path"),
  elapsed: $("golive-elapsed"),
  health: $("golive-health"),
  camera: $("camera"),
  microphone: $("microphone"),
  resolution: $("resolution"),
  bitrate: $("bitrate"),
  screenMic: $("screen-mic"),
  screenAudio: $("screen-audio"),
  status: $("live-status"),
  mute: $("mute"),
  cameraToggle: $("camera-toggle"),
  level: $("mic-level"),
};
const settings = {
  stream: root.dataset.stream,
  whip: root.dataset.whip === "true",
  iceTimeoutMs: Math.round(Number(root.dataset.iceTimeout || 5) * 1000),
  whipBase: root.dataset.whipBase,
  keyUrl: root.dataset.keyUrl,
  iceUrl: root.dataset.iceUrl,
  ingestPath: root.dataset.ingestPath,
};

let media = null; // the previewed MediaStream
let publisher = null;
let connecting = null; // a publisher still connecting (the server may already count it live)
let live = false;
let retries = 0;
let retryTimer = null;
let healthTimer = null;
let elapsedTimer = null;
let meter = null;
// Mute and camera-off, kept across source changes.
const tracks = { muted: false, cameraOff: false };
const level = new LevelMeter(ui.level);

function say(text, kind = "error") {
  ui.message.textContent = text || "";
  ui.message.className = `flash ${kind}`;
  ui.message.hidden = !text;
}

function source() {
  return document.querySelector("input[name='source']:checked").value;
}

// --- preview -------------------------------------------------------------

function fillSelect(select, devices, fallback) {
  const current = select.value;
  select.replaceChildren(
    ...devices.map((device, index) => new Option(device.label || `${fallback} ${index + 1}`, device.deviceId)),
  );
  if (devices.some((device) => device.deviceId === current)) select.value = current;
}

async function refreshDevices() {
  const { cameras, microphones } = await listDevices();
  fillSelect(ui.camera, cameras, "Camera");
  fillSelect(ui.microphone, microphones, "Microphone");
  return cameras.length + microphones.length;
}

function captureOptions() {
  return {
    cameraId: ui.camera.value || undefined,
    microphoneId: ui.microphone.value || undefined,
    resolution: ui.resolution.value,
    withMicrophone: ui.screenMic.checked,
    withScreenAudio: ui.screenAudio.checked,
  };
}

function openSource() {
  return source() === "screen" ? openScreen(captureOptions()) : openCamera(captureOptions());
}

function showMedia(next) {
  applyTrackState(next, tracks);
  ui.preview.srcObject = next;
  level.watch(next);
}

async function startPreview() {
  const previous = media;
  // A camera held by the old preview may refuse to open again (NotReadableError).
  if (previous && source() === "camera") stopStream(previous);
  try {
    media = await openSource();
  } catch (error) {
    media = source() === "camera" ? null : previous;
    if (source() === "screen" && error?.name === "NotAllowedError") say(MESSAGES.screenCancelled, "");
    else say(captureErrorMessage(error));
    ui.goLive.disabled = !media;
    return;
  }
  if (previous !== media) stopStream(previous);
  showMedia(media);
  say("");
  ui.goLive.disabled = live;
  await refreshDevices(); // labels appear once permission is granted
  media.getVideoTracks()[0]?.addEventListener("ended", () => {
    if (source() === "screen") say("Screen sharing ended.", "");
  });
}

// While live, another camera, microphone or screen goes out on the same
// session (WHIP: the senders' tracks are replaced; WebSocket: the same
// recording is fed from the new source); the broadcast never stops.
async function switchLive() {
  const previous = media;
  let next;
  try {
    next = await openSource();
  } catch (error) {
    if (source() === "screen" && error?.name === "NotAllowedError") say(MESSAGES.screenCancelled, "");
    else say(captureErrorMessage(error));
    return;
  }
  applyTrackState(next, tracks);
  try {
    await (publisher || connecting)?.useMedia(next);
  } catch (error) {
    stopStream(next);
    say(`Could not switch the source: ${error}`);
    return;
  }
  media = next;
  showMedia(next);
  stopStream(previous);
  say(source() === "screen" ? "Now sharing your screen, still live." : "Now sending the selected camera and microphone, still live.", "");
  next.getVideoTracks()[0]?.addEventListener("ended", () => {
    if (media === next && source() === "screen") say("Screen sharing ended.", "");
  });
}

function toggle(button, key, labels) {
  tracks[key] = !tracks[key];
  applyTrackState(media, tracks);
  button.setAttribute("aria-pressed", String(tracks[key]));
  button.textContent = tracks[key] ? labels[1] : labels[0];
}

// --- going live ----------------------------------------------------------

async function fetchJson(url) {
  const reply = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (reply.status === 401 || reply.redirected) throw new PublishError("auth", MESSAGES.sessionExpired);
  if (!reply.ok) throw new PublishError("server", `The studio answered HTTP ${reply.status}.`);
  return reply.json();
}

function bitrateKbps() {
  return Number(ui.bitrate.value) || 2500;
}

// The stream's WHIP URL, on this page's origin unless the studio names
// another WHIP endpoint (same origin: no CORS, no mixed content).
function whipUrl(url) {
  if (settings.whipBase) return url;
  const given = new URL(url);
  return new URL(given.pathname + given.search, window.location.origin).href;
}

async function startWhip() {
  const [keys, ice] = await Promise.all([fetchJson(settings.keyUrl), fetchJson(settings.iceUrl)]);
  const candidate = new WhipPublisher({
    url: whipUrl(keys.whip_url),
    iceServers: ice.iceServers,
    iceTimeoutMs: settings.iceTimeoutMs,
    bitrateKbps: bitrateKbps(),
    onLost: connectionLost,
  });
  connecting = candidate;
  try {
    await candidate.start(media);
  } catch (error) {
    await candidate.stop(); // DELETE the half-made session at once
    throw error;
  } finally {
    connecting = null;
  }
  return candidate;
}

async function startSocket() {
  for (let attempt = 0; ; attempt += 1) {
    const candidate = new SocketPublisher({
      path: settings.ingestPath,
      bitrateKbps: bitrateKbps(),
      onLost: connectionLost,
    });
    connecting = candidate;
    try {
      await candidate.start(media);
      return candidate;
    } catch (error) {
      if (error.kind !== "busy" || attempt >= BUSY_RETRIES) throw error;
      await new Promise((resolve) => window.setTimeout(resolve, 1000));
    } finally {
      connecting = null;
    }
  }
}

async function connect({ preferWhip }) {
  if (preferWhip) {
    try {
      return { publisher: await startWhip(), note: "" };
    } catch (error) {
      if (error.kind === "auth") throw error;
      const why = error.kind === "ice"
        ? `WebRTC could not connect within ${settings.iceTimeoutMs / 1000} s (UDP may be blocked on this network)`
        : `WebRTC failed (${error.message.replace(/\.$/, "")})`;
      return { publisher: await startSocket(), note: `${why}; switched to the WebSocket.` };
    }
  }
  return { publisher: await startSocket(), note: "" };
}

async function goLive() {
  if (!window.isSecureContext) return say(MESSAGES.insecure);
  if (!media) return say(MESSAGES.noDevice);
  ui.goLive.disabled = true;
  setSettingsDisabled(true);
  say("Connecting…", "");
  let result;
  try {
    result = await connect({ preferWhip: settings.whip });
  } catch (error) {
    ui.goLive.disabled = false;
    setSettingsDisabled(false);
    ui.path.textContent = "Not live.";
    return say(error instanceof PublishError ? error.message : `Could not go live: ${error}`);
  }
  publisher = result.publisher;
  retries = 0;
  say("");
  onLive(publisher, result.note);
}

function onLive(active, note = "") {
  live = true;
  const how = active.path === "webrtc"
    ? "Sending with WebRTC (WHIP)."
    : "Sending over a secure WebSocket (the studio forwards it to the media server).";
  ui.path.textContent = note ? `${how} ${note}` : how;
  ui.path.dataset.path = active.path;
  ui.stop.hidden = false;
  ui.goLive.hidden = true;
  startElapsed();
  startHealth();
}

function startElapsed() {
  window.clearInterval(elapsedTimer);
  const started = Date.now();
  const tick = () => { ui.elapsed.textContent = formatElapsed(Date.now() - started); };
  tick();
  ui.elapsed.hidden = false;
  elapsedTimer = window.setInterval(tick, 1000);
}

function startHealth() {
  meter = new HealthMeter();
  ui.health.hidden = false;
  window.clearInterval(healthTimer);
  healthTimer = window.setInterval(sampleHealth, HEALTH_EVERY_MS);
}

async function sampleHealth() {
  if (!publisher) return;
  const report = await publisher.report();
  if (!report) return;
  const values = publisher.path === "webrtc" ? meter.fromStats(report) : meter.fromSocket(report);
  const capture = media?.getVideoTracks()[0]?.getSettings().frameRate;
  if (publisher.path !== "webrtc" && capture) values.fps = `${Math.round(capture)} fps (camera)`;
  for (const [name, value] of Object.entries(values)) {
    const cell = ui.health.querySelector(`[data-health='${name}']`);
    if (cell) cell.textContent = value;
  }
}

function connectionLost(error) {
  if (!live) return;
  const lostPath = publisher?.path;
  publisher = null;
  window.clearInterval(healthTimer);
  if (!error.retry) {
    endLive();
    return say(error.message);
  }
  retries += 1;
  if (retries > MAX_RETRIES) {
    endLive();
    return say(MESSAGES.gaveUp);
  }
  const seconds = Math.min(2 ** (retries - 1), 15);
  say(MESSAGES.lost(retries, MAX_RETRIES, seconds), "");
  retryTimer = window.setTimeout(async () => {
    try {
      const result = await connect({ preferWhip: settings.whip && lostPath === "webrtc" });
      publisher = result.publisher;
      say("Reconnected.", "");
      onLive(publisher, result.note);
    } catch (retryError) {
      connectionLost(retryError instanceof PublishError ? retryError : new PublishError("lost", String(retryError), { retry: true }));
    }
  }, seconds * 1000);
}

function endLive() {
  live = false;
  window.clearTimeout(retryTimer);
  window.clearInterval(healthTimer);
  window.clearInterval(elapsedTimer);
  ui.elapsed.hidden = true;
  ui.health.hidden = true;
  ui.stop.hidden = true;
  ui.goLive.hidden = false;
  ui.goLive.disabled = !media;
  ui.path.textContent = "Not live.";
  delete ui.path.dataset.path;
  setSettingsDisabled(false);
}

// Stop ends the broadcast now (asked first): the publisher leaves, and the
// studio is told not to wait for it to reconnect.
async function stop() {
  const confirmed = await confirmAction({
    title: "Stop the broadcast?",
    message: "Stopping ends the live broadcast now: viewers see it has ended and its replay is prepared.",
    ok: "Stop broadcast",
  });
  if (!confirmed) return;
  const active = publisher;
  publisher = null;
  endLive();
  say("");
  if (active) await active.stop();
  await endBroadcast();
}

async function endBroadcast() {
  const form = document.querySelector("[data-reconnect-notice] form");
  if (!form) return;
  try {
    await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      redirect: "manual",
    });
  } catch {
    // The encoder has left; the reconnect window ends the broadcast later.
  }
}

// Quality is fixed for a session; the source (camera, microphone, screen)
// can change while live.
function setSettingsDisabled(disabled) {
  for (const element of [ui.resolution, ui.bitrate]) element.disabled = disabled;
}

// --- status pushed by the studio -------------------------------------------

function onStatus(event) {
  if (event.type === "status") {
    const badge = ui.status.querySelector("[data-testid='stream-status']");
    badge.textContent = statusLabel(event.status);
    root.dataset.status = event.status;
    showReconnectNotice(document, event);
    badge.className = `status status-${event.status}${event.disabled ? " status-disabled" : ""}`;
  } else if (event.type === "health" && live) {
    const cell = ui.health.querySelector("[data-health='server']");
    if (cell) cell.textContent = serverView(event);
  } else if (event.type === "viewers") {
    showViewers(document, event);
  }
}

// --- wiring ----------------------------------------------------------------

async function init() {
  if (!window.isSecureContext || !navigator.mediaDevices) {
    say(window.isSecureContext ? MESSAGES.unsupported : MESSAGES.insecure);
    return;
  }
  try {
    if ((await refreshDevices()) === 0) say(MESSAGES.noDevice);
  } catch (error) {
    say(captureErrorMessage(error));
  }
  await startPreview();
  const changed = () => (live ? switchLive() : startPreview());
  for (const element of [ui.camera, ui.microphone, ui.resolution, ui.screenMic, ui.screenAudio]) {
    element.addEventListener("change", changed);
  }
  for (const radio of document.querySelectorAll("input[name='source']")) {
    radio.addEventListener("change", changed);
  }
  ui.mute.addEventListener("click", () => toggle(ui.mute, "muted", ["Mute microphone", "Unmute microphone"]));
  ui.cameraToggle.addEventListener("click", () => toggle(ui.cameraToggle, "cameraOff", ["Turn camera off", "Turn camera on"]));
  ui.goLive.addEventListener("click", goLive);
  ui.stop.addEventListener("click", stop);
  // Leaving while live is asked first (the browser's own prompt). Once the
  // page goes, its publisher stops at once: the stream waits out its
  // reconnect window (this page, opened again in time, continues it).
  window.addEventListener("beforeunload", (event) => {
    if (!live) return;
    event.preventDefault();
    event.returnValue = "";
  });
  window.addEventListener("pagehide", () => {
    publisher?.stopOnUnload();
    connecting?.stopOnUnload();
  });
}

// The stream's socket: status, viewers, health, and the chat the creator
// moderates from here (whatever the browser can capture).
function followStream() {
  let socket = null;
  const panel = document.querySelector("[data-chat]");
  const chat = panel ? mountChat(panel, { send: (frame) => socket?.send(frame) ?? false }) : {};
  socket = watchStream(settings.stream, {
    onEvent: (event) => {
      onStatus(event);
      chat.onEvent?.(event);
    },
    onConnection: (open, details) => chat.onConnection?.(open, details),
  });
}

followStream();
init();
