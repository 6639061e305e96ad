// The thread: a paged, searchable list of the project's threads; messages with streaming runs,
// live tool calls, function outputs, cancel, and per-run overrides.
import { download, fileBlobUrl, fileInfo, get, post, query, stream, upload } from "./api.js";
import { renderText } from "./md.js";
import { $, guarded, h, showError, time } from "./ui.js";
import { emit, noteStatus, on, state } from "./state.js";
import { showDialog } from "./inspector.js";

const PAGE = 8;
let page = { after: null, before: null, first: null, last: null, hasMore: false };
const nodes = new Map(); // message id -> {message, node}
const toolNodes = new Map(); // `${step}:${index}` -> node
let active = null; // {runId, threadId} while a run streams or waits

// -- thread list ------------------------------------------------------------------------
async function loadThreads(cursor = {}) {
  const search = $("#thread-search").value.trim();
  const list = await get(`/threads${query({ limit: PAGE, search, ...cursor })}`);
  const box = $("#thread-list");
  box.replaceChildren(...list.data.map(threadButton));
  if (!list.data.length) box.append(h("p", { class: "muted" }, search ? "No thread matches." : "No threads yet."));
  page = { first: list.first_id, last: list.last_id, hasMore: list.has_more, cursor };
  // Newest first: `after` pages toward older threads, `before` back toward newer ones.
  $("#threads-older").disabled = cursor.before ? false : !list.has_more;
  $("#threads-newer").disabled = cursor.before ? !list.has_more : !cursor.after;
}

function threadButton(thread) {
  const meta = Object.entries(thread.metadata || {}).map(([k, v]) => `${k}=${v}`).join(" ");
  const preview = h("span", { class: "preview" }, "…");
  const button = h("button", { type: "button", class: "thread-item", "data-thread-id": thread.id,
    "aria-current": state.thread?.id === thread.id ? "true" : "false", onclick: guarded(() => openThread(thread)) },
  h("span", { class: "when" }, time(thread.created_at)), meta ? h("span", { class: "meta" }, meta) : null, preview);
  get(`/threads/${thread.id}/messages?order=asc&limit=1`).then((first) => {
    const text = first.data[0]?.content.find((p) => p.type === "text")?.text.value || "(no messages)";
    preview.textContent = text.length > 80 ? `${text.slice(0, 80)}…` : text;
    button.setAttribute("aria-label", `Thread ${time(thread.created_at)}${meta ? ` ${meta}` : ""}: ${preview.textContent}`);
  }).catch(() => { preview.textContent = thread.id; });
  return button;
}

async function openThread(thread) {
  state.thread = thread;
  $("#thread-current").textContent = thread.id;
  for (const item of document.querySelectorAll(".thread-item")) item.setAttribute("aria-current", item.dataset.threadId === thread.id ? "true" : "false");
  nodes.clear(); toolNodes.clear();
  $("#messages").replaceChildren();
  $("#required").hidden = true;
  const messages = await get(`/threads/${thread.id}/messages?order=asc&limit=100`);
  for (const message of messages.data) showMessage(message);
  const runs = await get(`/threads/${thread.id}/runs?limit=20`);
  state.runs = runs.data;
  emit("runs", { runs: runs.data, select: runs.data[0] || null });
  const waiting = runs.data.find((r) => r.status === "requires_action");
  if (waiting) showRequired(waiting);
}

function newThread() {
  state.thread = null;
  state.runs = [];
  nodes.clear(); toolNodes.clear();
  $("#messages").replaceChildren();
  $("#required").hidden = true;
  $("#thread-current").textContent = "New thread";
  emit("runs", { runs: [], select: null });
  $("#message").focus();
}

function follow() {
  const box = $("#messages");
  box.scrollTop = box.scrollHeight;
}

