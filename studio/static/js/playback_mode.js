// Which way a live stream plays on the watch page and the embed: low latency
// over WebRTC (WHEP) where the media server offers it, HLS from the CDN
// otherwise. A viewer starts in WebRTC when the page says so (the stream had
// fewer viewers than STUDIO_WHEP_MAX_VIEWERS) and falls back to HLS within a
// few seconds on any failure; the label says which plays and a button switches.
import { WhepSession, whepUrl } from "./whep.js";

const FULL = "Low latency is full for this stream; playing HLS.";

export const LABELS = {
  webrtc: "Low latency (WebRTC)",
  hls: "HLS",
  connecting: "Connecting low latency…",
};

async function iceServers(url) {
  try {
    const reply = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    return reply.ok ? (await reply.json()).iceServers || [] : [];
  } catch {
    return []; // host candidates alone still work on most networks
  }
}

// `playHls()` starts HLS; `playWebrtc(session)` resolves once the session
// shows a picture (rejects otherwise). Returns { start, stop, onViewers }.
export function createPlaybackModes({ player, box, playHls, playWebrtc }) {
  const offered = Boolean(player.dataset.whepUrl) && Boolean(box);
  const label = box?.querySelector("[data-testid='playback-mode']");
  const switcher = box?.querySelector("[data-testid='playback-switch']");
  const note = box?.querySelector("[data-testid='playback-note']");
  const maxViewers = Number(player.dataset.whepMaxViewers || 0);
  const timeoutMs = Number(player.dataset.whepTimeout || 5) * 1000;
  // The stream's viewer count: from the page (others only), then from the
  // socket's `viewers` events (which count this page too).
  let viewers = Number(player.dataset.viewers || 0);
  let countsMe = false;
  // "webrtc" or "hls" once the viewer chose; until then the page's advice.
  let preferred = null;
  let attempt = 0;
  let current = null;

  function roomForMe() {
    const others = countsMe ? Math.max(0, viewers - 1) : viewers;
    return others < maxViewers;
  }

  function allowSwitch() {
    switcher.disabled = !roomForMe();
    switcher.title = switcher.disabled ? "Low latency is full for this stream right now." : "";
  }

  function show(mode, text = "") {
    current = mode;
    player.dataset.playback = mode;
    box.hidden = false;
    label.textContent = LABELS[mode];
    note.textContent = text;
    switcher.hidden = mode === "connecting";
    if (mode === "webrtc") {
      switcher.textContent = "Switch to HLS";
      switcher.disabled = false;
      switcher.title = "";
    } else {
      switcher.textContent = "Switch to low latency";
      allowSwitch();
    }
  }

  function hls(text = "") {
    attempt += 1;
    show("hls", text);
    playHls();
  }

  async function webrtc() {
    attempt += 1;
    const mine = attempt;
    show("connecting");
    const fallBack = (why) => {
      if (mine === attempt) hls(`Low latency unavailable (${why}); playing HLS.`);
    };
    try {
      const session = new WhepSession({
        url: whepUrl(player.dataset.whepUrl, player.dataset.whepBase),
        iceServers: await iceServers(player.dataset.whepIceUrl),
        timeoutMs,
        onLost: (error) => fallBack(error.message),
      });
      if (mine !== attempt) return;
      await playWebrtc(session);
      if (mine === attempt) show("webrtc");
    } catch (error) {
      fallBack(error.message || String(error));
    }
  }

  function start() {
    if (!offered) {
      playHls();
      return;
    }
    const advised = player.dataset.whepAuto === "true";
    const wanted = preferred === "webrtc" || (preferred === null && advised);
    if (wanted && roomForMe()) webrtc();
    else if (preferred === "hls") hls();
    else hls(FULL);
  }

  function stop() {
    attempt += 1;
    current = null;
    delete player.dataset.playback;
    if (box) box.hidden = true;
  }

  function onViewers(count) {
    viewers = Number(count) || 0;
    countsMe = true;
    if (current !== "hls") return;
    allowSwitch();
    if (!switcher.disabled && note.textContent === FULL) note.textContent = "";
  }

  switcher?.addEventListener("click", () => {
    if (current === "webrtc") {
      preferred = "hls";
      hls();
    } else if (current === "hls" && roomForMe()) {
      preferred = "webrtc";
      webrtc();
    }
  });

  return { start, stop, onViewers, offered };
}
