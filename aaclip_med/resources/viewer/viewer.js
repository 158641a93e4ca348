// aaclip-med case viewer: one case per page load (#case=<key>); state for tests in window.aaclipViewer.
(function () {
  "use strict";
  const state = { ready: false, error: null, key: null, kind: null, loadedFrom: null, nv: null, readout: null };
  window.aaclipViewer = state;
  const meta = window.aaclipCases || { cases: [] };
  const byId = (id) => document.getElementById(id);
  const fmt = (v) => (v === null || v === undefined || Number.isNaN(Number(v)) ? "-" : Number(v).toPrecision(4));

  function fail(err) {
    state.error = String((err && err.message) || err);
    const box = byId("error");
    box.hidden = false;
    box.textContent = "This case cannot be shown: " + state.error;
  }

  function selectedKey() {
    const match = /(?:^|[#&])case=([^&]+)/.exec(location.hash);
    if (match) return decodeURIComponent(match[1]);
    return meta.cases.length ? meta.cases[0].key : null;
  }

  function caseList(current) {
    const nav = byId("case-list");
    let lastClass = null;
    for (const c of meta.cases) {
      if (c.class_name !== lastClass) {
        const heading = document.createElement("h3");
        heading.textContent = c.class_name;
        nav.appendChild(heading);
        lastClass = c.class_name;
      }
      const link = document.createElement("a");
      link.href = "#case=" + encodeURIComponent(c.key);
      link.textContent = c.title + " ";
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = c.label === "anomalous" ? "anomalous" : "";
      link.appendChild(badge);
      if (c.key === current) link.className = "current";
      nav.appendChild(link);
    }
  }

  function facts(c) {
    const parts = ["class " + c.class_name, "modality " + c.modality, "ground truth: " + c.label,
      "case score " + fmt(c.score) + " (" + c.protocol + " protocol)"];
    if (c.top_slice !== null && c.top_slice !== undefined) parts.push("highest-scoring slice " + c.top_slice);
    byId("case-title").textContent = c.image_path;
    byId("case-facts").textContent = parts.join(" · ");
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const tag = document.createElement("script");
      tag.src = src;
      tag.onload = resolve;
      tag.onerror = () => reject(new Error("cannot load " + src));
      document.head.appendChild(tag);
    });
  }

  const LAYERS = ["source", "anomaly", "truth"];

  function layerOptions(c) {
    return {
      source: { colormap: "gray", opacity: 1, cal_min: c.display_range[0], cal_max: c.display_range[1] },
      anomaly: { colormap: "warm", opacity: 0.6, cal_min: c.threshold, cal_max: c.range[1] },
      truth: { colormap: "green", opacity: 0.4, cal_min: 0.5, cal_max: 1 },
    };
  }

  // Each case's volumes are stored once, in its volumes.js (base64 of the .nii.gz bytes), loaded by a
  // script tag: browsers refuse fetch from file://, and a served folder works the same way.
  async function loadVolumes(c) {
    const options = layerOptions(c);
    await loadScript(c.files.volumes);
    const encoded = (window.aaclipVolumes || {})[c.key];
    if (!encoded) throw new Error(c.files.volumes + " holds no volumes for " + c.key);
    state.loadedFrom = "script";
    saveLinks(encoded);
    return Promise.all(LAYERS.map((name) =>
      niivue.NVImage.loadFromBase64({ base64: encoded[name], name: name + ".nii.gz", ...options[name] })));
  }

  // NiiVue reports voxels of its RAS-reoriented copy; the file's own (i, j, k) come from the mm position.
  function fileVoxel(c, mm) {
    const m = c.ras_to_voxel;
    return [0, 1, 2].map((r) => Math.round(m[r][0] * mm[0] + m[r][1] * mm[1] + m[r][2] * mm[2] + m[r][3]));
  }

  function readout(c, location) {
    const values = (location && location.values) || [];
    if (values.length < 3 || !location.mm) return;
    const mm = Array.from(location.mm).slice(0, 3);
    const vox = fileVoxel(c, mm);
    const anomaly = Number(values[1].value);
    const truth = Number(values[2].value);
    state.readout = { vox: vox, mm: mm, anomaly: anomaly, truth: truth };
    const threshold = Number(byId("threshold").value);
    const where = Number.isNaN(anomaly) ? "not predicted (slice not in the manifest)"
      : fmt(anomaly) + (anomaly >= threshold ? " (at or above the threshold)" : " (below the threshold)");
    byId("readout").textContent = "voxel [" + vox.join(", ") + "] (" + mm.map((v) => v.toFixed(1)).join(", ") +
      " mm RAS) · anomaly " + where +
      " · ground truth: " + (truth >= 0.5 ? "inside" : "outside");
  }

  function controls(c, nv) {
    const views = { axial: nv.sliceTypeAxial, coronal: nv.sliceTypeCoronal, sagittal: nv.sliceTypeSagittal,
      multi: nv.sliceTypeMultiplanar };
    document.querySelectorAll("button[data-view]").forEach((button) => {
      button.onclick = () => {
        nv.setSliceType(views[button.dataset.view]);
        document.querySelectorAll("button[data-view]").forEach((b) => b.classList.toggle("current", b === button));
      };
    });
    const opacity = byId("opacity");
    opacity.oninput = () => { nv.setOpacity(1, Number(opacity.value)); byId("opacity-value").textContent = opacity.value; };
    byId("opacity-value").textContent = opacity.value;
    const threshold = byId("threshold");
    threshold.min = c.range[0];
    threshold.max = c.range[1];
    threshold.step = (c.range[1] - c.range[0]) / 500 || 1e-6;
    threshold.value = c.threshold;
    threshold.oninput = () => {
      nv.volumes[1].cal_min = Number(threshold.value);
      nv.updateGLVolume();
      byId("threshold-value").textContent = fmt(threshold.value);
    };
    byId("threshold-value").textContent = fmt(c.threshold);
    const truth = byId("truth");
    truth.onchange = () => nv.setOpacity(2, truth.checked ? 0.4 : 0);
  }

  function volumeNotes(c) {
    byId("volume-note").textContent = "Map as evaluated, colours from the threshold to the class's highest value (" +
      fmt(c.range[1]) + "); default threshold: " + c.threshold_reason + ". Slices with a prediction: " +
      c.slices.join(", ") + " of " + c.dims[2] + ". Crosshair starts at the highest anomaly value (" +
      fmt(c.peak_value) + "); click to move it.";
  }

  // Save links for the three volumes: the bytes already loaded from volumes.js, decoded on click.
  function saveLinks(encoded) {
    const files = byId("volume-files");
    files.textContent = "Save the volumes (open in 3D Slicer, ITK-SNAP): ";
    LAYERS.forEach((name) => {
      const link = document.createElement("a");
      link.href = "#";
      link.download = name + ".nii.gz";
      link.textContent = name + ".nii.gz";
      link.onclick = () => {
        const bytes = Uint8Array.from(atob(encoded[name]), (ch) => ch.charCodeAt(0));
        link.href = URL.createObjectURL(new Blob([bytes], { type: "application/gzip" }));
      };
      files.appendChild(link);
      files.appendChild(document.createTextNode(" "));
    });
  }

  async function showVolume(c) {
    byId("volume-panel").hidden = false;
    volumeNotes(c);
    const nv = new niivue.Niivue({ backColor: [0, 0, 0, 1], crosshairColor: [1, 1, 1, 0.7], isColorbar: true,
      show3Dcrosshair: false, dragAndDropEnabled: false, multiplanarShowRender: niivue.SHOW_RENDER.NEVER });
    state.nv = nv;
    await nv.attachTo("gl");
    const images = await loadVolumes(c);
    images.forEach((image, n) => {
      const options = layerOptions(c)[LAYERS[n]];
      image.cal_min = options.cal_min;
      image.cal_max = options.cal_max;
      image.colorbarVisible = LAYERS[n] === "anomaly";
      nv.addVolume(image);
    });
    controls(c, nv);
    nv.onLocationChange = (location) => readout(c, location);
    nv.setSliceType(nv.sliceTypeMultiplanar);
    document.querySelector("button[data-view='multi']").classList.add("current");
    nv.scene.crosshairPos = nv.mm2frac(c.peak_mm);
    nv.updateGLVolume();
    nv.createOnLocationChange();
  }

  function showImage(c) {
    byId("image-panel").hidden = false;
    const after = byId("after");
    const before = byId("before");
    const split = byId("split");
    const loaded = [after];
    after.src = c.files.overlay;
    if (c.files.image) {
      before.src = c.files.image;
      loaded.push(before);
    } else {
      before.hidden = true;
      split.disabled = true;
    }
    split.oninput = () => {
      before.style.clipPath = "inset(0 " + (100 - Number(split.value)) + "% 0 0)";
      byId("divider").style.left = split.value + "%";
    };
    return Promise.all(loaded.map((img) => img.decode()));
  }

  async function main() {
    const key = selectedKey();
    caseList(key);
    window.addEventListener("hashchange", () => location.reload());
    const c = meta.cases.find((item) => item.key === key);
    if (!c) {
      if (key) fail("no case " + key + " in this report");
      state.ready = true;
      return;
    }
    state.key = c.key;
    state.kind = c.kind;
    facts(c);
    if (c.kind === "volume") await showVolume(c);
    else await showImage(c);
    state.ready = true;
  }

  main().catch((err) => { fail(err); state.ready = true; });
})();
