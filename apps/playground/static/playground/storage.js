// Storage: files (upload, download, delete, purpose) and vector stores (files, counts, expiry,
// search through /v1/vector_stores/{id}/search).
import { del, download, fileInfo, get, post, upload } from "./api.js";
import { $, guarded, h, time } from "./ui.js";

let storeId = null;

async function files() {
  const list = await get("/files?limit=100");
  $("#file-rows").replaceChildren(...list.data.map((file) => h("tr", {},
    h("td", {}, h("span", { class: "name" }, file.filename), h("br"), h("small", { class: "muted" }, file.id)),
    h("td", {}, file.purpose), h("td", {}, String(file.bytes)), h("td", {}, time(file.created_at)),
    h("td", {},
      h("button", { type: "button", class: "small", "aria-label": `Download ${file.filename}`, onclick: guarded(() => download(file.id)) }, "Download"),
      h("button", { type: "button", class: "small danger", "aria-label": `Delete ${file.filename}`,
        onclick: guarded(async () => { await del(`/files/${file.id}`); await files(); }) }, "Delete")))));
}

async function stores() {
  const list = await get("/vector_stores?limit=100");
  $("#store-list").replaceChildren(...list.data.map((store) => h("button", {
    type: "button", class: "store-item", "aria-current": store.id === storeId ? "true" : "false",
    onclick: guarded(() => openStore(store.id)) }, `${store.name || store.id} · ${store.status} · ${store.file_counts.total} files`)));
}

async function openStore(id) {
  storeId = id;
  const [store, storeFiles] = await Promise.all([get(`/vector_stores/${id}`), get(`/vector_stores/${id}/files?limit=100`)]);
  const counts = store.file_counts;
  const expiry = store.expires_after ? `${store.expires_after.days} days after ${store.expires_after.anchor}` : "never";
  const results = h("ol", { class: "results", "aria-label": "Search results" });
  const search = h("form", { class: "row", onsubmit: guarded(async (event) => {
    event.preventDefault();
    const found = await post(`/vector_stores/${id}/search`, { query: input.value });
    results.replaceChildren(...found.data.map((r) => h("li", {}, h("b", {}, r.filename), ` · score ${Number(r.score).toFixed(3)}`,
      h("blockquote", { class: "chunk" }, r.content.map((c) => c.text).join("\n")))));
    if (!found.data.length) results.append(h("li", { class: "muted" }, "No results."));
  }) });
  const input = h("input", { type: "search", "aria-label": "Search vector store", required: true });
  search.append(input, h("button", { type: "submit", class: "small" }, "Search"));
  const rows = storeFiles.data.map((f) => {
    const name = h("span", {}, f.id);
    fileInfo(f.id).then((info) => { name.textContent = info.filename || f.id; });
    return h("li", {}, name, ` · ${f.status}`, f.last_error ? ` · ${f.last_error.message}` : "", ` · ${f.usage_bytes} bytes`);
  });
  const add = h("input", { type: "file", multiple: true, "aria-label": "Add files to vector store", onchange: guarded(async (event) => {
    for (const file of event.target.files) await post(`/vector_stores/${id}/files`, { file_id: (await upload(file, "assistants")).id });
    await openStore(id);
  }) });
  $("#store-detail").replaceChildren(h("h4", {}, store.name || store.id),
    h("dl", { class: "facts" },
      h("dt", {}, "id"), h("dd", {}, store.id), h("dt", {}, "status"), h("dd", {}, store.status),
      h("dt", {}, "files"), h("dd", {}, `${counts.completed} completed, ${counts.in_progress} in progress, ${counts.failed} failed, ${counts.cancelled} cancelled (${counts.total} total)`),
      h("dt", {}, "expires"), h("dd", {}, store.expires_at ? `${time(store.expires_at)} (${expiry})` : expiry),
      h("dt", {}, "size"), h("dd", {}, `${store.usage_bytes} bytes`)),
    h("ul", { class: "files" }, ...rows), add,
    h("button", { type: "button", class: "small danger", onclick: guarded(async () => {
      await del(`/vector_stores/${id}`); storeId = null; $("#store-detail").replaceChildren(); await stores(); }) }, "Delete vector store"),
    search, results);
  await stores();
}

export function refresh() {
  guarded(() => Promise.all([files(), stores()]))();
}

export function init() {
  $("#file-upload").addEventListener("change", guarded(async (event) => {
    for (const file of event.target.files) await upload(file, $("#file-purpose").value);
    event.target.value = "";
    await files();
  }));
  $("#store-create").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    const store = await post("/vector_stores", { name: $("#store-name").value || undefined });
    $("#store-name").value = "";
    await openStore(store.id);
  }));
}
