/* RailSea operations console: the network and containers on a tile-less Leaflet map, open alerts live over
 * Server-Sent Events (read with fetch() so the bearer token can be sent), and a container's timeline and track.
 * Everything it loads comes from this server: the API, Leaflet, topojson-client and the world-atlas basemap. */
(function () {
  "use strict";

  const API = "/api/v1";
  const TOKEN_KEY = "railsea.token";
  const PRD_BOUNDS = L.latLngBounds([21.5, 111.5], [24.0, 115.5]);
  const RETRY_MS = 2000; // reconnect delay after a stream error (the server may announce another with `retry:`)
  const STREAM_SILENCE_MS = 45000; // the server sends a keep-alive every 15 s; this long without a byte is a dead line
  const MAX_CONTAINERS = 1000; // a few pages of `GET /containers` for the map
  const MAX_ALERTS = 5000;
  const REFRESH_MS = 30000;

  const NODE_KINDS = {
    seaport: ["Seaport", "#1d4e89"],
    river_port: ["River port", "#0f8f8c"],
    rail_terminal: ["Rail terminal", "#7b4bb3"],
    dry_port: ["Dry port", "#a0701a"],
    border_crossing: ["Border crossing", "#c2185b"],
    inland_depot: ["Inland depot", "#546e7a"],
  };
  const MODES = {
    sea: ["Sea", "#3b7dd8", null],
    barge: ["Barge", "#17a2b8", null],
    rail: ["Rail", "#8e5cc2", "6 4"],
    road: ["Road", "#c9a227", "2 4"],
  };
  const STATUSES = {
    held: ["Held", "#d62728"],
    awaiting_inspection: ["Awaiting inspection", "#f28c28"],
    in_transit: ["In transit", "#1f6fd1"],
    released: ["Released", "#2a9d4b"],
    refused: ["Refused", "#111111"],
    declared: ["Declared", "#9aa0a6"],
  };
  const ROLE_LABELS = {
    admin: "Administrator",
    supervisor: "Customs supervisor",
    viewer: "Forwarder / operator (read-only)",
  };

  const $ = (selector) => document.querySelector(selector);
  const script = document.getElementById("dashboard-script");
  const els = {
    map: $("#map"),
    signinForm: $("#signin-form"),
    tokenInput: $("#token-input"),
    whoami: $("#whoami"),
    roleBadge: $("#role-badge"),
    signout: $("#signout-button"),
    error: $("#session-error"),
    streamStatus: $("#stream-status"),
    alertList: $("#alert-list"),
    alertsEmpty: $("#alerts-empty"),
    alertCount: $("#alert-count"),
    ackCount: $("#ack-count"),
    searchForm: $("#search-form"),
    containerInput: $("#container-input"),
    detail: $("#container-detail"),
    clearTrack: $("#clear-track"),
  };

  const state = {
    token: null,
    role: null, // "admin" | "supervisor" | "viewer"
    session: 0, // bumped at every sign-in and sign-out: late answers of an old session are dropped
    abort: null, // AbortController of the session's requests and stream
    alerts: new Map(), // id → alert
    lastEventId: 0,
    nodes: new Map(), // code → feature properties
    offices: [], // the supervisor's customs offices (from /me)
    selected: null, // container number shown in the detail panel
    refreshTimer: null,
    refreshSoon: null,
  };

  // --- small helpers ------------------------------------------------------------------------------------------

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  const clock = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const dayClock = new Intl.DateTimeFormat("en-GB", {
    day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });

  function shortTime(text) {
    const date = new Date(text);
    if (Number.isNaN(date.getTime())) return "—";
    return (date.toDateString() === new Date().toDateString() ? clock : dayClock).format(date);
  }

  function utcOffset() {
    const minutes = -new Date().getTimezoneOffset();
    const sign = minutes >= 0 ? "+" : "−";
    const abs = Math.abs(minutes);
    return `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
  }

  function timeEl(text) {
    return h("time", { datetime: text, title: text }, shortTime(text));
  }

  function label(code) {
    return String(code || "").replace(/_/g, " ");
  }

  function statusBadge(status) {
    const [name] = STATUSES[status] || [label(status)];
    return h("span", { class: `status-badge status-${status}` }, name);
  }

  function nodeName(code) {
    const node = state.nodes.get(code);
    return node ? node.name : null;
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(path, { method = "GET", body, auth = true, signal } = {}) {
    const headers = { Accept: "application/json" };
    if (auth && state.token) headers.Authorization = `Bearer ${state.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: signal || state.abort?.signal,
      cache: "no-store",
    });
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json() : null;
    if (!response.ok) {
      if (response.status === 401 && auth && state.token) signOut("Your token is no longer accepted: sign in again.");
      throw new ApiError(response.status, data);
    }
    return data;
  }

  async function getPage(path, size, cursor) {
    const query = [];
    if (size) query.push(`limit=${size}`);
    if (cursor) query.push(`cursor=${encodeURIComponent(cursor)}`);
    return api(query.length ? `${path}${path.includes("?") ? "&" : "?"}${query.join("&")}` : path);
  }

  async function allPages(path, size, maxItems) {
    const items = [];
    let cursor = null;
    do {
      const data = await getPage(path, size, cursor);
      items.push(...data.items);
      cursor = data.next_cursor;
    } while (cursor && items.length < maxItems);
    return items;
  }

  function showError(message) {
    els.error.textContent = message;
    els.error.hidden = !message;
  }

  // --- the map ------------------------------------------------------------------------------------------------

  const map = L.map(els.map, { zoomSnap: 0.25, zoomDelta: 0.5, minZoom: 2, maxZoom: 13, worldCopyJump: false });
  map.attributionControl.setPrefix("Leaflet");
  map.attributionControl.addAttribution("Basemap: Natural Earth via world-atlas");
  const PANES = [["basemap", 200], ["legs", 380], ["track", 410], ["nodes", 420], ["containers", 450], ["visits", 460]];
  for (const [pane, z] of PANES) {
    map.createPane(pane).style.zIndex = String(z);
  }
  map.getPane("basemap").style.pointerEvents = "none";
  map.fitBounds(PRD_BOUNDS);

  const layers = {
    legs: L.layerGroup().addTo(map),
    nodes: L.layerGroup().addTo(map),
    containers: L.layerGroup().addTo(map),
    track: L.layerGroup().addTo(map),
  };
  let networkBounds = null;
  const containerMarkers = new Map(); // number → marker

  L.control.scale({ imperial: false, position: "bottomleft" }).addTo(map);
  L.control
    .layers(null, {
      "Legs (by mode)": layers.legs,
      "Nodes (by kind)": layers.nodes,
      "Containers (by status)": layers.containers,
      "Selected track": layers.track,
    }, { position: "topright", collapsed: true })
    .addTo(map);

  const ViewControl = L.Control.extend({
    options: { position: "topleft" },
    onAdd() {
      const bar = L.DomUtil.create("div", "leaflet-bar view-control");
      const button = (text, title, action) => {
        const el = h("button", { type: "button", title, "aria-label": title }, text);
        L.DomEvent.on(el, "click", (event) => { L.DomEvent.stop(event); action(); });
        bar.append(el);
      };
      button("PRD", "Zoom to the Pearl River Delta", () => map.flyToBounds(PRD_BOUNDS, { duration: 0.6 }));
      button("All", "Zoom to the whole network", () => {
        if (networkBounds) map.flyToBounds(networkBounds, { padding: [24, 24], duration: 0.8 });
      });
      L.DomEvent.disableClickPropagation(bar);
      return bar;
    },
  });
  new ViewControl().addTo(map);

  // The legend sits under the map (container statuses are in the counts above it): nothing covers the delta.
  function drawLegend() {
    const group = (title, entries, kind) =>
      h("div", { class: "legend-group" },
        h("span", { class: "legend-title" }, title),
        h("ul", {}, entries.map(([name, colour, dash]) => h("li", {}, legendSwatch(kind, colour, dash), name))));
    $("#legend").replaceChildren(
      group("Nodes", Object.values(NODE_KINDS), "node"),
      group("Legs", Object.values(MODES), "leg"),
      h("div", { class: "legend-group" },
        h("span", { class: "legend-title" }, "Track"),
        h("ul", {}, h("li", {}, legendSwatch("leg", "#0b1b2b", null), "visited nodes, in order"))));
  }
  drawLegend();

  function legendSwatch(kind, colour, dash) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 20 12");
    svg.setAttribute("class", "swatch-svg");
    svg.setAttribute("aria-hidden", "true");
    let shape;
    if (kind === "leg") {
      shape = document.createElementNS(ns, "line");
      for (const [k, v] of Object.entries({ x1: 1, y1: 6, x2: 19, y2: 6, stroke: colour, "stroke-width": 3 })) {
        shape.setAttribute(k, v);
      }
      if (dash) shape.setAttribute("stroke-dasharray", dash);
    } else {
      shape = document.createElementNS(ns, "circle");
      const attrs = kind === "container"
        ? { cx: 10, cy: 6, r: 5, fill: colour, stroke: "#0b1b2b", "stroke-width": 1.5 }
        : { cx: 10, cy: 6, r: 4, fill: colour, stroke: "#ffffff", "stroke-width": 1.5 };
      for (const [k, v] of Object.entries(attrs)) shape.setAttribute(k, v);
    }
    svg.append(shape);
    return svg;
  }

  async function loadBasemap() {
    try {
      const response = await fetch(script.dataset.basemapUrl, { cache: "force-cache" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const topo = await response.json();
      const countries = topojson.feature(topo, topo.objects.countries);
      L.geoJSON(countries, {
        pane: "basemap",
        interactive: false,
        style: { color: "#b3b7b0", weight: 0.7, fillColor: "#e4e4df", fillOpacity: 1 },
      }).addTo(map);
      els.map.dataset.basemap = "ready";
    } catch (error) {
      els.map.dataset.basemap = "failed";
      console.error("basemap", error);
    }
  }

  function nodePopup(p) {
    return h("div", { class: "popup" },
      h("div", { class: "popup-title" }, h("strong", {}, p.code), " ", p.name),
      p.name_zh ? h("div", { class: "popup-sub", lang: "zh" }, p.name_zh) : null,
      h("dl", {},
        h("dt", {}, "Kind"), h("dd", {}, (NODE_KINDS[p.kind] || [label(p.kind)])[0]),
        h("dt", {}, "Customs office"), h("dd", {}, p.customs_office),
        h("dt", {}, "Modes"), h("dd", {}, (p.modes || []).join(", ")),
        h("dt", {}, "Seal-preserving transfer"), h("dd", {}, p.seal_preserving_transfer ? "yes" : "no"),
        p.dwell_limit_h ? [h("dt", {}, "Dwell limit"), h("dd", {}, `${p.dwell_limit_h} h`)] : null));
  }

  function legPopup(p) {
    const fmt = (n, digits = 0) => Number(n).toLocaleString("en-GB", { maximumFractionDigits: digits });
    return h("div", { class: "popup" },
      h("div", { class: "popup-title" }, h("strong", {}, `${p.origin} → ${p.destination}`)),
      h("dl", {},
        h("dt", {}, "Mode"), h("dd", {}, (MODES[p.mode] || [p.mode])[0]),
        h("dt", {}, "Distance"), h("dd", {}, `${fmt(p.distance_km)} km`),
        h("dt", {}, "Duration"), h("dd", {}, `${fmt(p.duration_h, 1)} h`),
        h("dt", {}, "Cost"), h("dd", {}, `${fmt(p.cost_per_teu)} per TEU`),
        h("dt", {}, "CO₂"), h("dd", {}, `${fmt(p.co2_kg_per_teu)} kg per TEU`),
        p.departures && p.departures.length ? [h("dt", {}, "Departures (UTC)"), h("dd", {}, p.departures.join(", "))] : null));
  }

  async function loadNetwork() {
    const [nodes, legs] = await Promise.all([api("/nodes", { auth: false }), api("/legs", { auth: false })]);
    layers.legs.clearLayers();
    layers.nodes.clearLayers();
    for (const feature of legs.features) {
      const p = feature.properties;
      const [, colour, dash] = MODES[p.mode] || ["", "#666", null];
      const g = feature.geometry;
      const parts = g.type === "MultiLineString" ? g.coordinates : [g.coordinates];
      const line = L.polyline(parts.map((part) => part.map(([lon, lat]) => [lat, lon])), {
        pane: "legs", color: colour, weight: 2, opacity: 0.55, dashArray: dash, className: `leg-line mode-${p.mode}`,
      });
      line.bindPopup(() => legPopup(p), { maxWidth: 360 });
      line.bindTooltip(`${p.origin} → ${p.destination} · ${p.mode}`, { sticky: true });
      line.on("mouseover", () => line.setStyle({ weight: 4, opacity: 0.95 }));
      line.on("mouseout", () => line.setStyle({ weight: 2, opacity: 0.55 }));
      layers.legs.addLayer(line);
    }
    const points = [];
    for (const feature of nodes.features) {
      const p = feature.properties;
      const [lon, lat] = feature.geometry.coordinates;
      state.nodes.set(p.code, p);
      points.push([lat, lon]);
      const [, colour] = NODE_KINDS[p.kind] || ["", "#555"];
      const marker = L.circleMarker([lat, lon], {
        pane: "nodes",
        radius: 5.5,
        color: "#ffffff",
        weight: 1.5,
        fillColor: colour,
        fillOpacity: 1,
        className: `node-marker kind-${p.kind}`,
      });
      marker.bindTooltip(`${p.code} · ${p.name}`, { direction: "top", offset: [0, -4] });
      marker.bindPopup(() => nodePopup(p), { maxWidth: 360 });
      layers.nodes.addLayer(marker);
    }
    networkBounds = points.length ? L.latLngBounds(points) : null;
    els.map.dataset.nodes = String(nodes.features.length);
    els.map.dataset.legs = String(legs.features.length);
  }

  // --- containers on the map ----------------------------------------------------------------------------------

  function containerPopup(box) {
    const where = box.location ? `${box.location}${nodeName(box.location) ? " · " + nodeName(box.location) : ""}` : "—";
    return h("div", { class: "popup" },
      h("div", { class: "popup-title" }, h("strong", { class: "mono" }, box.number), " ", statusBadge(box.status)),
      h("dl", {},
        h("dt", {}, "Location"), h("dd", {}, where),
        h("dt", {}, "Open alerts"), h("dd", {}, String(box.open_alerts))),
      h("button", { type: "button", class: "btn btn-small btn-primary", onclick: () => lookup(box.number) },
        "Timeline and track"));
  }

  // Boxes whose journey under customs control has ended are drawn small and beneath the others, so that weeks of
  // released boxes piled on their last node do not hide the network and the boxes that still need attention.
  const FINISHED = new Set(["released", "refused"]);
  const baseRadius = (status) => (FINISHED.has(status) ? 4.5 : 7);
  const SELECTED_RADIUS = 10;
  const STACK_STEP = 0.0017; // degrees per pixel of marker radius, between neighbours of a stack

  function markerRadius(number) {
    const marker = containerMarkers.get(number);
    return number === state.selected ? SELECTED_RADIUS : marker?.options.baseRadius ?? 7;
  }

  function drawContainers(items) {
    const reopen = [...containerMarkers].find(([, marker]) => marker.isPopupOpen())?.[0];
    layers.containers.clearLayers();
    containerMarkers.clear();
    const counts = { all: items.length };
    for (const status of Object.keys(STATUSES)) counts[status] = 0;
    for (const box of items) counts[box.status] = (counts[box.status] || 0) + 1;
    // Boxes sharing a position spread in a sunflower around it, the ones still under control nearest to it: each
    // takes room in proportion to its marker's area.
    const placed = items
      .filter((box) => box.position && Array.isArray(box.position.coordinates))
      .map((box, i) => ({ box, i, finished: FINISHED.has(box.status) }))
      .sort((a, b) => a.finished - b.finished || a.i - b.i);
    const stacks = new Map(); // position → [markers placed, area taken]
    const markers = [];
    for (const { box, finished } of placed) {
      const [lon, lat] = box.position.coordinates;
      const key = `${lon.toFixed(4)},${lat.toFixed(4)}`;
      const [n, area] = stacks.get(key) || [0, 0];
      const radius = baseRadius(box.status);
      stacks.set(key, [n + 1, area + (radius + 1) ** 2]);
      const angle = n * 2.4;
      const spread = n === 0 ? 0 : STACK_STEP * Math.sqrt(area + (radius + 1) ** 2 / 2);
      const [, colour] = STATUSES[box.status] || ["", "#666"];
      const marker = L.circleMarker([lat + spread * Math.sin(angle), lon + spread * Math.cos(angle)], {
        pane: "containers",
        radius: box.number === state.selected ? SELECTED_RADIUS : radius,
        baseRadius: radius,
        color: "#0b1b2b",
        weight: finished ? 1.2 : 2,
        fillColor: colour,
        fillOpacity: finished ? 0.85 : 0.95,
        className: `container-marker status-${box.status}`,
      });
      marker.bindTooltip(`${box.number} · ${label(box.status)}`, { direction: "top", offset: [0, -6] });
      marker.bindPopup(() => containerPopup(box));
      containerMarkers.set(box.number, marker);
      markers.push(marker);
    }
    // Finished boxes first, so that the others are drawn over them.
    for (const marker of markers.reverse()) layers.containers.addLayer(marker);
    if (state.selected) containerMarkers.get(state.selected)?.bringToFront();
    if (reopen) containerMarkers.get(reopen)?.openPopup();
    els.map.dataset.containers = String(markers.length);
    for (const el of document.querySelectorAll("[data-kpi]")) {
      el.textContent = String(counts[el.dataset.kpi] ?? 0);
    }
  }

  async function loadContainers() {
    const session = state.session;
    try {
      const items = await allPages("/containers", 200, MAX_CONTAINERS);
      if (session === state.session) drawContainers(items);
    } catch (error) {
      if (error.name !== "AbortError") console.warn("containers", error);
    }
  }

  function refreshSoon() {
    clearTimeout(state.refreshSoon);
    state.refreshSoon = setTimeout(() => {
      loadContainers();
      if (state.selected) lookup(state.selected, { quiet: true });
    }, 1200);
  }

  // --- alerts -------------------------------------------------------------------------------------------------

  function canAct() {
    return state.role === "admin" || state.role === "supervisor";
  }

  function alertItem(alert) {
    const actions = [];
    if (canAct() && alert.status !== "resolved") {
      if (alert.status === "open") {
        actions.push(h("button", {
          type: "button", class: "btn btn-small btn-primary", "data-action": "acknowledge",
          "aria-label": `Acknowledge alert ${alert.id} on ${alert.container}`,
          onclick: () => act(alert.id, "acknowledge"),
        }, "Acknowledge"));
      }
      actions.push(h("button", {
        type: "button", class: "btn btn-small", "data-action": "resolve",
        "aria-label": `Resolve alert ${alert.id} on ${alert.container}`, "aria-expanded": "false",
        onclick: (event) => toggleResolve(alert.id, event.currentTarget),
      }, "Resolve…"));
    }
    const noteId = `note-${alert.id}`;
    const resolveForm = canAct() && alert.status !== "resolved"
      ? h("form", {
        class: "resolve-form", hidden: true,
        onsubmit: (event) => {
          event.preventDefault();
          const note = event.currentTarget.elements.note.value.trim();
          if (note) act(alert.id, "resolve", { note });
        },
      },
      h("label", { for: noteId, class: "visually-hidden" }, `Resolution note for alert ${alert.id}`),
      h("input", { id: noteId, name: "note", type: "text", required: true, maxlength: 2000,
        placeholder: "Resolution note (e.g. seals re-read, supervisor on site)" }),
      h("button", { type: "submit", class: "btn btn-small btn-primary" }, "Resolve"))
      : null;
    const where = alert.node ? (nodeName(alert.node) ? `${alert.node} (${nodeName(alert.node)})` : alert.node) : "";
    return h("li", {
      class: `alert-item severity-${alert.severity} state-${alert.status}`,
      dataset: { alertId: String(alert.id), container: alert.container, status: alert.status },
    },
    h("div", { class: "alert-line" },
      h("span", { class: "severity-dot", title: `severity ${alert.severity}`, "aria-hidden": "true" }),
      h("button", { type: "button", class: "link mono", title: `Show ${alert.container}`,
        onclick: () => lookup(alert.container) }, alert.container),
      h("span", { class: "sep", "aria-hidden": "true" }, " · "),
      h("span", { class: "kind" }, alert.kind),
      alert.node ? [h("span", { class: "sep", "aria-hidden": "true" }, " · "), h("span", { class: "node", title: where }, alert.node)] : null,
      h("span", { class: "sep sep-time", "aria-hidden": "true" }, " · "),
      timeEl(alert.created_at)),
    h("div", { class: "alert-meta" },
      h("span", { class: `severity-label severity-${alert.severity}` }, alert.severity),
      h("span", { class: `alert-status alert-status-${alert.status}` }, alert.status),
      alert.reasons && alert.reasons.length && !(alert.reasons.length === 1 && alert.reasons[0] === alert.kind)
        ? h("span", { class: "reasons" }, alert.reasons.map(label).join(", ")) : null,
      alert.office ? h("span", { class: "office" }, alert.office) : null),
    alert.resolution_note ? h("p", { class: "alert-note" }, `Resolved: ${alert.resolution_note}`) : null,
    actions.length ? h("div", { class: "alert-actions" }, actions) : null,
    resolveForm,
    h("p", { class: "alert-error", role: "alert", hidden: true }));
  }

  function upsertAlert(alert, { fresh = false, initial = false } = {}) {
    const known = state.alerts.has(alert.id);
    if (!known && !initial && alert.status !== "open") return; // a replay of what was handled before
    state.alerts.set(alert.id, alert);
    const item = alertItem(alert);
    const existing = els.alertList.querySelector(`[data-alert-id="${alert.id}"]`);
    if (existing) {
      existing.replaceWith(item);
    } else {
      const after = [...els.alertList.children].find((li) => Number(li.dataset.alertId) < alert.id);
      els.alertList.insertBefore(item, after || null);
      if (fresh) {
        item.classList.add("fresh");
        setTimeout(() => item.classList.remove("fresh"), 4000);
      }
    }
    updateAlertCounts();
  }

  function updateAlertCounts() {
    let open = 0;
    let acknowledged = 0;
    for (const alert of state.alerts.values()) {
      if (alert.status === "open") open += 1;
      else if (alert.status === "acknowledged") acknowledged += 1;
    }
    els.alertCount.textContent = String(open);
    els.alertCount.classList.toggle("zero", open === 0);
    els.ackCount.textContent = `${acknowledged} ack.`;
    els.ackCount.hidden = acknowledged === 0;
    els.alertsEmpty.hidden = state.alerts.size > 0;
    if (state.token && state.alerts.size === 0) els.alertsEmpty.textContent = "No open alerts in your scope. New ones appear here as they are raised.";
  }

  function toggleResolve(id, button) {
    const item = els.alertList.querySelector(`[data-alert-id="${id}"]`);
    const form = item && item.querySelector(".resolve-form");
    if (!form) return;
    form.hidden = !form.hidden;
    button.setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) form.elements.note.focus();
  }

  async function act(id, action, body) {
    const item = els.alertList.querySelector(`[data-alert-id="${id}"]`);
    const buttons = item ? item.querySelectorAll("button, input") : [];
    for (const b of buttons) b.disabled = true;
    try {
      const updated = await api(`/alerts/${id}/${action}`, { method: "POST", body });
      upsertAlert(updated);
      if (state.selected === updated.container) lookup(updated.container, { quiet: true });
      refreshSoon();
    } catch (error) {
      for (const b of buttons) b.disabled = false;
      const message = item && item.querySelector(".alert-error");
      if (message) {
        message.textContent = `Could not ${action}: ${error.message}`;
        message.hidden = false;
      }
    }
  }

  async function loadAlerts() {
    const session = state.session;
    // The newest alert in scope, whatever its status: the stream resumes after it, the list below covers the rest.
    const newest = await getPage("/alerts", 1);
    // Open alerts, and those acknowledged but not yet resolved (they stay on the list, marked).
    const [open, acknowledged] = await Promise.all([
      allPages("/alerts?status=open", 200, MAX_ALERTS),
      allPages("/alerts?status=acknowledged", 200, MAX_ALERTS),
    ]);
    if (session !== state.session) return;
    for (const alert of [...open, ...acknowledged]) upsertAlert(alert, { initial: true });
    const top = newest.items.length ? newest.items[0].id : 0;
    state.lastEventId = Math.max(state.lastEventId, top);
    updateAlertCounts();
  }

  // --- the live stream: SSE read with fetch() (EventSource cannot send Authorization) ----------------------------

  function sseParser(onEvent, onRetry) {
    let buffer = "";
    let data = [];
    let type = "";
    let id = null;
    const line = (text) => {
      if (text === "") {
        if (data.length) onEvent({ type: type || "message", id, data: data.join("\n") });
        data = [];
        type = "";
        return;
      }
      if (text.startsWith(":")) return; // a comment: the server's keep-alive
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "id" && !value.includes("\0")) id = value;
      else if (field === "retry" && /^\d+$/.test(value)) onRetry(Number(value));
    };
    return (chunk) => {
      buffer += chunk;
      for (;;) {
        const match = /\r\n|\r|\n/.exec(buffer);
        if (!match) break;
        if (match[0] === "\r" && match.index === buffer.length - 1) break; // maybe the first half of \r\n
        line(buffer.slice(0, match.index));
        buffer = buffer.slice(match.index + match[0].length);
      }
    };
  }

  function setStream(stateName, text) {
    els.streamStatus.dataset.state = stateName;
    els.streamStatus.querySelector(".label").textContent = text;
  }

  async function runStream(session, signal) {
    let retry = RETRY_MS;
    while (!signal.aborted && session === state.session) {
      const line = new AbortController();
      const stop = () => line.abort();
      signal.addEventListener("abort", stop, { once: true });
      let watchdog = null;
      const feedDog = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(stop, STREAM_SILENCE_MS);
      };
      try {
        const headers = { Accept: "text/event-stream", Authorization: `Bearer ${state.token}` };
        if (state.lastEventId) headers["Last-Event-ID"] = String(state.lastEventId);
        feedDog();
        const response = await fetch(`${API}/alerts/stream`, { headers, signal: line.signal, cache: "no-store" });
        if (response.status === 401) {
          signOut("Your token is no longer accepted: sign in again.");
          return;
        }
        if (!response.ok || !response.body) throw new Error(`stream answered HTTP ${response.status}`);
        setStream("live", "Live");
        const feed = sseParser((event) => {
          if (event.id && /^\d+$/.test(event.id)) state.lastEventId = Math.max(state.lastEventId, Number(event.id));
          if (event.type !== "alert") return;
          try {
            const alert = JSON.parse(event.data);
            upsertAlert(alert, { fresh: true });
            if (alert.status === "open") refreshSoon();
          } catch (error) {
            console.warn("unreadable alert event", error);
          }
        }, (ms) => { retry = ms; });
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          feedDog();
          feed(decoder.decode(value, { stream: true }));
        }
        throw new Error("stream closed by the server");
      } catch (error) {
        if (signal.aborted || session !== state.session) return;
        setStream("reconnecting", "Reconnecting…");
        console.info("alert stream:", error.message, `— reconnecting in ${retry} ms`);
        await sleep(retry, signal);
      } finally {
        clearTimeout(watchdog);
        signal.removeEventListener("abort", stop);
      }
    }
  }

  // --- a container: state, alerts, timeline, track -----------------------------------------------------------

  const CONTAINER_NUMBER = /^[A-Z]{4}\d{7}$/;

  function drawTrack(track) {
    layers.track.clearLayers();
    const features = track.features || [];
    const path = features.filter((f) => f.properties.kind === "path");
    const visits = features.filter((f) => f.properties.kind === "visit");
    const readings = features.filter((f) => f.properties.kind === "telemetry");
    const group = L.featureGroup();
    for (const f of path) {
      const latlngs = f.geometry.coordinates.map(([lon, lat]) => [lat, lon]);
      group.addLayer(L.polyline(latlngs, { pane: "track", color: "#ffffff", weight: 8, opacity: 0.9, interactive: false }));
      group.addLayer(L.polyline(latlngs, { pane: "track", color: "#0b1b2b", weight: 4, opacity: 0.9, className: "track-line" }));
    }
    if (readings.length > 1) {
      group.addLayer(L.polyline(readings.map((f) => [f.geometry.coordinates[1], f.geometry.coordinates[0]]), {
        pane: "track", color: "#e4572e", weight: 2, dashArray: "3 4", interactive: false,
      }));
    }
    for (const f of readings) {
      const [lon, lat] = f.geometry.coordinates;
      group.addLayer(L.circleMarker([lat, lon], {
        pane: "track", radius: 3.5, weight: 1, color: "#ffffff", fillOpacity: 1,
        fillColor: f.properties.sealed ? "#e4572e" : "#111111",
      }).bindTooltip(`${shortTime(f.properties.time)} · ${f.properties.device} · ${f.properties.sealed ? "sealed" : "OPEN"}`));
    }
    for (const f of visits) {
      const [lon, lat] = f.geometry.coordinates;
      const order = f.properties.order + 1;
      group.addLayer(L.marker([lat, lon], {
        pane: "visits",
        // A numbered badge up and to the right of the node, so that the container's own marker stays visible.
        icon: L.divIcon({ className: "visit-icon", html: String(order), iconSize: [20, 20], iconAnchor: [-5, 25] }),
        keyboard: false,
      }).bindTooltip(`${order}. ${f.properties.node}${nodeName(f.properties.node) ? " · " + nodeName(f.properties.node) : ""}`));
    }
    group.addTo(layers.track);
    els.map.dataset.track = String(visits.length + readings.length);
    return group;
  }

  function detailView(box, events, alerts) {
    const location = box.location
      ? [h("span", { class: "mono" }, box.location), nodeName(box.location) ? ` · ${nodeName(box.location)}` : ""]
      : "unknown";
    const unresolved = alerts.filter((a) => a.status !== "resolved");
    return h("article", { class: "box", "aria-label": `Container ${box.number}` },
      h("header", { class: "box-head" },
        h("h3", { class: "mono" }, box.number),
        statusBadge(box.status),
        box.held ? h("span", { class: "flag-held" }, "on hold") : null),
      h("dl", { class: "facts" },
        h("dt", {}, "Status"), h("dd", {}, label(box.status)),
        h("dt", {}, "Location"), h("dd", {}, location),
        h("dt", {}, "Declaration"), h("dd", {}, `#${box.declaration_id}`),
        h("dt", {}, "Expected seals"),
        h("dd", {}, box.expected_seals.length
          ? h("ul", { class: "chips" }, box.expected_seals.map((s) => h("li", { class: "chip mono" }, s)))
          : "none"),
        h("dt", {}, "Open alerts"),
        h("dd", {}, unresolved.length
          ? h("ul", { class: "box-alerts" }, unresolved.map((a) => h("li", { class: `severity-${a.severity}` },
            h("span", { class: "kind" }, a.kind), " · ", a.node || "—", " · ", timeEl(a.created_at), " · ",
            h("span", { class: `alert-status alert-status-${a.status}` }, a.status))))
          : String(box.open_alerts))),
      h("h4", { class: "timeline-title" }, "Timeline ", h("span", { class: "muted" }, `(${utcOffset()})`)),
      events.length
        ? h("ol", { class: "timeline", "aria-label": `Timeline of ${box.number}` }, events.map(timelineItem))
        : h("p", { class: "empty" }, "No events yet."));
  }

  function timelineItem(event) {
    const seals = (event.seals || []).map((s) => typeof s === "string" ? s : `${s.number}${s.condition ? " (" + s.condition + ")" : ""}`);
    const extra = event.data || {};
    const activity = extra.activity ? label(extra.activity) : null;
    return h("li", { class: `event event-${event.type} ${event.decision ? "event-decision-" + event.decision : ""}` },
      h("div", { class: "event-line" },
        timeEl(event.event_time),
        h("span", { class: "event-type" }, label(event.type)),
        activity && activity !== label(event.type) ? h("span", { class: "muted" }, activity) : null,
        event.node ? h("span", { class: "mono event-node", title: nodeName(event.node) || "" }, event.node) : null,
        event.decision ? h("span", { class: `decision decision-${event.decision}` }, event.decision) : null),
      event.reasons && event.reasons.length
        ? h("div", { class: "event-reasons" }, "Reasons: ", event.reasons.map(label).join(", ")) : null,
      seals.length
        ? h("div", { class: "event-seals muted" }, event.type === "transfer" ? "Seals read: " : "Seals: ", seals.join(", "))
        : null);
  }

  async function lookup(raw, { quiet = false } = {}) {
    const number = String(raw || "").toUpperCase().replace(/\s+/g, "");
    els.containerInput.value = number;
    if (!state.token) {
      els.detail.replaceChildren(h("p", { class: "empty" }, "Sign in to look up containers."));
      return;
    }
    if (!CONTAINER_NUMBER.test(number)) {
      els.detail.replaceChildren(h("p", { class: "form-error", role: "alert" },
        "A container number is four letters and seven digits (ISO 6346), e.g. CSQU3054383."));
      return;
    }
    const session = state.session;
    if (!quiet) els.detail.replaceChildren(h("p", { class: "empty" }, `Looking up ${number}…`));
    const n = encodeURIComponent(number);
    try {
      const [box, events, track, alerts] = await Promise.all([
        api(`/containers/${n}`),
        api(`/containers/${n}/events`),
        api(`/containers/${n}/track`),
        allPages(`/alerts?container=${n}`, 200, 400),
      ]);
      if (session !== state.session) return;
      const previous = state.selected;
      state.selected = number;
      els.detail.replaceChildren(detailView(box, events.items, alerts));
      els.clearTrack.hidden = false;
      const group = drawTrack(track);
      for (const [key, marker] of containerMarkers) marker.setRadius(markerRadius(key));
      containerMarkers.get(number)?.bringToFront();
      if (!quiet || previous !== number) {
        const bounds = group.getBounds();
        if (bounds.isValid()) map.flyToBounds(bounds, { padding: [60, 60], maxZoom: 9, duration: 0.6 });
        else if (containerMarkers.get(number)) map.flyTo(containerMarkers.get(number).getLatLng(), 9, { duration: 0.6 });
      }
    } catch (error) {
      if (error.name === "AbortError" || session !== state.session) return;
      const message = error.status === 404
        ? `No container ${number} in your scope.`
        : `Could not load ${number}: ${error.message}`;
      els.detail.replaceChildren(h("p", { class: "form-error", role: "alert" }, message));
    }
  }

  function clearSelection() {
    state.selected = null;
    layers.track.clearLayers();
    els.detail.replaceChildren();
    els.clearTrack.hidden = true;
    els.map.dataset.track = "0";
    for (const [key, marker] of containerMarkers) marker.setRadius(markerRadius(key));
  }

  // --- clearance analytics (supervisors and administrators) ---------------------------------------------------
  // Hand-drawn SVG charts of `GET /analytics/clearance` for one node over the last four weeks.

  const SVG_NS = "http://www.w3.org/2000/svg";
  const CLEARANCE_DAYS = 28;
  const REASONS = {
    seal_missing: ["Seal missing", "#8e0c1a"],
    seal_broken: ["Seal broken", "#d62728"],
    seal_mismatch: ["Seal mismatch", "#f28c28"],
    route_deviation: ["Route deviation", "#7b4bb3"],
    unsealed_activity: ["Unsealed activity", "#546e7a"],
  };
  const SERIES = [
    ["dwell_h", "p50", "Dwell p50", "#1f6fd1", null],
    ["dwell_h", "p90", "Dwell p90", "#1f6fd1", "5 4"],
    ["clearance_h", "p50", "Clearance p50", "#2a9d4b", null],
    ["clearance_h", "p90", "Clearance p90", "#2a9d4b", "5 4"],
  ];
  const clearanceEls = {
    panel: $("#clearance-panel"),
    node: $("#clearance-node"),
    download: $("#clearance-download"),
    kpis: $("#clearance-kpis"),
    charts: $("#clearance-charts"),
    status: $("#clearance-status"),
  };
  let clearanceRequest = 0;

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) el.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function isoDay(date) {
    return date.toISOString().slice(0, 10);
  }

  function clearancePeriod() {
    const end = new Date();
    const start = new Date(end.getTime() - (CLEARANCE_DAYS - 1) * 86400000);
    return [isoDay(start), isoDay(end)];
  }

  function periodDays(from, to) {
    const days = [];
    for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86400000) {
      days.push(isoDay(new Date(t)));
    }
    return days;
  }

  /** The top of an axis with four grid steps of 1, 2, 2.5 or 5 × 10ⁿ. */
  function niceMax(value) {
    if (!(value > 0)) return 1;
    const raw = value / 4;
    const power = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw) return 4 * m * power;
    return 40 * power;
  }

  const dayLabel = (day) => `${Number(day.slice(8, 10))} ${["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
    "Sep", "Oct", "Nov", "Dec"][Number(day.slice(5, 7)) - 1]}`;

  /** A chart frame: axes, grid and day labels; `draw(x, y, band)` adds the marks. */
  function chartFrame({ title, days, max, unit, format, draw, legend, id }) {
    const W = 560, H = 220, M = { l: 44, r: 12, t: 24, b: 26 };
    const iw = W - M.l - M.r, ih = H - M.t - M.b;
    const band = iw / Math.max(1, days.length);
    const x = (i) => M.l + i * band;
    const y = (v) => M.t + ih - (Math.max(0, v) / max) * ih;
    const svg = s("svg", {
      class: "chart", id, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, preserveAspectRatio: "xMidYMid meet",
    }, s("title", {}, title));
    for (let k = 0; k <= 4; k += 1) {
      const v = (max * k) / 4;
      svg.append(
        s("line", { class: "grid", x1: M.l, x2: W - M.r, y1: y(v), y2: y(v) }),
        s("text", { class: "tick", x: M.l - 6, y: y(v) + 4, "text-anchor": "end" }, format(v)),
      );
    }
    const every = Math.ceil(days.length / 7);
    days.forEach((day, i) => {
      if ((days.length - 1 - i) % every === 0) {
        svg.append(s("text", { class: "tick", x: x(i) + band / 2, y: H - 8, "text-anchor": "middle" }, dayLabel(day)));
      }
    });
    if (unit) svg.append(s("text", { class: "unit", x: 4, y: 12 }, unit));
    draw(svg, x, y, band);
    svg.append(s("line", { class: "axis", x1: M.l, x2: W - M.r, y1: y(0), y2: y(0) }));
    const keys = legend
      ? h("ul", { class: "chart-legend" }, legend.map(([name, colour, dash]) => h("li", {},
        h("span", { class: `key${dash ? " key-dashed" : ""}`, style: `--key:${colour}` }), name)))
      : null;
    return h("figure", { class: "chart-card" }, h("figcaption", {}, title), svg, keys);
  }

  function shareChart(days, byDay) {
    const parts = [
      ["Released directly", "#2a9d4b", (f) => f.released_directly],
      ["Inspected (planned)", "#9fb7d0", (f) => Math.max(0, f.transfers - f.released_directly - f.reinspections)],
      ["Re-inspected", "#d62728", (f) => f.reinspections],
    ];
    return chartFrame({
      id: "chart-direct-release",
      title: "Transfers released directly",
      days, max: 1, unit: "% of transfers", format: (v) => `${Math.round(v * 100)}`,
      legend: parts.map(([name, colour]) => [name, colour]),
      draw(svg, x, y, band) {
        days.forEach((day, i) => {
          const f = byDay.get(day);
          const w = Math.max(2, band * 0.72);
          if (!f || !f.transfers) {
            svg.append(s("rect", { class: "bar-empty", x: x(i) + (band - w) / 2, y: y(0) - 2, width: w, height: 2 }));
            return;
          }
          let base = 0;
          const share = f.direct_release_share ?? 0;
          const tip = `${dayLabel(day)}: ${f.transfers} transfers, ${Math.round(share * 1000) / 10} % released directly, `
            + `${f.reinspections} re-inspected`;
          for (const [name, colour, count] of parts) {
            const part = count(f) / f.transfers;
            if (!part) continue;
            svg.append(s("rect", {
              class: "bar", x: x(i) + (band - w) / 2, y: y(base + part), width: w, height: y(base) - y(base + part),
              fill: colour,
            }, s("title", {}, `${tip} · ${name}: ${count(f)}`)));
            base += part;
          }
        });
      },
    });
  }

  function timesChart(days, byDay) {
    let top = 0;
    for (const f of byDay.values()) for (const [k, q] of SERIES) top = Math.max(top, f[k][q] ?? 0);
    const max = niceMax(top);
    return chartFrame({
      id: "chart-times",
      title: "Dwell and clearance time",
      days, max, unit: "hours", format: (v) => (max < 2 ? v.toFixed(2) : max < 8 ? v.toFixed(1) : String(Math.round(v))),
      legend: SERIES.map(([, , name, colour, dash]) => [name, colour, dash]),
      draw(svg, x, y, band) {
        for (const [key, q, name, colour, dash] of SERIES) {
          // A line through the days with figures (a day without a sample is no zero: the line spans it); the dots
          // mark the days the figures come from.
          let path = "";
          const dots = [];
          days.forEach((day, i) => {
            const v = byDay.get(day)?.[key]?.[q];
            if (v === null || v === undefined) return;
            const px = x(i) + band / 2, py = y(v);
            path += `${path ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`;
            dots.push(s("circle", { class: "dot", cx: px, cy: py, r: 2.6, fill: colour },
              s("title", {}, `${dayLabel(day)} · ${name}: ${v} h`)));
          });
          svg.append(s("path", {
            class: "line", d: path || "M0,0", stroke: colour, "stroke-dasharray": dash, fill: "none",
          }), ...dots);
        }
      },
    });
  }

  function reasonsChart(days, byDay) {
    let top = 0;
    for (const f of byDay.values()) top = Math.max(top, f.reinspections || 0);
    const max = Math.max(4, Math.ceil(niceMax(top) / 4) * 4); // whole numbers on every grid line
    return chartFrame({
      id: "chart-reinspections",
      title: "Re-inspections by reason",
      days, max, unit: "transfers", format: (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)),
      legend: Object.values(REASONS),
      draw(svg, x, y, band) {
        days.forEach((day, i) => {
          const f = byDay.get(day);
          if (!f) return;
          const w = Math.max(2, band * 0.72);
          let base = 0;
          for (const [reason, [name, colour]] of Object.entries(REASONS)) {
            const n = f.reinspections_by_reason?.[reason] || 0;
            if (!n) continue;
            svg.append(s("rect", {
              class: "bar", x: x(i) + (band - w) / 2, y: y(base + n), width: w, height: y(base) - y(base + n), fill: colour,
            }, s("title", {}, `${dayLabel(day)} · ${name}: ${n}`)));
            base += n;
          }
        });
      },
    });
  }

  function kpi(value, labelText, tone) {
    return h("li", { class: `ckpi${tone ? ` tone-${tone}` : ""}` },
      h("span", { class: "ckpi-value" }, value), h("span", { class: "ckpi-label" }, labelText));
  }

  function hours(v) {
    return v === null || v === undefined ? "—" : `${v < 10 ? v.toFixed(1) : Math.round(v)} h`;
  }

  function drawClearance(report, node) {
    const days = periodDays(report.from, report.to);
    const byDay = new Map(report.items.filter((f) => f.node === node).map((f) => [f.day, f]));
    const total = report.totals.find((f) => f.node === node);
    const share = total?.direct_release_share;
    clearanceEls.kpis.replaceChildren(
      kpi(String(total?.transfers ?? 0), "transfers"),
      kpi(share === null || share === undefined ? "—" : `${Math.round(share * 1000) / 10} %`, "released directly", "good"),
      kpi(String(total?.reinspections ?? 0), total?.transfers
        ? `re-inspections · ${Math.round((1000 * total.reinspections) / total.transfers) / 10} %` : "re-inspections",
      total?.reinspections ? (total.reinspections / total.transfers > 0.05 ? "poor" : "fair") : "good"),
      kpi(hours(total?.dwell_h.p50), "dwell p50"),
      kpi(hours(total?.clearance_h.p50), "clearance p50"),
      kpi(hours(total?.clearance_h.p90), "clearance p90"),
    );
    if (!total || !total.transfers) {
      clearanceEls.charts.replaceChildren(h("p", { class: "empty" }, `No transfers at ${node} from ${report.from} to ${report.to}.`));
      clearanceEls.panel.dataset.charts = "0";
      return;
    }
    clearanceEls.charts.replaceChildren(shareChart(days, byDay), timesChart(days, byDay), reasonsChart(days, byDay));
    clearanceEls.panel.dataset.charts = String(clearanceEls.charts.querySelectorAll("svg.chart").length);
  }

  function clearanceQuery(node, extra = "") {
    const [from, to] = clearancePeriod();
    return `/analytics/clearance?node=${encodeURIComponent(node)}&from=${from}&to=${to}${extra}`;
  }

  async function loadClearance() {
    const node = clearanceEls.node.value;
    if (!node || !canAct()) return;
    const request = ++clearanceRequest;
    clearanceEls.status.textContent = "Loading…";
    clearanceEls.panel.dataset.state = "loading";
    try {
      const report = await api(clearanceQuery(node));
      if (request !== clearanceRequest) return;
      drawClearance(report, node);
      clearanceEls.status.textContent = `${node} · ${nodeName(node) || ""} · ${report.from} to ${report.to} (UTC days)`;
      clearanceEls.panel.dataset.state = "ready";
    } catch (error) {
      if (error.name === "AbortError" || request !== clearanceRequest) return;
      clearanceEls.charts.replaceChildren(h("p", { class: "form-error" }, `Could not load the figures: ${error.message}`));
      clearanceEls.status.textContent = "";
      clearanceEls.panel.dataset.state = "error";
    }
  }

  async function downloadClearance() {
    const node = clearanceEls.node.value;
    if (!node || !state.token) return;
    clearanceEls.download.disabled = true;
    try {
      const response = await fetch(API + clearanceQuery(node, "&format=csv"), {
        headers: { Authorization: `Bearer ${state.token}`, Accept: "text/csv" },
        signal: state.abort?.signal,
        cache: "no-store",
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const blob = await response.blob();
      const disposition = response.headers.get("Content-Disposition") || "";
      const name = (/filename="([^"]+)"/.exec(disposition) || [])[1] || "clearance.csv";
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: `${node}-${name}` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (error) {
      if (error.name !== "AbortError") showError(`Could not download the CSV: ${error.message}`);
    } finally {
      clearanceEls.download.disabled = false;
    }
  }

  async function showClearance(offices) {
    if (!canAct()) {
      hideClearance();
      return;
    }
    if (!state.nodes.size) {
      try { await loadNetwork(); } catch { /* shown by the first load */ }
    }
    const scoped = [...state.nodes.values()]
      .filter((p) => state.role === "admin" || offices.includes(p.customs_office))
      .sort((a, b) => a.code.localeCompare(b.code));
    const previous = clearanceEls.node.value;
    clearanceEls.node.replaceChildren(...scoped.map((p) => h("option", { value: p.code }, `${p.code} · ${p.name}`)));
    const preferred = [previous, "CNNSA", "CNYTN", scoped[0]?.code].find((c) => c && scoped.some((p) => p.code === c));
    if (preferred) clearanceEls.node.value = preferred;
    clearanceEls.panel.hidden = false;
    loadClearance();
  }

  function hideClearance() {
    clearanceRequest += 1;
    clearanceEls.panel.hidden = true;
    clearanceEls.charts.replaceChildren();
    clearanceEls.kpis.replaceChildren();
    clearanceEls.panel.dataset.charts = "0";
  }

  clearanceEls.node.addEventListener("change", loadClearance);
  clearanceEls.download.addEventListener("click", downloadClearance);

  // --- session ------------------------------------------------------------------------------------------------

  async function detectRole() {
    const response = await fetch(`${API}/me`, {
      headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" },
      signal: state.abort?.signal,
    });
    if (!response.ok) return "viewer";
    const me = await response.json();
    state.offices = me.offices || [];
    return me.role === "admin" || me.role === "supervisor" ? me.role : "viewer";
  }

  async function signIn(token) {
    showError("");
    token = token.trim();
    if (!token) return;
    let response;
    try {
      response = await fetch(`${API}/me`, {
        headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
        cache: "no-store",
      });
    } catch (error) {
      showError(error instanceof TypeError && /header/i.test(error.message)
        ? "That token has characters a token cannot have."
        : "The server cannot be reached.");
      return;
    }
    if (!response.ok) {
      sessionStorage.removeItem(TOKEN_KEY);
      showError(response.status === 401 ? "Sign-in failed: the token is unknown or revoked." : `Sign-in failed (HTTP ${response.status}).`);
      return;
    }
    state.abort?.abort();
    state.session += 1;
    const session = state.session;
    state.abort = new AbortController();
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    els.tokenInput.value = "";
    els.signinForm.hidden = true;
    els.whoami.hidden = false;
    els.roleBadge.textContent = "…";
    setStream("connecting", "Connecting…");
    els.alertsEmpty.textContent = "Loading alerts…";
    try {
      state.role = await detectRole();
    } catch {
      state.role = "viewer";
    }
    if (session !== state.session) return;
    document.body.dataset.role = state.role;
    els.roleBadge.textContent = ROLE_LABELS[state.role];
    els.roleBadge.dataset.role = state.role;
    loadContainers();
    state.refreshTimer = setInterval(loadContainers, REFRESH_MS);
    try {
      await loadAlerts();
    } catch (error) {
      if (error.name === "AbortError" || session !== state.session) return;
      showError(`Could not load alerts: ${error.message}`);
    }
    if (session !== state.session) return;
    runStream(session, state.abort.signal);
    showClearance(state.offices || []);
    if (state.selected) lookup(state.selected, { quiet: true });
  }

  function signOut(message) {
    state.abort?.abort();
    state.abort = null;
    state.session += 1;
    state.token = null;
    state.role = null;
    state.lastEventId = 0;
    state.alerts.clear();
    clearInterval(state.refreshTimer);
    clearTimeout(state.refreshSoon);
    sessionStorage.removeItem(TOKEN_KEY);
    delete document.body.dataset.role;
    els.alertList.replaceChildren();
    els.alertsEmpty.textContent = "Sign in to see the alerts in your scope as they are raised.";
    updateAlertCounts();
    els.alertsEmpty.hidden = false;
    layers.containers.clearLayers();
    containerMarkers.clear();
    els.map.dataset.containers = "0";
    for (const el of document.querySelectorAll("[data-kpi]")) el.textContent = "–";
    clearSelection();
    hideClearance();
    els.signinForm.hidden = false;
    els.whoami.hidden = true;
    setStream("offline", "Signed out");
    showError(message || "");
  }

  els.signinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    signIn(els.tokenInput.value);
  });
  els.signout.addEventListener("click", () => signOut());
  els.searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    lookup(els.containerInput.value);
  });
  els.clearTrack.addEventListener("click", clearSelection);

  // --- start --------------------------------------------------------------------------------------------------

  loadBasemap();
  loadNetwork().catch((error) => showError(`Could not load the network: ${error.message}`));
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved);
})();
