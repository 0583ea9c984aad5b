// WebRTC publish over WHIP (SRS 5): SDP offer POSTed to the WHIP URL, answer
// in the 201 reply, session ended by DELETE on the Location it returned.
import { MESSAGES, PublishError } from "./messages.js";

const GATHER_LIMIT_MS = 2000; // SRS takes no trickled candidates: send what we have by then
const DISCONNECT_GRACE_MS = 5000;

// Reorder the codecs so H.264 comes first: SRS bridges WebRTC to RTMP/HLS
// only for H.264 (VP8 gives audio-only HLS). Packetization mode 1 and the
// constrained baseline profile SRS prefers go first among the H.264 entries.
export function preferH264(transceiver) {
  const capabilities = RTCRtpSender.getCapabilities?.("video");
  if (!capabilities || typeof transceiver.setCodecPreferences !== "function") return false;
  const rank = (codec) => {
    if (codec.mimeType.toLowerCase() !== "video/h264") return 3;
    const fmtp = codec.sdpFmtpLine || "";
    if (fmtp.includes("packetization-mode=1") && fmtp.includes("42e01f")) return 0;
    return fmtp.includes("packetization-mode=1") ? 1 : 2;
  };
  const codecs = [...capabilities.codecs].sort((a, b) => rank(a) - rank(b));
  if (rank(codecs[0]) === 3) return false; // no H.264 in this browser
  transceiver.setCodecPreferences(codecs);
  return true;
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

function connectedWithin(pc, ms) {
  return new Promise((resolve, reject) => {
    const finish = (ok) => {
      pc.removeEventListener("connectionstatechange", check);
      window.clearTimeout(timer);
      ok ? resolve() : reject(new PublishError("ice", `WebRTC did not connect within ${ms / 1000} s.`));
    };
    const check = () => {
      if (pc.connectionState === "connected") finish(true);
      else if (pc.connectionState === "failed" || pc.connectionState === "closed") finish(false);
    };
    const timer = window.setTimeout(() => finish(false), ms);
    pc.addEventListener("connectionstatechange", check);
    check();
  });
}

export class WhipPublisher {
  constructor({ url, iceServers, iceTimeoutMs, bitrateKbps, onLost }) {
    this.url = url;
    this.iceServers = iceServers;
    this.iceTimeoutMs = iceTimeoutMs;
    this.bitrateKbps = bitrateKbps;
    this.onLost = onLost;
    this.pc = null;
    this.location = null;
    this.path = "webrtc";
    this.label = "WebRTC (WHIP)";
  }

  async start(stream) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: "max-bundle" });
    this.pc = pc;
    for (const track of stream.getTracks()) {
      const init = { direction: "sendonly", streams: [stream] };
      if (track.kind === "video") init.sendEncodings = [{ maxBitrate: this.bitrateKbps * 1000 }];
      const transceiver = pc.addTransceiver(track, init);
      if (track.kind === "video") preferH264(transceiver);
    }
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
    this.offer = pc.localDescription.sdp;

    let reply;
    try {
      reply = await fetch(this.url, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: this.offer,
      });
    } catch (error) {
      // SRS 5 also answers a refused key by closing without a reply.
      console.warn("WHIP request failed:", error);
      throw new PublishError("unreachable", MESSAGES.unreachable);
    }
    if (reply.status !== 201) {
      const kind = reply.status === 401 || reply.status === 403 ? "refused" : "unreachable";
      throw new PublishError(kind, kind === "refused" ? MESSAGES.keyRefused : MESSAGES.unreachable);
    }
    const location = reply.headers.get("Location");
    if (location) this.location = new URL(location, this.url).href;
    await pc.setRemoteDescription({ type: "answer", sdp: await reply.text() });
    await connectedWithin(pc, this.iceTimeoutMs);
    let grace = null;
    const lost = () => {
      if (this.pc !== pc) return;
      this.stop(); // DELETE: the server must not keep waiting for this session
      this.onLost?.(new PublishError("lost", "The WebRTC connection was lost.", { retry: true }));
    };
    pc.addEventListener("connectionstatechange", () => {
      window.clearTimeout(grace);
      // "disconnected" often heals by itself (a Wi-Fi blip); "failed" does not.
      if (pc.connectionState === "failed") lost();
      else if (pc.connectionState === "disconnected") grace = window.setTimeout(lost, DISCONNECT_GRACE_MS);
    });
  }

  // Another camera, microphone or screen on the same session: each sender
  // takes the new track of its kind (no renegotiation, no new publish).
  async useMedia(stream) {
    if (!this.pc) return;
    for (const sender of this.pc.getSenders()) {
      const kind = sender.track?.kind;
      const next = kind === "audio" ? stream.getAudioTracks()[0] : kind === "video" ? stream.getVideoTracks()[0] : null;
      if (next) await sender.replaceTrack(next);
    }
  }

  // End the session now (SRS would otherwise wait ~30 s for the RTC timeout).
  async stop() {
    const location = this.location;
    this.location = null;
    this.pc?.close();
    this.pc = null;
    if (location) {
      try {
        await fetch(location, { method: "DELETE" });
      } catch {
        // The server is gone or the session already ended: nothing left to stop.
      }
    }
  }

  // pagehide/beforeunload: a request that outlives the page.
  stopOnUnload() {
    if (this.location) fetch(this.location, { method: "DELETE", keepalive: true });
    this.location = null;
    this.pc?.close();
  }

  async report() {
    if (!this.pc) return null;
    return this.pc.getStats();
  }
}
