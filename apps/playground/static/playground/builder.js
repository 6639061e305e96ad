// The assistant builder: list, create, edit, delete; tools with their files; explicit save.
import { del, fileInfo, get, post, upload } from "./api.js";
import { $, guarded, h } from "./ui.js";
import { emit, state } from "./state.js";

const EXAMPLES = {
  get_weather: { name: "get_weather", description: "Current weather for a city.",
    parameters: { type: "object", properties: { city: { type: "string", description: "City name" } }, required: ["city"] } },
  lookup_order: { name: "lookup_order", description: "Look up an order by its number.",
    parameters: { type: "object", properties: { order_id: { type: "string" } }, required: ["order_id"] } },
};
const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

let assistants = [];
let codeFiles = []; // file ids for Code Interpreter
let dirty = false;

// Why a function definition is not one the API accepts, or null when it is.
export function functionProblem(text) {
  let value;
  try { value = JSON.parse(text); } catch (error) { return `Invalid JSON: ${error.message}`; }
  if (!value || typeof value !== "object" || Array.isArray(value)) return 'A function is a JSON object {"name", "description", "parameters"}.';
  const extra = Object.keys(value).filter((k) => !["name", "description", "parameters", "strict"].includes(k));
  if (extra.length) return `Unknown key '${extra[0]}': use "name", "description" and "parameters".`;
  if (typeof value.name !== "string" || !NAME.test(value.name)) return "'name' must be 1 to 64 letters, digits, underscores or dashes.";
  if ("description" in value && typeof value.description !== "string") return "'description' must be a string.";
  if ("parameters" in value) {
    const p = value.parameters;
    if (!p || typeof p !== "object" || Array.isArray(p)) return "'parameters' must be a JSON Schema object.";
    if (p.type !== "object") return "'parameters.type' must be \"object\".";
    if ("properties" in p && (typeof p.properties !== "object" || Array.isArray(p.properties))) return "'parameters.properties' must be an object.";
    if ("required" in p) {
      if (!Array.isArray(p.required) || p.required.some((r) => typeof r !== "string")) return "'parameters.required' must be an array of strings.";
      const missing = p.required.find((r) => !(p.properties || {})[r]);
      if (missing) return `'parameters.required' names '${missing}', which is not in 'properties'.`;
    }
  }
  if ("strict" in value && typeof value.strict !== "boolean") return "'strict' must be true or false.";
  return null;
}

function markDirty(value = true) {
  dirty = value;
  $("#unsaved").hidden = !value;
  const option = $("#assistant-pick").selectedOptions[0];
  if (option) option.textContent = option.textContent.replace(/ \*$/, "") + (value ? " *" : "");
}

function addFunction(definition) {
  const box = $("#functions");
  const n = box.children.length + 1;
  const area = h("textarea", { class: "mono function-json", rows: "6", "aria-label": `Function ${n} JSON`, "aria-describedby": `function-${n}-check` });
  area.value = JSON.stringify(definition || EXAMPLES.get_weather, null, 2);
  const check = h("p", { id: `function-${n}-check`, class: "check-result", "aria-live": "polite" });
  const validate = () => {
    const problem = functionProblem(area.value);
    check.textContent = problem || "Valid function.";
    check.classList.toggle("bad", Boolean(problem));
    area.setAttribute("aria-invalid", problem ? "true" : "false");
  };
  area.addEventListener("input", validate);
  const remove = h("button", { type: "button", class: "small danger", "aria-label": `Remove function ${n}`,
    onclick: () => { item.remove(); markDirty(); } }, "Remove");
  const item = h("div", { class: "function" }, area, h("div", { class: "row" }, check, remove));
  box.append(item);
  validate();
  return area;
}

function renderCodeFiles() {
  const list = $("#code-file-list");
  list.replaceChildren();
  for (const id of codeFiles) {
    const item = h("li", {}, id);
    fileInfo(id).then((info) => { item.firstChild.textContent = info.filename || id; });
    item.append(" ", h("button", { type: "button", class: "small", "aria-label": `Remove ${id}`,
      onclick: () => { codeFiles = codeFiles.filter((f) => f !== id); renderCodeFiles(); markDirty(); } }, "Remove"));
    list.append(item);
  }
}

