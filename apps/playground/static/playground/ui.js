// Small DOM helpers and the one place API errors are shown.
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else if (name === "html") node.innerHTML = value;
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function showError(error) {
  const banner = $("#error");
  banner.textContent = error && error.message ? error.message : String(error);
  banner.hidden = false;
  console.error(error);
}

export function clearError() {
  $("#error").hidden = true;
}

// Runs an async action from a control; any failure lands in the error banner.
export function guarded(action) {
  return async (...args) => {
    try { clearError(); return await action(...args); } catch (error) { showError(error); return undefined; }
  };
}

export function time(unix) {
  return unix ? new Date(unix * 1000).toLocaleString() : "—";
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h("textarea", { "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

// Raw JSON of an API object, collapsible and copyable.
export function rawJson(label, value) {
  const text = pretty(value);
  return h("details", { class: "raw" },
    h("summary", {}, `${label} JSON`),
    h("button", { type: "button", class: "small", "aria-label": `Copy ${label} JSON`, onclick: () => copyText(text) }, "Copy"),
    h("pre", {}, text));
}
