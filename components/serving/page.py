"""The page at `/` for people: pick a concept of the serving version, type a prompt, see the images and the
version that drew them. Plain HTML and a few lines of JavaScript posting to /generate (no build step, no
framework); the element ids (#concept, #prompt, #generate, #images, #version, #error) are its contract."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lfsd serve</title>
<style>
 body { font-family: sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; }
 label { display: block; margin-top: .8rem; }
 input[type=text] { width: 100%; }
 #images img { width: 128px; height: 128px; image-rendering: pixelated; margin: .3rem; border: 1px solid #ccc; }
 #error { color: #b00; }
</style>
</head>
<body>
<h1>lfsd serve</h1>
<p>Model <b id="model"></b>, production version <b id="serving"></b>.</p>
<label>Concept <select id="concept"><option value="">(none)</option></select></label>
<label>Prompt <input id="prompt" type="text" value="a photo"></label>
<label>Images <input id="num_images" type="number" min="1" value="2"></label>
<button id="generate" type="button">Generate</button>
<p>Drawn by version <span id="version">-</span></p>
<p id="error"></p>
<div id="images"></div>
<script>
const $ = (id) => document.getElementById(id);
async function refresh() {
  const r = await fetch("version");
  if (!r.ok) { $("error").textContent = "no version is serving yet"; return; }
  const v = await r.json();
  $("model").textContent = v.model; $("serving").textContent = v.version;
  const pick = $("concept"), keep = pick.value;
  pick.length = 1;
  for (const c of v.concepts) { const o = document.createElement("option"); o.value = c; o.text = c; pick.add(o); }
  pick.value = v.concepts.includes(keep) ? keep : "";
}
$("concept").addEventListener("change", () => {
  const c = $("concept").value;
  if (c && !$("prompt").value.includes("<" + c + ">")) $("prompt").value = "a photo of <" + c + ">";
});
$("generate").addEventListener("click", async () => {
  $("error").textContent = ""; $("generate").disabled = true;
  const body = {prompt: $("prompt").value, num_images: Number($("num_images").value) || 1};
  if ($("concept").value) body.concept = $("concept").value;
  try {
    const r = await fetch("generate", {method: "POST", headers: {"Content-Type": "application/json"},
                                       body: JSON.stringify(body)});
    const out = await r.json();
    if (!r.ok) { $("error").textContent = out.detail; return; }
    $("images").replaceChildren(...out.images.map((b64) => {
      const img = document.createElement("img");
      img.src = "data:image/png;base64," + b64; img.alt = out.concept || ""; return img;
    }));
    $("version").textContent = out.version;
  } catch (e) { $("error").textContent = String(e); }
  finally { $("generate").disabled = false; refresh(); }
});
refresh();
</script>
</body>
</html>
"""
