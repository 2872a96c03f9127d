// ganforge serve: the page. Plain JS, no external assets; talks to the /api endpoints.
"use strict";
const $ = (id) => document.getElementById(id);
let models = [];
let limits = {};
const urls = {};  // object URLs we made, revoked when replaced
let lastSample = null;  // the request body of the grid on screen: Download NPZ asks for the same images
const working = {};  // requests running per "working..." note
const TOKEN_HINT = "enter the server's token in the Token box";
// which choice of model a result is for: a request sent before the model was changed answers for
// the earlier one, and its result (or error) is dropped, not shown under the model chosen since
let selection = 0;

function headers(json) {
  const h = {};
  const token = $("token").value || sessionStorage.getItem("ganforge-token") || "";
  if (token) h["Authorization"] = "Bearer " + token;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function call(path, options) {
  $("error").textContent = "";
  const response = await fetch(path, options);
  if (response.status === 401) {  // the server's message names a header, which a page user does not write
    unauthorized();
    throw Object.assign(new Error(`missing or wrong token: ${TOKEN_HINT}`), { unauthorized: true });
  }
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

// an image or audio element (and its download link) showing a blob
function show(elementId, linkId, blob) {
  if (urls[elementId]) URL.revokeObjectURL(urls[elementId]);
  urls[elementId] = URL.createObjectURL(blob);
  const element = $(elementId);
  element.src = urls[elementId];
  element.hidden = false;
  if (linkId) { $(linkId).href = urls[elementId]; $(linkId).hidden = false; }
}

// hide results (images, players, their download links), dropping the blobs they showed
function clear(...ids) {
  for (const id of ids) {
    const element = $(id);
    element.hidden = true;
    if (urls[id]) {
      URL.revokeObjectURL(urls[id]);
      delete urls[id];
      element.removeAttribute(element.tagName === "A" ? "href" : "src");
      if (element.tagName === "AUDIO") element.load();  // let go of the revoked recording
    }
  }
}

// the error, shown after ``placeId`` (the row of the panel whose request failed; by default the model
// picker at the top), scrolled into view: at the end of the page it went unseen below the fold
function fail(err, placeId = "token-box") {
  const error = $("error");
  $(err.unauthorized ? "token-box" : placeId).after(error);  // a 401 hid the panels
  error.textContent = err.message;
  error.scrollIntoView({ block: "nearest" });
}

// ``task`` with ``buttonIds`` disabled and "working..." in ``noteId`` until it ends (a second click
// had queued another job, with nothing on the page saying the first was running)
async function busy(buttonIds, noteId, task) {
  if (buttonIds.some((id) => $(id).disabled)) return;
  for (const id of buttonIds) $(id).disabled = true;
  working[noteId] = (working[noteId] || 0) + 1;
  $(noteId).textContent = "working...";
  try {
    await task();
  } finally {
    for (const id of buttonIds) $(id).disabled = false;
    working[noteId] -= 1;
    if (!working[noteId] && $(noteId).textContent === "working...") $(noteId).textContent = "";
  }
}

// a 401: the models and panels of an earlier token go (every call with this one fails)
function unauthorized() {
  selection += 1;
  models = [];
  lastSample = null;
  $("model").innerHTML = "";
  $("model-info").textContent = "";
  $("status").textContent = "token required";
  for (const id of ["sample-panel", "image-panel", "audio-panel"]) $(id).hidden = true;
  clear("sample-image", "walk-image", "before", "after", "audio-before", "audio-after", "download-sample",
        "download-walk", "download-image", "download-audio", "download-npz", "walk-shown");
  $("audio-timing").textContent = "";
}

function current() { return models.find((m) => m.name === $("model").value); }

function selectModel() {
  const m = current();
  if (!m) return;
  selection += 1;
  const caps = new Set(m.capabilities);
  const shape = m.audio ? `${m.audio.rate} Hz audio, ${m.audio.n_mels} mels`
    : m.points ? `${m.points}-D points (a scatter plot)`
    : m.resolution == null && m.scale ? `images of any size upscaled x${m.scale}, ${m.channels} channel(s)`
    : `${m.resolution}px, ${m.channels} channel(s)`;
  const said = {sample_labels: "sample by class"};  // the API's capability names, as a person reads them
  const can = m.capabilities.map((c) => said[c] || c).join(", ");
  $("model-info").textContent = `${m.family}, ${shape}, step ${m.step}; can: ${can}`;
  $("sample-panel").hidden = !caps.has("sample");
  $("class-box").hidden = !caps.has("sample_labels");
  $("trunc-box").hidden = !caps.has("truncation");
  if (m.truncation) {  // the family's range; unchecked (the default): no truncation is sent
    const t = $("truncation");
    t.min = m.truncation.min; t.max = m.truncation.max; t.step = m.truncation.step; t.value = m.truncation.default;
    $("trunc-value").textContent = t.value;
  }
  $("truncate").checked = false;  // as the slider: the new model starts with no truncation sent
  $("walk-box").hidden = !caps.has("interpolate");
  $("class").innerHTML = "";
  if (caps.has("sample_labels") && m.classes) {
    $("class").append(new Option("one per row", ""));
    m.classes.forEach((c, i) => $("class").append(new Option(`${i}: ${c}`, String(i))));
  }
  walkClass();
  const imageCap = caps.has("translate") ? "translate" : (caps.has("upscale") ? "upscale" : null);
  $("image-panel").hidden = !imageCap;
  $("image-panel").dataset.capability = imageCap || "";
  $("image-title").textContent = imageCap === "upscale" ? `Upscale (x${m.scale})` : "Translate";
  const directions = imageCap ? (m.directions || []).map((d) => d.direction) : [];
  $("direction-box").hidden = directions.length < 2;
  $("direction").innerHTML = "";
  directions.forEach((d) => $("direction").append(new Option(d, d)));
  const audioCap = caps.has("vocode") ? "vocode" : (caps.has("convert") ? "convert" : null);
  $("audio-panel").hidden = !audioCap;
  $("audio-panel").dataset.capability = audioCap || "";
  $("audio-title").textContent = audioCap === "convert" ? "Convert the voice" : "Vocode (analyze, then voice again)";
  $("voice-box").hidden = audioCap !== "convert";
  $("vocoder-box").hidden = audioCap !== "convert";
  $("voice-direction").innerHTML = "";
  $("vocoder").innerHTML = "";
  if (audioCap === "convert") {
    m.directions.forEach((d) => $("voice-direction").append(new Option(`${d.from} -> ${d.to}`, d.direction)));
    (m.vocoders || []).forEach((v) => $("vocoder").append(new Option(`vocoder ${v}`, v)));
    $("vocoder").append(new Option("Griffin-Lim", ""));
  }
  $("audio-timing").textContent = "";
  // nothing of the last model stays: its results, its uploads (and their Before), its error
  clear("sample-image", "walk-image", "before", "after", "audio-before", "audio-after", "download-sample",
        "download-walk", "download-image", "download-audio", "download-npz", "walk-shown");
  $("upload").value = "";
  $("audio-upload").value = "";
  lastSample = null;
  $("token-box").after($("error"));
  $("error").textContent = "";
}

// the class a walk of a conditional model uses, as ganforge interpolate says it: "one per row" is
// for samples, and a walk without a class had silently walked the first
function walkClass() {
  const m = current();
  const v = $("class").value;
  $("walk-class").textContent = !m || $("class-box").hidden || !m.classes ? ""
    : v === "" ? `walks class ${m.classes[0]} (the default; choose another with Class)` : `walks class ${m.classes[Number(v)]}`;
}

// a seed as typed, exact up to 2^63 - 1 (a JavaScript number is exact only up to 2^53)
function seedValue(id) {
  const text = $(id).value.trim();
  if (!/^\d+$/.test(text) || BigInt(text) >= 2n ** 63n) throw new Error(`the seed must be a whole number from 0 to ${2n ** 63n - 1n}`);
  return BigInt(text);
}

// JSON with the BigInt seeds written as plain integers
function toJson(body) {
  return JSON.stringify(body, (k, v) => (typeof v === "bigint" ? `@bigint:${v}` : v)).replace(/"@bigint:(\d+)"/g, "$1");
}

function sampleBody(format) {
  const m = current();
  const body = { model: m.name, seed: seedValue("seed"), n: Number($("n").value), format };
  if (!$("class-box").hidden && $("class").value !== "") body["class"] = Number($("class").value);
  if (!$("trunc-box").hidden && $("truncate").checked) body.truncation = Number($("truncation").value);
  return body;
}

async function generate() {
  const mine = selection;
  try {
    const body = sampleBody("png");
    const r = await call("/api/sample", { method: "POST", headers: headers(true), body: toJson(body) });
    const blob = await r.blob();
    if (mine !== selection) return;
    show("sample-image", "download-sample", blob);
    lastSample = body;
    $("download-npz").hidden = false;
  } catch (err) {  // no earlier grid beside the error
    if (mine !== selection) return;
    lastSample = null;
    clear("sample-image", "download-sample", "download-npz");
    fail(err, "sample-form");
  }
}

// the grid on screen as NPZ: the last Generate's request, not the fields as edited since; a failure
// leaves the grid where it is
async function downloadNpz() {
  if (!lastSample) return;
  try {
    const r = await call("/api/sample", { method: "POST", headers: headers(true), body: toJson({ ...lastSample, format: "npz" }) });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await r.blob());
    a.download = "samples.npz";
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  } catch (err) { fail(err, "sample-form"); }
}

async function walk() {
  const m = current();
  const mine = selection;
  try {
    const body = { model: m.name, seed_a: seedValue("seed-a"), seed_b: seedValue("seed-b"), steps: Number($("steps").value) };
    if (!$("class-box").hidden && $("class").value !== "") body["class"] = Number($("class").value);
    if (!$("trunc-box").hidden && $("truncate").checked) body.truncation = Number($("truncation").value);
    // what the strip shows, said under it: the class and seeds next to the form are those of the
    // next walk, and had changed under a strip of another class before it was drawn again
    const cls = !$("class-box").hidden && m.classes ? `, class ${m.classes[body["class"] ?? 0]}` : "";
    const trunc = body.truncation !== undefined ? `, truncation ${body.truncation}` : "";
    const shown = `Shown: seed ${body.seed_a} to seed ${body.seed_b} in ${body.steps} steps${cls}${trunc}`;
    const r = await call("/api/interpolate", { method: "POST", headers: headers(true), body: toJson(body) });
    const blob = await r.blob();
    if (mine === selection) {
      show("walk-image", "download-walk", blob);
      $("walk-shown").textContent = shown;
      $("walk-shown").hidden = false;
    }
  } catch (err) { if (mine === selection) { clear("walk-image", "download-walk", "walk-shown"); fail(err, "walk-form"); } }
}

// the upload in "Before"; nothing there when there is none, or when the browser cannot show it
// (not an image or recording: Run sends it anyway and shows the server's reason)
function preview(inputId, elementId) {
  const file = $(inputId).files[0];
  if (!file) { clear(elementId); return; }
  show(elementId, null, file);
  const element = $(elementId);
  const url = urls[elementId];
  element.onerror = () => { if (urls[elementId] === url) clear(elementId); };
}

// the form of an upload to the current model, or null (with the reason shown) when there is none to send
function uploadForm(inputId, what) {
  const file = $(inputId).files[0];
  const place = inputId === "upload" ? "image-row" : "audio-row";
  if (!file) { fail(new Error(`choose ${what} to upload first`), place); return null; }
  if (limits.max_upload_mb && file.size > limits.max_upload_mb * 1024 * 1024) {
    fail(new Error(`the file is over the server's limit of ${limits.max_upload_mb} MiB`), place); return null;
  }
  const form = new FormData();
  form.append("file", file);
  form.append("model", current().name);
  return form;
}

async function runImage() {
  clear("after", "download-image");  // no earlier result beside a new input
  const form = uploadForm("upload", "an image");
  if (!form) return;
  const capability = $("image-panel").dataset.capability;
  if (capability === "translate" && $("direction").value) form.append("direction", $("direction").value);
  const mine = selection;
  try {
    const r = await call("/api/" + capability, { method: "POST", headers: headers(false), body: form });
    const blob = await r.blob();
    if (mine === selection) show("after", "download-image", blob);
  } catch (err) { if (mine === selection) fail(err, "image-row"); }
}

async function runAudio() {
  clear("audio-after", "download-audio");
  const form = uploadForm("audio-upload", "a recording");
  if (!form) return;
  const capability = $("audio-panel").dataset.capability;
  if (capability === "convert") {
    form.append("direction", $("voice-direction").value);
    if ($("vocoder").value) form.append("vocoder", $("vocoder").value);
  }
  $("audio-timing").textContent = "working...";
  const mine = selection;
  try {
    const start = performance.now();
    const r = await call("/api/" + capability, { method: "POST", headers: headers(false), body: form });
    const blob = await r.blob();
    if (mine !== selection) return;
    const seconds = (performance.now() - start) / 1000;
    const by = r.headers.get("X-Ganforge-Waveform");
    const clipped = (r.headers.get("X-Ganforge-Clipped") || "").split(" of ");
    show("audio-after", "download-audio", blob);
    $("audio-after").onloadedmetadata = () => {
      const d = $("audio-after").duration;
      $("audio-timing").textContent = `${d.toFixed(2)} s of audio in ${seconds.toFixed(2)} s (request and response included` +
        `, ${(d / seconds).toFixed(1)}x real time)` + (by ? `; waveform by ${by}` : "") +
        (Number(clipped[0]) > 0 ? `; ${clipped[0]} of ${clipped[1]} samples at full scale, clipped` +
          ` (a quieter recording clips less)` : "");
    };
  } catch (err) { if (mine === selection) { $("audio-timing").textContent = ""; fail(err, "audio-row"); } }
}

async function load() {
  // a reload keeps the session's token (headers() sends it): the box shows that there is one
  if (!$("token").value) $("token").value = sessionStorage.getItem("ganforge-token") || "";
  try {
    const r = await call("/api/models", { headers: headers(false) });
    const data = await r.json();
    models = data.models;
    limits = data.limits || {};
    $("model").innerHTML = "";
    models.forEach((m) => $("model").append(new Option(`${m.name} (${m.family})`, m.name)));
    $("n").max = limits.max_n || 64;
    $("steps").max = limits.max_n || 64;
    // defaults within the server's --max-n (16 images had failed under --max-n 4)
    for (const id of ["n", "steps"]) $(id).value = Math.min(Number($(id).value), Number($(id).max));
    $("status").textContent = `${models.length} model(s)`;
    selectModel();
  } catch (err) {
    $("status").textContent = err.unauthorized ? "token required" : "could not list the models";
    fail(err);
    if (err.unauthorized) $("token").focus();
  }
}

$("model").addEventListener("change", selectModel);
$("class").addEventListener("change", walkClass);
const sampling = ["generate", "random-seed"];
$("random-seed").addEventListener("click", () => busy(sampling, "sample-busy", () => {
  $("seed").value = Math.floor(Math.random() * 2 ** 31);
  return generate();
}));
// Generate and Walk submit their forms: their click, or Enter in one of the form's fields
$("sample-form").addEventListener("submit", (event) => { event.preventDefault(); busy(sampling, "sample-busy", generate); });
$("download-npz").addEventListener("click", () => busy(["download-npz"], "sample-busy", downloadNpz));
$("walk-form").addEventListener("submit", (event) => { event.preventDefault(); busy(["walk"], "walk-busy", walk); });
$("truncation").addEventListener("input", () => { $("trunc-value").textContent = $("truncation").value; });
$("upload").addEventListener("change", () => preview("upload", "before"));
$("run-image").addEventListener("click", () => busy(["run-image"], "image-busy", runImage));
$("audio-upload").addEventListener("change", () => preview("audio-upload", "audio-before"));
$("run-audio").addEventListener("click", () => busy(["run-audio"], "audio-timing", runAudio));
$("token").addEventListener("change", () => { sessionStorage.setItem("ganforge-token", $("token").value); load(); });
load();
