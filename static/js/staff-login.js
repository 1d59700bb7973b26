// 工作台 desktop login: ask every 2 s whether the linked staff member has scanned the QR code.
// "done": this browser is logged in; "code": an SMS code comes first; "expired"/"error": say so,
// and offer a new QR code. A network blip just waits for the next round.
(function () {
  "use strict";
  var box = document.querySelector("[data-qr-login]");
  if (!box) { return; }
  var pollUrl = box.getAttribute("data-poll");
  var token = box.getAttribute("data-token");
  var xsrfInput = box.querySelector("input[name=_xsrf]");
  var xsrf = xsrfInput ? xsrfInput.value : "";
  var deadline = Date.now() + 1000 * (parseInt(box.getAttribute("data-expires-in"), 10) || 300);
  var status = box.querySelector("[data-qr-status]");
  var expired = box.querySelector("[data-qr-expired]");
  var message = box.querySelector("[data-qr-message]");
  var EVERY_MS = 2000;

  function stop(text) {
    if (text && message) { message.textContent = text; }
    if (status) { status.hidden = true; }
    box.querySelector(".st-qr").classList.add("st-qr--stale");
    expired.hidden = false;
  }

  function next() {
    if (Date.now() > deadline) { stop(""); return; }
    window.setTimeout(poll, EVERY_MS);
  }

  function poll() {
    fetch(pollUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-XSRFToken": xsrf },
      body: JSON.stringify({ token: token })
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (answer) {
      if ((answer.state === "done" || answer.state === "code") && answer.next) {
        if (status) { status.textContent = "已扫码，正在登录…"; }
        window.location.assign(answer.next);
      } else if (answer.state === "waiting") {
        next();
      } else {
        stop(answer.message || "");
      }
    }).catch(next);
  }

  next();
})();
