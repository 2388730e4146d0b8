// Fleetlink portal service worker: pages are fetched from the network first; the last
// successful GET of each visited page is kept so that, offline, the page still shows the
// data last seen under a banner saying when that was. Logging in or out clears what is kept.
"use strict";

const CACHE = "fleetlink-portal-v1";
const SHELL = [
  "/portal/static/portal.css",
  "/portal/static/pages.css",
  "/portal/static/portal.js",
  "/portal/static/pwa.js",
  "/portal/static/icon.svg",
];
const SAVED_AT = "X-Fleetlink-Saved-At";
const MAIN_TAG = '<main id="main" tabindex="-1">';

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
  );
});

function forget() {
  return caches.delete(CACHE).then(() => caches.open(CACHE)).then((cache) => cache.addAll(SHELL));
}

async function remember(request, response) {
  if (!response.ok || response.type !== "basic" || response.redirected) {
    return;
  }
  const headers = new Headers(response.headers);
  headers.set(SAVED_AT, new Date().toISOString());
  const body = await response.blob();
  const copy = new Response(body, { status: response.status, statusText: response.statusText, headers: headers });
  const cache = await caches.open(CACHE);
  await cache.put(request, copy);
}

function when(iso) {
  return iso ? iso.slice(0, 16).replace("T", " ") + " UTC" : "an earlier visit";
}

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

async function offline(request) {
  const kept = await caches.match(request);
  if (!kept) {
    if (request.mode === "navigate") {
      const page = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Offline · Fleetlink</title>"
        + "<link rel=\"stylesheet\" href=\"/portal/static/portal.css\"><link rel=\"stylesheet\" href=\"/portal/static/pages.css\"></head><body><main id=\"main\">"
        + "<h1>Offline</h1><p class=\"offline-banner\" role=\"status\">You are offline and this page was not "
        + "opened before on this device, so there is no copy of it to show.</p></main></body></html>";
      return new Response(page, { status: 503, headers: { "Content-Type": "text/html; charset=utf-8" } });
    }
    return Response.error();
  }
  const type = kept.headers.get("Content-Type") || "";
  if (!type.startsWith("text/html")) {
    return kept;
  }
  const text = await kept.text();
  const banner = '<p class="offline-banner" role="status">Offline, showing data from '
    + escapeHtml(when(kept.headers.get(SAVED_AT))) + ".</p>";
  return new Response(text.replace(MAIN_TAG, MAIN_TAG + banner), { status: 200, headers: kept.headers });
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith("/portal/")) {
    return;
  }
  if (url.pathname === "/portal/logout" || url.pathname.startsWith("/portal/login")) {
    event.waitUntil(forget());
    return;
  }
  if (request.method !== "GET" || url.pathname === "/portal/sw.js") {
    return;
  }
  event.respondWith(
    fetch(request).then(
      (response) => {
        event.waitUntil(remember(request, response.clone()));
        return response;
      },
      () => offline(request)
    )
  );
});

self.addEventListener("message", (event) => {
  // A page opened before this worker controlled it asks to be kept too.
  const data = event.data || {};
  if (data.type !== "remember" || typeof data.url !== "string") {
    return;
  }
  const url = new URL(data.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith("/portal/") || url.pathname.startsWith("/portal/login")) {
    return;
  }
  const request = new Request(url.href, { credentials: "same-origin" });
  event.waitUntil(fetch(request).then((response) => remember(request, response)).catch(() => undefined));
});
