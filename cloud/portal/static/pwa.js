// Fleetlink portal: install the service worker that keeps visited pages readable offline.
"use strict";

(function () {
  if (!("serviceWorker" in navigator)) {
    return;
  }
  const controlled = Boolean(navigator.serviceWorker.controller);
  navigator.serviceWorker.register("/portal/sw.js", { scope: "/portal/" }).then(() => navigator.serviceWorker.ready).then((registration) => {
    if (!controlled && registration.active && !location.pathname.startsWith("/portal/login")) {
      registration.active.postMessage({ type: "remember", url: location.href });
    }
  }).catch(() => undefined);
})();
