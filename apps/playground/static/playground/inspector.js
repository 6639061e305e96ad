// The run inspector: timeline, usage, errors, steps with tool inputs and outputs, raw JSON,
// and the Python SDK code that reproduces the assistant and the run.
import { get, query } from "./api.js";
import { $, copyText, guarded, h, pretty, rawJson, time } from "./ui.js";
import { on, state } from "./state.js";

const INCLUDE = ["step_details.tool_calls[*].file_search.results[*].content"];
let dialogText = "";
let refreshTimer = null;

export function showDialog(title, body, copyable) {
  const dialog = $("#dialog");
  $("#dialog-title").textContent = title;
  $("#dialog-body").replaceChildren(body);
  dialogText = copyable || body.textContent;
  dialog.showModal();
}

function runOptions() {
  const pick = $("#run-pick");
  const selected = state.run?.id;
  pick.replaceChildren(...state.runs.map((r) => h("option", { value: r.id }, `${r.id} · ${r.status}`)));
  if (!state.runs.length) pick.append(h("option", { value: "" }, "No runs yet"));
  if (selected) pick.value = selected;
}

function timeline(run) {
  const rows = [["created", run.created_at], ["started", run.started_at], ["completed", run.completed_at],
    ["failed", run.failed_at], ["cancelled", run.cancelled_at], ["expires", run.expires_at]].filter(([, at]) => at);
  const seen = (state.seen.get(run.id) || []).map(([status, at]) => h("li", {}, `${status} · ${at.toLocaleTimeString()}`));
  return h("div", { class: "timeline" },
    h("dl", {}, ...rows.flatMap(([label, at]) => [h("dt", {}, label), h("dd", {}, time(at))])),
    seen.length ? h("div", {}, h("h4", {}, "Status as streamed"), h("ol", { class: "statuses" }, ...seen)) : null);
}

function stepView(step) {
  const calls = step.step_details.tool_calls || [];
  const body = [];
  if (step.type === "message_creation") body.push(h("p", {}, `Message ${step.step_details.message_creation.message_id}`));
  for (const call of calls) {
    if (call.type === "code_interpreter") {
      body.push(h("h5", {}, "Code Interpreter"), h("pre", { class: "code" }, h("code", {}, call.code_interpreter.input)));
      for (const output of call.code_interpreter.outputs || []) {
        body.push(output.type === "logs" ? h("pre", { class: "logs" }, output.logs) : h("p", {}, `image ${output.image.file_id}`));
      }
    } else if (call.type === "file_search") {
      const results = call.file_search.results || [];
      body.push(h("h5", {}, `File Search · ${results.length} result(s)`));
      body.push(h("ol", { class: "results" }, ...results.map((r) => h("li", {},
        h("b", {}, r.file_name || r.file_id), ` · score ${Number(r.score).toFixed(3)}`,
        r.content ? h("blockquote", { class: "chunk" }, r.content.map((c) => c.text).join("\n")) : null))));
    } else if (call.type === "function") {
      body.push(h("h5", {}, `Function ${call.function.name}`), h("pre", { class: "logs" }, `arguments: ${call.function.arguments}\noutput: ${call.function.output ?? "(waiting)"}`));
    }
  }
  const usage = step.usage ? ` · ${step.usage.total_tokens} tokens` : "";
  const took = step.completed_at ? ` · ${Math.max(0, step.completed_at - step.created_at)} s` : "";
  return h("li", { class: "step" }, h("div", { class: "role" }, `${step.type} · ${step.status}${usage}${took}`),
    ...body, step.last_error ? h("p", { class: "bad" }, step.last_error.message) : null, rawJson(`Step ${step.id}`, step));
}

