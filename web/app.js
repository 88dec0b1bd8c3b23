// The flowerbot page: camera or photo -> centre square -> the exported model -> top-5 species.
// TensorFlow.js and the model run in a Web Worker (worker.js), started once the page has
// painted: the main thread decodes and resizes photos and frames, shows answers and decides the
// verdict, and no TF.js work blocks it.

import { decodeLikePillow, resizeLikePillow } from "./pillow.js";
import { sendQueue } from "./sendqueue.js";
import { groupOf, groupPieces } from "./taxonomy.js";
import { buzz, startTelegram, userLanguage } from "./telegram.js";

const MODEL_DIR = "model/";
const TOP_K = 5;

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const video = $("camera");
const photo = $("photo");
const freezeButton = $("freeze");
const fileInput = $("file");
const statusLine = $("status");
const cameraNote = $("camera-note");
const verdict = $("verdict");
const groupLine = $("group");
const speciesList = $("species");
const speed = $("speed");
const sentLine = $("sent");

// What the viewer shows: "loading", "live" camera, "frozen" camera frame, "photo", or "error".
let mode = "loading";
// Bumped on every change of what is shown, so a prediction that finishes late is dropped.
let generation = 0;
// The Web Worker that runs the model (worker.js), and its unanswered requests by id.
let worker;
const requests = new Map();
let lastRequest = 0;
let classNames;
// The export's taxonomy (web/export.py's page_taxonomy: the group rule, each class's scientific
// name, genus and family) and its words in the answers' language (the bot's group sentences,
// the Wikipedia links); null for an export from before it: no group, names without links.
let taxonomy = null;
let taxonomyWords = null;
// The answers' language ("en", or one VERDICT_TEXT and the export's names have: languageFor).
let language = "en";
let inputSize;
// The verdict's rules as the model folder exports them ([{verdict, score, below}], in the order
// they apply; model_training/abstention.py): the page decides as the bot and the CLI do. The
// feature-space scores ("flower_score", "species_score") come from the backbone features the
// graph also returns and the arrays of honesty.bin (`honesty`); a rule on a score the export
// does not give (an export from before honesty.bin) is skipped.
let verdictRules;
// score name -> function of the mean features (Float32Array) and the top-1 confidence -> number
// (featureScores).
let honesty = {};
let frame;
let cameraOn = false;
let predictions = 0;
// The model's serving views (full, mirrored, 80 % centre crop, mirrored): a chosen photo or a
// frozen frame is answered with all of them, as Python answers; the live camera with one a frame.
let allViews;
// ?live=all runs every view on every live frame (the slower mode before cycling; for the
// benchmark); by default live frames cycle through the views (sendLiveFrame).
const LIVE_ALL_VIEWS = params.get("live") === "all";
// The camera counts as moved when the model's 224 x 224 input changes by more than this mean
// absolute difference (0..255) between two frames; then the average over frames starts again.
// A still camera's noise stays far below it; not tuned on real phone footage.
const MOVED_ABOVE = 8;
const live = { frames: 0, recent: [], previous: null };
// The last live frames' times (ms): the model's in the worker, and the resize on this thread.
const liveTimes = { model: [], resize: [] };
// Settled once the first model has loaded (or failed to): an update waits for it.
const firstLoad = Promise.withResolvers();
// Inside Telegram (telegram.js): Telegram.WebApp, and the queue of photos sent to the bot.
let telegram = null;
let queue = null;
// The frozen frame or chosen photo on screen, as it would be sent to the bot: { photo (a Blob, or
// a promise of one), name, answer (the page's answer, once shown) }; null in the live view.
let sendable = null;

function setMode(next) {
  mode = next;
  generation += 1;
  document.body.dataset.mode = next;
  video.hidden = next === "photo";
  photo.hidden = next !== "photo";
  showFreezeButton();
  showTelegramButtons();
}

