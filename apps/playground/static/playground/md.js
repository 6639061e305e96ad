// A small, safe Markdown renderer: everything is escaped first, then a known set of block and
// inline forms becomes HTML. Annotations are swapped for placeholders before rendering, so a
// citation becomes a footnote and a sandbox path a download link, never the raw marker.
const CITE = "\u0001";
const FILE = "pgfile:";

function escape(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function safeHref(url) {
  return /^(https?:|mailto:)/i.test(url) ? url : null;
}

function inline(text) {
  const codes = [];
  let out = escape(text).replace(/`([^`]+)`/g, (_, code) => { codes.push(code); return `\u0002${codes.length - 1}\u0002`; });
  out = out.replace(/!?\[([^\]]*)\]\(([^)\s]+)\)/g, (whole, label, url) => {
    if (url.startsWith(FILE)) return fileLink(url.slice(FILE.length), label);
    const href = safeHref(url.replace(/&amp;/g, "&"));
    return href ? `<a href="${escape(href)}" rel="noopener noreferrer" target="_blank">${label}</a>` : whole;
  });
  out = out.replace(/pgfile:(file[-_][A-Za-z0-9_-]+)/g, (_, id) => fileLink(id, "Download file"));
  out = out.replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>").replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>");
  out = out.replace(/\u0001(\d+)\u0001/g, (_, n) => `<sup><a href="#" class="citation" data-footnote="${n}" aria-label="Citation ${n}">[${n}]</a></sup>`);
  return out.replace(/\u0002(\d+)\u0002/g, (_, i) => `<code>${codes[Number(i)]}</code>`);
}

function fileLink(fileId, label) {
  return `<a href="#" class="download" data-file-id="${escape(fileId)}">⬇ ${label || "Download file"}</a>`;
}

export function markdown(source) {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  const html = [];
  let paragraph = [];
  let list = null;
  const flush = () => {
    if (paragraph.length) html.push(`<p>${inline(paragraph.join("\n")).replace(/\n/g, "<br>")}</p>`);
    paragraph = [];
  };
  const closeList = () => { if (list) { html.push(`</${list}>`); list = null; } };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^```\s*([\w+-]*)/);
    if (fence) {
      flush(); closeList();
      const code = [];
      for (i++; i < lines.length && !lines[i].startsWith("```"); i++) code.push(lines[i]);
      html.push(`<pre class="code"><code${fence[1] ? ` data-lang="${escape(fence[1])}"` : ""}>${escape(code.join("\n"))}</code></pre>`);
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)/);
    const bullet = line.match(/^\s*[-*+]\s+(.*)/);
    const numbered = line.match(/^\s*\d+[.)]\s+(.*)/);
    if (heading) { flush(); closeList(); html.push(`<h${heading[1].length + 2}>${inline(heading[2])}</h${heading[1].length + 2}>`); }
    else if (bullet || numbered) {
      flush();
      const kind = bullet ? "ul" : "ol";
      if (list !== kind) { closeList(); html.push(`<${kind}>`); list = kind; }
      html.push(`<li>${inline((bullet || numbered)[1])}</li>`);
    } else if (line.startsWith(">")) { flush(); closeList(); html.push(`<blockquote>${inline(line.replace(/^>\s?/, ""))}</blockquote>`); }
    else if (!line.trim()) { flush(); closeList(); }
    else { closeList(); paragraph.push(line); }
  }
  flush(); closeList();
  return html.join("");
}

// A text part with its annotations: {html, footnotes:[{n, fileId, marker}]}.
export function renderText(text) {
  const value = text.value || "";
  const annotations = [...(text.annotations || [])].sort((a, b) => b.start_index - a.start_index);
  const footnotes = [];
  let source = value;
  const citations = annotations.filter((a) => a.type === "file_citation").reverse();
  for (const annotation of annotations) {
    const { start_index: start, end_index: end } = annotation;
    if (!(end > start) || end > source.length) continue;
    let swap;
    if (annotation.type === "file_citation") {
      const n = citations.indexOf(annotation) + 1;
      footnotes.unshift({ n, fileId: annotation.file_citation.file_id, marker: annotation.text });
      swap = `${CITE}${n}${CITE}`;
    } else if (annotation.type === "file_path") {
      swap = `${FILE}${annotation.file_path.file_id}`;
    } else continue;
    source = source.slice(0, start) + swap + source.slice(end);
  }
  // Markers the server did not annotate (still streaming) are hidden rather than shown raw.
  source = source.replace(/【[^】]*】?$/, "").replace(/【\d+:\d+†[^】]*】/g, "");
  footnotes.sort((a, b) => a.n - b.n);
  return { html: markdown(source), footnotes };
}
