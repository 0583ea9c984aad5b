// The public watch page: plays the live HLS playlist from the CDN with hls.js
// when the stream is live (starting by itself when the websocket says so),
// shows "ended" and the replay afterwards, and lists past broadcasts.
import { listRefresher, watchStream } from "./live.js";

const player = document.getElementById("player");
const video = document.getElementById("video");
const badge = document.querySelector("[data-testid='watch-status']");
const offlineCard = document.querySelector("[data-testid='offline-card']");
const endedCard = document.querySelector("[data-testid='ended-card']");
const latestReplay = document.querySelector("[data-testid='watch-latest-replay']");
const replayPending = document.querySelector("[data-testid='replay-pending']");
const message = document.querySelector("[data-testid='player-message']");
const replayList = document.getElementById("replay-list");

// Near the live edge without low-latency HLS (the origin serves plain
// segments): start ~3 segments behind, catch up if we fall 6 behind. The
// first playlist may 404 for a few seconds while the first segment uploads,
// so loading retries patiently; a fatal error is retried below while live.
const LIVE_CONFIG = {
  lowLatencyMode: false,
  liveSyncDurationCount: 3,
  liveMaxLatencyDurationCount: 6,
  manifestLoadingMaxRetry: 4,
  manifestLoadingRetryDelay: 1000,
  manifestLoadingMaxRetryTimeout: 4000,
  levelLoadingMaxRetry: 6,
  levelLoadingRetryDelay: 1000,
  fragLoadingMaxRetry: 6,
  fragLoadingRetryDelay: 500,
};
const REPLAY_CONFIG = { lowLatencyMode: false, startPosition: 0 };
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 8000;
// A new broadcast's first playlist reaches the edge a fragment or two after
// the status turns live; until then the edge still has the previous
// broadcast's finished one (with ENDLIST).
const NEW_BROADCAST_POLL_MS = 1000;

let status = player.dataset.status;
let hls = null;
let retryTimer = null;
let retryDelay = RETRY_FIRST_MS;
let mediaRecoveries = 0;
// The broadcast the status says is live (from the page, then the socket).
let liveBroadcast = player.dataset.broadcast || "";

function setMessage(text) {
  message.textContent = text;
}

function stopPlayback() {
  window.clearTimeout(retryTimer);
  retryTimer = null;
  delete player.dataset.playlist;
  if (hls) {
    hls.destroy();
    hls = null;
  }
  video.removeAttribute("src");
  video.load();
  player.dataset.mode = "none";
}

function play(url, mode, config) {
  stopPlayback();
  player.dataset.mode = mode;
  video.hidden = false;
  const Hls = window.Hls;
  if (Hls && Hls.isSupported()) {
    mediaRecoveries = 0;
    hls = new Hls(config);
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      retryDelay = RETRY_FIRST_MS;
      setMessage("");
      video.play().catch(() => setMessage("Press play to start."));
    });
    hls.on(Hls.Events.LEVEL_LOADED, (_name, data) => {
      if (mode === "live") onLivePlaylist(data.details, url, config);
    });
    hls.on(Hls.Events.ERROR, (_name, data) => {
      if (data.fatal) onFatalError(data, url, mode, config);
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url; // Safari plays HLS natively
    video.play().catch(() => setMessage("Press play to start."));
  } else {
    setMessage("This browser cannot play HLS video.");
  }
}

// While the status is live, a playlist that has ended is the previous
// broadcast's: hls.js would take it for a recording and never reload it, so
// start over until the new broadcast's live playlist is there.
function onLivePlaylist(details, url, config) {
  if (!details || details.live) {
    player.dataset.playlist = "live";
    return;
  }
  player.dataset.playlist = "previous";
  setMessage("Starting…");
  hls.destroy();
  hls = null;
  retryTimer = window.setTimeout(() => play(url, "live", config), NEW_BROADCAST_POLL_MS);
}

function onFatalError(data, url, mode, config) {
  const Hls = window.Hls;
  if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries < 2) {
    mediaRecoveries += 1;
    hls.recoverMediaError();
    return;
  }
  if (mode === "live" && status === "live") {
    // Most often the playlist is not on the CDN yet: start over, with backoff.
    setMessage("Waiting for the stream…");
    hls.destroy();
    hls = null;
    retryTimer = window.setTimeout(() => play(url, mode, config), retryDelay);
    retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
  } else if (mode === "replay") {
    setMessage("The replay could not be loaded. Try again in a moment.");
  }
}

function startLive() {
  offlineCard.hidden = true;
  endedCard.hidden = true;
  player.dataset.playingBroadcast = liveBroadcast;
  play(player.dataset.hlsUrl, "live", LIVE_CONFIG);
}

function playReplay(url) {
  offlineCard.hidden = true;
  endedCard.hidden = true;
  play(url, "replay", REPLAY_CONFIG);
}

// The ended card offers the newest broadcast's replay once it exists.
function offerLatestReplay() {
  const newest = replayList.querySelector("[data-broadcast]");
  const button = newest?.querySelector("[data-replay]");
  latestReplay.hidden = !button;
  latestReplay.dataset.url = button ? button.dataset.replay : "";
  replayPending.hidden = Boolean(button) || !newest;
}

const refreshReplays = listRefresher(replayList, { onRefreshed: offerLatestReplay });

function showBadge() {
  badge.textContent = status === "live" ? "LIVE" : status === "ended" ? "ended" : "offline";
  badge.className = `status status-${status}`;
}

function onStatus(event) {
  const previous = status;
  status = event.status;
  player.dataset.status = status;
  liveBroadcast = status === "live" && event.broadcast ? String(event.broadcast.id) : "";
  showBadge();
  const watchingReplay = player.dataset.mode === "replay";
  if (status === "live") {
    // A new broadcast (even one whose "ended" this page missed) starts afresh.
    const another = player.dataset.playingBroadcast !== liveBroadcast;
    if (player.dataset.mode !== "live" || another) startLive();
    return;
  }
  if (player.dataset.mode === "live") {
    stopPlayback();
    video.hidden = true;
  }
  offlineCard.hidden = status !== "created" || watchingReplay;
  endedCard.hidden = status !== "ended" || watchingReplay;
  if (status === "ended" && previous !== "ended") refreshReplays();
}

latestReplay.addEventListener("click", () => {
  if (latestReplay.dataset.url) playReplay(latestReplay.dataset.url);
});
replayList.addEventListener("click", (click) => {
  const button = click.target.closest("[data-replay]");
  if (button) playReplay(button.dataset.replay);
});
video.addEventListener("ended", () => {
  if (player.dataset.mode === "replay") setMessage("End of the replay.");
});

offerLatestReplay();
if (status === "live") startLive();
watchStream(player.dataset.stream, {
  onEvent: (event) => {
    if (event.type === "status") onStatus(event);
    else if (event.type === "replay") refreshReplays();
  },
  onConnection: (open, { refused } = {}) => {
    player.dataset.connected = refused ? "refused" : String(open);
  },
});
if (replayList.querySelector("[data-replay-pending]")) refreshReplays();
