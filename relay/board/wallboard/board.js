// pult wallboard: a read-only view of the queue board for a TV.
//
// The token (a supervisor's or a wallboard's) comes from the URL fragment
// (#token=…, which the browser never sends to the server) or from the form.
// Once read, it leaves the address bar and the history: the page replaces
// its entry with the bare address and keeps the token in sessionStorage,
// for this tab only (a reload keeps the board; a new window asks again). The board streams
// over server-sent events from /board/events, read with fetch so that the
// token can travel in the Authorization header: first a snapshot, then
// numbered deltas (the relay's wire.QueueSnapshot and wire.QueueDelta). A
// delta that does not follow the last one, or a lost stream, starts over
// with a fresh snapshot.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const longBreak = Number(document.querySelector('meta[name="pult-long-break"]').content) || 900;
  const statuses = ['free', 'busy', 'dinner', 'break', 'offline'];

  // The words, in English and Russian (i18n/*.json, put in the page by the
  // relay). The relay chose the page's language from ?lang= or
  // Accept-Language; without ?lang= the browser's own list decides.
  const words = JSON.parse($('pult-words').textContent);
  const root = document.documentElement;
  let lang = words[root.lang] ? root.lang : 'en';
  if (root.dataset.langFixed !== 'true') {
    for (const l of navigator.languages || [navigator.language]) {
      const primary = String(l).toLowerCase().split('-')[0];
      if (words[primary]) { lang = primary; break; }
    }
  }
  const plural = new Intl.PluralRules(lang);
  // T is the text of id, its {fields} from vars; a count picks the plural form.
  function T(id, vars, count) {
    let v = words[lang][id];
    if (v === undefined) v = words.en[id];
    if (v === undefined) return id;
    if (typeof v === 'object') v = v[plural.select(count || 0)] || v.other;
    return String(v).replace(/\{(\w+)\}/g, (m, k) => (vars && k in vars ? String(vars[k]) : m));
  }
  if (lang !== root.lang) {
    root.lang = lang;
    for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = T(e.dataset.i18n);
    for (const e of document.querySelectorAll('[data-i18n-html]')) e.innerHTML = T(e.dataset.i18nHtml); // our own words
  }
  const statusName = (s) => (statuses.includes(s) ? T('status.' + s) : s);

  let token = '';
  let board = null;     // the snapshot, kept up to date
  let offset = 0;       // server clock - this clock, ms
  let ctrl = null;      // aborts the current stream
  let retry = 1000;     // next reconnect delay, ms
  let retryTimer = 0;
  const opEls = new Map(); // operator id → element

  const tokenKey = 'pult-board-token';
  function tokenFromHash() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!m) return '';
    history.replaceState(null, '', location.pathname + location.search);
    return decodeURIComponent(m[1]).trim();
  }
  function savedToken() {
    try { return sessionStorage.getItem(tokenKey) || ''; } catch (e) { return ''; }
  }
  function saveToken(t) {
    try { if (t) sessionStorage.setItem(tokenKey, t); else sessionStorage.removeItem(tokenKey); } catch (e) { /* storage off */ }
  }

  function setConn(text, cls) {
    const c = $('conn');
    c.textContent = text;
    c.className = 'conn ' + cls;
  }

  function showLogin(msg) {
    if (ctrl) ctrl.abort();
    clearTimeout(retryTimer);
    board = null;
    $('board').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = msg || '';
    $('token').focus();
  }

  function start(t) {
    token = t;
    saveToken(t);
    retry = 1000;
    clearTimeout(retryTimer);
    connect();
  }

  function lost(why) {
    const secs = Math.round(retry / 1000);
    setConn(T('retrying', { why, n: secs }), 'bad');
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, retry);
    retry = Math.min(retry * 2, 30000);
  }

  async function connect() {
    if (ctrl) ctrl.abort();
    const my = new AbortController();
    ctrl = my;
    setConn(T('connecting'), 'wait');
    let resp;
    try {
      resp = await fetch('/board/events', {
        headers: { 'Authorization': 'Bearer ' + token, 'Accept': 'text/event-stream' },
        signal: my.signal, cache: 'no-store',
      });
    } catch (e) {
      if (!my.signal.aborted) lost(T('unreachable'));
      return;
    }
    if (resp.status === 401 || resp.status === 403) {
      let code = '';
      try { code = (await resp.json()).code || ''; } catch (e) { /* not JSON */ }
      setConn(T('notSignedIn'), 'bad');
      saveToken('');
      const known = code && words.en['error.' + code] !== undefined;
      showLogin(known ? T('error.' + code) : T(resp.status === 401 ? 'error.unknown_token' : 'error.forbidden'));
      return;
    }
    if (!resp.ok || !resp.body) {
      let code = '';
      try { code = (await resp.json()).code || ''; } catch (e) { /* not JSON */ }
      lost(code && words.en['error.' + code] !== undefined ? T('error.' + code) : T('answered', { status: resp.status }));
      return;
    }
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (!onBlock(block)) {
            my.abort();
            if (ctrl === my) connect(); // out of step: a fresh snapshot
            return;
          }
        }
      }
    } catch (e) {
      if (my.signal.aborted) return;
    }
    if (ctrl === my) lost(T('streamClosed'));
  }

  // onBlock handles one server-sent event; false means "start over".
  function onBlock(block) {
    let name = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const j = line.indexOf(':');
      const field = j < 0 ? line : line.slice(0, j);
      const value = j < 0 ? '' : line.slice(j + 1).replace(/^ /, '');
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length === 0) return true;
    const msg = JSON.parse(data.join('\n'));
    if (name === 'snapshot') {
      board = msg;
      board.operators = board.operators || [];
      board.waiting = board.waiting || [];
      board.history = board.history || [];
      offset = Date.parse(board.at) - Date.now();
      retry = 1000;
      $('login').hidden = true;
      $('board').hidden = false;
      setConn(T('live'), 'ok');
      renderAll();
      return true;
    }
    if (name === 'delta') {
      if (!board || msg.version !== board.version + 1) return false;
      apply(board, msg);
      offset = Date.parse(msg.at) - Date.now();
      render(msg);
      return true;
    }
    return true;
  }

  // apply is wire.QueueSnapshot.Apply.
  function apply(s, d) {
    s.version = d.version;
    s.at = d.at;
    if (d.day) s.day = d.day;
    for (const op of d.operators || []) {
      const i = s.operators.findIndex((o) => o.id === op.id);
      if (i >= 0) s.operators[i] = op; else s.operators.push(op);
    }
    for (const id of d.removed || []) s.operators = s.operators.filter((o) => o.id !== id);
    for (const w of d.waiting || []) {
      const i = s.waiting.findIndex((x) => x.id === w.id);
      if (i >= 0) s.waiting[i] = w; else s.waiting.push(w);
    }
    for (const id of d.gone || []) s.waiting = s.waiting.filter((x) => x.id !== id);
    if (d.totals) s.totals = d.totals;
    if (d.sample) {
      s.history.push(d.sample);
      if (s.history.length > 480) s.history.splice(0, s.history.length - 480);
    }
  }

  const now = () => Date.now() + offset;

  function dur(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), ss = s % 60;
    const p = (n) => String(n).padStart(2, '0');
    return h > 0 ? h + ':' + p(m) + ':' + p(ss) : m + ':' + p(ss);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function renderAll() {
    $('operators').replaceChildren();
    opEls.clear();
    for (const op of board.operators) putOp(op);
    render({});
  }

  function render(d) {
    if (d.operators) for (const op of d.operators) putOp(op);
    if (d.removed) for (const id of d.removed) { const e = opEls.get(id); if (e) e.remove(); opEls.delete(id); }
    renderWaiting();
    renderTotals();
    if (d.sample || !d.version) renderChart();
    $('day').textContent = dayText(board.day);
    tick();
  }

  // dayText is the board's day (2026-12-02) as the language writes it.
  function dayText(day) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day || '');
    if (!m || lang !== 'ru') return day || '';
    return m[3] + '.' + m[2] + '.' + m[1];
  }

  function putOp(op) {
    let e = opEls.get(op.id);
    if (!e) {
      e = el('div', 'op');
      e.dataset.id = op.id;
      opEls.set(op.id, e);
      // keep the grid in extension order
      const list = $('operators');
      let before = null;
      for (const other of list.children) {
        const o = board.operators.find((x) => x.id === other.dataset.id);
        if (o && (o.code > op.code || (o.code === op.code && o.id > op.id))) { before = other; break; }
      }
      list.insertBefore(e, before);
    }
    e.className = 'op st-' + op.status;
    e.dataset.status = op.status;
    e.dataset.since = op.since;
    const c = op.counters || {};
    const parts = [el('span', 'code', op.code), el('div', 'name', op.name)];
    const st = el('div', 'status', statusName(op.status) + ' ');
    st.append(el('span', 't', ''));
    st.lastChild.dataset.since = op.since;
    parts.push(st);
    if (op.call) {
      const arrow = op.call.direction === 'out' ? '↗ ' : '↙ ';
      const call = el('div', 'call', arrow + (op.call.phoneDisplay || op.call.phone) + ' ');
      call.append(el('span', 't', ''));
      call.lastChild.dataset.since = op.call.since;
      if (op.call.state === 'ringing') call.append(el('span', '', ' ' + T('dialling')));
      parts.push(call);
    }
    parts.push(el('div', 'cnt', T('counters', { answered: c.answered || 0, missed: c.missed || 0, out: c.outgoing || 0 })));
    e.replaceChildren(...parts);
  }

  function renderWaiting() {
    const ws = [...board.waiting].sort((a, b) => Date.parse(a.since) - Date.parse(b.since));
    const list = $('waiting');
    list.replaceChildren(...ws.map((w) => {
      const li = el('li');
      li.dataset.since = w.since;
      li.append(el('span', 'phone', w.phoneDisplay || w.phone || T('unknownNumber')));
      const t = el('span', 't', '');
      t.dataset.since = w.since;
      li.append(t);
      const where = [w.site, w.lineDisplay || w.line].filter(Boolean).join(' · ');
      const rings = w.ringing && w.ringing.length ? T('ringing', { codes: w.ringing.join(', ') }) : T('ringingNobody');
      li.append(el('span', 'line', (where ? where + ' — ' : '') + rings));
      return li;
    }));
    $('none-waiting').hidden = ws.length > 0;
    $('t-waiting').querySelector('.v').textContent = String(ws.length);
    $('t-waiting').querySelector('.k').textContent = T('tile.waiting', null, ws.length);
  }

  function renderTotals() {
    const t = board.totals || {};
    const n = (t.answered || 0) + (t.missed || 0);
    const sl = n === 0 ? 1 : (t.answeredInTime || 0) / n;
    const slTile = $('t-sl');
    slTile.querySelector('.v').textContent = Math.round(sl * 100) + '%';
    slTile.classList.toggle('alarm', sl < 0.8);
    $('t-sl-k').textContent = T('tile.answeredWithin', { n: board.serviceLevelSeconds });
    $('t-answered').querySelector('.v').textContent = String(t.answered || 0);
    $('t-missed').querySelector('.v').textContent = String(t.missed || 0);
    $('t-missed').classList.toggle('alarm', (t.missed || 0) > 0);
    $('t-wait').querySelector('.v').textContent = n ? dur((t.waitTotalSeconds || 0) * 1000 / n) : '–';
    $('t-talk').querySelector('.v').textContent = t.talkedCalls ? dur((t.talkTotalSeconds || 0) * 1000 / t.talkedCalls) : '–';
    $('t-io').querySelector('.v').textContent = (t.incoming || 0) + ' / ' + (t.outgoing || 0);
    const byStatus = {};
    for (const op of board.operators) byStatus[op.status] = (byStatus[op.status] || 0) + 1;
    $('op-summary').textContent = statuses.filter((k) => byStatus[k])
      .map((k) => T('summaryItem', { n: byStatus[k], status: statusName(k).toLowerCase() })).join(' · ');
  }

  function renderChart() {
    const svg = $('chart');
    const hs = board.history.slice(-480);
    const top = Math.max(1, ...hs.map((h) => h.waiting));
    const ns = 'http://www.w3.org/2000/svg';
    const kids = [];
    const x0 = 480 - hs.length;
    hs.forEach((h, i) => {
      if (!h.waiting) return;
      const r = document.createElementNS(ns, 'rect');
      const height = (h.waiting / top) * 58;
      r.setAttribute('x', String(x0 + i));
      r.setAttribute('y', String(60 - height));
      r.setAttribute('width', '1');
      r.setAttribute('height', String(height));
      kids.push(r);
    });
    if (hs.length > 1) {
      const line = document.createElementNS(ns, 'polyline');
      line.setAttribute('points', hs.map((h, i) => (x0 + i) + ',' + (60 - h.serviceLevel * 58).toFixed(1)).join(' '));
      kids.push(line);
    }
    svg.replaceChildren(...kids);
  }

  // tick refreshes every timer, the clock and the alarms, once a second.
  function tick() {
    if (!board) return;
    const t = now();
    try {
      $('clock').textContent = new Date(t).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', timeZone: board.timeZone });
    } catch (e) { // a zone this browser does not know
      $('clock').textContent = new Date(t).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
    }
    let longest = 0;
    for (const e of document.querySelectorAll('[data-since]')) {
      const ms = t - Date.parse(e.dataset.since);
      if (e.classList.contains('t')) e.textContent = dur(ms);
      if (e.tagName === 'LI') {
        longest = Math.max(longest, ms);
        e.classList.toggle('late', ms > board.serviceLevelSeconds * 1000);
      }
      if (e.classList.contains('op')) {
        e.classList.toggle('long', e.dataset.status === 'break' && ms > longBreak * 1000);
      }
    }
    const lt = $('t-longest');
    lt.querySelector('.v').textContent = board.waiting.length ? dur(longest) : '–';
    lt.classList.toggle('alarm', longest > board.serviceLevelSeconds * 1000);
  }

  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token').value.trim();
    $('token').value = '';
    if (t) start(t);
  });
  window.addEventListener('hashchange', () => {
    const t = tokenFromHash();
    if (t && t !== token) start(t);
  });
  setInterval(tick, 1000);

  const t = tokenFromHash() || savedToken();
  if (t) start(t); else { setConn(T('notSignedIn'), 'wait'); showLogin(''); }
})();