// Inside Telegram: "Send to the bot" once a frozen frame's or a photo's answer is shown; the back
// button returns to the live camera.
function showTelegramButtons() {
  if (!telegram) return;
  const still = mode === "frozen" || mode === "photo";
  if (still && sendable?.answer) telegram.MainButton.show();
  else telegram.MainButton.hide();
  if (mode === "frozen" || (mode === "photo" && cameraOn)) telegram.BackButton.show();
  else telegram.BackButton.hide();
}

function showFreezeButton() {
  freezeButton.hidden = !cameraOn;
  freezeButton.setAttribute("aria-pressed", String(mode === "frozen"));
  freezeButton.textContent = mode === "live" ? "Freeze" : "Back to camera";
}

// The next animation frame, or 200 ms where a hidden tab gets no frames: the page has painted.
const afterFirstPaint = () =>
  Promise.race([
    new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve))),
    new Promise((resolve) => setTimeout(resolve, 200)),
  ]);

// Starts the model's worker: it loads TF.js itself (importScripts of the same files, precached
// by the service worker), so nothing of TF.js runs on this thread.
function startWorker() {
  worker = new Worker("worker.js");
  worker.onmessage = ({ data }) => {
    const request = requests.get(data.id);
    requests.delete(data.id);
    if (data.error) request.reject(new Error(data.error));
    else request.resolve(data.result);
  };
  // TF.js did not load (or the worker crashed): every waiting request fails with it.
  worker.onerror = (event) => {
    event.preventDefault();
    const error = new Error(event.message || "the model's worker did not start");
    for (const request of requests.values()) request.reject(error);
    requests.clear();
  };
}

// One request to the worker; it answers requests in the order they were sent.
function ask(type, message, transfer = []) {
  lastRequest += 1;
  const answer = Promise.withResolvers();
  requests.set(lastRequest, answer);
  worker.postMessage({ ...message, id: lastRequest, type }, transfer);
  return answer.promise;
}

async function fetchJson(name) {
  const response = await fetch(MODEL_DIR + name);
  if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
  return response.json();
}

// Loads the model folder: the page reads the class names and the metadata (the verdict's rules),
// the worker the graph model and the arrays behind the feature-space scores. A new model (an
// update) replaces the old one in the worker after the predictions asked before it.
async function loadModel() {
  const [names, metadata] = await Promise.all([
    fetchJson("classes.json"),
    fetchJson("metadata.json"),
  ]);
  const loaded = await ask("load", {
    modelUrl: new URL(MODEL_DIR + "model.json", document.baseURI).href,
    // ?backend=webgl (or wasm, cpu) picks one, ?threads=N the WASM backend's threads: for the
    // benchmark.
    backend: params.get("backend"),
    threads: Number(params.get("threads")) || 0,
    size: metadata.input_size,
    classes: names.length,
    honesty: metadata.honesty ?? null,
  });
  document.body.dataset.backend = loaded.backend;
  document.body.dataset.threads = loaded.threads;
  const translated = metadata.names ?? {};
  // Inside Telegram the signed user's language, as the bot chooses (Spanish or English).
  const languages = telegram
    ? [userLanguage(telegram) ?? "en"]
    : (navigator.languages ?? [navigator.language]);
  language = languageFor(languages, translated);
  classNames = language === "en" ? names : translated[language];
  verdict.lang = speciesList.lang = groupLine.lang = language;
  taxonomy = metadata.taxonomy ?? null;
  taxonomyWords = taxonomy?.languages[language] ?? null;
  inputSize = metadata.input_size;
  allViews = metadata.serve_views.map((_, position) => position);
  resetLive();
  document.body.dataset.modelVersion = metadata.version;
  verdictRules = metadata.verdict_rules;
  honesty = featureScores(loaded.honesty, metadata.honesty);
  const unsure = verdictRules.find((rule) => rule.score === "confidence");
  $("threshold").textContent = percent(unsure.below);
  frame = document.createElement("canvas");
  $("model-info").textContent =
    `Model ${metadata.version}: ${names.length} flower species of the Oxford 102 Flowers data set` +
    ` (${metadata.export.quantize === "none" ? "full precision" : metadata.export.quantize + " weights"}).`;
}

