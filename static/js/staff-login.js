// 工作台 desktop login: ask every 2 s where the QR login stands. "scanned": the member scanned and
// has still to confirm on the phone (say so, keep asking); "done": this browser is logged in;
// "code": an SMS code comes first; "refused" (cancelled on the phone), "expired", "error": say so,
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
  var SCANNED = "已扫码，请在手机微信中点消息里的链接，核对后点“确认登录”…";

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
        if (status) { status.textContent = "已确认，正在登录…"; }
        window.location.assign(answer.next);
      } else if (answer.state === "waiting" || answer.state === "scanned") {
        if (answer.state === "scanned" && status) { status.textContent = SCANNED; }
        next();
      } else {
        stop(answer.message || "");
      }
    }).catch(next);
  }

  next();
})();
