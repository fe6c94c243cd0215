// The color splash page: upload a photo once, then re-render on every change of the controls.
// Detection runs once per upload on the server; the threshold, classes and effect only pick
// which of its results are drawn (see mrcnn/splash/web.py for the API).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { info: null, upload: null, renderCount: 0 };

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("status").textContent = "";
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (ignored) { /* not JSON: fall through */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

async function loadInfo() {
  const response = await fetch("api/info");
  if (!response.ok) throw new Error(await errorOf(response));
  const info = await response.json();
  state.info = info;
  const threshold = $("threshold");
  threshold.min = info.score_floor;
  threshold.value = info.default_threshold;
  $("threshold-value").textContent = Number(threshold.value).toFixed(2);
  for (const effect of info.effects) {
    const option = document.createElement("option");
    option.value = option.textContent = effect;
    $("effect").append(option);
  }
  const classes = info.class_names.length - 1;
  const limit = (info.max_upload_bytes / 2 ** 20).toFixed(1);
  $("model-info").textContent =
    `${classes} classes; photos up to ${limit} MiB. Nothing leaves this computer.`;
}

// ------------------------------------------------------------------------------------------
// Uploading
// ------------------------------------------------------------------------------------------
async function sendPhoto(file) {
  clearError();
  if (!file) return;
  const limit = state.info.max_upload_bytes;
  if (file.size === 0) return showError(`${file.name}: the file is empty; choose a photo`);
  if (file.size > limit) {
    const mib = (limit / 2 ** 20).toFixed(1);
    return showError(`${file.name}: ${file.size} bytes is over the upload limit of ` +
                     `${limit} bytes (${mib} MiB); choose a smaller photo`);
  }
  $("status").textContent = `Detecting in ${file.name}…`;
  const body = new FormData();
  body.append("image", file, file.name);
  let response;
  try {
    response = await fetch("api/uploads", { method: "POST", body });
  } catch (error) {
    return showError(`The server did not answer (${error.message}); is mrcnn serve running?`);
  }
  if (!response.ok) return showError(await errorOf(response));
  state.upload = await response.json();
  buildClassChoices(state.upload.detections);
  $("drop-zone").classList.add("compact");
  $("controls").hidden = false;
  $("results").hidden = false;
  render();
}

function buildClassChoices(detections) {
  // Offer the classes this photo has detections of (a COCO model has 80).
  const fieldset = $("classes");
  fieldset.querySelectorAll("label, p").forEach((node) => node.remove());
  const ids = [...new Set(detections.map((d) => d.category_id))].sort((a, b) => a - b);
  if (ids.length === 0) {
    const none = document.createElement("p");
    none.textContent = "no detections";
    fieldset.append(none);
  }
  for (const id of ids) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = id;
    box.checked = true;
    box.addEventListener("change", render);
    label.append(box, ` ${state.info.class_names[id] ?? `class ${id}`}`);
    fieldset.append(label);
  }
}

// ------------------------------------------------------------------------------------------
// Rendering
// ------------------------------------------------------------------------------------------
function query() {
  const params = new URLSearchParams({ min_score: Number($("threshold").value).toFixed(2) });
  const boxes = [...$("classes").querySelectorAll("input[type=checkbox]")];
  if (boxes.some((box) => !box.checked)) {
    params.set("classes", boxes.filter((box) => box.checked).map((box) => box.value).join(","));
  }
  return params;
}

function loadImage(img, url) {
  return new Promise((resolve, reject) => {
    img.onload = () => resolve();
    img.onerror = async () => {
      const response = await fetch(url).catch(() => null);
      reject(new Error(response ? await errorOf(response) : "the picture did not load"));
    };
    img.src = url;
  });
}

