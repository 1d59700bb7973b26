// The page never carries back the ID number, archive number or phone; after a failed try they
// come back from this tab's own storage, read once and removed.
(function () {
  var form = document.getElementById("bind-form"), key = "wb-bind-typed";
  var names = ["id_number", "archive_no", "phone"], saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(key) || "null"); sessionStorage.removeItem(key); } catch (e) {}
  if (saved && form.hasAttribute("data-failed")) {
    names.forEach(function (n) { if (saved[n] && !form.elements[n].value) form.elements[n].value = saved[n]; });
    if (saved.archive_no) form.querySelector("details").open = true;
  }
  form.addEventListener("submit", function () {
    var typed = {};
    names.forEach(function (n) { typed[n] = form.elements[n].value; });
    try { sessionStorage.setItem(key, JSON.stringify(typed)); } catch (e) {}
  });
})();