// -- messages ---------------------------------------------------------------------------
function showMessage(message) {
  let entry = nodes.get(message.id);
  if (!entry) {
    const node = h("article", { class: `message ${message.role}`, "data-message-id": message.id });
    $("#messages").append(node);
    entry = { message, node };
    nodes.set(message.id, entry);
  }
  entry.message = message;
  paint(entry);
  return entry;
}

function paint(entry) {
  const { message, node } = entry;
  const body = h("div", { class: "body" });
  const footnotes = [];
  for (const part of message.content || []) {
    if (part.type === "text") {
      const rendered = renderText(part.text);
      body.append(h("div", { class: "md", html: rendered.html }));
      footnotes.push(...rendered.footnotes);
    } else if (part.type === "image_file") {
      const img = h("img", { alt: `Image ${part.image_file.file_id}`, class: "inline-image" });
      fileBlobUrl(part.image_file.file_id).then((url) => { img.src = url; }).catch(showError);
      body.append(h("figure", {}, img, h("figcaption", {}, h("a", { href: "#", class: "download", "data-file-id": part.image_file.file_id }, "Download image"))));
    } else if (part.type === "image_url") {
      body.append(h("p", {}, `Image: ${part.image_url.url}`));
    }
  }
  if (message.attachments?.length) {
    const names = h("span", {}, message.attachments.map((a) => a.file_id).join(", "));
    Promise.all(message.attachments.map((a) => fileInfo(a.file_id))).then((infos) => {
      names.textContent = infos.map((info) => info.filename).join(", ");
    });
    body.append(h("p", { class: "muted" }, "Attached: ", names));
  }
  if (footnotes.length) {
    const list = h("ol", { class: "footnotes", "aria-label": "Sources" });
    for (const note of footnotes) {
      const link = h("a", { href: "#", class: "footnote", "data-n": note.n }, note.fileId);
      fileInfo(note.fileId).then((info) => { link.textContent = info.filename || note.fileId; });
      link.addEventListener("click", guarded((event) => { event.preventDefault(); return openCitation(message, note); }));
      list.append(h("li", { id: `fn-${message.id}-${note.n}` }, link));
    }
    body.append(list);
  }
  for (const link of body.querySelectorAll("a.citation")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const target = body.querySelector(`.footnotes li:nth-child(${link.dataset.footnote}) a`);
      if (target) target.click();
    });
  }
  for (const link of body.querySelectorAll("a.download")) {
    link.addEventListener("click", guarded((event) => { event.preventDefault(); return download(link.dataset.fileId); }));
    fileInfo(link.dataset.fileId).then((info) => {
      const name = info.filename?.split("/").pop() || link.dataset.fileId;
      if (link.textContent === "⬇ Download file") link.textContent = `⬇ ${name}`;
      link.setAttribute("aria-label", `Download ${name}`);
    });
  }
  node.replaceChildren(h("div", { class: "role" }, message.role === "user" ? "You" : "Assistant", message.status === "in_progress" ? " …" : ""), body);
  follow();
}

// The cited chunk: the marker 【turn:index†name】 names the run's turn-th file_search call.
async function openCitation(message, note) {
  const include = ["step_details.tool_calls[*].file_search.results[*].content"];
  const steps = await get(`/threads/${message.thread_id}/runs/${message.run_id}/steps${query({ order: "asc", limit: 100, "include[]": include })}`);
  const searches = steps.data.flatMap((s) => (s.step_details.tool_calls || []).filter((c) => c.type === "file_search"));
  const [, turn, index] = (note.marker || "").match(/【(\d+):(\d+)/) || [];
  let result = searches[Number(turn)]?.file_search.results?.[Number(index)];
  if (!result || result.file_id !== note.fileId) result = searches.flatMap((c) => c.file_search.results || []).find((r) => r.file_id === note.fileId);
  const info = await fileInfo(note.fileId);
  const text = (result?.content || []).map((c) => c.text).join("\n") || "The cited chunk is no longer available.";
  showDialog(`Source: ${info.filename || note.fileId}`, h("div", {},
    result ? h("p", { class: "muted" }, `score ${result.score.toFixed(3)}`) : null, h("blockquote", { class: "chunk" }, text)), text);
}

