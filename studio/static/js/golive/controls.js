// Control while live: mute, camera off, a microphone level meter, and the
// one recording the WebSocket path keeps while its source changes.

const LEVEL_EVERY_MS = 100;

// Mute and camera-off act on the tracks themselves: a disabled audio track
// sends silence and a disabled video track black frames, on either path,
// with no new session.
export function applyTrackState(media, { muted, cameraOff }) {
  if (!media) return;
  media.getAudioTracks().forEach((track) => { track.enabled = !muted; });
  media.getVideoTracks().forEach((track) => { track.enabled = !cameraOff; });
}

// The level of a stream's microphone (0..1, RMS), shown in a <meter>.
export class LevelMeter {
  constructor(meter) {
    this.meter = meter;
    this.context = null;
    this.source = null;
    this.analyser = null;
    this.samples = null;
    this.timer = null;
  }

  watch(media) {
    const track = media?.getAudioTracks()[0];
    this.source?.disconnect();
    this.source = null;
    if (!track) {
      this.meter.value = 0;
      return;
    }
    this.context ||= new AudioContext();
    if (!this.analyser) {
      this.analyser = this.context.createAnalyser();
      this.analyser.fftSize = 1024;
      this.samples = new Float32Array(this.analyser.fftSize);
    }
    this.source = this.context.createMediaStreamSource(new MediaStream([track]));
    this.source.connect(this.analyser);
    this.context.resume?.();
    window.clearInterval(this.timer);
    this.timer = window.setInterval(() => this.sample(track), LEVEL_EVERY_MS);
  }

  sample(track) {
    if (!track.enabled || track.readyState === "ended") {
      this.meter.value = 0;
      return;
    }
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const value of this.samples) sum += value * value;
    // Speech sits around 0.05-0.2 RMS: scale so that it fills most of the bar.
    this.meter.value = Math.min(1, Math.sqrt(sum / this.samples.length) * 4);
  }
}

// What the WebSocket path records: one video track and one audio track
// that stay the same while `use()` swaps what feeds them, so MediaRecorder
// keeps one continuous recording (a new recorder would start a new file in
// the middle of the stream). Video frames are piped from the current camera
// or screen into a generated track (Chromium's insertable streams: frames
// flow as they come, with no timer a background tab would slow down); other
// browsers draw the source on a canvas. Audio goes through a Web Audio node.
export class SwitchableSource {
  constructor(media) {
    this.audio = new AudioContext();
    this.destination = this.audio.createMediaStreamDestination();
    this.audioSource = null;
    this.generation = 0;
    this.video = supportsInsertableStreams() ? new FramePipe() : new CanvasPipe(media);
    this.output = new MediaStream([this.video.track, this.destination.stream.getAudioTracks()[0]]);
    this.use(media);
  }

  use(media) {
    this.video.use(media);
    this.audioSource?.disconnect();
    this.audioSource = null;
    const track = media.getAudioTracks()[0];
    if (track) {
      this.audioSource = this.audio.createMediaStreamSource(new MediaStream([track]));
      this.audioSource.connect(this.destination);
    }
  }

  stop() {
    this.video.stop();
    this.output.getTracks().forEach((track) => track.stop());
    this.audio.close();
  }
}

function supportsInsertableStreams() {
  return typeof MediaStreamTrackProcessor === "function" && typeof MediaStreamTrackGenerator === "function";
}

class FramePipe {
  constructor() {
    this.track = new MediaStreamTrackGenerator({ kind: "video" });
    this.writer = this.track.writable.getWriter();
    this.reader = null;
  }

  use(media) {
    const source = media.getVideoTracks()[0];
    this.reader?.cancel().catch(() => {});
    this.reader = null;
    if (!source) return;
    const reader = new MediaStreamTrackProcessor({ track: source }).readable.getReader();
    this.reader = reader;
    (async () => {
      for (;;) {
        const { value: frame, done } = await reader.read();
        if (done) return;
        if (this.reader !== reader) {
          frame.close();
          return;
        }
        await this.writer.write(frame); // the writer closes the frame
      }
    })().catch(() => {});
  }

  stop() {
    this.reader?.cancel().catch(() => {});
    this.reader = null;
    this.writer.close().catch(() => {});
  }
}

class CanvasPipe {
  constructor(media) {
    const settings = media.getVideoTracks()[0]?.getSettings() || {};
    this.canvas = document.createElement("canvas");
    this.canvas.width = settings.width || 1280;
    this.canvas.height = settings.height || 720;
    this.draw2d = this.canvas.getContext("2d");
    this.video = document.createElement("video");
    this.video.muted = true;
    this.video.playsInline = true;
    const frameRate = Math.round(settings.frameRate || 30);
    this.track = this.canvas.captureStream(frameRate).getVideoTracks()[0];
    this.timer = window.setInterval(() => this.draw(), 1000 / frameRate);
  }

  use(media) {
    this.media = media;
    this.video.srcObject = media;
    this.video.play().catch(() => {});
  }

  draw() {
    const { canvas, draw2d, video } = this;
    draw2d.fillStyle = "#000";
    draw2d.fillRect(0, 0, canvas.width, canvas.height);
    if (!this.media?.getVideoTracks()[0]?.enabled || !video.videoWidth) return;
    // Letterbox: a screen of another shape keeps its proportions.
    const scale = Math.min(canvas.width / video.videoWidth, canvas.height / video.videoHeight);
    const width = video.videoWidth * scale;
    const height = video.videoHeight * scale;
    draw2d.drawImage(video, (canvas.width - width) / 2, (canvas.height - height) / 2, width, height);
  }

  stop() {
    window.clearInterval(this.timer);
    this.video.srcObject = null;
  }
}
