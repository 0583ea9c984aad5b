// The stream player shared by the watch page, the embeddable player and the
// replay page: hls.js playback from the CDN (live near the edge, or a replay
// from its start), a "turn on sound" prompt (autoplay starts muted), and, for
// a stream, the live/ended/replay behaviour driven by the stream's websocket.
import { listRefresher, serverOffset, showViewers, statusLabel, watchStream } from "./live.js";
import { createPlaybackModes } from "./playback_mode.js";

// Near the live edge without low-latency HLS (the origin serves plain
// segments). The distance hls.js keeps from the live edge follows the
// deployment's fragment length (STUDIO_HLS_FRAGMENT, on the player as
// data-hls-fragment): one and a half fragments, so a viewer who joins a
// running broadcast sits as close as one who was there at its start, with
// half a fragment of slack for the next segment's upload. It is never less
// than the playlist's target duration: a browser-fed (WHIP) broadcast has 4-5 s
// segments at first, and starting inside the newest one would stall until the
// next. A viewer behind the target (a stall, a slow start) plays up to 10 %
// faster until back at it (hls.js does that in its low-latency mode only;
// without parts in the playlist the mode changes nothing else). The first
// playlist may 404 for a few seconds while the first segment uploads, so
// loading retries patiently; a fatal error is retried below while live.
export function liveSyncSeconds(fragment, targetDuration = 0) {
  return Math.max(1.5 * fragment, targetDuration);
}

function liveMaxLatency(sync) {
  return Math.max(12, 3 * sync);
}

export function liveConfig(fragment = 2) {
  const sync = liveSyncSeconds(fragment);
  return {
    lowLatencyMode: true,
    liveSyncDuration: sync,
    liveMaxLatencyDuration: liveMaxLatency(sync),
    maxLiveSyncPlaybackRate: 1.1,
    manifestLoadingMaxRetry: 4,
    manifestLoadingRetryDelay: 1000,
    manifestLoadingMaxRetryTimeout: 4000,
    levelLoadingMaxRetry: 6,
    levelLoadingRetryDelay: 1000,
    fragLoadingMaxRetry: 6,
    fragLoadingRetryDelay: 500,
  };
}
export const REPLAY_CONFIG = { lowLatencyMode: false, startPosition: 0 };
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 8000;
// A new broadcast's first playlist reaches the edge a fragment or two after
// the status turns live; until then the edge still has the previous
// broadcast's finished one (with ENDLIST).
const NEW_BROADCAST_POLL_MS = 1000;
// How often the "behind live" figure is refreshed, and from how many target
// durations behind the point hls.js would start a new viewer at "Go to live"
// is offered (a paused or stalled viewer; the normal distance is not "far").
const LATENCY_REFRESH_MS = 1000;
const FAR_BEHIND_TARGETS = 3;

// Seconds between the wall-clock time a frame reached the media server (the
// playlist's #EXT-X-PROGRAM-DATE-TIME, through hls.js's playingDate) and now
// on the server's clock (the viewer's clock corrected by `clockOffset()`
// milliseconds), or null while unknown.
export function secondsBehindLive(playingDate, clockOffset = 0, now = Date.now()) {
  if (!(playingDate instanceof Date) || Number.isNaN(playingDate.getTime())) return null;
  return Math.max(0, (now + clockOffset - playingDate.getTime()) / 1000);
}

