/* The "Check Availability at a Center Near You" button for a partner's page. Paste where it should show:
     <script src="https://THIS-SERVER/embed/button.js" data-lang="en" async></script>
   It puts a plain link to this server's /find (data-lang="es": /es/find) in place of the script tag: no
   cookie, no tracking, nothing else loaded; the link sends no referrer. Styles go through the DOM (no inline
   style attribute), so a strict Content-Security-Policy on the partner's page allows them. */
(function () {
  "use strict";
  var texts = {{ texts }}, paths = {{ paths }};
  var script = document.currentScript;
  if (!script || !script.src) return;
  var lang = script.getAttribute("data-lang") === "es" ? "es" : "en";
  var link = document.createElement("a");
  link.href = new URL(paths[lang], script.src).href;
  link.textContent = texts[lang];
  link.lang = lang;
  link.rel = "noreferrer";
  link.referrerPolicy = "no-referrer";
  link.className = "center-availability-button";
  var s = link.style;
  s.display = "inline-block"; s.padding = "0.8em 1.2em"; s.borderRadius = "6px"; s.background = "#1d4f91";
  s.color = "#fff"; s.font = "600 1.1rem/1.3 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  s.textDecoration = "none"; s.border = "2px solid #1d4f91";
  script.parentNode.insertBefore(link, script);
})();
