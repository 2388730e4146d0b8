// Fleetlink portal: progressive enhancement only; every page reads fine without this file.
"use strict";

(function () {
  // Live parts: modules register a handler for the SSE stream's event types.
  const handlers = {};
  let source = null;

  function listen(type, handler) {
    (handlers[type] = handlers[type] || []).push(handler);
    if (source) {
      source.addEventListener(type, dispatch);
    }
  }

  function dispatch(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (err) {
      return;
    }
    for (const handler of handlers[event.type] || []) {
      handler(data, event);
    }
  }

  function connect(query) {
    if (source || !window.EventSource || Object.keys(handlers).length === 0) {
      return;
    }
    source = new EventSource("/api/v1/live" + (query || ""));
    for (const type of Object.keys(handlers)) {
      source.addEventListener(type, dispatch);
    }
  }

  window.Fleetlink = { listen: listen, connect: connect };
})();
