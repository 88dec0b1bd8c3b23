// The page's service worker: everything the page needs is precached on the first visit, so a
// reload or a new tab works with the network off.
//
// Workbox from npm (workbox-sw loads workbox-core, -routing, -strategies and -precaching from
// node_modules, never from Google's CDN). The precache manifest, the list below of every file
// with a hash of its content, is written into this file by the server (web/server.py,
// `service_worker()`), where Workbox's own injectManifest would: the model lives in its own
// folder outside web/ and changes with every export, and the server knows both places, so no
// Node.js build step runs between an export and the page.
//
// Updates: the browser compares this file with its copy on every visit online. A new export (or
// a changed page file) changes a hash here, so the new worker downloads what changed, takes over
// at once (skipWaiting, clientsClaim) and deletes what is no longer listed; the page then loads
// the new model without a reload (app.js, "controllerchange").

importScripts("node_modules/workbox-sw/build/workbox-sw.js");

workbox.setConfig({
  debug: false,
  modulePathCb: (name, debug) => `node_modules/${name}/build/${name}.${debug ? "dev" : "prod"}.js`,
});

self.skipWaiting();
self.addEventListener("message", (event) => {
  if (event.data?.type === "SKIP_WAITING") self.skipWaiting();
});
workbox.core.clientsClaim();
workbox.precaching.cleanupOutdatedCaches();
// Any query string (?backend=wasm, ?live=all) still opens the precached page.
workbox.precaching.precacheAndRoute(self.__WB_MANIFEST, { ignoreURLParametersMatching: [/.*/] });