async function render(run) {
  const box = $("#run-detail");
  if (!run) { box.replaceChildren(h("p", { class: "muted" }, "Start a run to inspect it.")); return; }
  const usage = run.usage ? `${run.usage.prompt_tokens} prompt + ${run.usage.completion_tokens} completion = ${run.usage.total_tokens} tokens` : "—";
  const parts = [
    h("p", {}, h("b", {}, run.status), ` · model ${run.model}`),
    timeline(run),
    h("dl", { class: "facts" }, h("dt", {}, "usage"), h("dd", {}, usage),
      h("dt", {}, "incomplete_details"), h("dd", {}, run.incomplete_details ? pretty(run.incomplete_details) : "—"),
      h("dt", {}, "last_error"), h("dd", { class: run.last_error ? "bad" : "" }, run.last_error ? `${run.last_error.code}: ${run.last_error.message}` : "—")),
    rawJson(`Run ${run.id}`, run),
  ];
  const steps = await get(`/threads/${run.thread_id}/runs/${run.id}/steps${query({ order: "asc", limit: 100, "include[]": INCLUDE })}`);
  parts.push(h("h3", {}, `Steps (${steps.data.length})`), h("ol", { class: "steps", "aria-label": "Run steps" }, ...steps.data.map(stepView)));
  if (state.run?.id === run.id) box.replaceChildren(...parts);
}

function select(run) {
  state.run = run;
  runOptions();
  return render(run);
}

function py(value) {
  return JSON.stringify(value, null, 4).replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None");
}

export function pythonCode(assistant, run) {
  const a = assistant || {};
  const args = { model: a.model || "gpt-4o" };
  for (const name of ["name", "instructions", "temperature", "top_p", "metadata"]) if (a[name] !== null && a[name] !== undefined && !(name === "metadata" && !Object.keys(a[name]).length)) args[name] = a[name];
  if (a.tools?.length) args.tools = a.tools;
  if (a.tool_resources && Object.keys(a.tool_resources).length) args.tool_resources = a.tool_resources;
  if (a.response_format && a.response_format !== "auto") args.response_format = a.response_format;
  const lines = [
    "from openai import OpenAI", "",
    `client = OpenAI(base_url="${location.origin}/v1", api_key="YOUR_API_KEY")`, "",
    `assistant = client.beta.assistants.create(${Object.entries(args).map(([k, v]) => `\n    ${k}=${py(v).replace(/\n/g, "\n    ")},`).join("")}\n)`,
  ];
  const overrides = {};
  if (run) {
    for (const name of ["model", "instructions", "tool_choice", "truncation_strategy", "max_prompt_tokens", "max_completion_tokens"]) {
      const value = run[name];
      const same = name === "model" ? value === a.model : name === "instructions" ? value === (a.instructions || "") : false;
      const defaulted = value === null || value === "auto" || (name === "truncation_strategy" && value?.type === "auto");
      if (!same && !defaulted) overrides[name] = value;
    }
  }
  lines.push(`thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello!"}])`);
  lines.push(`run = client.beta.threads.runs.create_and_poll(\n    thread_id=thread.id,\n    assistant_id=assistant.id,${Object.entries(overrides).map(([k, v]) => `\n    ${k}=${py(v).replace(/\n/g, "\n    ")},`).join("")}\n)`);
  lines.push("print(run.status, client.beta.threads.messages.list(thread.id).data[0].content[0])");
  return lines.join("\n");
}

export function init() {
  $("#run-pick").addEventListener("change", guarded((event) => select(state.runs.find((r) => r.id === event.target.value) || null)));
  $("#view-code").addEventListener("click", () => {
    const code = pythonCode(state.assistant, state.run);
    showDialog("Python SDK code", h("pre", { class: "code" }, h("code", {}, code)), code);
  });
  $("#dialog-copy").addEventListener("click", () => copyText(dialogText));
  on("runs", ({ runs, select: run }) => { state.runs = runs; select(run).catch(() => {}); });
  on("run", (run) => {
    state.run = run;
    runOptions();
    clearTimeout(refreshTimer); // steps are re-read at most every 300 ms while a run streams
    refreshTimer = setTimeout(() => render(run).catch(() => {}), 300);
  });
  render(null);
}
