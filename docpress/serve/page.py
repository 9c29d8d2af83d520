"""The web page at / : a search box and results with highlighted thumbnails (no build step,
no outside resources: it works on a machine without internet)."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>docpress</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
form{display:flex;gap:.5em} input[type=search]{flex:1;font-size:1.1em;padding:.4em}
button{font-size:1.1em} #status{color:#666;margin:.8em 0}
li{display:flex;gap:1.5em;margin:1.5em 0;list-style:none} li img{width:280px;border:1px solid #ccc}
h2{font-size:1.05em;margin:0} .meta{color:#666;font-size:.85em} .error{color:#b00}
</style></head>
<body>
<h1>docpress</h1>
<form id="search"><input type="search" id="q" name="q" placeholder="Ask a question about your PDFs" autofocus>
<select id="method"><option>hybrid</option><option>maxsim</option><option>bm25</option><option>dense</option>
<option>rrf</option></select><button type="submit">Search</button></form>
<div id="status"></div><ol id="results"></ol>
<script>
const key = new URLSearchParams(location.search).get("key");
const withKey = (url) => key ? url + (url.includes("?") ? "&" : "?") + "key=" + encodeURIComponent(key) : url;
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
document.getElementById("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = document.getElementById("q").value.trim();
  const method = document.getElementById("method").value;
  const status = document.getElementById("status"), list = document.getElementById("results");
  if (!q) return;
  status.textContent = "searching..."; status.className = ""; list.innerHTML = "";
  const response = await fetch(withKey("/api/search?k=10&method=" + method + "&q=" + encodeURIComponent(q)));
  const data = await response.json();
  if (!response.ok) { status.textContent = data.error; status.className = "error"; return; }
  status.textContent = data.hits.length ? data.hits.length + " pages" : "no pages match";
  list.innerHTML = data.hits.map((hit, i) => {
    const name = hit.path.split("/").pop();
    const words = [...new Set(hit.regions.flatMap((r) => r.tokens))].join(", ");
    return `<li class="hit"><img loading="lazy" src="${esc(withKey(hit.image_url))}" alt="page ${hit.page_label}">
      <div><h2>${i + 1}. <span class="doc">${esc(name)}</span>, page ${hit.page_label}${hit.missing ? " (file gone)" : ""}</h2>
      <p class="meta">${esc(hit.path)} &middot; score ${hit.score.toFixed(3)} &middot; matched: ${esc(words)}</p>
      <p>${esc(hit.snippet)}</p></div></li>`;
  }).join("");
});
// /?q=QUESTION runs that search on load: a search is a link one can share
const given = new URLSearchParams(location.search).get("q");
if (given) {
  document.getElementById("q").value = given;
  document.getElementById("search").requestSubmit();
}
</script>
</body></html>
"""