// -- live tool calls --------------------------------------------------------------------
function toolCall(stepId, call) {
  const id = `${stepId}:${call.index ?? 0}`;
  let node = toolNodes.get(id);
  if (!node) {
    node = h("section", { class: "tool-call", "aria-label": "Tool call" });
    node.state = { type: call.type, input: "", outputs: [], name: "", args: "", results: null };
    toolNodes.set(id, node);
    $("#messages").append(node);
  }
  const s = node.state;
  if (call.type) s.type = call.type;
  if (call.code_interpreter) {
    s.input += call.code_interpreter.input || "";
    if (call.code_interpreter.outputs) s.outputs.push(...call.code_interpreter.outputs);
  }
  if (call.function) { s.name = call.function.name || s.name; s.args += call.function.arguments || ""; }
  if (call.file_search?.results) s.results = call.file_search.results;
  const parts = [h("div", { class: "role" }, s.type === "code_interpreter" ? "Code Interpreter" : s.type === "file_search" ? "File Search" : `Function ${s.name}`)];
  if (s.type === "code_interpreter") {
    parts.push(h("pre", { class: "code", "aria-label": "Code" }, h("code", {}, s.input)));
    for (const output of s.outputs) {
      if (output.type === "logs") parts.push(h("pre", { class: "logs", "aria-label": "Logs" }, output.logs));
      else if (output.type === "image") parts.push(h("p", { class: "muted" }, `Image output ${output.image.file_id}`));
    }
  } else if (s.type === "function") parts.push(h("pre", { class: "logs" }, s.args));
  else if (s.results) parts.push(h("p", { class: "muted" }, `${s.results.length} result(s)`));
  node.replaceChildren(...parts);
  follow();
}

// -- runs -------------------------------------------------------------------------------
function overrides() {
  const value = (id) => $(id).value.trim();
  const body = {};
  if (value("#r-model")) body.model = value("#r-model");
  if (value("#r-instructions")) body.instructions = value("#r-instructions");
  const choice = value("#r-tool-choice");
  if (choice) body.tool_choice = choice.startsWith("function:") ? { type: "function", function: { name: choice.slice(9) } } : choice;
  if (value("#r-truncation") === "last_messages") body.truncation_strategy = { type: "last_messages", last_messages: Number(value("#r-last-messages") || 1) };
  if (value("#r-max-prompt")) body.max_prompt_tokens = Number(value("#r-max-prompt"));
  if (value("#r-max-completion")) body.max_completion_tokens = Number(value("#r-max-completion"));
  return body;
}

function setActive(run) {
  noteStatus(run);
  const live = ["queued", "in_progress", "cancelling", "requires_action"].includes(run.status);
  active = live ? { runId: run.id, threadId: run.thread_id } : null;
  $("#cancel-run").disabled = !live;
  $("#send").disabled = live;
  $("#run-status").textContent = `Run ${run.id}: ${run.status}${run.last_error ? ` — ${run.last_error.message}` : ""}`;
  const known = state.runs.findIndex((r) => r.id === run.id);
  if (known >= 0) state.runs[known] = run; else state.runs.unshift(run);
  emit("run", run);
}

function onEvent(event, data) {
  if (event.startsWith("thread.run.step.")) {
    if (event === "thread.run.step.delta") {
      for (const call of data.delta.step_details?.tool_calls || []) toolCall(data.id, call);
    } else if (data.type === "tool_calls") {
      for (const [index, call] of (data.step_details.tool_calls || []).entries()) {
        if (event === "thread.run.step.created") toolCall(data.id, { index, type: call.type });
        else if (call.file_search) toolCall(data.id, { index, ...call });
      }
    }
    emit("step", data);
  } else if (event.startsWith("thread.run.")) {
    setActive(data);
    if (data.status === "requires_action") showRequired(data);
  } else if (event === "thread.message.delta") {
    const entry = nodes.get(data.id);
    if (!entry) return;
    for (const delta of data.delta.content || []) {
      const content = entry.message.content;
      if (!content[delta.index]) content[delta.index] = delta.type === "text" ? { type: "text", text: { value: "", annotations: [] } } : delta;
      if (delta.type === "text") {
        const text = content[delta.index].text;
        text.value += delta.text.value || "";
        if (delta.text.annotations) text.annotations.push(...delta.text.annotations);
      }
    }
    paint(entry);
  } else if (event.startsWith("thread.message.")) {
    showMessage(data);
  }
}

