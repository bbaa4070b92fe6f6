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

  const DETAIL_REFRESH_MS = 3000;
  const IST = "Asia/Kolkata";

  const money = new Intl.NumberFormat("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const pct = new Intl.NumberFormat("en-IN", { style: "percent", maximumFractionDigits: 1 });
  // Every time on the page is IST with its date: the exchange's clock, whatever the browser's.
  const istDateTime = new Intl.DateTimeFormat("en-IN", {
    timeZone: IST, day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hour12: false });
  const istTime = new Intl.DateTimeFormat("en-IN", {
    timeZone: IST, hour: "2-digit", minute: "2-digit", hour12: false });
  const istTimeSec = new Intl.DateTimeFormat("en-IN", {
    timeZone: IST, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const istDay = new Intl.DateTimeFormat("en-CA", { timeZone: IST, year: "numeric", month: "2-digit", day: "2-digit" });
  const istDayShort = new Intl.DateTimeFormat("en-IN", { timeZone: IST, day: "2-digit", month: "short" });
  const fmtDateTime = (sec) => `${istDateTime.format(new Date(sec * 1000))} IST`;
  // Axis labels: the date on day boundaries, the time otherwise (never the same label twice
  // in a row for a seconds-resolution axis).
  const tickMark = (t, type) => {
    const d = new Date(t * 1000);
    if (type <= 2) return istDayShort.format(d);
    return type === 4 ? istTimeSec.format(d) : istTime.format(d);
  };
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
    historyLoading: new Set(),
    workers: [],
    detail: { name: null, symbol: null, trades: null, pnl: [], prices: [], fills: [] },
    priceChart: null,
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
      loadDetail();
      loadWorkers();
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
          const c = ensureChart(s.name);
          // A strategy that appeared after the snapshot (the page opened before it
          // reported) gets its stored history too, not only the points seen live.
          if (c && !c.hasHistory) loadHistory(s.name);
          else appendChartPoint(s.name, now, s.net_pnl);
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
        timeFormatter: fmtDateTime,
      },
    });
    chart.timeScale().applyOptions({ tickMarkFormatter: tickMark });
    const series = chart.addSeries(lib.BaselineSeries, {
      baseValue: { type: "price", price: 0 },
      topLineColor: "#0b8a4c", topFillColor1: "rgba(11,138,76,0.25)", topFillColor2: "rgba(11,138,76,0.03)",
      bottomLineColor: "#c8302c", bottomFillColor1: "rgba(200,48,44,0.03)", bottomFillColor2: "rgba(200,48,44,0.25)",
      lineWidth: 2,
      priceFormat: { type: "custom", formatter: (p) => money.format(p), minMove: 0.01 },
    });
    c = { chart, series, value, card, last: 0, hasHistory: false };
    state.charts.set(name, c);
    return c;
  }

  async function loadHistory(name) {
    if (state.historyLoading.has(name)) return;
    state.historyLoading.add(name);
    try {
      const h = await api(`/strategies/${encodeURIComponent(name)}/pnl?limit=${PNL_POINTS}`);
      setChartHistory(h.strategy, h.points);
    } catch (e) {
      if (e instanceof AuthError) forgetToken("The token was refused.");
    } finally {
      state.historyLoading.delete(name);
    }
  }

  function setChartHistory(name, points) {
    const c = ensureChart(name);
    if (!c) return;
    c.hasHistory = true;
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
    return fmtDateTime(t);
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
    renderDetail();
    renderWorkers();
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
      const st = cell("state"); st.append(tag(s.kill_switch ? "Halted" : s.state));
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
        cell("updated_at", s.updated_at ? fmtDateTime(s.updated_at) : "–", "muted"),
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

  // ---- strategy detail: limits, drawdown, daily P&L, round trips, price chart --------

  function selectedStrategy() {
    const names = [...state.strategies.keys()].sort();
    if (!names.includes(state.detail.name)) state.detail.name = names[0] || null;
    return state.detail.name;
  }

  async function loadDetail() {
    const name = selectedStrategy();
    if (!state.token || !name) return;
    const s = state.strategies.get(name);
    const symbols = sortedPositions(s).map((p) => p.symbol);
    if (!symbols.includes(state.detail.symbol)) state.detail.symbol = symbols[0] || null;
    const symbol = state.detail.symbol;
    const enc = encodeURIComponent;
    try {
      const [trades, pnl, orders, prices] = await Promise.all([
        api(`/strategies/${enc(name)}/trades`),
        api(`/strategies/${enc(name)}/pnl?limit=${PNL_POINTS}`),
        api(`/orders?strategy=${enc(name)}&limit=500`),
        symbol ? api(`/prices/${enc(symbol)}`) : Promise.resolve({ points: [] }),
      ]);
      if (state.detail.name !== name) return;  // the user switched meanwhile
      state.detail.trades = trades;
      state.detail.pnl = pnl.points;
      state.detail.fills = orders.items.filter((r) => r.type === "fill" && r.symbol === symbol);
      state.detail.prices = prices.points;
      scheduleRender();
    } catch (e) {
      if (e instanceof AuthError) forgetToken("The token was refused.");
    }
  }

  async function loadWorkers() {
    if (!state.token) return;
    try {
      state.workers = (await api("/workers")).items;
      scheduleRender();
    } catch (e) {
      if (e instanceof AuthError) forgetToken("The token was refused.");
    }
  }

  function fillOptions(select, values, current) {
    const have = [...select.options].map((o) => o.value);
    if (have.join("\n") !== values.join("\n")) {
      select.replaceChildren(...values.map((v) => { const o = el("option", null, v); o.value = v; return o; }));
    }
    if (current) select.value = current;
  }

  function dailyPnl(points) {
    // Net P&L at the end of each IST day, and its change over the previous day's end.
    const byDay = new Map();
    for (const p of points) byDay.set(istDay.format(new Date(p.t * 1000)), p.pnl);
    let prev = 0;
    return [...byDay.entries()].map(([day, pnl]) => {
      const row = { day, pnl, change: pnl - prev }; prev = pnl; return row;
    });
  }

  function drawdown(points) {
    let peak = 0, max = 0;
    for (const p of points) { peak = Math.max(peak, p.pnl); max = Math.max(max, peak - p.pnl); }
    const last = points.length ? points[points.length - 1].pnl : 0;
    return { max, current: peak - last };
  }

  function meter(kind, used, limit, label) {
    const bar = document.querySelector(`[data-meter="${kind}"]`);
    const text = document.querySelector(`[data-limit="${kind}"]`);
    if (limit === null || limit === undefined || limit <= 0) {
      bar.firstElementChild.style.width = "0";
      text.textContent = limit === 0 ? `${label}: limit 0` : "limit unknown";
      return;
    }
    const share = Math.max(0, used) / limit;
    bar.firstElementChild.style.width = `${Math.min(100, share * 100)}%`;
    bar.classList.toggle("warn", share >= 0.75 && share < 1);
    bar.classList.toggle("over", share >= 1);
    text.textContent = `${money.format(Math.max(0, used))} of ${money.format(limit)} (${pct.format(share)})`;
  }

  function renderDetail() {
    const name = selectedStrategy();
    $("detail").hidden = !name;
    if (!name) return;
    const s = state.strategies.get(name);
    fillOptions($("detail-select"), [...state.strategies.keys()].sort(), name);
    fillOptions($("detail-symbol"), sortedPositions(s).map((p) => p.symbol), state.detail.symbol);
    $("detail-halted").hidden = !s.kill_switch;
    const days = dailyPnl(state.detail.pnl);
    const today = days.length ? days[days.length - 1].change : 0;
    meter("loss", -today, s.max_daily_loss, "daily loss");
    meter("exposure", s.gross_exposure, s.max_gross_exposure, "exposure");
    const t = state.detail.trades;
    document.querySelector('[data-stat="win_rate"]').textContent = t && t.win_rate !== null
      ? `${pct.format(t.win_rate)} of ${count.format(t.round_trips)}` : "–";
    const dd = drawdown(state.detail.pnl);
    document.querySelector('[data-stat="drawdown"]').textContent =
      `${money.format(dd.max)} / ${money.format(dd.current)}`;
    const dayRows = days.slice().reverse().map((d) => {
      const tr = el("tr");
      tr.append(cell("day", d.day), signed(cell("pnl", null, "num"), d.pnl),
                signed(cell("change", null, "num"), d.change));
      return tr;
    });
    $("daily").tBodies[0].replaceChildren(...dayRows);
    $("daily-empty").hidden = dayRows.length > 0;
    const tripRows = (t ? t.items : []).slice(0, MAX_ROWS).map((r) => {
      const tr = el("tr");
      tr.append(cell("symbol", r.symbol), cell("side", r.side),
                cell("quantity", count.format(r.quantity), "num"),
                cell("entry_price", money.format(r.entry_price), "num"),
                cell("exit_price", money.format(r.exit_price), "num"),
                cell("entry_ts", fmtDateTime(r.entry_ts), "muted"),
                cell("exit_ts", fmtDateTime(r.exit_ts), "muted"),
                signed(cell("pnl", null, "num"), r.pnl));
      return tr;
    });
    $("trips").tBodies[0].replaceChildren(...tripRows);
    $("trips-empty").hidden = tripRows.length > 0;
    renderPriceChart();
  }

  function renderPriceChart() {
    const lib = chartLibrary();
    const points = state.detail.prices;
    $("price-empty").hidden = points.length > 0;
    if (!lib) return;
    if (!state.priceChart) {
      const chart = lib.createChart($("price-chart"), {
        autoSize: true,
        layout: { background: { color: "#ffffff" }, textColor: "#4a5360", attributionLogo: false },
        grid: { vertLines: { color: "#f0f2f5" }, horzLines: { color: "#f0f2f5" } },
        timeScale: { timeVisible: true, secondsVisible: true, rightOffset: 3, tickMarkFormatter: tickMark },
        localization: { priceFormatter: (p) => money.format(p), timeFormatter: fmtDateTime },
      });
      const series = chart.addSeries(lib.LineSeries, { color: "#2962ff", lineWidth: 2 });
      const markers = lib.createSeriesMarkers(series, []);
      state.priceChart = { chart, series, markers, key: "" };
    }
    const pc = state.priceChart;
    const key = `${state.detail.name}|${state.detail.symbol}|${points.length}|${points.length ? points[points.length - 1].t : 0}|${state.detail.fills.length}`;
    if (pc.key === key) return;
    pc.key = key;
    pc.series.setData(points.map((p) => ({ time: Math.floor(p.t), value: p.p })));
    const first = points.length ? Math.floor(points[0].t) : 0;
    const fills = state.detail.fills
      .map((f) => ({ f, t: Math.floor((f.exchange_ts ?? f.ts) / 1e9) }))
      .filter((x) => x.t >= first)
      .sort((a, b) => a.t - b.t);
    pc.markers.setMarkers(fills.map(({ f, t }) => ({
      time: t,
      position: f.side === "BUY" ? "belowBar" : "aboveBar",
      color: f.side === "BUY" ? "#0b8a4c" : "#c8302c",
      shape: f.side === "BUY" ? "arrowUp" : "arrowDown",
      text: `${f.side === "BUY" ? "B" : "S"} ${f.quantity}`,
    })));
    pc.chart.timeScale().fitContent();
  }

  function renderWorkers() {
    const rows = state.workers.map((w) => {
      const tr = el("tr");
      tr.dataset.worker = w.worker;
      const st = cell("status"); st.append(tag(w.status));
      tr.append(cell("worker", w.worker), st, cell("lag", count.format(w.lag), "num"),
                cell("starts", count.format(w.starts), "num"),
                cell("updated_at", fmtDateTime(w.updated_at), "muted"),
                cell("why", w.why, "wrap"));
      return tr;
    });
    $("workers").tBodies[0].replaceChildren(...rows);
    $("workers-empty").hidden = rows.length > 0;
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
    $("detail-select").addEventListener("change", (ev) => {
      state.detail = { name: ev.target.value, symbol: null, trades: null, pnl: [], prices: [], fills: [] };
      scheduleRender(); loadDetail();
    });
    $("detail-symbol").addEventListener("change", (ev) => {
      state.detail.symbol = ev.target.value; state.detail.prices = []; loadDetail();
    });
    setInterval(() => { loadDetail(); loadWorkers(); }, DETAIL_REFRESH_MS);
    state.token = tokenFromFragment();
    if (!state.token) { askToken(null); return; }
    connect();
  }

  // For the browser test and for debugging from the console: read-only views.
  window.alphasptDashboard = {
    chartData: (name) => { const c = state.charts.get(name); return c ? c.series.data() : null; },
    chartLibraryLoaded: () => chartLibrary() !== null,
    priceData: () => (state.priceChart ? state.priceChart.series.data() : null),
    priceMarkers: () => (state.priceChart ? state.priceChart.markers.markers() : null),
    connection: () => $("conn").dataset.state,
  };

  start();
})();