// hls.js on `video` inside `player` (whose data-mode says what plays:
// "none", "live" or "replay"). `isLive()` says whether the stream is live
// now: while it is, a live playlist that fails to load is retried.
// `showsLatency()`: whether "N s behind live" means anything now (not while
// the publisher reconnects: the picture waits, the figure would only grow).
export function createPlayer({
  player,
  video,
  message,
  unmute,
  latency = null,
  isLive = () => false,
  showsLatency = () => true,
  clockOffset = () => 0,
  fragment = 0,
}) {
  let hls = null;
  let whep = null;
  let retryTimer = null;
  let latencyTimer = null;
  let retryDelay = RETRY_FIRST_MS;
  let mediaRecoveries = 0;

  function setMessage(text) {
    message.textContent = text;
  }

  // A private stream's objects are served only with the signed CDN cookie
  // the studio sets (its requests must carry it: withCredentials). The
  // cookie is renewed at half its life; after a playback error the player
  // asks again where the stream plays, since a change of visibility moves
  // it between the public and the signed prefix. False: no longer allowed.
  let renewTimer = null;
  async function refreshAccess() {
    const url = player.dataset.accessUrl;
    if (!url) return true;
    try {
      const reply = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (reply.status === 404) return false;
      if (!reply.ok) return true;
      const body = await reply.json();
      player.dataset.private = body.private ? "1" : "0";
      if (body.hls_url) player.dataset.hlsUrl = body.hls_url;
      scheduleRenewal(body.renew_in);
    } catch {
      // offline for a moment: the next error or renewal asks again
    }
    return true;
  }

  function scheduleRenewal(seconds) {
    window.clearTimeout(renewTimer);
    renewTimer = seconds ? window.setTimeout(refreshAccess, seconds * 1000) : null;
  }
  if (player.dataset.private === "1") scheduleRenewal(Number(player.dataset.renewIn) || 60);

  function withCookies(config) {
    if (player.dataset.private !== "1") return config;
    return {
      ...config,
      xhrSetup: (xhr) => {
        xhr.withCredentials = true;
      },
    };
  }

  // "N s behind live" under a live video, with "Go to live" when far behind.
  const latencyText = latency?.querySelector("[data-testid='live-latency']");
  const goLive = latency?.querySelector("[data-testid='go-live']");

  function hideLatency() {
    window.clearInterval(latencyTimer);
    latencyTimer = null;
    if (latency) latency.hidden = true;
  }

  function showLatency() {
    const behind = hls && showsLatency() ? secondsBehindLive(hls.playingDate, clockOffset()) : null;
    if (behind === null) {
      latency.hidden = true;
      return;
    }
    latency.hidden = false;
    latencyText.dataset.seconds = behind.toFixed(1);
    latencyText.textContent = `${Math.round(behind)} s behind live`;
    const target = hls.latestLevelDetails?.targetduration || 2;
    const edge = hls.liveSyncPosition;
    goLive.hidden = !(edge !== null && edge - video.currentTime > FAR_BEHIND_TARGETS * target);
  }

  function watchLatency() {
    if (!latency) return;
    hideLatency();
    latencyTimer = window.setInterval(showLatency, LATENCY_REFRESH_MS);
  }

  goLive?.addEventListener("click", () => {
    if (hls && hls.liveSyncPosition !== null) video.currentTime = hls.liveSyncPosition;
    video.play().catch(() => {});
    showLatency();
  });

  function stopPlayback() {
    hideLatency();
    window.clearTimeout(retryTimer);
    retryTimer = null;
    delete player.dataset.playlist;
    if (hls) {
      hls.destroy();
      hls = null;
    }
    if (whep) {
      whep.stop();
      whep = null;
    }
    video.srcObject = null;
    video.removeAttribute("src");
    video.load();
    player.dataset.mode = "none";
    if (unmute) unmute.hidden = true;
  }

  // Autoplay is allowed only muted: start so, and offer the sound.
  function start() {
    video.play().then(offerSound, () => setMessage("Press play to start."));
  }

  function offerSound() {
    if (unmute) unmute.hidden = !video.muted;
  }

  function play(url, mode, config) {
    stopPlayback();
    player.dataset.mode = mode;
    video.hidden = false;
    const Hls = window.Hls;
    if (Hls && Hls.isSupported()) {
      mediaRecoveries = 0;
      hls = new Hls(withCookies(config));
      hls.on(Hls.Events.MANIFEST_PARSED, () => {
        retryDelay = RETRY_FIRST_MS;
        setMessage("");
        start();
      });
      hls.on(Hls.Events.LEVEL_LOADED, (_name, data) => {
        if (mode !== "live") return;
        followTargetDuration(data.details);
        onLivePlaylist(data.details, url, config);
      });
      hls.on(Hls.Events.ERROR, (_name, data) => {
        if (data.fatal) onFatalError(data, url, mode, config);
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      if (mode === "live") watchLatency();
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = url; // Safari plays HLS natively
      start();
    } else {
      setMessage("This browser cannot play HLS video.");
    }
  }

  // Live over WebRTC: `session` (whep.js) puts its stream into the video and
  // resolves on the first decoded frame; rejects when it fails or is replaced.
  async function playWebrtc(session) {
    stopPlayback();
    whep = session;
    player.dataset.mode = "live";
    video.hidden = false;
    setMessage("");
    await session.start(video);
    if (whep !== session) throw new Error("replaced");
    start();
  }

  // Longer segments than the deployment's fragment (a WHIP broadcast's
  // first ones): keep at least a target duration from the live edge.
  function followTargetDuration(details) {
    if (!details?.live || !fragment) return;
    const sync = liveSyncSeconds(fragment, details.targetduration);
    if (hls.config.liveSyncDuration === sync) return;
    hls.config.liveMaxLatencyDuration = liveMaxLatency(sync);
    hls.targetLatency = sync;
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
    if (mode === "live" && isLive()) {
      // Most often the playlist is not on the CDN yet: start over, with backoff.
      setMessage("Waiting for the stream…");
      hls.destroy();
      hls = null;
      retryTimer = window.setTimeout(async () => {
        if (!(await refreshAccess())) {
          stopPlayback();
          setMessage("This stream is not available.");
          return;
        }
        play(player.dataset.hlsUrl || url, mode, config);
      }, retryDelay);
      retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
    } else if (mode === "replay") {
      setMessage("The replay could not be loaded. Try again in a moment.");
    }
  }

  unmute?.addEventListener("click", () => {
    video.muted = false;
    video.volume = video.volume || 1;
    unmute.hidden = true;
    video.play().catch(() => {});
  });
  video.addEventListener("volumechange", () => {
    if (!video.muted && unmute) unmute.hidden = true;
  });
  // A WebRTC session is ended with the page, not left to the server's timeout.
  window.addEventListener("pagehide", () => whep?.stop({ keepalive: true }));
  video.addEventListener("ended", () => {
    if (player.dataset.mode === "replay") setMessage("End of the replay.");
  });

  return { play, playWebrtc, stopPlayback, setMessage };
}

// The live/ended/replay player of a stream: `scope` holds the elements by
// their data-testid (the watch page, the embeddable player). `replayList`
// is the server-rendered list of past broadcasts (may be hidden).
// `extra` ({ onEvent, onConnection }) also hears the stream socket (the
// watch page's chat); returns the socket (see live.js watchStream).
export function mountStreamPlayer(scope = document, extra = {}) {
  const find = (testid) => scope.querySelector(`[data-testid='${testid}']`);
  const player = scope.querySelector("[data-player]");
  const video = find("video");
  const badge = find("watch-status");
  const offlineCard = find("offline-card");
  const endedCard = find("ended-card");
  const latestReplay = find("watch-latest-replay");
  const replayPending = find("replay-pending");
  const replayList = find("replays");
  const reconnecting = find("reconnecting");

  let status = player.dataset.status;
  // The server's clock minus the viewer's (ms), from the socket's events.
  let offset = 0;
  // The broadcast the status says is live (from the page, then the socket).
  let liveBroadcast = player.dataset.broadcast || "";
  // The deployment's HLS fragment length (STUDIO_HLS_FRAGMENT), in seconds.
  const fragment = Number(player.dataset.hlsFragment) || 2;
  const { play, playWebrtc, stopPlayback, setMessage } = createPlayer({
    player,
    video,
    message: find("player-message"),
    unmute: find("unmute"),
    latency: scope.querySelector("[data-latency]"),
    // Reconnecting: the broadcast goes on, its playlist too (no ENDLIST).
    isLive: () => status === "live" || status === "reconnecting",
    showsLatency: () => status === "live",
    clockOffset: () => offset,
    fragment,
  });

  const modes = createPlaybackModes({
    player,
    box: scope.querySelector("[data-playback-mode]"),
    playHls: () => play(player.dataset.hlsUrl, "live", liveConfig(fragment)),
    playWebrtc,
  });

  function startLive() {
    offlineCard.hidden = true;
    endedCard.hidden = true;
    player.dataset.playingBroadcast = liveBroadcast;
    modes.start();
  }

  function playReplay(url) {
    modes.stop();
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
    badge.textContent = ["live", "reconnecting", "ended"].includes(status) ? statusLabel(status) : "offline";
    badge.className = `status status-${status}`;
  }

  function onStatus(event) {
    const previous = status;
    status = event.status;
    player.dataset.status = status;
    const underWay = status === "live" || status === "reconnecting";
    liveBroadcast = underWay && event.broadcast ? String(event.broadcast.id) : "";
    showBadge();
    const watchingReplay = player.dataset.mode === "replay";
    // The player stays as it is while the publisher reconnects: hls.js keeps
    // reloading the playlist and plays on once segments follow.
    if (reconnecting) reconnecting.hidden = status !== "reconnecting" || watchingReplay;
    // "N watching" is the live audience: not shown on an offline or ended page.
    for (const count of document.querySelectorAll("[data-testid='viewer-count'][data-live-only]")) {
      count.hidden = !underWay;
    }
    if (underWay) {
      // A new broadcast (even one whose "ended" this page missed) starts afresh.
      const another = player.dataset.playingBroadcast !== liveBroadcast;
      if (player.dataset.mode !== "live" || another) startLive();
      return;
    }
    if (player.dataset.mode === "live") {
      stopPlayback();
      video.hidden = true;
    }
    modes.stop();
    offlineCard.hidden = status !== "created" || watchingReplay;
    endedCard.hidden = status !== "ended" || watchingReplay;
    if (status === "ended" && previous !== "ended") refreshReplays();
  }

  // Deleted, or made private to this viewer: the socket closes for good and
  // nothing of the stream is shown any more.
  function onUnavailable() {
    status = "unavailable";
    player.dataset.status = status;
    modes.stop();
    stopPlayback();
    video.hidden = true;
    for (const element of [badge, offlineCard, endedCard, reconnecting, latestReplay, replayPending]) {
      if (element) element.hidden = true;
    }
    (replayList.closest("section") || replayList).hidden = true;
    for (const count of document.querySelectorAll("[data-testid='viewer-count']")) count.hidden = true;
    setMessage("This stream is not available.");
  }

  latestReplay.addEventListener("click", () => {
    if (latestReplay.dataset.url) playReplay(latestReplay.dataset.url);
  });
  replayList.addEventListener("click", (click) => {
    const button = click.target.closest("[data-replay]");
    if (button) playReplay(button.dataset.replay);
  });

  offerLatestReplay();
  if (status === "live" || status === "reconnecting") startLive();
  const socket = watchStream(player.dataset.stream, {
    onEvent: (event) => {
      if (event.now) offset = serverOffset(event);
      if (event.type === "status") onStatus(event);
      else if (event.type === "unavailable") onUnavailable();
      else if (event.type === "replay") refreshReplays();
      else if (event.type === "viewers") {
        showViewers(document, event);
        modes.onViewers(event.viewers);
      }
      extra.onEvent?.(event);
    },
    onConnection: (open, details = {}) => {
      player.dataset.connected = details.refused ? "refused" : String(open);
      extra.onConnection?.(open, details);
    },
  });
  if (replayList.querySelector("[data-replay-pending]")) refreshReplays();
  return socket;
}
