// sonorisk reader study: video player controls (play/pause, frame step, loop, speed)
// and the confidence slider's read-out. No inline scripts (Content-Security-Policy).
(function () {
  document.querySelectorAll("[data-player]").forEach(function (box) {
    var video = box.querySelector("video");
    var fps = parseFloat(box.dataset.fps) || 30;
    var frames = parseInt(box.dataset.frames, 10) || 0;
    var counter = box.querySelector(".frame");
    function frameIndex() {
      return Math.min(frames - 1, Math.floor(video.currentTime * fps + 1e-3));
    }
    function show() {
      if (counter) counter.textContent = "frame " + (frameIndex() + 1) + " / " + frames;
    }
    function seekFrame(i) {
      video.pause();
      i = Math.max(0, Math.min(frames - 1, i));
      video.currentTime = (i + 0.5) / fps;  // the middle of frame i
    }
    box.querySelectorAll("[data-act]").forEach(function (el) {
      var act = el.dataset.act;
      if (act === "play") el.addEventListener("click", function () {
        if (video.paused) { if (video.ended) video.currentTime = 0; video.play(); } else video.pause();
      });
      if (act === "back") el.addEventListener("click", function () { seekFrame(frameIndex() - 1); });
      if (act === "fwd") el.addEventListener("click", function () { seekFrame(frameIndex() + 1); });
      if (act === "loop") el.addEventListener("change", function () { video.loop = el.checked; });
      if (act === "speed") el.addEventListener("change", function () { video.playbackRate = parseFloat(el.value); });
    });
    var play = box.querySelector("[data-act=play]");
    video.addEventListener("play", function () { if (play) play.textContent = "Pause"; });
    video.addEventListener("pause", function () { if (play) play.textContent = "Play"; });
    video.addEventListener("timeupdate", show);
    video.addEventListener("seeked", show);
    if (video.id === "video") document.addEventListener("keydown", function (e) {
      if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
      if (e.key === "ArrowLeft") seekFrame(frameIndex() - 1);
      if (e.key === "ArrowRight") seekFrame(frameIndex() + 1);
    });
  });
  var slider = document.getElementById("confidence");
  var out = document.getElementById("confidence-value");
  var field = document.getElementById("confidence-field");
  if (slider && out && field) slider.addEventListener("input", function () {
    out.textContent = slider.value;
    field.value = slider.value;
    slider.classList.remove("unset");
  });
})();
