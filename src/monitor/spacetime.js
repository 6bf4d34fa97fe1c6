// The space-time view of the monitor page: one lane per node in ring order,
// time flowing left to right. Holdings are gold bars on the holder's lane,
// hand-offs arrows from one holder to the next, heartbeats ticks, searching
// and claiming orange and purple stretches, WHERE_IS_TOKEN and
// GENERATING_TOKEN marks across every lane, incidents labelled markers, and
// a blue stripe under a lane while its node computes digits of pi.
//
// Data: /api/trace (events, numbered), polled for new ones; a window of
// time is fetched when the view shows one it does not hold. When passes are
// too dense to draw one by one (coalesced reports, or a zoomed-out
// recording of every pass), a lane shows passes per interval instead.
//
// For tests and tools, `window.spacetime` says what was drawn last.
"use strict";
(function () {
  const COLOR = { OWNER: "#e8a200", WAITER: "#2e9d4f", LOOSER: "#e46a00", GENERATING: "#8e3fb5", NONE: "#c8ccd2" };
  const MAX_EVENTS = 300000;        // the page's own bound
  const KEEP_MS = 10 * 60 * 1000;   // live: history kept
  const canvas = document.getElementById("spacetime");
  const ctx = canvas.getContext("2d");
  const st = {
    events: [],          // sorted by time
    seqs: new Set(),
    next: null,          // the next event number the server will give
    restarts: 0,
    nodes: [],           // lane ids, ring order
    span: 10000,         // ms shown
    end: null,           // right edge (ms) when not following
    follow: true,
    mode: "live",
    serverNow: 0, receivedAt: 0, playing: false, speed: 1, replay: null,
    incidents: [],
    fetchedWindows: [],
    frames: 0,
    drawn: null,
    fetching: false,
  };
  window.spacetime = st;
  // The scene is stale: new data (`dirty`), or a moved window or changed
  // lanes (`urgent`).
  let dirty = true, urgent = true;

  // --- data ---------------------------------------------------------------
  function addEvents(list) {
    let sorted = true;
    const last = st.events.length ? st.events[st.events.length - 1].t : -Infinity;
    const added = [];
    for (const e of list) {
      if (st.seqs.has(e.i)) continue;
      st.seqs.add(e.i);
      if (e.t < last || (added.length && e.t < added[added.length - 1].t)) sorted = false;
      st.events.push(e);
      added.push(e);
    }
    if (!added.length) return;
    dirty = true;
    if (!sorted) st.events.sort((a, b) => a.t - b.t || a.i - b.i);
    // Bounded: the oldest go (live: beyond ten minutes too).
    const newest = st.events[st.events.length - 1].t;
    // In batches (a minute, or a tenth), so that the index is rebuilt
    // rarely.
    let drop = st.events.length > MAX_EVENTS * 1.1 ? st.events.length - MAX_EVENTS : 0;
    if (st.mode === "live" && st.events[0].t < newest - KEEP_MS - 60000) {
      while (drop < st.events.length && st.events[drop].t < newest - KEEP_MS) drop++;
    }
    if (drop > 0) {
      for (let k = 0; k < drop; k++) st.seqs.delete(st.events[k].i);
      st.events.splice(0, drop);
    }
    // Appended in order (the usual case): index only what is new.
    if (sorted && drop === 0) added.forEach(indexOne);
    else index();
  }

  // Per node: its state changes and heartbeats, in time order.
  let byNode = new Map(), marks = [];
  function indexOne(e) {
    let n = byNode.get(e.n);
    if (!n) { n = { states: [], beats: [] }; byNode.set(e.n, n); }
    if (e.k === "s") n.states.push(e);
    else if (e.k === "hb") n.beats.push(e.t);
    else if (e.k === "w" || e.k === "g") marks.push(e);
  }
  function index() {
    byNode = new Map(); marks = [];
    st.events.forEach(indexOne);
  }

  function clear() {
    st.events = []; st.seqs = new Set(); st.fetchedWindows = []; index(); urgent = true;
  }

  async function poll() {
    if (!st.receivedAt) { setTimeout(poll, 100); return; } // the time is not known yet
    try {
      const url = st.next == null ? null : `/api/trace?after=${st.next - 1}`;
      if (url) {
        const d = await (await fetch(url)).json();
        if (d.restarts !== st.restarts) { st.restarts = d.restarts; clear(); st.next = null; }
        else { addEvents(d.events); st.next = d.next; }
      }
      if (st.next == null) {
        const [t0, t1] = visible();
        const d = await (await fetch(`/api/trace?from_ms=${t0 - st.span}&to_ms=${t1 + st.span}`)).json();
        st.restarts = d.restarts;
        addEvents(d.events);
        st.next = d.next;
      }
    } catch (e) { /* the page says when the monitor is gone */ }
    setTimeout(poll, 250);
  }

  // A window the page does not hold (scrolled back, zoomed in on a
  // recording): ask for it.
  // Following time, the polls keep the page current; this is for windows
  // moved back by hand (each asked once; the latest hundred remembered).
  async function ensureWindow(t0, t1) {
    if (st.fetching || st.follow || !st.receivedAt) return;
    const first = st.events.length ? st.events[0].t : Infinity;
    if (t0 >= first || st.fetchedWindows.some(([a, b]) => a <= t0 && b >= t1)) return;
    st.fetching = true;
    try {
      const d = await (await fetch(`/api/trace?from_ms=${t0}&to_ms=${t1}`)).json();
      st.fetchedWindows.push([t0, t1]);
      if (st.fetchedWindows.length > 100) st.fetchedWindows.shift();
      addEvents(d.events);
    } catch (e) { }
    st.fetching = false;
  }

  // --- time ---------------------------------------------------------------
  function now() {
    const since = performance.now() - st.receivedAt;
    if (st.mode === "replay") {
      const end = st.replay ? st.replay.end_ms : st.serverNow;
      return Math.min(end, st.serverNow + (st.playing ? since * st.speed : 0));
    }
    return st.serverNow + since;
  }
  function visible() {
    const end = st.follow ? now() : st.end;
    return [end - st.span, end];
  }

  // Called by the page with each event of the stream.
  st.update = function (ring, incidents, replay) {
    st.mode = ring.mode || "live";
    st.serverNow = ring.now_ms;
    if (replay) { st.serverNow = replay.position_ms; st.playing = replay.playing; st.speed = replay.speed; st.replay = replay; }
    st.receivedAt = performance.now();
    const nodes = ring.nodes.map(n => n.id), silent = new Set(ring.nodes.filter(n => n.silent).map(n => n.id));
    if (nodes.join() !== st.nodes.join() || [...silent].join() !== [...(st.silent || [])].join()) urgent = true;
    if (incidents !== st.incidents) dirty = true;
    st.nodes = nodes;
    st.silent = silent;
    st.incidents = incidents;
  };

  // Bring the view to time `t` (ms): the "What happened" list does.
  st.show = function (t, span) {
    if (span) st.span = span;
    st.follow = false;
    st.end = t + st.span / 2;
    urgent = true;
    document.getElementById("st-follow").disabled = false;
  };

  // --- drawing ------------------------------------------------------------
  const fmtTime = t => { const d = new Date(t); return d.toLocaleTimeString("en-GB", { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0").slice(0, st.span <= 5000 ? 3 : 1); };

  function stateBefore(list, t) {
    // The last change at or before t (binary search).
    let lo = 0, hi = list.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (list[mid].t <= t) lo = mid + 1; else hi = mid; }
    return lo - 1;
  }

  // The picture is drawn into a scene (an offscreen canvas) when the data
  // or the window change, at most a few times a second; every frame only
  // shows the part of it that is in the window (so it scrolls smoothly
  // while following time) and blanks what lies after "now".
  const scene = { canvas: document.createElement("canvas"), labels: document.createElement("canvas"), t0: 0, t1: 0, key: "", built: 0 };
  st.builds = 0;

  function layout() {
    const lanes = st.nodes;
    const width = canvas.clientWidth || 600;
    const laneH = Math.max(2, Math.min(40, Math.floor(520 / Math.max(1, lanes.length))));
    const top = 34, labelW = laneH >= 9 ? 86 : 40;
    return { lanes, width, laneH, top, labelW, plotW: width - labelW - 6, height: top + lanes.length * laneH + 8 };
  }

  function draw() {
    st.frames++;
    const dpr = window.devicePixelRatio || 1;
    const L = layout();
    if (canvas.width !== Math.round(L.width * dpr) || canvas.height !== Math.round(L.height * dpr)) {
      canvas.width = Math.round(L.width * dpr); canvas.height = Math.round(L.height * dpr);
      canvas.style.height = L.height + "px";
      urgent = true;
    }
    const [t0, t1] = visible();
    ensureWindow(t0, t1);
    const key = `${L.width}|${L.height}|${L.laneH}|${st.span}|${dpr}`;
    // Following time, the scene reaches ahead, so that it is rebuilt only
    // when the data change (or it runs out).
    // New events rebuild it at most twice a second with a big ring (the
    // scene reaches half a window ahead, so nothing is missing meanwhile);
    // a moved window or changed lanes at once.
    const due = performance.now() - scene.built >= (L.lanes.length > 50 ? 500 : 0);
    if (urgent || (dirty && due) || key !== scene.key || t0 < scene.t0 || t1 > scene.t1) {
      scene.built = performance.now();
      urgent = false;
      const ahead = st.follow && st.mode !== "replay" || st.playing ? st.span / 2 : 0;
      buildScene(L, t0, t1 + ahead, dpr);
      scene.key = key;
      dirty = false;
      urgent = false;
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const perMs = L.plotW / st.span * dpr;
    ctx.drawImage(scene.canvas, Math.round((t0 - scene.t0) * perMs), 0, Math.round(L.plotW * dpr), canvas.height,
      Math.round(L.labelW * dpr), 0, Math.round(L.plotW * dpr), canvas.height);
    ctx.drawImage(scene.labels, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    // Nothing has happened after "now" (the live clock, or the replay's
    // position): blank it, and draw the line.
    const pos = now();
    const x = t => L.labelW + (t - t0) / (t1 - t0) * L.plotW;
    if (pos < t1) {
      const px = Math.max(L.labelW, x(pos));
      ctx.clearRect(px, 0, L.width - px, L.height);
      if (pos >= t0) { ctx.strokeStyle = "#1d2430"; ctx.beginPath(); ctx.moveTo(px, L.top - 4); ctx.lineTo(px, L.height - 8); ctx.stroke(); }
    }
    if (st.drawn) st.drawn.window = [t0, t1];
  }

  function buildScene(L, t0, t1, dpr) {
    st.builds++;
    const { lanes, laneH, top, height } = L;
    const plotW = Math.max(1, Math.round(L.plotW * (t1 - t0) / st.span));
    const sc = scene.canvas;
    sc.width = Math.round(plotW * dpr); sc.height = Math.round(height * dpr);
    const c = sc.getContext("2d");
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    scene.t0 = t0; scene.t1 = t1;
    const x = t => (t - t0) / (t1 - t0) * plotW;
    const laneOf = new Map(lanes.map((id, i) => [id, i]));
    const y = i => top + i * laneH;
    const drawn = { window: [t0, t1], lanes: lanes.slice(), stretches: [], noHolder: [], markers: [], marks: 0, arrows: 0, beats: 0, aggregated: [], computing: [] };
    // The lanes' names, in a column that does not scroll.
    const lc = scene.labels;
    lc.width = Math.round(L.labelW * dpr); lc.height = sc.height;
    const l = lc.getContext("2d");
    l.setTransform(dpr, 0, 0, dpr, 0, 0);
    l.font = "11px system-ui, sans-serif";
    for (let i = 0; i < lanes.length; i++) {
      if (laneH >= 9 || i % Math.ceil(9 / laneH) === 0) {
        const id = lanes[i];
        l.fillStyle = st.silent && st.silent.has(id) ? "#9a9a9a" : "#1d2430";
        l.fillText(id.length > 12 ? id.slice(0, 11) + "…" : id, 2, y(i) + Math.min(laneH, 12) - 1);
      }
    }

    // Time axis.
    c.font = "11px system-ui, sans-serif"; c.fillStyle = "#5d6673"; c.strokeStyle = "#eceef1"; c.lineWidth = 1;
    const steps = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000, 120000, 300000];
    const step = steps.find(s => plotW / ((t1 - t0) / s) >= 90) || 600000;
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const px = x(t);
      c.beginPath(); c.moveTo(px, top - 4); c.lineTo(px, height - 8); c.stroke();
      c.fillText(fmtTime(t), px + 2, top - 8);
    }

    // Stretches without a holder (lost token until regenerated or found).
    for (const inc of st.incidents) {
      if (inc.detail.kind !== "token_lost") continue;
      const a = inc.at_ms, b = inc.ended_ms == null ? t1 : inc.ended_ms;
      if (b < t0 || a > t1) continue;
      c.fillStyle = "rgba(179,38,30,0.10)";
      c.fillRect(x(a), top, Math.max(1, x(b) - x(a)), lanes.length * laneH);
      drawn.noHolder.push({ from: a, to: b, by: inc.detail.regenerated_by || null });
    }

    // A holder whose token was declared lost said nothing more: its
    // holding ends where the ring lost the token (greyed after).
    const lostAt = new Map();
    for (const inc of st.incidents) {
      const holder = inc.detail.kind === "token_lost" ? inc.detail.last_holder : null;
      if (holder) { if (!lostAt.has(holder)) lostAt.set(holder, []); lostAt.get(holder).push(inc.at_ms); }
    }

    // Lanes: states as stretches, passes per interval where too dense.
    for (let i = 0; i < lanes.length; i++) {
      const id = lanes[i], n = byNode.get(id), ly = y(i);
      if (i % 2 === 0) { c.fillStyle = "#fafbfc"; c.fillRect(0, ly, plotW, laneH); }
      if (!n) continue;
      const list = n.states;
      let k = Math.max(0, stateBefore(list, t0));
      const visibleChanges = stateBefore(list, t1) - k;
      const dense = visibleChanges > plotW / 3;
      if (dense) drawn.aggregated.push(id);
      const buckets = dense ? new Float32Array(Math.ceil(plotW / 3) + 1) : null;
      for (; k < list.length && list[k].t <= t1; k++) {
        const e = list[k], a = Math.max(t0, e.t), b = Math.min(t1, k + 1 < list.length ? list[k + 1].t : t1);
        if (b < t0 || b <= a && e.s !== "OWNER") continue;
        // Holdings coalesced into this report: passes per interval.
        const prev = k > 0 ? list[k - 1] : null;
        const passes = prev && e.h != null && prev.h != null ? e.h - prev.h : 0;
        if (passes > 1 && prev) {
          const pa = Math.max(t0, prev.t), pb = Math.min(t1, e.t);
          if (pb > pa) {
            const rate = passes / Math.max(1, (e.t - prev.t) / 1000);
            c.fillStyle = `rgba(232,162,0,${Math.min(0.85, 0.2 + rate / 400)})`;
            c.fillRect(x(pa), ly + laneH * 0.2, Math.max(1, x(pb) - x(pa)), laneH * 0.6);
            if (laneH >= 9 && x(pb) - x(pa) > 34) { c.fillStyle = "#6b4a00"; c.fillText(`${passes}×`, x(pa) + 2, ly + laneH - 3); }
            drawn.aggregated.push(id);
          }
        }
        if (dense) {
          if (e.s === "OWNER" && e.t >= t0) buckets[Math.floor(x(e.t) / 3)] += 1;
          if (e.s === "LOOSER" || e.s === "GENERATING") {
            c.fillStyle = COLOR[e.s];
            c.fillRect(x(a), ly + 1, Math.max(1, x(b) - x(a)), laneH - 2);
          }
          continue;
        }
        let end = b;
        if (e.s === "OWNER") {
          const cut = (lostAt.get(id) || []).find(c => c >= e.t && c < b);
          if (cut != null) {
            end = Math.max(a, cut);
            c.fillStyle = "rgba(154,154,154,0.35)"; c.fillRect(x(end), ly + 1, Math.max(0, x(b) - x(end)), laneH - 2);
          }
        }
        const xa = x(a), w = Math.max(e.s === "OWNER" ? 2 : 0, x(end) - xa);
        if (e.s === "OWNER") {
          c.fillStyle = COLOR.OWNER; c.fillRect(xa, ly + 1, w, laneH - 2);
        } else if (e.s === "WAITER") {
          c.fillStyle = COLOR.WAITER; c.fillRect(xa, ly + laneH / 2 - 1, w, Math.max(1, laneH / 8));
        } else if (e.s === "LOOSER" || e.s === "GENERATING") {
          c.fillStyle = COLOR[e.s]; c.fillRect(xa, ly + 1, w, laneH - 2);
        }
        if (e.s !== "WAITER" && e.s !== "NONE" && drawn.stretches.length < 20000) drawn.stretches.push({ node: id, state: e.s, from: a, to: end });
      }
      if (dense) {
        const max = Math.max(1, ...buckets);
        for (let b = 0; b < buckets.length; b++) {
          if (!buckets[b]) continue;
          c.fillStyle = `rgba(232,162,0,${0.25 + 0.75 * buckets[b] / max})`;
          c.fillRect(b * 3, ly + 1, 3, laneH - 2);
        }
      }
      // Computing digits: a blue stripe along the lane's foot, from a
      // report that says so to the node's next report (or now).
      for (let k = Math.max(0, stateBefore(list, t0)); k < list.length && list[k].t <= t1; k++) {
        const e = list[k];
        if (e.c == null) continue;
        const a = Math.max(t0, e.t), b = Math.min(t1, k + 1 < list.length ? list[k + 1].t : t1);
        if (b <= a) continue;
        c.fillStyle = "#1f5fa8";
        c.fillRect(x(a), ly + laneH - Math.max(2, laneH / 5), Math.max(1, x(b) - x(a)), Math.max(2, laneH / 5));
        if (laneH >= 14 && x(b) - x(a) > 90) {
          c.fillStyle = "#1f5fa8";
          c.fillText(`π to ${e.c >= 1e6 ? (e.c / 1e6).toFixed(1) + "M" : Math.floor(e.c / 1e3) + "k"}${e.cd != null ? " " + e.cd + " %" : ""}`, x(a) + 2, ly + laneH - Math.max(3, laneH / 5) - 1);
        }
        drawn.computing.push({ node: id, from: a, to: b, digits: e.c });
      }
      // Heartbeats: ticks on the holder's lane.
      const beats = n.beats;
      let lo = 0, hi = beats.length;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (beats[mid] < t0) lo = mid + 1; else hi = mid; }
      c.fillStyle = "#1d2430";
      for (let h = lo; h < beats.length && beats[h] <= t1; h++) {
        c.fillRect(x(beats[h]) - 0.5, ly, 1, Math.max(2, laneH * 0.45));
        drawn.beats++;
      }
    }

    // Searches and claims reach every lane.
    const visibleMarks = marks.filter(m => m.t >= t0 && m.t <= t1);
    for (const m of visibleMarks) {
      const px = x(m.t), i = laneOf.get(m.n);
      c.strokeStyle = m.k === "w" ? "rgba(228,106,0,0.55)" : "rgba(142,63,181,0.7)";
      if (visibleMarks.length <= 400) {
        c.setLineDash([3, 3]); c.beginPath(); c.moveTo(px, top); c.lineTo(px, top + lanes.length * laneH); c.stroke(); c.setLineDash([]);
      }
      if (i != null) { c.fillStyle = m.k === "w" ? COLOR.LOOSER : COLOR.GENERATING; c.beginPath(); c.arc(px, y(i) + laneH / 2, Math.max(2, Math.min(5, laneH / 2)), 0, 7); c.fill(); }
      drawn.marks++;
    }

    // Hand-offs: arrows from the giver to the taker, when few enough to see.
    const arrows = [];
    for (const [id, n] of byNode) {
      const to = laneOf.get(id);
      if (to == null) continue;
      for (let k = Math.max(0, stateBefore(n.states, t0)); k < n.states.length && n.states[k].t <= t1; k++) {
        const e = n.states[k];
        if (e.s === "OWNER" && e.by && e.t >= t0 && laneOf.has(e.by)) arrows.push([laneOf.get(e.by), to, e.t]);
      }
    }
    if (arrows.length <= 500) {
      c.strokeStyle = "rgba(29,36,48,0.75)"; c.fillStyle = "rgba(29,36,48,0.75)"; c.lineWidth = 1;
      for (const [from, to, t] of arrows) {
        const px = x(t), x0 = px - Math.min(14, Math.max(4, plotW / 120)), y0 = y(from) + laneH / 2, y1 = y(to) + laneH / 2;
        c.beginPath(); c.moveTo(x0, y0); c.lineTo(px, y1); c.stroke();
        const ang = Math.atan2(y1 - y0, px - x0);
        c.beginPath(); c.moveTo(px, y1); c.lineTo(px - 5 * Math.cos(ang - 0.4), y1 - 5 * Math.sin(ang - 0.4)); c.lineTo(px - 5 * Math.cos(ang + 0.4), y1 - 5 * Math.sin(ang + 0.4)); c.fill();
      }
      drawn.arrows = arrows.length;
    }

    // Incidents: labelled markers.
    c.font = "11px system-ui, sans-serif";
    let labelRight = -Infinity;
    for (const inc of st.incidents) {
      const t = inc.at_ms;
      if (t < t0 || t > t1) continue;
      const px = x(t), kind = inc.detail.kind;
      const color = kind === "token_lost" ? "#b3261e" : kind === "duplicate_tokens" ? COLOR.LOOSER : kind === "first_token" ? COLOR.OWNER : "#2f6fd6";
      c.strokeStyle = color; c.lineWidth = 2;
      c.beginPath(); c.moveTo(px, top - 2); c.lineTo(px, top + lanes.length * laneH); c.stroke(); c.lineWidth = 1;
      const node = inc.detail.node || inc.detail.regenerated_by || inc.detail.by || "";
      const label = { token_lost: "token lost", duplicate_tokens: "two tokens", first_token: "first token", node_joined: "joined", node_silent: "silent", node_back: "back", node_restarted: "restarted", back_in_rotation: "back in rotation" }[kind] || kind;
      const text = node && kind !== "token_lost" ? `${label}: ${node}` : label;
      if (px > labelRight + 4) {
        c.fillStyle = color; c.fillText(text, px + 3, 11);
        labelRight = px + 3 + c.measureText(text).width;
      }
      drawn.markers.push({ kind, at: t, node: node || null, text });
      if (kind === "token_lost" && inc.ended_ms != null && inc.detail.regenerated_by && laneOf.has(inc.detail.regenerated_by)) {
        const gx = x(inc.ended_ms), gy = y(laneOf.get(inc.detail.regenerated_by)) + laneH / 2;
        c.fillStyle = COLOR.GENERATING; c.strokeStyle = "#1d2430";
        c.beginPath(); c.moveTo(gx, gy - 7); c.lineTo(gx + 7, gy); c.lineTo(gx, gy + 7); c.lineTo(gx - 7, gy); c.closePath(); c.fill(); c.stroke();
        drawn.markers.push({ kind: "regenerated", at: inc.ended_ms, node: inc.detail.regenerated_by, text: "regenerated" });
      }
    }
    st.drawn = drawn;
  }

  function frame() {
    try { draw(); } catch (e) { console.error(e); }
    requestAnimationFrame(frame);
  }

  // --- controls -----------------------------------------------------------
  const spanSelect = document.getElementById("st-span");
  spanSelect.onchange = () => { st.span = Number(spanSelect.value); urgent = true; };
  document.getElementById("st-follow").onclick = () => { st.follow = true; urgent = true; document.getElementById("st-follow").disabled = true; };
  canvas.addEventListener("wheel", ev => {
    ev.preventDefault();
    const [t0, t1] = visible();
    const rect = canvas.getBoundingClientRect();
    const frac = Math.min(1, Math.max(0, (ev.clientX - rect.left - 86) / (rect.width - 92)));
    const at = t0 + frac * (t1 - t0);
    const span = Math.min(3600000, Math.max(20, st.span * (ev.deltaY > 0 ? 1.25 : 0.8)));
    st.follow = false; document.getElementById("st-follow").disabled = false;
    st.end = at + (1 - frac) * span; st.span = span; urgent = true;
  }, { passive: false });
  let drag = null;
  canvas.addEventListener("mousedown", ev => { const [, t1] = visible(); drag = { x: ev.clientX, end: t1 }; });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", ev => {
    if (!drag) return;
    const per = st.span / Math.max(1, canvas.clientWidth - 92);
    st.follow = false; document.getElementById("st-follow").disabled = false;
    st.end = drag.end - (ev.clientX - drag.x) * per; urgent = true;
  });

  // Replay controls (shown on a recording).
  async function control(body) {
    const r = await fetch("/api/replay", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (r.ok) { const d = await r.json(); st.update({ mode: "replay", now_ms: d.position_ms, nodes: st.nodes.map(id => ({ id })) }, st.incidents, d); }
  }
  st.control = control;
  document.getElementById("st-play").onclick = () => control({ play: !st.playing });
  document.getElementById("st-speed").onchange = ev => control({ speed: Number(ev.target.value) });
  const seek = document.getElementById("st-seek");
  seek.oninput = () => {
    if (!st.replay) return;
    const t = st.replay.start_ms + (st.replay.end_ms - st.replay.start_ms) * seek.value / 1000;
    st.follow = true; control({ seek_ms: t });
  };
  st.controls = function (replay) {
    document.getElementById("st-replay").hidden = !replay;
    if (!replay) return;
    document.getElementById("st-play").textContent = replay.playing ? "❚❚ pause" : "▶ play";
    if (document.activeElement !== seek) seek.value = Math.round(1000 * (replay.position_ms - replay.start_ms) / Math.max(1, replay.end_ms - replay.start_ms));
    document.getElementById("st-pos").textContent = `${((replay.position_ms - replay.start_ms) / 1000).toFixed(1)} s of ${((replay.end_ms - replay.start_ms) / 1000).toFixed(1)} s`;
  };

  poll();
  requestAnimationFrame(frame);
})();