// The rules' feature-space scores, as model_training/honesty.py computes them from a photo's
// features (mean over its views), with the arrays web/export.py writes to honesty.bin (the
// worker reads them from the graph model's weights, a weight group no graph node reads). Plain
// JavaScript in float64: two 1280 x 256 products an answer, 0.9 to 1.4 ms here (docs/web.md).
// `described` (metadata.honesty) says which scores and how; an older export's species score
// has no root_normalised and confidence_weight: the raw features and the distance alone.
function featureScores(arrays, described) {
  if (!described) return {};
  const scores = {};
  if (described.flower_score === "logistic") {
    // Log-odds of the flower/non-flower logistic regression on the raw mean features.
    const [weights, bias] = [arrays.flower_weights, arrays.flower_bias[0]];
    scores.flower_score = (x) => dot(x, weights, 0) + bias;
  } else if (described.flower_score === "cosine_to_centroids") {
    // Older model folders: cosine to the nearest (unit-length) species centroid.
    const centroids = arrays.centroids;
    scores.flower_score = (x) => {
      const norm = Math.max(Math.sqrt(dot(x, x, 0)), 1e-12);
      let best = -Infinity;
      for (let at = 0; at < centroids.length; at += x.length) {
        best = Math.max(best, dot(x, centroids, at) / norm);
      }
      return best;
    };
  }
  if (described.species_score === "relative_mahalanobis") {
    // Squared whitened distance to all flowers as one Gaussian minus to the nearest species.
    const [whitening, means] = [arrays.whitening, arrays.species_means];
    const [background, backgroundMean] = [arrays.background_whitening, arrays.background_mean];
    const weight = described.confidence_weight ?? 0;
    const rows = described.root_normalised ? rootNormalised : (x) => x;
    scores.species_score = (features, confidence) => {
      const x = rows(features);
      const z = times(x, whitening);
      let nearest = Infinity;
      for (let at = 0; at < means.length; at += z.length) {
        nearest = Math.min(nearest, squaredDistance(z, means, at));
      }
      const relative = squaredDistance(times(x, background), backgroundMean, 0) - nearest;
      return relative + weight * Math.log(Math.max(confidence, 1e-12));
    };
  }
  return scores;
}

// The square root of each feature, then unit length (honesty.py's root_normalised).
function rootNormalised(x) {
  const roots = Float64Array.from(x, (v) => Math.sqrt(Math.max(v, 0)));
  const norm = Math.max(Math.sqrt(dot(roots, roots, 0)), 1e-12);
  return roots.map((v) => v / norm);
}

// x · matrix[at : at + x.length]
function dot(x, matrix, at) {
  let sum = 0;
  for (let i = 0; i < x.length; i += 1) sum += x[i] * matrix[at + i];
  return sum;
}

// The row vector x times a row-major (x.length, k) matrix.
function times(x, matrix) {
  const k = matrix.length / x.length;
  const out = new Float64Array(k);
  for (let i = 0; i < x.length; i += 1) {
    const xi = x[i];
    if (xi === 0) continue; // pooled ReLU features: many are 0
    const row = i * k;
    for (let j = 0; j < k; j += 1) out[j] += xi * matrix[row + j];
  }
  return out;
}

// ‖z − matrix[at : at + z.length]‖²
function squaredDistance(z, matrix, at) {
  let sum = 0;
  for (let j = 0; j < z.length; j += 1) sum += (z[j] - matrix[at + j]) ** 2;
  return sum;
}

// The language of the answers: the first of the browser's languages that the export has species
// names for and the page has verdict texts for ("es-AR" -> Spanish); English (the class names
// themselves) comes before any later language. Names and verdicts are never in two languages.
function languageFor(languages, translated) {
  for (const tag of languages) {
    const code = tag.slice(0, 2).toLowerCase();
    if (code === "en") return "en";
    if (translated[code] && VERDICT_TEXT[code]) return code;
  }
  return "en";
}

