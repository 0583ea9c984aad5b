// Health while live: rates computed from successive samples of getStats()
// (WHIP) or of the socket's counters (WebSocket).

export function formatBytes(bytes) {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} kB`;
  return `${bytes} B`;
}

export class HealthMeter {
  constructor() {
    this.previous = null;
  }

  // WebRTC: outgoing video bitrate, frame rate, loss and RTT as the receiver reports them.
  fromStats(report, now = performance.now()) {
    let bytesSent = 0;
    let packetsSent = 0;
    let fps = null;
    let lost = 0;
    let rtt = null;
    report.forEach((entry) => {
      if (entry.type === "outbound-rtp") {
        bytesSent += entry.bytesSent || 0;
        packetsSent += entry.packetsSent || 0;
        if (entry.kind === "video" && entry.framesPerSecond != null) fps = entry.framesPerSecond;
      } else if (entry.type === "remote-inbound-rtp") {
        lost += Math.max(0, entry.packetsLost || 0);
        if (entry.roundTripTime != null) rtt = entry.roundTripTime;
      } else if (entry.type === "candidate-pair" && entry.nominated && entry.currentRoundTripTime != null) {
        rtt = rtt ?? entry.currentRoundTripTime;
      }
    });
    const sample = { now, bytesSent, packetsSent, lost };
    const rates = this.rates(sample);
    return {
      bitrate: rates ? `${Math.round(rates.bitsPerSecond / 1000)} kbit/s` : "…",
      fps: fps != null ? `${Math.round(fps)} fps` : "–",
      loss: rates ? `${rates.lossPercent.toFixed(1)} %` : "…",
      rtt: rtt != null ? `${Math.round(rtt * 1000)} ms` : "–",
      sent: formatBytes(bytesSent),
      queue: "–",
    };
  }

  // WebSocket: what left the page, what is still queued in the browser, and
  // what the studio has forwarded to the media server.
  fromSocket(report, now = performance.now()) {
    const rates = this.rates({ now, bytesSent: report.bytesSent - report.queued, packetsSent: 0, lost: 0 });
    const server = report.server;
    return {
      bitrate: rates ? `${Math.round(rates.bitsPerSecond / 1000)} kbit/s` : "…",
      fps: "–",
      loss: "–",
      rtt: "–",
      sent: formatBytes(report.bytesSent),
      queue: `${formatBytes(report.queued)} in the browser` +
        (server ? `, ${formatBytes(server.buffered)} at the studio` : ""),
    };
  }

  rates(sample) {
    const previous = this.previous;
    this.previous = sample;
    if (!previous || sample.now <= previous.now) return null;
    const seconds = (sample.now - previous.now) / 1000;
    const packets = sample.packetsSent - previous.packetsSent;
    const lost = sample.lost - previous.lost;
    return {
      bitsPerSecond: Math.max(0, (sample.bytesSent - previous.bytesSent) * 8) / seconds,
      lossPercent: packets + lost > 0 ? (100 * Math.max(0, lost)) / (packets + lost) : 0,
    };
  }
}

// The media server's own view, from the status websocket's "health" events.
export function serverView(event) {
  if (event.error) return event.error;
  if (!event.publishing) return "Waiting for video…";
  // null: the first sample of a new publisher, before a rate can be measured.
  const parts = [event.kbps == null ? "measuring bitrate…" : `${event.kbps} kbit/s`];
  if (event.video_codec) parts.push(event.video_codec);
  if (event.width && event.height) parts.push(`${event.width}×${event.height}`);
  if (event.fps) parts.push(`${Math.round(event.fps)} fps`);
  if (event.audio_codec) parts.push(`audio ${event.audio_codec}`);
  return parts.join(" · ");
}
