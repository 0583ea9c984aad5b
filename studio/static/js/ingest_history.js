// The ingest-health chart of the stream and go-live pages: bitrate, frame
// rate and keyframe interval over the last ten minutes, and warnings in
// words. Refreshed every 15 s (the reconciler samples the engine as often).

const REFRESH_MS = 15000;
const WIDTH = 300;
const HEIGHT = 60;
const SVG = "http://www.w3.org/2000/svg";

const section = document.getElementById("ingest-history");

function line(svg, points, window, now, reference) {
  const top = Math.max(reference || 0, ...points.map(([, value]) => value)) * 1.15 || 1;
  const x = (at) => ((at - (now - window)) / window) * WIDTH;
  const y = (value) => HEIGHT - (value / top) * HEIGHT;
  const shapes = [];
  if (reference) {
    const guide = document.createElementNS(SVG, "line");
    guide.setAttribute("x1", 0);
    guide.setAttribute("x2", WIDTH);
    guide.setAttribute("y1", y(reference));
    guide.setAttribute("y2", y(reference));
    guide.setAttribute("class", "reference");
    shapes.push(guide);
  }
  const path = document.createElementNS(SVG, "polyline");
  path.setAttribute("points", points.map(([at, value]) => `${x(at).toFixed(1)},${y(value).toFixed(1)}`).join(" "));
  shapes.push(path);
  svg.replaceChildren(...shapes);
}

function chart(name, points, data, format, reference) {
  const figure = section.querySelector(`[data-chart='${name}']`);
  line(figure.querySelector("svg"), points, data.window, data.now, reference);
  const latest = points.length ? points[points.length - 1][1] : null;
  figure.querySelector("[data-latest]").textContent = latest === null ? "–" : format(latest);
}

function render(data) {
  if (!data.samples.length && !data.segments.length) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const rate = data.samples.filter((s) => s.kbps !== null).map((s) => [s.at, s.kbps]);
  const fps = data.samples.filter((s) => s.fps !== null).map((s) => [s.at, s.fps]);
  const keyframes = data.segments.map((s) => [s.at, s.seconds]);
  chart("kbps", rate, data, (v) => `${Math.round(v).toLocaleString()} kbit/s`);
  chart("fps", fps, data, (v) => `${Math.round(v)} fps`);
  chart("keyframes", keyframes, data, (v) => `${v.toFixed(1)} s`, data.fragment);
  const list = section.querySelector("[data-testid='ingest-warnings']");
  list.replaceChildren(
    ...data.warnings.map((text) => {
      const item = document.createElement("li");
      item.textContent = text;
      return item;
    }),
  );
}

async function refresh() {
  try {
    const reply = await fetch(section.dataset.url, { cache: "no-store", credentials: "same-origin" });
    if (reply.ok) render(await reply.json());
  } catch {
    // Offline for a moment: the next refresh tries again.
  }
}

if (section) {
  refresh();
  window.setInterval(refresh, REFRESH_MS);
}
