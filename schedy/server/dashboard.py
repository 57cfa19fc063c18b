"""The dashboard: one static page that lists experiments and jobs through the API.

The page holds no data; it asks for a token (kept in the browser's local storage) and
reads everything through ``/api/v1`` with it. It is served with a Content-Security-Policy
(``HEADERS``) that lets only its own inline script and style run and only this service be
fetched, so a name that ever slipped through its escaping could not run a script.
"""

import base64
import hashlib

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Schedy</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-top:1em}
td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}
a{cursor:pointer;color:#06c}code{font-size:12px}#error{color:#b00}
</style></head><body>
<h1>Schedy</h1>
<p><label>Token <input id="token" type="password" size="50"></label> <button id="save">Use</button></p>
<p id="error"></p><h2 id="title">Experiments</h2><div id="view"></div>
<script>
const api = "/api/v1";
const tokenBox = document.getElementById("token");
tokenBox.value = localStorage.getItem("schedyToken") || "";
document.getElementById("save").onclick = () => { localStorage.setItem("schedyToken", tokenBox.value); experiments(); };
const seg = s => encodeURIComponent(s).replace(/\\./g, "%2E");
const text = s => { const d = document.createElement("div"); d.textContent = s; return d.innerHTML; };
async function get(path) {
  const r = await fetch(api + path, {headers: {Authorization: "Bearer " + tokenBox.value}});
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || r.status);
  return body;
}
async function all(path) {
  let items = [], cursor = "";
  do {
    const page = await get(path + (path.includes("?") ? "&" : "?") + "limit=500&cursor=" + encodeURIComponent(cursor));
    items = items.concat(page.items); cursor = page.next;
  } while (cursor);
  return items;
}
function show(title, head, rows) {
  document.getElementById("title").textContent = title;
  document.getElementById("view").innerHTML = "<table><tr>" + head.map(h => "<th>" + h + "</th>").join("") +
    "</tr>" + rows.join("") + "</table>";
}
async function experiments() {
  try {
    document.getElementById("error").textContent = "";
    const items = await all("/experiments");
    show("Experiments", ["Name", "Status", "Scheduler", "Created"], items.map(({document: e}) =>
      "<tr><td><a data-name=\\"" + text(e.name).replace(/"/g, "&quot;") + "\\">" + text(e.name) + "</a></td><td>" +
      e.status + "</td><td>" + text(Object.keys(e.scheduler)[0]) + "</td><td>" + (e.created || "") + "</td></tr>"));
    document.querySelectorAll("a[data-name]").forEach(a => a.onclick = () => jobs(a.dataset.name));
  } catch (e) { document.getElementById("error").textContent = e.message; }
}
async function jobs(name) {
  try {
    const items = await all("/experiments/" + seg(name) + "/jobs");
    show("Jobs of " + name, ["Id", "Status", "Hyperparameters", "Results", "Updated"], items.map(({document: j}) =>
      "<tr><td>" + text(j.id) + "</td><td>" + j.status + "</td><td><code>" + text(JSON.stringify(j.hyperparameters)) +
      "</code></td><td><code>" + text(JSON.stringify(j.results)) + "</code></td><td>" + (j.updated || "") + "</td></tr>"));
  } catch (e) { document.getElementById("error").textContent = e.message; }
}
if (tokenBox.value) experiments();
</script></body></html>
"""


def _source_hash(tag: str) -> str:
    """The CSP hash source of the page's inline ``<tag>`` element (its text, as served)."""
    start = PAGE.index(f"<{tag}>") + len(tag) + 2
    digest = hashlib.sha256(PAGE[start : PAGE.index(f"</{tag}>", start)].encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


#: Response headers of the page.
HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src {_source_hash('script')}; style-src {_source_hash('style')}; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