// The centre square, as Python's photos.load_photo takes it (integer offsets, floor division).
function centreSquare(width, height) {
  const side = Math.min(width, height);
  return [Math.floor((width - side) / 2), Math.floor((height - side) / 2), side];
}

// Photo or video frame -> the model's input: its pixels as decoded, the centre square resized
// as Pillow does (RGB in 0..255; the model scales it itself).
function inputPixels(source, width, height) {
  if (frame.width !== width || frame.height !== height) {
    frame.width = width;
    frame.height = height;
  }
  const context = frame.getContext("2d", { willReadFrequently: true });
  context.drawImage(source, 0, 0);
  const [left, top, side] = centreSquare(width, height);
  const box = [left, top, left + side, top + side];
  const rgba = context.getImageData(0, 0, width, height).data;
  return resizeLikePillow(rgba, width, height, box, inputSize);
}

// The model's probabilities and pooled backbone features for `views` (positions in
// serve_views), each averaged over them: { probabilities, features } (features null for an
// export whose graph returns probabilities only). The worker runs the model.
function infer(pixels, views) {
  return ask("infer", { pixels, size: inputSize, views });
}

// The mean of answers' probabilities and features (frames of the live camera).
function meanAnswer(answers) {
  const mean = (key) => {
    if (answers.some((a) => !a[key])) return null;
    const sum = new Float32Array(answers[0][key].length);
    for (const a of answers) for (let i = 0; i < sum.length; i += 1) sum[i] += a[key][i];
    return sum.map((x) => x / answers.length);
  };
  return { probabilities: mean("probabilities"), features: mean("features") };
}

// A photo or a frozen frame: every view in one pass, the same answer as Python's.
async function classify(source, width, height) {
  return infer(inputPixels(source, width, height), allViews);
}

function resetLive() {
  live.frames = 0;
  live.recent = [];
  live.previous = null;
}

