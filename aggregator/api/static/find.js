/* "Use my location" on the find page: asks the browser only when the button is pressed, sends the position
   rounded to 3 decimals (about 100 m) with the form. Without this script the page is a plain form. */
(function () {
  "use strict";
  var button = document.getElementById("locate");
  if (!button || !("geolocation" in navigator)) return;
  var form = button.form, say = document.getElementById("locate-status");
  function put(name, value) {
    var input = form.elements[name];
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    }
    input.value = value;
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    say.textContent = button.getAttribute("data-finding");
    button.disabled = true;
    navigator.geolocation.getCurrentPosition(function (where) {
      put("lat", where.coords.latitude.toFixed(3));
      put("lon", where.coords.longitude.toFixed(3));
      form.elements.place.value = "";
      form.submit();
    }, function () {
      button.disabled = false;
      say.textContent = button.getAttribute("data-failed");
      form.elements.place.focus();
    }, {enableHighAccuracy: false, timeout: 15000, maximumAge: 600000});
  });
})();
