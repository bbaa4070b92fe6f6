// AlphasPT dashboard: a snapshot over REST, then live updates over the WebSocket stream.
//
// Token: taken from the URL fragment (/#token=...; fragments are never sent to the server),
// kept in sessionStorage (this tab only), removed from the address bar; asked for when
// missing or refused. REST calls send `Authorization: Bearer`; the WebSocket offers the
// subprotocols `alphaspt.v1` and `base64url.bearer.authorization.alphaspt.io.<b64url>`.
//
// Every value from the server is written with textContent (never innerHTML).
"use strict";

(() => {
  const API = "/api/v1";
  const TOKEN_KEY = "alphaspt.token";
  const WS_APP_PROTOCOL = "alphaspt.v1";
  const WS_TOKEN_PREFIX = "base64url.bearer.authorization.alphaspt.io.";
  const MAX_ROWS = 50;
  const PNL_POINTS = 2000;

  const money = new Intl.NumberFormat("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const count = new Intl.NumberFormat("en-IN");
  const $ = (id) => document.getElementById(id);

  class AuthError extends Error {}

  const state = {
    token: null,
    strategies: new Map(),
    totals: null,
    orders: [],
    rejections: [],
    charts: new Map(),
    ws: null,
    wsAttempt: 0,
    loading: null,
    pending: [],
    renderQueued: false,
  };

  // ---- token -------------------------------------------------------------------------

  function tokenFromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get("token");
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function forgetToken(message) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    if (state.ws) state.ws.close(1000);
    askToken(message);
  }

  function askToken(message) {
    const err = $("login-error");
    err.hidden = !message;
    err.textContent = message || "";
    setConn("down", "no token");
    if (!$("login").open) $("login").showModal();
    $("token-input").focus();
  }

  function b64url(text) {
    const bytes = new TextEncoder().encode(text);
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // ---- REST --------------------------------------------------------------------------

  async function api(path) {
    const res = await fetch(API + path, {
      headers: { Authorization: "Bearer " + state.token },
      cache: "no-store",
    });
    if (res.status === 401) throw new AuthError("the token was refused");
    if (!res.ok) {
      let detail = res.statusText;
      try { detail = (await res.json()).detail || detail; } catch (_) { /* not JSON */ }
      throw new Error(`${res.status}: ${detail}`);
    }
    return res.json();
  }

  function loadSnapshot() {
    if (!state.loading) state.loading = doLoad().finally(() => { state.loading = null; });
    return state.loading;
  }

  async function doLoad() {
    state.pending = [];
    try {
      const [strategies, totals, orders, rejections] = await Promise.all([
        api("/strategies"), api("/portfolio"),
        api(`/orders?limit=${MAX_ROWS}`), api(`/rejections?limit=${MAX_ROWS}`),
      ]);
      const histories = await Promise.all(strategies.items.map(
        (s) => api(`/strategies/${encodeURIComponent(s.name)}/pnl?limit=${PNL_POINTS}`)));
      state.strategies = new Map(strategies.items.map((s) => [s.name, s]));
      for (const [name, c] of [...state.charts]) {
        if (!state.strategies.has(name)) { c.chart.remove(); c.card.remove(); state.charts.delete(name); }
      }
      state.totals = totals;
      state.orders = orders.items;
      state.rejections = rejections.items;
      for (const h of histories) setChartHistory(h.strategy, h.points);
      showBanner(null);
      if (state.ws && state.ws.readyState === WebSocket.OPEN) setConn("live", "live");
      scheduleRender();
    } catch (e) {
      if (e instanceof AuthError) { forgetToken("The token was refused."); return; }
      showBanner(`Could not load the dashboard: ${e.message}`);
    } finally {
      const pending = state.pending;
      state.pending = [];
      for (const msg of pending) apply(msg);
    }
  }

  // ---- stream ------------------------------------------------------------------------

  function connect() {
    if (!state.token) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${API}/stream`,
      [WS_APP_PROTOCOL, WS_TOKEN_PREFIX + b64url(state.token)]);
    state.ws = ws;
    ws.onopen = () => { state.wsAttempt = 0; setConn("live", "live"); };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      apply(msg);
    };
    ws.onclose = (ev) => {
      if (state.ws !== ws) return;
      state.ws = null;
      if (!state.token || ev.code === 1000) return;
      setConn("wait", "reconnecting…");
      const delay = Math.min(10000, 250 * 2 ** state.wsAttempt++);
      setTimeout(async () => {
        // A refused handshake looks like any other failure to a browser: check the token.
        try { await api("/portfolio"); } catch (e) {
          if (e instanceof AuthError) { forgetToken("The token was refused."); return; }
        }
        connect();
      }, delay);
    };
  }

  function apply(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "hello" || msg.type === "resync") { loadSnapshot(); return; }
    if (state.loading) { state.pending.push(msg); return; }
    switch (msg.type) {
      case "status":
        if (msg.redis === "down") {
          setConn("down", "Redis down");
          showBanner(msg.detail || "Redis is unreachable; live updates are paused.");
        }
        return;
      case "portfolio": {
        const now = Date.now() / 1000;
        for (const s of msg.strategies || []) {
          state.strategies.set(s.name, s);
          appendChartPoint(s.name, now, s.net_pnl);
        }
        if (msg.totals) state.totals = msg.totals;
        setConn("live", "live");
        showBanner(null);
        break;
      }
      case "rejection":
        addRecord(state.rejections, msg);
        break;
      default:
        addRecord(state.orders, msg);
    }
    scheduleRender();
  }

  function recordKey(r) {
    return r.trade_id || r.event_id || r.client_order_id || JSON.stringify(r);
  }

  function addRecord(list, record) {
    const key = recordKey(record);
    if (list.some((r) => recordKey(r) === key && r.type === record.type)) return;
    list.unshift(record);
    if (list.length > MAX_ROWS) list.length = MAX_ROWS;
  }

  // ---- charts (TradingView Lightweight Charts) ---------------------------------------

  function chartLibrary() {
    return typeof window.LightweightCharts === "object" ? window.LightweightCharts : null;
  }

  function ensureChart(name) {
    let c = state.charts.get(name);
    if (c) return c;
    const lib = chartLibrary();
    if (!lib) return null;
    const card = el("div", "chart-card");
    card.dataset.strategy = name;
    const head = el("div", "chart-head");
    const value = el("span", "value");
    head.append(el("span", "name", name), value);
    const box = el("div", "chart-box");
    card.append(head, box);
    insertSorted($("charts"), card, name);
    const chart = lib.createChart(box, {
      autoSize: true,
      layout: { background: { color: "#ffffff" }, textColor: "#4a5360", attributionLogo: false },
      grid: { vertLines: { color: "#f0f2f5" }, horzLines: { color: "#f0f2f5" } },
      timeScale: { timeVisible: true, secondsVisible: true, rightOffset: 3 },
      localization: {
        priceFormatter: (p) => money.format(p),
        timeFormatter: (t) => new Date(t * 1000).toLocaleTimeString(),
      },
    });
    chart.timeScale().applyOptions({
      tickMarkFormatter: (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
    });
    const series = chart.addSeries(lib.BaselineSeries, {
      baseValue: { type: "price", price: 0 },
      topLineColor: "#0b8a4c", topFillColor1: "rgba(11,138,76,0.25)", topFillColor2: "rgba(11,138,76,0.03)",
      bottomLineColor: "#c8302c", bottomFillColor1: "rgba(200,48,44,0.03)", bottomFillColor2: "rgba(200,48,44,0.25)",
      lineWidth: 2,
      priceFormat: { type: "custom", formatter: (p) => money.format(p), minMove: 0.01 },
    });
    c = { chart, series, value, card, last: 0 };
    state.charts.set(name, c);
    return c;
  }

  function setChartHistory(name, points) {
    const c = ensureChart(name);
    if (!c) return;
    const bySecond = new Map();
    for (const p of points) bySecond.set(Math.floor(p.t), p.pnl);
    const data = [...bySecond.entries()].sort((a, b) => a[0] - b[0])
      .map(([time, value]) => ({ time, value }));
    c.series.setData(data);
    c.last = data.length ? data[data.length - 1].time : 0;
    c.chart.timeScale().fitContent();
  }

  function appendChartPoint(name, t, pnl) {
    const c = ensureChart(name);
    if (!c) return;
    // Lightweight Charts needs non-decreasing times; a second point in the same second
    // replaces the previous one.
    const time = Math.max(Math.floor(t), c.last);
    c.series.update({ time, value: pnl });
    c.last = time;
  }

  // ---- rendering ---------------------------------------------------------------------

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function insertSorted(parent, node, name) {
    const after = [...parent.children].find((c) => c.dataset.strategy > name);
    parent.insertBefore(node, after || null);
  }

  function signed(td, v) {
    td.textContent = money.format(v);
    td.classList.toggle("pos", v > 0);
    td.classList.toggle("neg", v < 0);
    return td;
  }

  function cell(field, text, cls) {
    const td = el("td", cls, text);
    if (field) td.dataset.field = field;
    return td;
  }

  function tag(text) {
    return el("span", `tag tag-${String(text).toLowerCase()}`, text);
  }

  function when(r) {
    let t = r.ts ?? r.timestamp ?? r.exchange_ts ?? r.ingest_ts ?? r.t;
    if (typeof t !== "number") return "";
    if (t > 1e17) t /= 1e9; else if (t > 1e14) t /= 1e6; else if (t > 1e11) t /= 1e3;
    return new Date(t * 1000).toLocaleTimeString();
  }

  function scheduleRender() {
    if (state.renderQueued) return;
    state.renderQueued = true;
    requestAnimationFrame(() => { state.renderQueued = false; render(); });
  }

  function render() {
    renderTotals();
    renderStrategies();
    renderPositions();
    renderRecords();
  }

  function renderTotals() {
    const t = state.totals;
    if (!t) return;
    for (const node of document.querySelectorAll("[data-total]")) {
      const f = node.dataset.total;
      if (f === "orders_fills") node.textContent = `${count.format(t.orders)} / ${count.format(t.fills)}`;
      else if (f === "rejections") node.textContent = count.format(t.rejections);
      else if (["net_pnl", "realised_pnl", "unrealised_pnl"].includes(f)) signed(node, t[f]);
      else node.textContent = money.format(t[f]);
    }
  }

  function renderStrategies() {
    const body = $("strategies").tBodies[0];
    const rows = [];
    const names = [...state.strategies.keys()].sort();
    for (const name of names) {
      const s = state.strategies.get(name);
      const tr = el("tr");
      tr.dataset.strategy = name;
      const mode = cell("mode"); mode.append(tag(s.mode));
      const st = cell("state"); st.append(tag(s.state));
      const open = sortedPositions(s).filter((p) => p.quantity !== 0);
      const pos = cell("positions", open.length
        ? open.map((p) => `${p.symbol} ${p.quantity > 0 ? "+" : ""}${count.format(p.quantity)}`).join(" · ")
        : "flat", open.length ? "" : "muted");
      tr.append(
        cell("name", name), mode, st, pos,
        signed(cell("realised_pnl", null, "num"), s.realised_pnl),
        signed(cell("unrealised_pnl", null, "num"), s.unrealised_pnl),
        cell("charges", money.format(s.charges), "num"),
        signed(cell("net_pnl", null, "num"), s.net_pnl),
        cell("orders", count.format(s.orders), "num"),
        cell("fills", count.format(s.fills), "num"),
        cell("rejections", count.format(s.rejections), "num"),
        cell("updated_at", s.updated_at ? new Date(s.updated_at * 1000).toLocaleTimeString() : "–", "muted"),
      );
      rows.push(tr);
      const c = ensureChart(name);
      if (c) signed(c.value, s.net_pnl);
    }
    body.replaceChildren(...rows);
    $("strategies-empty").hidden = rows.length > 0;
  }

  function sortedPositions(s) {
    return [...(s.positions || [])].sort((a, b) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0));
  }

  function renderPositions() {
    const body = $("positions").tBodies[0];
    const rows = [];
    for (const name of [...state.strategies.keys()].sort()) {
      for (const p of sortedPositions(state.strategies.get(name))) {
        const tr = el("tr");
        tr.dataset.strategy = name;
        tr.dataset.symbol = p.symbol;
        tr.append(
          cell("strategy", name), cell("symbol", p.symbol),
          cell("quantity", count.format(p.quantity), "num"),
          cell("avg_price", money.format(p.avg_price), "num"),
          cell("last_price", money.format(p.last_price), "num"),
          signed(cell("realised_pnl", null, "num"), p.realised_pnl),
          signed(cell("unrealised_pnl", null, "num"), p.unrealised_pnl),
        );
        rows.push(tr);
      }
    }
    body.replaceChildren(...rows);
    $("positions-empty").hidden = rows.length > 0;
  }

  function num(v) { return typeof v === "number" ? v : null; }

  function renderRecords() {
    const orders = state.orders.map((r) => {
      const tr = el("tr");
      const price = num(r.price) ?? num(r.limit_price);
      tr.append(
        cell("time", when(r), "muted"), cell("strategy", r.strategy), cell("type", r.type),
        cell("symbol", r.symbol ?? ""), cell("side", r.side ?? ""),
        cell("quantity", num(r.quantity) !== null ? count.format(r.quantity) : "", "num"),
        cell("price", price !== null ? money.format(price) : "", "num"),
        cell("status", r.status ?? r.order_type ?? ""),
      );
      return tr;
    });
    $("orders").tBodies[0].replaceChildren(...orders);
    $("orders-empty").hidden = orders.length > 0;
    const rejections = state.rejections.map((r) => {
      const tr = el("tr");
      const signal = typeof r.signal === "object" && r.signal ? r.signal : {};
      const qty = num(r.quantity) ?? num(signal.quantity);
      tr.append(
        cell("time", when(r), "muted"), cell("strategy", r.strategy),
        cell("symbol", r.symbol ?? signal.symbol ?? ""), cell("side", r.side ?? signal.side ?? ""),
        cell("quantity", qty !== null ? count.format(qty) : "", "num"),
        cell("reason", r.reason ?? ""), cell("message", r.message ?? "", "wrap"),
      );
      return tr;
    });
    $("rejections").tBodies[0].replaceChildren(...rejections);
    $("rejections-empty").hidden = rejections.length > 0;
  }

  function setConn(kind, text) {
    const badge = $("conn");
    badge.className = `badge badge-${kind}`;
    badge.dataset.state = kind;
    badge.textContent = text;
  }

  function showBanner(text) {
    const b = $("banner");
    b.hidden = !text;
    b.textContent = text || "";
  }

  // ---- start -------------------------------------------------------------------------

  async function start() {
    $("chart-missing").hidden = chartLibrary() !== null;
    $("login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      state.token = $("token-input").value.trim();
      try {
        await api("/portfolio");
      } catch (e) {
        if (e instanceof AuthError) { askToken("That token was refused."); return; }
      }
      sessionStorage.setItem(TOKEN_KEY, state.token);
      $("token-input").value = "";
      $("login").close();
      connect();
    });
    $("forget").addEventListener("click", () => forgetToken(null));
    state.token = tokenFromFragment();
    if (!state.token) { askToken(null); return; }
    connect();
  }

  // For the browser test and for debugging from the console: read-only views.
  window.alphasptDashboard = {
    chartData: (name) => { const c = state.charts.get(name); return c ? c.series.data() : null; },
    chartLibraryLoaded: () => chartLibrary() !== null,
    connection: () => $("conn").dataset.state,
  };

  start();
})();