function meanAbsDifference(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

// A live frame: one view, view k mod V on frame k, and the probabilities averaged over the last
// V frames while the camera is steady. For a still camera the last V frames hold every view of
// the same picture, so the answer is the photo answer (all views in one pass) once V frames are
// in; a moved camera starts the average again from its new frame.
//
// sendLiveFrame takes the frame and sends it to the worker at once; showLiveFrame shows its
// answer. The live loop sends the next frame before it waits for this one's answer, so the page
// resizes frame k + 1 while the worker runs the model on frame k.
function sendLiveFrame() {
  const [width, height] = [video.videoWidth, video.videoHeight];
  const started = performance.now();
  const pixels = inputPixels(video, width, height);
  keepTime("resize", performance.now() - started);
  const moved = live.previous !== null && meanAbsDifference(pixels, live.previous) > MOVED_ABOVE;
  live.previous = pixels;
  const views = LIVE_ALL_VIEWS ? allViews : [allViews[live.frames % allViews.length]];
  live.frames += 1;
  return { answer: infer(pixels, views), moved, shortSide: Math.min(width, height) };
}

// Keeps the last 100 times of a step of the live loop; the speed line's data attributes give the
// fastest and the median (the benchmark reads them: the fastest is the least disturbed by other
// processes).
function keepTime(step, ms) {
  const times = liveTimes[step];
  times.push(ms);
  if (times.length > 100) times.shift();
  const sorted = times.toSorted((a, b) => a - b);
  speed.dataset[`${step}MsFastest`] = sorted[0].toFixed(1);
  speed.dataset[`${step}MsMedian`] = sorted[Math.floor(sorted.length / 2)].toFixed(1);
}

// Shows a sent live frame's answer, averaged with the frames before it; false when what is on
// screen changed in the meantime (the answer is dropped).
async function showLiveFrame({ answer, moved, shortSide }, started) {
  const answered = await answer;
  if (started !== generation) return false;
  keepTime("model", answered.ms);
  if (moved) live.recent = [];
  live.recent.push(answered);
  if (live.recent.length > (LIVE_ALL_VIEWS ? 1 : allViews.length)) live.recent.shift();
  // How many views the shown answer covers: the test waits for all of them.
  speciesList.dataset.views = LIVE_ALL_VIEWS ? allViews.length : live.recent.length;
  // The features are averaged over the same frames as the probabilities: a still camera's
  // scores are then those of the photo answer (its features are the mean over all views).
  render(meanAnswer(live.recent), "camera", shortSide);
  return true;
}

function topK(probabilities, k) {
  // Ties keep the lower index first, as Python's stable argsort does.
  return Array.from(probabilities, (p, index) => ({ index, p }))
    .sort((a, b) => b.p - a.p || a.index - b.index)
    .slice(0, k);
}

const percent = (p) => (p < 0.001 ? "<0.1%" : `${(p * 100).toFixed(p < 0.1 ? 1 : 0)}%`);

function buildList() {
  for (let rank = 0; rank < TOP_K; rank += 1) {
    const item = document.createElement("li");
    // The name links to the species' Wikipedia article (a plain link: the page fetches
    // nothing), in a new tab so the answer stays on screen; then the scientific name.
    item.innerHTML =
      '<span class="line"><span class="what"><span class="name"></span>' +
      ' <i class="sci" lang="la"></i></span>' +
      '<span class="pct"></span></span>' +
      '<span class="bar" aria-hidden="true"><span class="fill"></span></span>';
    speciesList.append(item);
  }
}

function verdictOf(scores) {
  const rule = verdictRules.find((r) => r.score in scores && scores[r.score] < r.below);
  return rule ? rule.verdict : "sure";
}

// The verdict's text in each language the page speaks (languageFor). The Spanish follows the bot's
// wording (bot/locales/es/LC_MESSAGES/messages.po: "no estoy seguro", "puede que sea una especie
// que aún no conozco", "esto no me parece una flor", "demasiado pequeña para estar seguro").
const VERDICT_TEXT = {
  en: {
    sure: (name, p) => `${name} (${percent(p)})`,
    not_sure: (name, p) => `Not sure. Maybe ${name} (${percent(p)})`,
    unknown_species: (name, p) =>
      `Not sure: it may be a species I do not know yet. Maybe ${name} (${percent(p)})`,
    not_a_flower: () => "This does not look like a flower.",
    too_small: (name, p) => `Photo too small to be sure. Maybe ${name} (${percent(p)})`,
  },
  es: {
    sure: (name, p) => `${name} (${percent(p)})`,
    not_sure: (name, p) => `No estoy seguro. Quizá ${name} (${percent(p)})`,
    unknown_species: (name, p) =>
      "No estoy seguro: puede que sea una especie que aún no conozco. " +
      `Quizá ${name} (${percent(p)})`,
    not_a_flower: () => "Esto no me parece una flor.",
    too_small: (name, p) =>
      `Foto demasiado pequeña para estar seguro. Quizá ${name} (${percent(p)})`,
  },
};

// The scores the verdict's rules read: confidence and size, and the feature-space scores the
// export gives (from the features averaged over the same views as the probabilities).
function scoresOf(answer, confidence, shortSide) {
  const scores = { confidence, short_side: shortSide };
  if (answer.features) {
    for (const [name, score] of Object.entries(honesty)) {
      scores[name] = score(answer.features, confidence);
    }
  }
  return scores;
}

function render(answer, source, shortSide) {
  const probabilities = answer.probabilities;
  if (source !== "camera" || mode !== "live") speciesList.dataset.views = allViews.length;
  speciesList.dataset.mode = mode; // what the answer is for: "live", "frozen" or "photo"
  const top = topK(probabilities, TOP_K);
  top.forEach(({ index, p }, rank) => {
    const item = speciesList.children[rank];
    item.dataset.index = index;
    item.dataset.probability = p;
    showName(item, index);
    item.querySelector(".pct").textContent = percent(p);
    item.querySelector(".fill").style.width = `${(p * 100).toFixed(1)}%`;
  });
  const best = top[0];
  const name = classNames[best.index];
  const scores = scoresOf(answer, best.p, shortSide);
  const said = verdictOf(scores);
  // The scores behind the verdict, for the tests (compared with Python's).
  verdict.dataset.flowerScore = scores.flower_score ?? "";
  verdict.dataset.speciesScore = scores.species_score ?? "";
  // Only a changed answer is written, so screen readers announce answers, not every frame.
  const text = VERDICT_TEXT[language][said](name, best.p);
  if (verdict.textContent !== text) verdict.textContent = text;
  verdict.dataset.verdict = said;
  verdict.classList.toggle("unsure", said !== "sure");
  showGroup(groupOf(top, said, taxonomy));
  speciesList.dataset.source = source;
  if (mode === "frozen" || mode === "photo") keepAnswer(top, said);
  predictions += 1;
  speciesList.dataset.predictions = predictions;
  if (predictions === 1) performance.mark("first-prediction");
}

// A ranked species: its name linked to its Wikipedia article in the answers' language
// (model_training/taxonomy.py's species_url, written by the export), and its scientific name.
function showName(item, index) {
  const url = taxonomyWords?.wikipedia[index];
  // A link only where there is an address (a species taught by users has none): an <a> without
  // one is a link nobody can follow (Lighthouse's "links are not crawlable").
  let name = item.querySelector(".name");
  if (name.tagName !== (url ? "A" : "SPAN")) {
    const replacement = document.createElement(url ? "a" : "span");
    replacement.className = "name";
    if (url) Object.assign(replacement, { target: "_blank", rel: "noopener", title: "Wikipedia" });
    name.replaceWith(replacement);
    name = replacement;
  }
  name.textContent = classNames[index];
  if (url) name.href = url;
  item.querySelector(".sci").textContent = taxonomy?.classes[index]?.scientific_name ?? "";
}

// The genus or family an unsure answer is probably in, under the verdict, in the bot's words
// (taxonomy.js); hidden when there is none. Written only when it changes, as the verdict is.
function showGroup(group) {
  const key = group ? `${group.level} ${group.name} ${group.members.map((m) => m.index)}` : "";
  if (groupLine.dataset.key === key) return;
  groupLine.dataset.key = key;
  groupLine.dataset.level = group?.level ?? "";
  groupLine.dataset.name = group?.name ?? "";
  groupLine.dataset.species = group ? group.members.map((m) => m.index).join(",") : "";
  groupLine.hidden = !group || !taxonomyWords;
  if (groupLine.hidden) return groupLine.replaceChildren();
  groupLine.replaceChildren(
    ...groupPieces(group, taxonomyWords, classNames).map(([text, italic]) => {
      if (!italic) return text;
      const element = document.createElement("i");
      element.textContent = text;
      return element;
    }),
  );
}

// Runs one prediction and shows it, unless what is on screen changed in the meantime.
let busy = Promise.resolve();
function predictAndShow(source, width, height, label, answer = classify) {
  const started = generation;
  const run = busy.then(async () => {
    if (started !== generation) return;
    const answered = await answer(source, width, height);
    if (started === generation) render(answered, label, Math.min(width, height));
  });
  busy = run.catch((error) => showError(error));
  return busy;
}

// Yields to the browser between live predictions: a zero timeout, since waiting for the next
// animation frame cost up to 16 ms a prediction; a hidden tab waits until it is shown again.
const nextFrame = () =>
  new Promise((resolve) =>
    document.hidden ? requestAnimationFrame(resolve) : setTimeout(resolve, 0),
  );

async function liveLoop() {
  const started = generation;
  const times = [];
  let sent = null;
  let shownAt = null;
  try {
    while (mode === "live" && started === generation) {
      if (video.readyState >= video.HAVE_CURRENT_DATA) {
        const next = sendLiveFrame();
        if (sent && !(await showLiveFrame(sent, started))) break;
        sent = next;
        const now = performance.now();
        if (shownAt !== null) times.push(now - shownAt);
        shownAt = now;
        if (times.length > 20) times.shift();
        if (times.length) {
          const ms = times.reduce((a, b) => a + b) / times.length;
          const backend = document.body.dataset.backend;
          speed.textContent = `${(1000 / ms).toFixed(1)} predictions/s (${backend}).`;
          speed.dataset.msPerFrame = ms.toFixed(1);
        }
      }
      await nextFrame();
    }
  } catch (error) {
    if (started === generation) showError(error);
  }
}

async function startCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    return noCamera("This browser gives the page no camera here (it needs https or localhost).");
  }
  try {
    // The rear camera on phones; "ideal" falls back to the front or only camera elsewhere.
    video.srcObject = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { facingMode: { ideal: "environment" }, width: { ideal: 640 }, height: { ideal: 480 } },
    });
    await video.play();
  } catch (error) {
    const refused = error.name === "NotAllowedError" || error.name === "SecurityError";
    return noCamera(refused ? "Camera permission was refused." : "No camera was found.");
  }
  cameraOn = true;
  // A photo chosen while the browser was still asking for the camera stays on screen.
  if (photo.getAttribute("src")) showFreezeButton();
  else goLive();
}

