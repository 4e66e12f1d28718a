// sonorisk reader study: autosave of the answer being entered. Each change of the
// BI-RADS choice or the confidence slider is sent, debounced, to the step's draft URL,
// so a reload, a closed tab or a server restart keeps it; the server deletes the draft
// when the answer is saved. The anti-forgery token travels as the X-CSRF-Token header.
// Each draft names the saved answer its page showed (saved_at): a draft request that
// arrives after the answer was saved is refused by the server, so a late autosave
// never shadows the answer, and Save never has to wait for one.
(function () {
  var form = document.getElementById("read-form");
  var meta = document.querySelector("meta[name=csrf-token]");
  if (!form || !form.dataset.draftUrl || !meta) return;
  var DELAY_MS = 500;  // one request per pause, not one per slider pixel
  var status = document.getElementById("draft-status");
  var timer = null;
  var busy = false, again = false;  // one request at a time, so drafts arrive in order

  function show(text) { if (status) status.textContent = text; }

  function values() {
    var checked = form.querySelector("input[name=birads]:checked");
    return new URLSearchParams({
      birads: checked ? checked.value : "",
      confidence: form.querySelector("input[name=confidence]").value,
      saved_at: form.dataset.savedAt || "",
    });
  }

  function send() {
    timer = null;
    if (busy) { again = true; return; }
    busy = true;
    fetch(form.dataset.draftUrl, {
      method: "POST", body: values(), credentials: "same-origin",
      keepalive: true,  // finishes even when the page is being closed
      headers: { "X-CSRF-Token": meta.content, "Accept": "application/json" },
    }).then(function (r) {
      show(r.ok ? "Draft kept (not saved yet)" : "Draft not kept (" + r.status + ")");
    }).catch(function () {
      show("Draft not kept: the server did not answer");
    }).then(function () {
      busy = false;
      if (again) { again = false; send(); }
    });
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(send, DELAY_MS);
    show("Draft: keeping…");
  }

  form.addEventListener("change", schedule);
  form.addEventListener("input", schedule);
  form.addEventListener("submit", function () {
    clearTimeout(timer);  // the answer itself is being sent: no draft after it
    timer = null;
    again = false;
  });
  // leaving the page with a change not yet sent: send it now
  window.addEventListener("pagehide", function () { if (timer) send(); });
})();
