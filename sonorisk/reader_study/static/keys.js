// sonorisk reader study: the keyboard of the reading view. Every key does what a click
// does (it clicks the same button or checks the same radio), so mouse and keyboard
// cannot disagree. Keys never fire while the focus is in a field that takes keys
// itself (the confidence number, a slider, a select): Escape leaves such a field.
(function () {
  var form = document.getElementById("read-form");
  var OWN_KEYS = /^(text|number|password|search|email|url|tel|range)$/;

  function takesKeys(el) {
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" && OWN_KEYS.test(el.type);
  }
  function click(id) {
    var el = document.getElementById(id);
    if (el) el.click();
    return Boolean(el);
  }
  function radios() { return form ? Array.from(form.querySelectorAll("input[name=birads]")) : []; }

  function choose(key) {
    var radio = radios().find(function (r) { return r.dataset.key === key; });
    // "4" alone is not a category here (4A, 4B, 4C are): it marks the letters to press
    var sub = radios().filter(function (r) { return r.value.length > 1 && r.value[0] === key; });
    if (!radio && !sub.length) return false;
    radios().forEach(function (r) { r.parentElement.classList.toggle("pending", sub.indexOf(r) >= 0); });
    if (radio) {
      radio.checked = true;
      radio.dispatchEvent(new Event("change", { bubbles: true }));  // autosave sees it
    }
    return true;
  }

  function save() {
    if (form) { form.requestSubmit(); return true; }
    return click("continue");  // a final read: Enter goes on
  }

  var ACTIONS = {
    " ": function () { return click("play"); },
    "ArrowLeft": function () { return click("frame-back"); },
    "ArrowRight": function () { return click("frame-fwd"); },
    "Enter": save,
    "o": function () { return click("overlay-toggle"); },
    "h": function () { return click("heatmap-toggle"); },
    "m": function () {
      var box = document.getElementById("confidence-number");
      if (box) { box.focus(); box.select(); }
      return Boolean(box);
    },
  };

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
    var el = e.target;
    if (takesKeys(el)) { if (e.key === "Escape") el.blur(); return; }
    // a focused button, link or disclosure answers space and Enter itself
    if ((e.key === " " || e.key === "Enter") && el.closest("button, a, summary")) return;
    if (e.repeat && e.key === "Enter") return;  // one save per press
    var key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    var act = ACTIONS[key];
    if (act ? act() : choose(key)) e.preventDefault();
  });
})();