function noCamera(reason) {
  // Stays on screen while photos come and go: it says why there is no live view.
  cameraNote.textContent = `${reason} Choose a photo instead.`;
  cameraNote.hidden = false;
  statusLine.textContent = "";
  setMode("photo");
}

function goLive() {
  sendable = null;
  setMode("live");
  resetLive();
  statusLine.textContent = "Camera on: point it at a flower.";
  video.play();
  liveLoop();
}

// The answer shown for a frozen frame or a photo, as the bot is sent it (bot/webapp.py).
function keepAnswer(top, said) {
  if (!sendable) return;
  sendable.answer = {
    model_version: document.body.dataset.modelVersion,
    verdict: said,
    top5: top.map(({ index, p }) => ({ index, confidence: p })),
  };
  showTelegramButtons();
}

// The frame held on screen as a JPEG, at the camera's size: what "Send to the bot" sends.
function frameJpeg() {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}

async function sendToBot() {
  if (!sendable?.answer) return;
  const { photo, name, answer } = sendable;
  sendable = null; // one send a photo: the button comes back with the next frame or photo
  showTelegramButtons();
  sentLine.classList.remove("warning");
  sentLine.textContent = "Sending to the bot…";
  await queue.send(await photo, name, JSON.stringify(answer));
}

// What became of the photos sent (sendqueue.js), said under the photo and felt on the phone.
function reportSend(event, detail) {
  sentLine.classList.toggle("warning", event === "refused");
  if (event === "kept") {
    sentLine.textContent =
      detail.waiting === 1
        ? "Offline: the photo is kept on this device and goes to the bot when the network is back."
        : `Offline: ${detail.waiting} photos are kept on this device and go to the bot when the network is back.`;
    return;
  }
  if (event === "sent") {
    sentLine.dataset.sent = Number(sentLine.dataset.sent ?? 0) + 1;
    sentLine.textContent = "Sent: the bot’s answer is in your chat with it.";
  } else {
    sentLine.textContent = detail.error;
  }
  buzz(telegram, event === "sent" ? "success" : "error");
}

