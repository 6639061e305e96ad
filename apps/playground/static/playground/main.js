// Boot: sign in with a key (checked against the API before it is kept), then start the panes.
import { get, key } from "./api.js";
import { $, clearError, guarded, showError } from "./ui.js";
import * as builder from "./builder.js";
import * as thread from "./thread.js";
import * as inspector from "./inspector.js";
import * as storage from "./storage.js";

let started = false;

function setView(view) {
  document.body.dataset.view = view;
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.setAttribute("aria-current", tab.dataset.view === view ? "page" : "false");
  }
  if (view === "storage") storage.refresh();
}

async function start() {
  $("#sign-in").hidden = true;
  $("#app").hidden = false;
  $(".tabs").hidden = false;
  $("#sign-out").hidden = false;
  if (started) return;
  started = true;
  inspector.init();
  thread.init();
  storage.init();
  await builder.init();
  document.body.dataset.ready = "true"; // every pane has loaded what it shows first
}

function signInForm(message) {
  $("#app").hidden = true;
  $(".tabs").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in").hidden = false;
  if (message) showError(message);
  $("#api-key").focus();
}

$("#sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError();
  const typed = $("#api-key").value.trim();
  try {
    await get("/assistants?limit=1", typed);
  } catch (error) {
    showError(error);
    return;
  }
  key.set(typed);
  $("#api-key").value = "";
  await guarded(start)();
});

$("#sign-out").addEventListener("click", () => {
  key.clear();
  location.reload();
});

for (const tab of document.querySelectorAll(".tabs button")) {
  tab.addEventListener("click", () => setView(tab.dataset.view));
}
document.addEventListener("playground:view", (event) => setView(event.detail));

(async () => {
  if (!key.get()) {
    signInForm();
    performance.mark("playground-interactive");
    return;
  }
  try {
    await start(); // its first API calls also prove the stored key still works
  } catch (error) {
    if (error.status === 401) key.clear();
    started = false;
    signInForm(error);
    return;
  }
  setView("thread");
  performance.mark("playground-interactive"); // what benchmarks/bench_playground.py measures
})();
