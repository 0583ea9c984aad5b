// WebRTC playback over WHEP (SRS 5, srs5-contract.md §4.2): a recvonly SDP
// offer POSTed to the WHEP URL, the answer in the 201 reply, the session
// ended by DELETE on the Location it returned. `start()` resolves once the
// first video frame is decoded and rejects (after ending the session) when
// that does not happen within the timeout; `onLost` hears of a session that
// fails or stops delivering pictures later.

const GATHER_LIMIT_MS = 2000; // SRS takes no trickled candidates: send what we have by then
const DISCONNECT_GRACE_MS = 3000; // "disconnected" often heals by itself; "failed" does not
const STATS_EVERY_MS = 250;
const STALL_CHECK_MS = 1000;

export class WhepError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind; // "http", "unreachable", "ice", "media", "lost"
  }
}

// The WHEP URL on the page's own origin unless the studio names another
// endpoint (same origin: no CORS; nginx proxies /rtc/v1/whep/ to SRS).
export function whepUrl(url, base) {
  if (base) return url;
  const given = new URL(url, window.location.href);
  return new URL(given.pathname + given.search, window.location.origin).href;
}

function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      window.clearTimeout(timer);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = window.setTimeout(done, GATHER_LIMIT_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// Frames of video decoded so far on this connection (inbound-rtp stats).
async function framesDecoded(pc) {
  let frames = 0;
  const report = await pc.getStats();
  report.forEach((entry) => {
    if (entry.type === "inbound-rtp" && entry.kind === "video") frames += entry.framesDecoded || 0;
  });
  return frames;
}

export class WhepSession {
  constructor({ url, iceServers = [], timeoutMs = 5000, onLost = null }) {
    this.url = url;
    this.iceServers = iceServers;
    this.timeoutMs = timeoutMs;
    this.onLost = onLost;
    this.pc = null;
    this.location = null;
    this.stream = null;
    this.closed = false;
    this.watchTimer = null;
  }

  // Connects and shows `stream` in `video` (set before the first frame so
  // Chromium decodes it); resolves on the first decoded frame.
  async start(video) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: "max-bundle" });
    this.pc = pc;
    this.stream = new MediaStream();
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addEventListener("track", (event) => {
      this.stream.addTrack(event.track);
      if (video.srcObject !== this.stream) video.srcObject = this.stream;
    });
    const deadline = Date.now() + this.timeoutMs;
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
    let reply;
    try {
      reply = await fetch(this.url, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription.sdp,
      });
    } catch (error) {
      // SRS 5 answers a refused play by closing without a reply.
      throw this.fail(new WhepError("unreachable", "the media server did not answer"));
    }
    if (reply.status !== 201) {
      throw this.fail(new WhepError("http", `the media server answered HTTP ${reply.status}`));
    }
    const location = reply.headers.get("Location");
    if (location) this.location = new URL(location, this.url).href;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: await reply.text() });
    } catch (error) {
      throw this.fail(new WhepError("http", "the media server's answer was not usable"));
    }
    await this.firstFrame(deadline);
    this.watch();
    return this.stream;
  }

  // Waits for a decoded video frame until `deadline`; a failed connection
  // gives up at once.
  async firstFrame(deadline) {
    const pc = this.pc;
    for (;;) {
      if (this.closed || this.pc !== pc) throw new WhepError("lost", "stopped");
      if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        throw this.fail(new WhepError("ice", "WebRTC could not connect"));
      }
      if ((await framesDecoded(pc)) > 0) return;
      if (Date.now() >= deadline) {
        const connected = pc.connectionState === "connected";
        const why = connected ? "no picture arrived" : "WebRTC could not connect";
        throw this.fail(new WhepError(connected ? "media" : "ice", `${why} within ${this.timeoutMs / 1000} s`));
      }
      await new Promise((resolve) => window.setTimeout(resolve, STATS_EVERY_MS));
    }
  }

  // While playing: a failed connection, one disconnected for a few seconds,
  // or no new frame for the timeout is reported once through `onLost`.
  watch() {
    const pc = this.pc;
    let grace = null;
    let frames = 0;
    let still = Date.now();
    const lost = (why) => {
      if (this.pc !== pc || this.closed) return;
      window.clearTimeout(grace);
      this.stop();
      this.onLost?.(new WhepError("lost", why));
    };
    pc.addEventListener("connectionstatechange", () => {
      window.clearTimeout(grace);
      if (pc.connectionState === "failed") lost("the WebRTC connection failed");
      else if (pc.connectionState === "disconnected") {
        grace = window.setTimeout(() => lost("the WebRTC connection was lost"), DISCONNECT_GRACE_MS);
      }
    });
    const check = async () => {
      if (this.pc !== pc || this.closed) return;
      const now = await framesDecoded(pc).catch(() => frames);
      if (now > frames) {
        frames = now;
        still = Date.now();
      } else if (Date.now() - still >= this.timeoutMs) {
        lost(`no picture for ${this.timeoutMs / 1000} s`);
        return;
      }
      this.watchTimer = window.setTimeout(check, STALL_CHECK_MS);
    };
    this.watchTimer = window.setTimeout(check, STALL_CHECK_MS);
  }

  fail(error) {
    this.stop();
    return error;
  }

  // Ends the session now (SRS would otherwise wait ~30 s for the RTC timeout).
  stop({ keepalive = false } = {}) {
    this.closed = true;
    window.clearTimeout(this.watchTimer);
    const location = this.location;
    this.location = null;
    this.pc?.close();
    this.pc = null;
    if (location) fetch(location, { method: "DELETE", keepalive }).catch(() => {});
  }
}