function freeze() {
  setMode("frozen");
  video.pause();
  sendable = { photo: frameJpeg(), name: "camera.jpg", answer: null };
  buzz(telegram, "light");
  statusLine.textContent = "Frozen: the answer is for this frame.";
  // The last live answer may be for an earlier frame than the one now held on screen.
  predictAndShow(video, video.videoWidth, video.videoHeight, "camera");
}

async function showPhoto(file) {
  let decoded;
  try {
    decoded = await decodeLikePillow(file, inputSize);
  } catch {
    statusLine.textContent = `${file.name} is not an image this browser can read.`;
    return;
  }
  sendable = { photo: file, name: file.name || "photo.jpg", answer: null };
  setMode("photo");
  video.pause();
  URL.revokeObjectURL(photo.src);
  photo.src = URL.createObjectURL(file);
  photo.alt = `The photo you chose: ${file.name}`;
  statusLine.textContent = cameraOn
    ? `Showing ${file.name}. “Back to camera” returns to the live view.`
    : `Showing ${file.name}.`;
  await predictAndShow(decoded.image, decoded.width, decoded.height, file.name);
  decoded.image.close();
}

// Offline-first: the service worker (sw.js) precaches the page, TF.js and the model on the
// first visit. When a newer worker takes over (a new model was exported since the last visit),
// the page loads the new model in place and says which version it now runs.
async function startServiceWorker() {
  const offline = $("offline");
  if (!("serviceWorker" in navigator)) {
    offline.textContent = "This browser cannot keep the page for offline use.";
    return;
  }
  const updating = Boolean(navigator.serviceWorker.controller);
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (updating) updateModel();
  });
  try {
    const registration = await navigator.serviceWorker.register("sw.js");
    activateWaitingWorker(registration);
    if (navigator.onLine) registration.update().catch(() => {}); // check now, not later
    await navigator.serviceWorker.ready;
    offline.textContent = "Saved on this device: works offline.";
    document.body.dataset.offline = "ready";
  } catch (error) {
    console.warn("no service worker: the page needs the network on every visit", error);
  }
}