async function render() {
  const upload = state.upload;
  if (!upload) return;
  const count = ++state.renderCount; // a newer render makes this one stale
  const params = query();
  const base = `api/uploads/${upload.id}`;
  const detectionsUrl = `${base}/detections.jpg?${params}`;
  const splashParams = new URLSearchParams(params);
  splashParams.set("effect", $("effect").value);
  const splashUrl = `${base}/splash.png?${splashParams}`;
  const stem = upload.file_name.replace(/\.[^.]*$/, "");
  $("download").href = splashUrl;
  $("download").download = `${stem}_splash.png`;
  setAnnotationsLink();
  $("results").dataset.rendered = "";
  document.querySelectorAll("#results figure").forEach((f) => f.classList.add("loading"));
  $("status").textContent = "Rendering…";
  try {
    // One at a time: the server serves requests in turn anyway.
    const response = await fetch(`${base}/detections.json?${params}`);
    if (!response.ok) throw new Error(await errorOf(response));
    const detections = await response.json();
    await loadImage($("detections-image"), detectionsUrl);
    await loadImage($("splash-image"), splashUrl);
    if (count !== state.renderCount) return;
    fillTable(detections);
    const shown = detections.length === 1 ? "1 detection" : `${detections.length} detections`;
    $("detections-caption").textContent = `Detections: ${shown}`;
    $("status").textContent = `${upload.file_name}: ${shown} at score ≥ ${params.get("min_score")}`;
    clearError();
    $("results").dataset.rendered = splashParams.toString();
  } catch (error) {
    if (count === state.renderCount) showError(error.message);
  } finally {
    if (count === state.renderCount) {
      document.querySelectorAll("#results figure").forEach((f) => f.classList.remove("loading"));
    }
  }
}

// ------------------------------------------------------------------------------------------
// Annotations: the detections shown, as a VIA 2 project or a LabelMe file, for a person to edit
// ------------------------------------------------------------------------------------------
const ANNOTATION_SUFFIXES = { via: "_via.json", labelme: ".json" };
const ANNOTATION_HINTS = {
  via: "open it in VIA 2 with Project > Load, then add the photo",
  labelme: "put it beside the photo and open the photo's folder in LabelMe",
};

function setAnnotationsLink() {
  const upload = state.upload;
  if (!upload) return;
  const format = $("annotation-format").value;
  const params = query();
  params.set("format", format);
  const link = $("download-annotations");
  link.href = `api/uploads/${upload.id}/annotations.json?${params}`;
  link.download = upload.file_name.replace(/\.[^.]*$/, "") + ANNOTATION_SUFFIXES[format];
}

function savedName(disposition) {
  // The photo's own stem (filename*, RFC 6266), else the server's ASCII stand-in.
  const exact = disposition.match(/filename\*=UTF-8''([^;]+)/i);
  if (exact) return decodeURIComponent(exact[1]);
  return (disposition.match(/filename="([^"]+)"/) || [])[1];
}

async function downloadAnnotations(event) {
  // Fetched first, so that an error is shown on the page rather than saved as the file.
  event.preventDefault();
  const link = $("download-annotations");
  let response;
  try {
    response = await fetch(link.href);
  } catch (error) {
    return showError(`The server did not answer (${error.message}); is mrcnn serve running?`);
  }
  if (!response.ok) return showError(await errorOf(response));
  const name = savedName(response.headers.get("content-disposition") || "") || link.download;
  const url = URL.createObjectURL(await response.blob());
  const save = document.createElement("a");
  save.href = url;
  save.download = name;
  document.body.append(save);
  save.click();
  save.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  clearError();
  $("status").textContent = `Saved ${name}: ${ANNOTATION_HINTS[$("annotation-format").value]}`;
}

function fillTable(detections) {
  const rows = detections.map((d, i) => {
    const row = document.createElement("tr");
    const box = d.bbox.map((v) => v.toFixed(0)).join(", ");
    for (const text of [i + 1, d.category_name, d.score.toFixed(3), box]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  });
  $("detections-table").querySelector("tbody").replaceChildren(...rows);
  $("detections-table").hidden = detections.length === 0;
}

// ------------------------------------------------------------------------------------------
// Wiring
// ------------------------------------------------------------------------------------------
function wire() {
  $("file-input").addEventListener("change", (event) => {
    sendPhoto(event.target.files[0]);
    event.target.value = ""; // choosing the same file again uploads it again
  });
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    sendPhoto(event.dataTransfer.files[0]);
  });
  $("threshold").addEventListener("input", () => {
    $("threshold-value").textContent = Number($("threshold").value).toFixed(2);
  });
  $("threshold").addEventListener("change", render);
  $("effect").addEventListener("change", render);
  $("annotation-format").addEventListener("change", setAnnotationsLink);
  $("download-annotations").addEventListener("click", downloadAnnotations);
}

wire();
loadInfo().catch((error) => showError(`Cannot reach the server: ${error.message}`));
