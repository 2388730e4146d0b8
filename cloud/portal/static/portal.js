// Fleetlink portal: progressive enhancement only; every page reads fine without this file.
// Live parts follow the tenant's SSE stream (/api/v1/live) that any API client can use.
"use strict";

(function () {
  const LAT = "Vehicle.CurrentLocation.Latitude";
  const LON = "Vehicle.CurrentLocation.Longitude";
  const SPEED = "Vehicle.Speed";

  function follow(query, handlers) {
    if (!window.EventSource) {
      return null;
    }
    const source = new EventSource("/api/v1/live?" + new URLSearchParams(query).toString());
    for (const [type, handler] of Object.entries(handlers)) {
      source.addEventListener(type, function (event) {
        let data;
        try {
          data = JSON.parse(event.data);
        } catch (err) {
          return;
        }
        handler(data);
      });
    }
    // Tells readers (and tests) the stream is connected.
    source.addEventListener("open", function () {
      document.documentElement.dataset.live = "open";
    });
    source.addEventListener("error", function () {
      document.documentElement.dataset.live = "reconnecting";
    });
    // Missed messages cannot be replayed: the page's own data is the fresh start.
    source.addEventListener("reset", function () {
      window.location.reload();
    });
    return source;
  }

  function formatted(value, digits) {
    return Number(value).toLocaleString("en", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
  }

  function setField(row, field, text) {
    const cell = row && row.querySelector('[data-field="' + field + '"]');
    if (cell) {
      cell.textContent = text;
    }
  }

  function mercator(lat, lon) {
    const clamped = Math.max(Math.min(lat, 85.0511), -85.0511) * Math.PI / 180;
    return [
      (lon + 180) / 360,
      (1 - Math.log(Math.tan(clamped) + 1 / Math.cos(clamped)) / Math.PI) / 2,
    ];
  }

  function liveMap(svg) {
    const mx0 = Number(svg.dataset.mx0);
    const my0 = Number(svg.dataset.my0);
    const scale = Number(svg.dataset.scale);
    follow({ events: "signals", signals: [LAT, LON, SPEED].join(",") }, {
      signals: function (data) {
        const s = data.signals || {};
        const row = document.querySelector('#positions tr[data-vehicle="' + data.vehicle_id + '"]');
        if (s[SPEED]) {
          setField(row, "speed", formatted(s[SPEED].value, 0));
        }
        if (!s[LAT] || !s[LON]) {
          return;
        }
        const [x, y] = mercator(s[LAT].value, s[LON].value);
        const marker = svg.querySelector('g.marker[data-vehicle="' + data.vehicle_id + '"]');
        if (marker) {
          marker.setAttribute(
            "transform",
            "translate(" + ((x - mx0) * scale).toFixed(1) + " " + ((y - my0) * scale).toFixed(1) + ")"
          );
        }
        setField(row, "latitude", formatted(s[LAT].value, 5));
        setField(row, "longitude", formatted(s[LON].value, 5));
        setField(row, "ts", new Date(data.ts).toISOString().slice(0, 16).replace("T", " ") + " UTC");
      },
    });
  }

  function liveSignals(table) {
    const vehicle = table.dataset.liveVehicle;
    follow({ events: "signals", vehicles: vehicle }, {
      signals: function (data) {
        for (const [name, reading] of Object.entries(data.signals || {})) {
          const row = table.querySelector('tr[data-signal="' + name + '"]');
          if (!row) {
            continue;
          }
          setField(row, "value", formatted(reading.value, Number(row.dataset.digits || 1)));
          setField(row, "ts", new Date(reading.ts).toISOString().slice(0, 19).replace("T", " ") + " UTC");
        }
      },
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const map = document.getElementById("live-map");
    if (map) {
      liveMap(map);
    }
    const signals = document.querySelector("table[data-live-vehicle]");
    if (signals) {
      liveSignals(signals);
    }
  });
})();