// A new worker calls skipWaiting() as it installs, yet Chromium sometimes leaves it waiting: the
// old worker was busy at that moment and nothing asks again before Chromium's 5-minute limit
// (5 updates of 110 on a busy 2-core machine; docs/web.md). Asking again, once it is
// installed and every 2 s while it waits, activated all of 120 within 1.5 s.
function activateWaitingWorker(registration) {
  let asking = false;
  const ask = () => {
    asking = Boolean(registration.waiting);
    if (!asking) return;
    registration.waiting.postMessage({ type: "SKIP_WAITING" });
    setTimeout(ask, 2000);
  };
  // The update may have started before register() resolved: watch the installing worker too.
  const watch = (worker) =>
    worker?.addEventListener("statechange", () => {
      if (worker.state === "installed" && !asking) ask();
    });
  watch(registration.installing);
  registration.addEventListener("updatefound", () => watch(registration.installing));
  if (registration.waiting) ask();
}

async function updateModel() {
  await firstLoad.promise;
  if (mode === "error") return;
  try {
    // Predictions asked before it finish with the old model (the worker answers in order).
    await loadModel();
  } catch (error) {
    return console.warn("the updated model did not load; keeping the current one", error);
  }
  $("offline").textContent = `Updated to model ${document.body.dataset.modelVersion}.`;
  // A frozen frame is answered again by the new model; a photo keeps its answer until the next.
  if (mode === "frozen") predictAndShow(video, video.videoWidth, video.videoHeight, "camera");
}

function showError(error) {
  console.error(error);
  setMode("error");
  statusLine.textContent = `Something went wrong: ${error.message}`;
  statusLine.classList.add("warning");
}

async function main() {
  buildList();
  startServiceWorker();
  telegram = await startTelegram({ onBack: () => cameraOn && goLive(), onSend: sendToBot });
  if (telegram) {
    const userId = telegram.initDataUnsafe.user?.id;
    queue = sendQueue({ initData: telegram.initData, userId, report: reportSend });
    queue.drain(); // photos kept offline on an earlier visit
  }
  freezeButton.addEventListener("click", () => (mode === "live" ? freeze() : goLive()));
  fileInput.addEventListener("change", () => {
    if (fileInput.files.length) showPhoto(fileInput.files[0]);
    fileInput.value = ""; // choosing the same file again is a change too
  });
  try {
    await afterFirstPaint();
    startWorker();
    await loadModel().finally(firstLoad.resolve);
    statusLine.textContent = "Model ready: allow the camera, or choose a photo.";
    fileInput.disabled = false;
    setMode("photo");
  } catch (error) {
    firstLoad.resolve();
    return showError(error);
  }
  await startCamera();
}

main();
