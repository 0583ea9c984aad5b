// Publish over a WebSocket: MediaRecorder (H.264 + Opus) chunks go to
// /ws/ingest/<id>, where the server relays them into the media server.
import { onJsonMessage, socketUrl } from "../live.js";
import { SwitchableSource } from "./controls.js";
import { MESSAGES, PublishError } from "./messages.js";

const TIMESLICE_MS = 500;
const MAX_QUEUED_BYTES = 16 * 1024 * 1024; // ~20 s of 6 Mbit/s waiting in the browser
const CONTAINERS = [
  ["video/x-matroska;codecs=avc1,opus", "matroska"],
  ["video/mp4;codecs=avc1,opus", "mp4"],
  ["video/mp4;codecs=avc1,mp4a.40.2", "mp4"], // Safari: AAC instead of Opus
];
// Server close codes (see studio/live/ingest.py) after which retrying cannot help.
const FINAL_CODES = new Set([4400, 4403, 4409]);

export function recorderFormat() {
  if (typeof MediaRecorder === "undefined") return null;
  const found = CONTAINERS.find(([mime]) => MediaRecorder.isTypeSupported(mime));
  return found ? { mimeType: found[0], container: found[1] } : null;
}

function closeError(event) {
  if (event.code === 4403) return new PublishError("refused", event.reason || MESSAGES.keyRefused);
  if (event.code === 4409) return new PublishError("busy", event.reason);
  if (event.code === 4502) return new PublishError("unreachable", MESSAGES.unreachable, { retry: true });
  if (FINAL_CODES.has(event.code)) return new PublishError("server", event.reason);
  const why = event.reason ? ` (${event.reason})` : "";
  return new PublishError("lost", `The connection to the studio was lost${why}.`, { retry: true });
}

export class SocketPublisher {
  constructor({ path, bitrateKbps, onLost }) {
    this.path = "websocket";
    this.label = "WebSocket";
    this.ingestPath = path;
    this.bitrateKbps = bitrateKbps;
    this.onLost = onLost;
    this.socket = null;
    this.recorder = null;
    this.bytesSent = 0;
    this.server = null; // the relay's last stats message
    this.stopping = false;
  }

  start(stream) {
    const format = recorderFormat();
    if (!format) return Promise.reject(new PublishError("unsupported", MESSAGES.noRecorder));
    const url = socketUrl(`${this.ingestPath}?container=${format.container}`);
    return new Promise((resolve, reject) => {
      let ready = false;
      const socket = new WebSocket(url);
      this.socket = socket;
      onJsonMessage(socket, (event) => {
        if (event.type === "ready" && !ready) {
          ready = true;
          this.source = new SwitchableSource(stream);
          this.record(this.source.output, format);
          resolve();
        } else if (event.type === "stats") {
          this.server = event;
        }
      });
      socket.addEventListener("close", (event) => {
        this.recorder?.state !== "inactive" && this.recorder?.stop();
        if (!ready) {
          // A refused handshake (logged out, not the owner) has no close reason.
          reject(event.code === 1006 ? new PublishError("lost", MESSAGES.studioUnreachable, { retry: true }) : closeError(event));
        } else if (!this.stopping) {
          this.onLost?.(closeError(event));
        }
      });
    });
  }

  record(stream, format) {
    const recorder = new MediaRecorder(stream, {
      mimeType: format.mimeType,
      videoBitsPerSecond: this.bitrateKbps * 1000,
      audioBitsPerSecond: 128000,
      // Chromium: a key frame every 2 s, so HLS can cut 2 s segments.
      videoKeyFrameIntervalDuration: 2000,
    });
    recorder.addEventListener("dataavailable", (event) => {
      if (event.data.size === 0 || this.socket?.readyState !== WebSocket.OPEN) return;
      if (this.socket.bufferedAmount > MAX_QUEUED_BYTES) {
        // The uplink cannot carry this bitrate: queueing more only delays everything.
        this.stopping = true;
        this.recorder.stop();
        this.socket.close(1000, "Upload too slow");
        this.onLost?.(new PublishError("slow", MESSAGES.uploadTooSlow));
        return;
      }
      this.socket.send(event.data);
      this.bytesSent += event.data.size;
    });
    recorder.addEventListener("stop", () => {
      this.source?.stop();
      // The last chunk has been sent (dataavailable comes first): say goodbye.
      if (this.stopping && this.socket?.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ type: "stop" }));
        this.socket.close(1000, "Stopped");
      }
    });
    recorder.start(TIMESLICE_MS);
    this.recorder = recorder;
  }

  async stop() {
    this.stopping = true;
    if (this.recorder && this.recorder.state !== "inactive") {
      this.recorder.stop();
    } else {
      this.socket?.close(1000, "Stopped");
    }
  }

  // Another camera, microphone or screen, in the same recording.
  async useMedia(stream) {
    this.source?.use(stream);
  }

  stopOnUnload() {
    this.stopping = true;
    this.socket?.close(1000, "Page closed");
  }

  report() {
    return {
      bytesSent: this.bytesSent,
      queued: this.socket ? this.socket.bufferedAmount : 0,
      server: this.server,
    };
  }
}
