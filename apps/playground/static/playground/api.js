// The public /v1 API, and nothing else: every call carries the key from localStorage in the
// Authorization header (never in a URL), and every error surfaces the API's own message.
const KEY = "playground.apiKey";
const BETA = { "OpenAI-Beta": "assistants=v2" };

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The server answered ${status}.`);
    this.status = status;
    this.code = error.code || null;
    this.param = error.param || null;
  }
}

export const key = {
  get: () => localStorage.getItem(KEY) || "",
  set: (value) => localStorage.setItem(KEY, value),
  clear: () => localStorage.removeItem(KEY),
};

function headers(extra = {}, apiKey = key.get()) {
  return { Authorization: `Bearer ${apiKey}`, ...BETA, ...extra };
}

async function parse(response) {
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export async function call(method, path, body, apiKey) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }, apiKey) };
  if (body !== undefined) init.body = JSON.stringify(body);
  return parse(await fetch(`/v1${path}`, init));
}

export const get = (path, apiKey) => call("GET", path, undefined, apiKey);
export const post = (path, body = {}) => call("POST", path, body);
export const del = (path) => call("DELETE", path);

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (Array.isArray(value)) value.forEach((item) => search.append(name, item));
    else if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export async function upload(file, purpose) {
  const form = new FormData();
  form.append("purpose", purpose);
  form.append("file", file, file.name);
  return parse(await fetch("/v1/files", { method: "POST", headers: headers(), body: form }));
}

const blobs = new Map();
export async function fileBlobUrl(fileId) {
  if (!blobs.has(fileId)) {
    blobs.set(fileId, (async () => {
      const response = await fetch(`/v1/files/${encodeURIComponent(fileId)}/content`, { headers: headers() });
      if (!response.ok) await parse(response);
      return URL.createObjectURL(await response.blob());
    })());
  }
  try { return await blobs.get(fileId); } catch (error) { blobs.delete(fileId); throw error; }
}

const files = new Map();
export function fileInfo(fileId) {
  if (!files.has(fileId)) files.set(fileId, get(`/files/${encodeURIComponent(fileId)}`).catch(() => ({ id: fileId, filename: fileId })));
  return files.get(fileId);
}

export async function download(fileId) {
  const [url, info] = await Promise.all([fileBlobUrl(fileId), fileInfo(fileId)]);
  const link = document.createElement("a");
  link.href = url;
  link.download = (info.filename || fileId).split("/").pop();
  document.body.append(link);
  link.click();
  link.remove();
}

// A streamed run: POSTs and hands each server-sent event ({event, data}) to onEvent until done.
export async function stream(path, body, onEvent, signal) {
  const response = await fetch(`/v1${path}`, {
    method: "POST", signal,
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!response.ok) await parse(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue; // a keep-alive comment
      const text = data.join("\n");
      if (event === "done") return;
      const payload = text === "[DONE]" ? null : JSON.parse(text);
      if (event === "error") throw new ApiError(500, payload);
      onEvent(event, payload);
    }
  }
}
