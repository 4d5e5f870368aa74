// Tessera's own script: upload hints and progress. Pages work without it (plain form posts);
// htmx (static/vendor) swaps parts of a page and polls running analyses.
"use strict";

function formatBytes(bytes) {
  const units = ["bytes", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return (unit === 0 ? value : value.toFixed(1)) + " " + units[unit];
}

function errorOf(input) {
  return document.getElementById(input.id + "-error");
}

function showError(input, message) {
  const error = errorOf(input);
  if (!error) return;
  error.textContent = message;
  error.hidden = !message;
  if (message) {
    input.setAttribute("aria-invalid", "true");
  } else {
    input.removeAttribute("aria-invalid");
  }
}

// Too large a file is refused before a byte is sent; the server checks again regardless.
document.addEventListener("change", (event) => {
  const input = event.target;
  if (!(input instanceof HTMLInputElement) || input.type !== "file" || !input.dataset.maxBytes) {
    return;
  }
  const file = input.files[0];
  const limit = Number(input.dataset.maxBytes);
  if (file && file.size > limit) {
    showError(input, `This file is ${formatBytes(file.size)}, over the ${formatBytes(limit)} limit.`);
  } else {
    showError(input, "");
  }
});

document.addEventListener("submit", (event) => {
  const input = event.target.querySelector("input[type=file][aria-invalid=true]");
  if (input && errorOf(input) && !errorOf(input).hidden && input.files.length) {
    event.preventDefault();
    event.stopImmediatePropagation();
    input.focus();
  }
}, true);

document.addEventListener("htmx:xhr:progress", (event) => {
  const form = event.target.closest("form.upload");
  const bar = form && form.querySelector(".upload-progress");
  if (!bar || !event.detail.lengthComputable) return;
  bar.hidden = false;
  bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
});

document.addEventListener("htmx:beforeRequest", (event) => {
  const button = event.target.querySelector && event.target.querySelector("button[type=submit]");
  if (button && event.target.matches("form.upload, form.analyse")) button.disabled = true;
});

document.addEventListener("htmx:afterRequest", (event) => {
  const button = event.target.querySelector && event.target.querySelector("button[type=submit]");
  if (button) button.disabled = false;
  if (!event.detail.successful && event.detail.xhr && event.detail.xhr.status >= 500) {
    const form = event.target.closest("form");
    const input = form && form.querySelector("input[type=file]");
    if (input) showError(input, "The server could not take this file right now; try again in a minute.");
  }
});

// The switcher's button is for keyboards and screen readers; a mouse choice switches at once.
document.addEventListener("change", (event) => {
  if (event.target.id === "organization-switcher") event.target.form.submit();
});

// A transcript's line plays its recording from where the line starts.
document.addEventListener("click", (event) => {
  const line = event.target.closest("button.segment[data-seek]");
  const audio = line && line.closest("li.media-speech, li.media-learner_audio")?.querySelector("audio");
  if (!audio) return;
  const seek = () => { audio.currentTime = Number(line.dataset.seek); };
  if (audio.readyState >= HTMLMediaElement.HAVE_METADATA) {
    seek();
  } else {  // preload="none": a time set before the file's length is known would be lost
    audio.addEventListener("loadedmetadata", seek, { once: true });
    audio.load();
  }
  audio.play().catch(() => {});  // a browser may refuse to play without a gesture it trusts
});