async function loadStores(selected) {
  const stores = await get("/vector_stores?limit=100");
  const pick = $("#search-store");
  pick.replaceChildren(h("option", { value: "" }, "New vector store"));
  for (const store of stores.data) pick.append(h("option", { value: store.id }, `${store.name || store.id} (${store.file_counts.completed} files)`));
  pick.value = selected || "";
}

function toolsOf(assistant) {
  return new Set((assistant?.tools || []).map((t) => t.type));
}

function fill(assistant) {
  $("#a-name").value = assistant?.name || "";
  $("#a-instructions").value = assistant?.instructions || "";
  $("#a-model").value = assistant?.model || "gpt-4o";
  $("#a-temperature").value = assistant?.temperature ?? "";
  $("#a-top-p").value = assistant?.top_p ?? "";
  const format = assistant?.response_format;
  $("#a-format").value = typeof format === "object" && format ? format.type : (format || "auto");
  if (format?.type === "json_schema") $("#a-schema").value = JSON.stringify(format.json_schema, null, 2);
  showSchema();
  const tools = toolsOf(assistant);
  $("#t-code").checked = tools.has("code_interpreter");
  $("#t-search").checked = tools.has("file_search");
  $("#code-extra").hidden = !$("#t-code").checked;
  $("#search-extra").hidden = !$("#t-search").checked;
  codeFiles = [...(assistant?.tool_resources?.code_interpreter?.file_ids || [])];
  renderCodeFiles();
  $("#functions").replaceChildren();
  for (const tool of assistant?.tools || []) if (tool.type === "function") addFunction(tool.function);
  $("#a-metadata").value = JSON.stringify(assistant?.metadata || {});
  $("#search-file-list").replaceChildren();
  $("#search-status").textContent = "";
  $("#search-progress").hidden = true;
  const storeId = assistant?.tool_resources?.file_search?.vector_store_ids?.[0];
  loadStores(storeId).then(() => storeId && watchStore(storeId)).catch(() => {});
  markDirty(false);
}

function showSchema() {
  const on = $("#a-format").value === "json_schema";
  for (const node of document.querySelectorAll(".schema-only")) node.hidden = !on;
}

function body() {
  const number = (id) => ($(id).value === "" ? null : Number($(id).value));
  const tools = [];
  if ($("#t-code").checked) tools.push({ type: "code_interpreter" });
  if ($("#t-search").checked) tools.push({ type: "file_search" });
  for (const area of document.querySelectorAll(".function-json")) {
    const problem = functionProblem(area.value);
    if (problem) throw new Error(`${area.getAttribute("aria-label")}: ${problem}`);
    tools.push({ type: "function", function: JSON.parse(area.value) });
  }
  let metadata;
  try { metadata = JSON.parse($("#a-metadata").value || "{}"); } catch (error) { throw new Error(`Metadata: invalid JSON: ${error.message}`); }
  const format = $("#a-format").value;
  let responseFormat = format === "auto" ? "auto" : { type: format };
  if (format === "json_schema") {
    try { responseFormat.json_schema = JSON.parse($("#a-schema").value); } catch (error) { throw new Error(`JSON schema: invalid JSON: ${error.message}`); }
  }
  const toolResources = {};
  if ($("#t-code").checked) toolResources.code_interpreter = { file_ids: codeFiles };
  if ($("#t-search").checked) toolResources.file_search = { vector_store_ids: $("#search-store").value ? [$("#search-store").value] : [] };
  return {
    name: $("#a-name").value || null, instructions: $("#a-instructions").value || null,
    model: $("#a-model").value.trim(), temperature: number("#a-temperature"), top_p: number("#a-top-p"),
    response_format: responseFormat, tools, tool_resources: toolResources, metadata,
  };
}

async function save(event) {
  event.preventDefault();
  const saved = state.assistant
    ? await post(`/assistants/${state.assistant.id}`, body())
    : await post("/assistants", body());
  await refreshList(saved.id);
  select(saved);
  $("#run-status").textContent = `Saved ${saved.id}.`;
}

function select(assistant) {
  state.assistant = assistant;
  fill(assistant);
  emit("assistant", assistant);
}

async function refreshList(selectedId) {
  assistants = (await get("/assistants?limit=100")).data;
  const pick = $("#assistant-pick");
  pick.replaceChildren(...assistants.map((a) => h("option", { value: a.id }, a.name || a.id)));
  if (!assistants.length || !selectedId) pick.prepend(h("option", { value: "" }, "New assistant"));
  pick.value = selectedId || "";
}

