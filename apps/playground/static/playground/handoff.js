// A staff session opened the Playground for a project: keep that project's key, then load the
// Playground (the key travels in the page body, never in a URL).
const meta = document.querySelector('meta[name="playground-key"]');
if (meta && meta.content) localStorage.setItem("playground.apiKey", meta.content);
location.replace("/playground/");
