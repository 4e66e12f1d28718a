// sonorisk reader study: the reading view (player.js) and the confidence input.
// No inline scripts (Content-Security-Policy): everything is wired up here by id.
// The case video is the clock; the AI overlay, when shown, follows it; the heatmap
// strip shown is the one of the clip under the current frame, fetched on demand.
(function () {
  var viewer = document.getElementById("viewer");
  if (viewer) setUpViewer(viewer);
  setUpConfidence();

  function $(id) { return document.getElementById(id); }

  function on(id, event, handler) {
    var el = $(id);
    if (el) el.addEventListener(event, handler);
    return el;
  }

  function setUpViewer(viewer) {
    var video = $("video"), overlay = $("overlay"), stage = $("stage");
    var fps = parseFloat(viewer.dataset.fps) || 30;
    var frames = parseInt(viewer.dataset.frames, 10) || 1;
    var counter = $("frame-counter"), play = $("play");

    function frameIndex() {
      return Math.max(0, Math.min(frames - 1, Math.floor(video.currentTime * fps + 1e-3)));
    }
    function seekFrame(i) {
      video.pause();
      i = Math.max(0, Math.min(frames - 1, i));
      video.currentTime = (i + 0.5) / fps;  // the middle of frame i
    }
    function showFrame() {
      counter.textContent = "frame " + (frameIndex() + 1) + " / " + frames;
      followOverlay();
      showHeatmap();
    }

    // --- player -----------------------------------------------------------------
    on("play", "click", function () {
      if (video.paused) { if (video.ended) video.currentTime = 0; video.play(); } else video.pause();
    });
    on("frame-back", "click", function () { seekFrame(frameIndex() - 1); });
    on("frame-fwd", "click", function () { seekFrame(frameIndex() + 1); });
    on("loop", "change", function (e) { video.loop = e.target.checked; });
    on("speed", "change", function (e) { video.playbackRate = parseFloat(e.target.value); e.target.blur(); });
    video.addEventListener("play", function () { play.textContent = "Pause"; followOverlay(); });
    video.addEventListener("pause", function () { play.textContent = "Play"; followOverlay(); });
    ["timeupdate", "seeked", "ratechange"].forEach(function (ev) { video.addEventListener(ev, showFrame); });
    // a mouse click leaves the focus where it was, so space and the arrows keep
    // driving the player rather than the last button clicked
    document.querySelectorAll("button.tool").forEach(function (b) {
      b.addEventListener("mousedown", function (e) { e.preventDefault(); });
    });

    // --- brightness and contrast: CSS filters of the display, never the file --------
    function applyView() {
      stage.style.setProperty("--brightness", $("brightness").value / 100);
      stage.style.setProperty("--contrast", $("contrast").value / 100);
    }
    ["brightness", "contrast"].forEach(function (id) {
      on(id, "input", applyView);
      on(id, "change", function (e) { e.target.blur(); });  // arrows step frames again
    });
    on("view-reset", "click", function () { $("brightness").value = 100; $("contrast").value = 100; applyView(); });

    // --- time on the case, counted from its first view (the reading clock) ---------
    var since = Date.now() - 1000 * (parseInt(viewer.dataset.elapsed, 10) || 0);
    function tick() {
      var s = Math.floor((Date.now() - since) / 1000);
      $("case-time").textContent = "time on case " + Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
    }
    tick();
    setInterval(tick, 1000);

    // --- the AI overlay, in step with the case video ------------------------------
    function followOverlay() {
      if (!overlay || overlay.hidden) return;
      overlay.playbackRate = video.playbackRate;
      // while playing, small drift is left alone (seeking every tick would stutter)
      var slack = video.paused ? 0.25 / fps : 0.15;
      if (Math.abs(overlay.currentTime - video.currentTime) > slack) overlay.currentTime = video.currentTime;
      if (video.paused && !overlay.paused) overlay.pause();
      if (!video.paused && overlay.paused) overlay.play();
    }
    on("overlay-toggle", "click", function (e) {
      overlay.hidden = !overlay.hidden;
      e.target.setAttribute("aria-pressed", String(!overlay.hidden));
      if (overlay.readyState === 0) {  // preload="none" until asked for: load it now
        overlay.preload = "auto";
        overlay.load();
      }
      if (overlay.hidden) overlay.pause(); else followOverlay();
    });
    if (overlay) overlay.addEventListener("loadeddata", followOverlay);

    // --- heatmap strips: the clip under the current frame, on demand ----------------
    var box = $("heatmap");
    var strips = box ? JSON.parse(box.dataset.strips) : [];
    var shown = null;  // the URLs on display, to rebuild only when the clip changes
    function showHeatmap() {
      if (!box || box.hidden) return;
      var f = frameIndex();
      var here = strips.filter(function (s) { return s.first <= f && f <= s.last; });
      var key = here.map(function (s) { return s.url; }).join(" ");
      if (key === shown) return;
      shown = key;
      var holder = $("heatmap-strips");
      holder.textContent = "";
      here.forEach(function (s) {
        var img = document.createElement("img");
        img.src = s.url;
        img.alt = "heatmap of lesion " + s.lesion + ", frames " + (s.first + 1) + "–" + (s.last + 1);
        holder.appendChild(img);
      });
      $("heatmap-caption").textContent = here.length
        ? here.map(function (s) { return "lesion " + s.lesion + ", frames " + (s.first + 1) + "–" + (s.last + 1); }).join("; ")
        : "no scored clip at frame " + (f + 1);
    }
    on("heatmap-toggle", "click", function (e) {
      box.hidden = !box.hidden;
      e.target.setAttribute("aria-pressed", String(!box.hidden));
      shown = null;
      showHeatmap();
    });
  }

  // The confidence: the slider, or a number typed in the box; both set the hidden field.
  function setUpConfidence() {
    var slider = $("confidence"), out = $("confidence-value"), field = $("confidence-field");
    var number = $("confidence-number");
    if (!slider || !out || !field) return;
    function set(value) {
      out.textContent = value;
      field.value = value;
      slider.value = value;
      if (number && number.value !== String(value)) number.value = value;
      slider.classList.remove("unset");
    }
    slider.addEventListener("input", function () { set(slider.value); });
    if (number) number.addEventListener("input", function () {
      // only a whole number 0-100 is taken; anything else is left to the browser's
      // check of min/max/step, which stops the form from being sent
      if (number.checkValidity() && number.value !== "") set(String(parseInt(number.value, 10)));
    });
  }
})();