async function runStream(path, body) {
  $("#send").disabled = true;
  try {
    await stream(path, body, onEvent);
  } finally {
    if (!active) $("#send").disabled = false;
  }
}

async function send(event) {
  event.preventDefault();
  if (!state.assistant) throw new Error("Save an assistant first: a run needs one.");
  const text = $("#message").value;
  const chosen = [...$("#attach").files];
  if (!text.trim() && !chosen.length) return;
  const tool = $("#attach-tool").value;
  const attachments = [];
  for (const file of chosen) attachments.push({ file_id: (await upload(file, "assistants")).id, tools: [{ type: tool }] });
  const message = { role: "user", content: text || "(see attached files)", ...(attachments.length ? { attachments } : {}) };
  if (!state.thread) {
    state.thread = await post("/threads", {});
    $("#thread-current").textContent = state.thread.id;
  }
  showMessage(await post(`/threads/${state.thread.id}/messages`, message));
  $("#message").value = "";
  $("#attach").value = "";
  await runStream(`/threads/${state.thread.id}/runs`, { assistant_id: state.assistant.id, ...overrides() });
  if (!$("#thread-search").value) loadThreads().catch(showError);
}

function showRequired(run) {
  const box = $("#required");
  const calls = run.required_action.submit_tool_outputs.tool_calls;
  const fields = calls.map((call) => {
    const area = h("textarea", { rows: "2", "aria-label": `Output for ${call.function.name}`, "data-call-id": call.id });
    return h("div", { class: "call" }, h("div", { class: "role" }, `${call.function.name}(…)`),
      h("pre", { class: "logs", "aria-label": `Arguments of ${call.function.name}` }, call.function.arguments), area);
  });
  const submit = h("button", { type: "button", onclick: guarded(async () => {
    const outputs = [...box.querySelectorAll("textarea")].map((a) => ({ tool_call_id: a.dataset.callId, output: a.value }));
    box.hidden = true;
    await runStream(`/threads/${run.thread_id}/runs/${run.id}/submit_tool_outputs`, { tool_outputs: outputs });
  }) }, "Submit outputs");
  box.replaceChildren(h("h3", {}, "The run needs function outputs"), ...fields, submit);
  box.hidden = false;
  fields[0]?.querySelector("textarea").focus();
}

export function init() {
  $("#composer").addEventListener("submit", guarded(send));
  $("#message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("#composer").requestSubmit();
  });
  $("#cancel-run").addEventListener("click", guarded(async () => {
    if (!active) return;
    setActive(await post(`/threads/${active.threadId}/runs/${active.runId}/cancel`));
  }));
  $("#thread-new").addEventListener("click", newThread);
  let timer;
  $("#thread-search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(guarded(() => loadThreads()), 250); });
  $("#threads-older").addEventListener("click", guarded(() => loadThreads({ after: page.last })));
  $("#threads-newer").addEventListener("click", guarded(() => loadThreads({ before: page.first })));
  on("assistant", (assistant) => {
    const pick = $("#r-tool-choice");
    for (const option of [...pick.options]) if (option.value.startsWith("function:")) option.remove();
    for (const tool of assistant?.tools || []) if (tool.type === "function") pick.append(h("option", { value: `function:${tool.function.name}` }, `function ${tool.function.name}`));
  });
  newThread();
  loadThreads().catch(showError);
}
