// 批量开放进度: polls the job's JSON (same origin, the staff cookie) until it is done or failed,
// and fills in the numbers; without JavaScript a reload shows the same thing.
(function () {
  var box = document.querySelector("[data-poll]");
  if (!box) return;
  var bar = box.querySelector("progress");

  function show(p) {
    box.setAttribute("data-state", p.state);
    box.querySelectorAll("[data-field]").forEach(function (el) {
      el.textContent = String(p[el.getAttribute("data-field")]);
    });
    box.querySelectorAll("[data-show]").forEach(function (el) {
      el.hidden = el.getAttribute("data-show") !== p.state;
    });
    bar.max = Math.max(p.total, 1);
    bar.value = p.total ? p.done : (p.state === "done" ? 1 : 0);
  }

  function poll() {
    fetch(box.getAttribute("data-poll"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 404) return { gone: true };  // the job is no longer known: stop asking
        return r.ok ? r.json() : null;
      })
      .then(function (p) {
        if (p && p.gone) {  // lost with its process (the run is one transaction: nothing changed)
          box.setAttribute("data-state", "failed");
          box.querySelectorAll("[data-show]").forEach(function (el) {
            el.hidden = el.getAttribute("data-show") !== "failed";
          });
          return;
        }
        if (p) show(p);
        if (!p || p.state === "running") setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }

  if (box.getAttribute("data-state") === "running") poll();
})();
