// Cameras, microphones and screens: device lists and the MediaStream that
// is previewed and sent.

const HEIGHTS = { 720: { width: 1280, height: 720 }, 1080: { width: 1920, height: 1080 } };

export async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  return {
    cameras: devices.filter((d) => d.kind === "videoinput"),
    microphones: devices.filter((d) => d.kind === "audioinput"),
  };
}

function videoConstraints(resolution, deviceId) {
  const size = HEIGHTS[resolution] || HEIGHTS[720];
  const constraints = { width: { ideal: size.width }, height: { ideal: size.height }, frameRate: { ideal: 30 } };
  if (deviceId) constraints.deviceId = { exact: deviceId };
  return constraints;
}

function audioConstraints(deviceId) {
  const constraints = { echoCancellation: true, noiseSuppression: true };
  if (deviceId) constraints.deviceId = { exact: deviceId };
  return constraints;
}

// Camera + microphone.
export async function openCamera({ cameraId, microphoneId, resolution }) {
  return navigator.mediaDevices.getUserMedia({
    video: videoConstraints(resolution, cameraId),
    audio: audioConstraints(microphoneId),
  });
}

// Screen (or window/tab), with the microphone and/or the shared audio. Two
// audio sources are mixed into one track: WHIP and the recorder send one.
export async function openScreen({ microphoneId, resolution, withMicrophone, withScreenAudio }) {
  const size = HEIGHTS[resolution] || HEIGHTS[720];
  const screen = await navigator.mediaDevices.getDisplayMedia({
    video: { width: { max: size.width }, height: { max: size.height }, frameRate: { ideal: 30 } },
    audio: withScreenAudio,
  });
  const sources = screen.getAudioTracks();
  let microphone = null;
  if (withMicrophone) {
    try {
      microphone = await navigator.mediaDevices.getUserMedia({ audio: audioConstraints(microphoneId) });
      sources.push(...microphone.getAudioTracks());
    } catch (error) {
      screen.getTracks().forEach((track) => track.stop());
      throw error;
    }
  }
  const tracks = [...screen.getVideoTracks()];
  if (sources.length === 1) tracks.push(sources[0]);
  if (sources.length > 1) tracks.push(mixAudio(sources));
  const stream = new MediaStream(tracks);
  stream.extraTracks = [...screen.getAudioTracks(), ...(microphone ? microphone.getAudioTracks() : [])];
  return stream;
}

function mixAudio(tracks) {
  const context = new AudioContext();
  const destination = context.createMediaStreamDestination();
  for (const track of tracks) {
    context.createMediaStreamSource(new MediaStream([track])).connect(destination);
  }
  return destination.stream.getAudioTracks()[0];
}

export function stopStream(stream) {
  if (!stream) return;
  stream.getTracks().forEach((track) => track.stop());
  (stream.extraTracks || []).forEach((track) => track.stop());
}