// Upload into the assistant's vector store (made on first upload) and follow ingestion.
async function uploadForSearch() {
  const chosen = [...$("#search-files").files];
  if (!chosen.length) return;
  let storeId = $("#search-store").value;
  if (!storeId) {
    const store = await post("/vector_stores", { name: `${$("#a-name").value || "Assistant"} files` });
    storeId = store.id;
    await loadStores(storeId);
    markDirty();
  }
  $("#search-status").textContent = `Uploading ${chosen.length} file(s)…`;
  for (const file of chosen) {
    const uploaded = await upload(file, "assistants");
    await post(`/vector_stores/${storeId}/files`, { file_id: uploaded.id });
  }
  $("#search-files").value = "";
  await watchStore(storeId);
}

async function watchStore(storeId) {
  const progress = $("#search-progress");
  for (;;) {
    if ($("#search-store").value !== storeId) return;
    const files = (await get(`/vector_stores/${storeId}/files?limit=100`)).data;
    const done = files.filter((f) => f.status !== "in_progress").length;
    progress.hidden = !files.length;
    progress.max = Math.max(files.length, 1);
    progress.value = done;
    $("#search-status").textContent = files.length ? `${done} of ${files.length} files processed` : "No files yet.";
    const list = $("#search-file-list");
    list.replaceChildren(...files.map((f) => {
      const item = h("li", { "data-status": f.status }, h("span", { class: "name" }, f.id), " — ",
        h("span", { class: `status ${f.status}` }, f.status), f.last_error ? ` (${f.last_error.message})` : "");
      fileInfo(f.id).then((info) => { item.querySelector(".name").textContent = info.filename || f.id; });
      return item;
    }));
    if (done === files.length) return;
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
}

export async function init() {
  const form = $("#assistant-form");
  form.addEventListener("input", () => markDirty());
  form.addEventListener("change", () => markDirty());
  form.addEventListener("submit", guarded(save));
  $("#a-format").addEventListener("change", showSchema);
  $("#t-code").addEventListener("change", () => { $("#code-extra").hidden = !$("#t-code").checked; });
  $("#t-search").addEventListener("change", () => { $("#search-extra").hidden = !$("#t-search").checked; });
  $("#add-function").addEventListener("click", () => { addFunction().focus(); markDirty(); });
  $("#function-example").addEventListener("change", (event) => {
    const example = EXAMPLES[event.target.value];
    if (example) { addFunction(example); markDirty(); }
    event.target.value = "";
  });
  $("#code-files").addEventListener("change", guarded(async (event) => {
    for (const file of event.target.files) codeFiles.push((await upload(file, "assistants")).id);
    event.target.value = "";
    renderCodeFiles();
    markDirty();
  }));
  $("#search-files").addEventListener("change", guarded(uploadForSearch));
  $("#search-store").addEventListener("change", (event) => event.target.value && watchStore(event.target.value));
  $("#assistant-pick").addEventListener("change", guarded(async (event) => {
    const id = event.target.value;
    select(id ? await get(`/assistants/${id}`) : null);
  }));
  $("#assistant-new").addEventListener("click", () => {
    const pick = $("#assistant-pick");
    if (!pick.querySelector('option[value=""]')) pick.prepend(h("option", { value: "" }, "New assistant"));
    pick.value = "";
    select(null);
    $("#a-name").focus();
  });
  $("#assistant-delete").addEventListener("click", guarded(async () => {
    if (!state.assistant) return select(null);
    await del(`/assistants/${state.assistant.id}`);
    await refreshList(null);
    select(null);
  }));
  get("/models").then((models) => {
    $("#model-list").replaceChildren(...(models.data || []).map((m) => h("option", { value: m.id })));
  }).catch(() => {}); // the upstream's model list is a convenience; the field stays free text
  await refreshList(null);
  if (dirty || state.assistant) { // the user began while the list loaded: keep their work
    $("#assistant-pick").value = state.assistant?.id || "";
    return;
  }
  if (assistants.length) {
    $("#assistant-pick").value = assistants[0].id;
    select(assistants[0]);
  } else select(null);
}
