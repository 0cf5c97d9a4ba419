// Reprise dashboard: one page over the host's HTTP API.
//
// No framework and no build step. Every view is built with createElement and
// textContent (data never goes through innerHTML), reads and acts through
// the API with the access key the user signed in with, and shows the API's
// own error message whenever the host refuses something.
//
// Routes live in the location hash so that reload and back work:
//   #/instances?status=Running,Failed&name=X&prefix=Y&from=ISO&to=ISO
//   #/instance/{encoded instance ID}
//   #/functions
//
// A link can carry the access key as #code=KEY (preferred: a fragment is
// never sent to the server) or ?code=KEY; it is taken out of the address
// bar before anything else runs.
'use strict';

// ---- The access key in the URL --------------------------------------------

// The key from #code=KEY, #/route?code=KEY or ?code=KEY, removed from the
// address (history.replaceState) so it is neither kept in the history nor
// copied with the address. Null when the URL carries none.
function takeKeyFromUrl() {
  let code = null;
  const search = new URLSearchParams(location.search);
  if (search.has('code')) {
    code = search.get('code');
    search.delete('code');
  }
  let hash = location.hash.replace(/^#/, '');
  if (hash.startsWith('code=')) {
    code = new URLSearchParams(hash).get('code');
    hash = '';
  } else if (hash.includes('?')) {
    const [path, query] = hash.split(/\?(.*)/s);
    const params = new URLSearchParams(query);
    if (params.has('code')) {
      code = params.get('code');
      params.delete('code');
      const others = params.toString();
      hash = path + (others ? '?' + others : '');
    }
  }
  if (code === null) return null;
  const rest = search.toString();
  history.replaceState(history.state, '', location.pathname + (rest ? '?' + rest : '') + (hash ? '#' + hash : ''));
  return code;
}
const KEY_FROM_URL = takeKeyFromUrl();

// ---- Constants and settings -----------------------------------------------

const BASE = '/runtime/webhooks/durabletask';
const PAGE_SIZE = 50;
const LIST_REFRESH_MS = 5000;
const INSTANCE_REFRESH_MS = 2000;
const BULK_POLL_MS = 500;
const BULK_POLL_MAX_MS = 5000;  // the longest wait between polls that fail
const MAX_TIMELINE_ROWS = 400;
const MAX_RAW_EVENTS = 2000;
// A live instance with a longer history is refreshed without it (a button
// reloads it): fetching and drawing it every 2 s would load host and browser.
const MAX_LIVE_HISTORY = 2000;

// The order statuses are shown in; ContinuedAsNew is transient and only
// shown when the host counts some.
const STATUSES = ['Pending', 'Running', 'Suspended', 'Completed', 'Failed', 'Terminated', 'ContinuedAsNew'];
const LIVE = ['Pending', 'Running', 'Suspended'];
const FINISHED = ['Completed', 'Failed', 'Terminated'];

const KEY_STORAGE = 'reprise.key';
const THEME_STORAGE = 'reprise.theme';
const REFRESH_STORAGE = 'reprise.autoRefresh';
const THEMES = ['auto', 'light', 'dark'];

// Settings read from storage; storage can be unavailable (privacy modes).
function readStorage(storage, name) {
  try { return storage.getItem(name); } catch { return null; }
}
function writeStorage(storage, name, value) {
  try {
    if (value === null) storage.removeItem(name); else storage.setItem(name, value);
  } catch { /* settings just do not persist */ }
}

// The theme is applied at once, before the page is painted.
function currentTheme() {
  const theme = readStorage(localStorage, THEME_STORAGE);
  return THEMES.includes(theme) ? theme : 'auto';
}
function applyTheme(theme) {
  if (theme === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
}
applyTheme(currentTheme());

const state = {
  key: null,            // the access key, from sessionStorage
  loginShown: false,    // the sign-in form replaces the view
  functions: null,      // cached GET functions
  view: null,           // {name, view} of the mounted view
};

// ---- DOM helpers ----------------------------------------------------------

// h('a', {href, class, test, onclick}, ...children): an element. Strings
// become text nodes; `test` sets data-test; `on*` adds listeners.
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [name, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (name === 'class') el.className = v;
    else if (name === 'test') el.dataset.test = v;
    else if (name === 'dataset') Object.assign(el.dataset, v);
    else if (name === 'value') value = v;
    else if (name.startsWith('on')) el.addEventListener(name.slice(2), v);
    else if (v === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(v));
  }
  append(el, children);
  if (value !== undefined) el.value = value;
  return el;
}

// Replaces an element's children; null and false children are left out.
function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const $ = (selector, root = document) => root.querySelector(selector);
const enc = encodeURIComponent;

function instanceHref(id) {
  return '#/instance/' + enc(id);
}

function isTyping(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.tagName === 'INPUT') return !['checkbox', 'radio', 'button', 'submit'].includes(target.type);
  return target.isContentEditable || ['TEXTAREA', 'SELECT'].includes(target.tagName);
}

// ---- Formatting -----------------------------------------------------------

const pad = (n, width = 2) => String(n).padStart(width, '0');
const numberFormat = new Intl.NumberFormat();
const fmtNumber = (n) => numberFormat.format(n);

// Local time: the time alone for today, else with the date.
function fmtTime(iso, withMillis = false) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  let time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (withMillis) time += '.' + pad(d.getMilliseconds(), 3);
  if (d.toDateString() === new Date().toDateString()) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

function fmtAgo(iso) {
  const ms = Date.now() - Date.parse(iso);
  if (!Number.isFinite(ms)) return '';
  if (ms < 1000) return 'just now';
  return fmtDuration(ms, true) + ' ago';
}

// 12 ms, 1.24 s, 3 min 5 s, 2 h 3 min, 3 d 4 h; coarse: whole seconds.
function fmtDuration(ms, coarse = false) {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return coarse ? `${Math.floor(s)} s` : `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min ${Math.floor(s % 60)} s`;
  const hours = Math.floor(min / 60);
  if (hours < 24) return `${hours} h ${min % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

function fullTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : `${d.toLocaleString()} (${iso})`;
}

function timeEl(iso, withMillis = false) {
  return h('time', { datetime: iso, title: iso ? fullTime(iso) : null }, fmtTime(iso, withMillis));
}

// "sha256:9f2c4e…" → "9f2c4e1a7b3d".
function shortVersion(version) {
  if (!version) return '—';
  const digest = String(version).replace(/^sha256:/, '');
  return digest.slice(0, 12);
}

function pretty(value) {
  return value === undefined ? '' : JSON.stringify(value, null, 2);
}

// One line of JSON for a table cell; a string is shown as itself.
function compact(value) {
  if (value === null || value === undefined) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function statusBadge(status, test) {
  return h('span', { class: 'badge', dataset: { status }, test }, status);
}

const isLive = (status) => LIVE.includes(status);

// ---- API client -----------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Thrown when the host asked for a key: the sign-in form is already shown.
class AuthRequired extends Error {}

function messageOf(data) {
  if (data && typeof data === 'object') return data.message || data.Message || '';
  return typeof data === 'string' ? data.slice(0, 500) : '';
}

// One request to the API. Resolves {status, data, headers} for 2xx; throws
// ApiError with the host's message otherwise (AuthRequired on 401).
async function api(path, { method = 'GET', query, body, headers = {} } = {}) {
  const url = new URL(BASE + path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  const init = { method, headers: { ...headers }, cache: 'no-store' };
  if (state.key) init.headers['x-functions-key'] = state.key;
  if (body !== undefined) {
    init.body = body;
    init.headers['content-type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new ApiError(0, `Cannot reach the host: ${error.message}`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (response.status === 401) {
    showLogin(state.key ? 'The host refused the stored access key; sign in again.' : '');
    throw new AuthRequired('sign-in required');
  }
  if (!response.ok) {
    throw new ApiError(response.status, messageOf(data) || `${response.status} ${response.statusText}`);
  }
  return { status: response.status, data, headers: response.headers };
}

// Reports an error unless it was a sign-in request (already handled).
function report(error) {
  if (error instanceof AuthRequired) return;
  toast(error.message || String(error), 'error');
  if (!(error instanceof ApiError)) console.error(error);
}

async function loadFunctions(force = false) {
  if (!state.functions || force) {
    const { data } = await api('/functions');
    state.functions = Array.isArray(data) ? data : [];
  }
  return state.functions;
}

function orchestratorNames() {
  return (state.functions || []).filter((f) => f.kind === 'orchestrator').map((f) => f.name).sort();
}

// ---- Toasts ---------------------------------------------------------------

function toast(message, kind = 'info') {
  const box = $('#toasts');
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss', test: 'toast-close' }, '×');
  const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', test: 'toast', dataset: { kind } },
    h('span', { class: 'toast-text' }, message), close);
  const remove = () => el.remove();
  close.addEventListener('click', remove);
  box.append(el);
  setTimeout(remove, kind === 'error' ? 12000 : 5000);
  while (box.children.length > 4) box.firstElementChild.remove();
}

// ---- Dialog: one <dialog> for every confirmation and form -----------------

const dialog = {};

function setupDialog() {
  Object.assign(dialog, {
    el: $('#dialog'), form: $('#dialog-form'), title: $('#dialog-title'), body: $('#dialog-body'),
    error: $('#dialog-error'), confirm: $('#dialog-confirm'), cancel: $('#dialog-cancel'),
  });
  dialog.cancel.addEventListener('click', () => closeDialog(false));
  dialog.el.addEventListener('close', () => closeDialog(false));
  dialog.form.addEventListener('submit', onDialogSubmit);
  // Ctrl+Enter submits from a textarea, where Enter is a new line.
  dialog.form.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      dialog.form.requestSubmit();
    }
  });
}

// Opens the dialog. onConfirm runs on submit; throwing shows its message in
// the dialog, which stays open. Resolves true once confirmed and done.
function openDialog({ title, body = [], confirmLabel = 'OK', danger = false, onConfirm = null, test = '' }) {
  if (dialog.el.open) closeDialog(false);
  dialog.title.textContent = title;
  fill(dialog.body, ...body);
  dialog.el.dataset.kind = test;
  setDialogError('');
  dialog.confirm.textContent = confirmLabel;
  dialog.confirm.classList.toggle('danger', danger);
  dialog.confirm.hidden = !onConfirm;
  dialog.confirm.disabled = false;
  dialog.confirmLabel = confirmLabel;
  dialog.cancel.textContent = onConfirm ? 'Cancel' : 'Close';
  dialog.onConfirm = onConfirm;
  dialog.busy = false;
  return new Promise((resolve) => {
    dialog.resolve = resolve;
    dialog.el.showModal();
    const first = dialog.body.querySelector('input:not([type=checkbox]), textarea, select');
    (first || (onConfirm ? dialog.confirm : dialog.cancel)).focus();
  });
}

function closeDialog(confirmed) {
  const resolve = dialog.resolve;
  dialog.resolve = null;
  if (dialog.el.open) dialog.el.close();
  if (resolve) resolve(confirmed);
}

function setDialogError(message) {
  dialog.error.textContent = message;
  dialog.error.hidden = !message;
}

function setDialogReady(ready) {
  dialog.confirm.disabled = !ready;
}

async function onDialogSubmit(event) {
  event.preventDefault();
  if (dialog.busy || dialog.confirm.disabled || !dialog.onConfirm) return;
  dialog.busy = true;
  setDialogError('');
  dialog.confirm.disabled = true;
  dialog.confirm.textContent = 'Working…';
  try {
    await dialog.onConfirm();
    closeDialog(true);
  } catch (error) {
    if (error instanceof AuthRequired) closeDialog(false);
    else setDialogError(error.message || String(error));
  } finally {
    dialog.busy = false;
    dialog.confirm.disabled = false;
    dialog.confirm.textContent = dialog.confirmLabel;
  }
}

// A labelled field for dialogs and forms.
function field(label, control, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control,
    hint ? h('span', { class: 'field-hint' }, hint) : null);
}

// JSON typed by a person: empty means no body (null); otherwise it must parse.
function checkJson(text, what) {
  if (!text.trim()) return '';
  try {
    JSON.parse(text);
    return text;
  } catch (error) {
    throw new Error(`${what} is not valid JSON: ${error.message}`);
  }
}

// Marks a textarea invalid while its text is not JSON.
function validateJsonLive(textarea, onMessage) {
  const check = () => {
    let message = '';
    try { checkJson(textarea.value, 'The text'); } catch (error) { message = error.message; }
    textarea.setAttribute('aria-invalid', message ? 'true' : 'false');
    onMessage(message);
  };
  textarea.addEventListener('input', check);
  return check;
}

// ---- Auto-refresh ---------------------------------------------------------

function autoRefreshOn() {
  return readStorage(localStorage, REFRESH_STORAGE) !== 'off';
}

// Calls fn every `interval` ms while auto-refresh is on, the page is visible
// and `wanted()` holds, never twice at once. `now()` runs it at once (or
// right after the run in progress); `fast(n)` runs the next n ticks soon
// whatever the settings (after an action, to show its effect).
function refresher(fn, interval, wanted = () => true) {
  let timer = null;
  let stopped = false;
  let running = false;
  let again = false;
  let fastTicks = 0;
  const schedule = () => {
    clearTimeout(timer);
    if (stopped) return;
    const delay = fastTicks > 0 ? 400 : interval;
    timer = setTimeout(() => tick(false), delay);
  };
  const tick = async (forced) => {
    if (stopped) return;
    if (running) {
      again = again || forced;
      return;
    }
    const fast = fastTicks > 0;
    if (fast) fastTicks -= 1;
    if (forced || fast || (autoRefreshOn() && !document.hidden && wanted())) {
      running = true;
      try { await fn(); } catch (error) { report(error); } finally { running = false; }
    }
    if (again) {
      again = false;
      return tick(true);
    }
    schedule();
  };
  schedule();
  return {
    now: () => tick(true),
    fast(n) { fastTicks = n; schedule(); },
    stop() { stopped = true; clearTimeout(timer); },
  };
}

// ---- Router ---------------------------------------------------------------

function parseHash() {
  const hash = location.hash.replace(/^#/, '') || '/instances';
  const [path, query = ''] = hash.split('?');
  const params = new URLSearchParams(query);
  if (path.startsWith('/instance/')) {
    let id = path.slice('/instance/'.length);
    try { id = decodeURIComponent(id); } catch { /* shown as typed */ }
    return { name: 'instance', id, params };
  }
  if (path === '/functions') return { name: 'functions', params };
  return { name: 'instances', params };
}

const VIEWS = { instances: instancesView, instance: instanceView, functions: functionsView };

function route() {
  if (state.loginShown) return;
  const target = parseHash();
  for (const link of document.querySelectorAll('.nav a')) {
    const current = link.dataset.nav === target.name || (link.dataset.nav === 'instances' && target.name === 'instance');
    if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
  const mounted = state.view;
  if (mounted && mounted.name === target.name && mounted.view.update && mounted.view.update(target)) return;
  unmountView();
  const view = VIEWS[target.name](target);
  state.view = { name: target.name, view };
  $('#view').replaceChildren(view.el);
}

function unmountView() {
  if (state.view && state.view.view.unmount) state.view.view.unmount();
  state.view = null;
}

function navigate(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

// ---- Sign-in --------------------------------------------------------------

function setKey(key) {
  state.key = key || null;
  writeStorage(sessionStorage, KEY_STORAGE, state.key);
  $('#sign-out').hidden = !state.key;
}

function showLogin(message) {
  if (state.loginShown) {
    if (message) setLoginError(message);
    return;
  }
  state.loginShown = true;
  if (dialog.el && dialog.el.open) closeDialog(false);
  unmountView();
  document.body.classList.add('signed-out');
  $('#view').replaceChildren(loginView(message));
  $('[data-test=login-key]').focus();
}

function setLoginError(message) {
  const error = $('[data-test=login-error]');
  if (!error) return;
  error.textContent = message;
  error.hidden = !message;
}

function loginView(message) {
  const input = h('input', { type: 'password', name: 'key', required: true, autocomplete: 'current-password', test: 'login-key', spellcheck: 'false' });
  const error = h('p', { class: 'form-error', role: 'alert', test: 'login-error', hidden: !message }, message || '');
  const submit = h('button', { type: 'submit', class: 'primary', test: 'login-submit' }, 'Sign in');
  const form = h('form', { class: 'login card', test: 'login-form', onsubmit: (event) => signIn(event, input, submit) },
    h('h1', {}, 'Sign in to Reprise'),
    h('p', { class: 'muted' }, 'This host requires an access key: the one it was started with (--key).'),
    h('p', { class: 'muted', test: 'login-link-hint' }, 'A link can carry it: ', h('code', {}, `${location.origin}/#code=KEY`),
      ' signs in this tab (the part after # never reaches the server).'),
    field('Access key', input),
    error,
    h('div', { class: 'form-actions' }, submit));
  return h('section', { class: 'login-page' }, form);
}

// Checks the key against the host before keeping it.
async function signIn(event, input, submit) {
  event.preventDefault();
  const key = input.value;
  if (!key) return;
  submit.disabled = true;
  setLoginError('');
  try {
    const response = await fetch(BASE + '/functions', { headers: { 'x-functions-key': key }, cache: 'no-store' });
    if (response.status === 401) {
      setLoginError('The host refused this key.');
      input.select();
      return;
    }
    setKey(key);
    state.loginShown = false;
    state.functions = null;
    document.body.classList.remove('signed-out');
    route();
    // A bulk job whose polling met the sign-in form is followed again.
    if (bulk.job && !bulkFinished(bulk.job)) pollBulk();
  } catch (error) {
    setLoginError(`Cannot reach the host: ${error.message}`);
  } finally {
    submit.disabled = false;
  }
}

function signOut() {
  setKey(null);
  state.functions = null;
  showLogin('Signed out.');
}

// ---- Instances: filters ---------------------------------------------------

function filterFromParams(params) {
  const status = (params.get('status') || '').split(',').map((s) => s.trim()).filter((s) => STATUSES.includes(s));
  return {
    status,
    name: params.get('name') || '',
    prefix: params.get('prefix') || '',
    from: params.get('from') || '',
    to: params.get('to') || '',
  };
}

function hasFilter(filter) {
  return Boolean(filter.status.length || filter.name || filter.prefix || filter.from || filter.to);
}

// Whether a filter selects by more than status: the host then counts its
// matches by scanning them (up to 10,000), while the per-status counts it
// keeps are cheap.
function beyondStatus(filter) {
  return Boolean(filter.name || filter.prefix || filter.from || filter.to);
}

// How many instances have one of `statuses`, from the per-status counts.
function sumStatuses(byStatus, statuses) {
  return statuses.reduce((sum, s) => sum + (byStatus[s] || 0), 0);
}

// The hash of a filter; commas and colons are left readable.
function filterHash(filter) {
  const parts = [];
  const add = (name, value) => {
    if (value) parts.push(`${name}=${enc(value).replace(/%2C/g, ',').replace(/%3A/g, ':')}`);
  };
  add('status', filter.status.join(','));
  add('name', filter.name);
  add('prefix', filter.prefix);
  add('from', filter.from);
  add('to', filter.to);
  return '#/instances' + (parts.length ? '?' + parts.join('&') : '');
}

// The list and counts parameters of the API for a filter.
function apiFilter(filter) {
  return {
    runtimeStatus: filter.status.join(','),
    name: filter.name,
    instanceIdPrefix: filter.prefix,
    createdTimeFrom: filter.from,
    createdTimeTo: filter.to,
  };
}

function describeFilter(filter) {
  const parts = [];
  if (filter.status.length) parts.push(`status ${filter.status.join(', ')}`);
  if (filter.name) parts.push(`orchestrator ${filter.name}`);
  if (filter.prefix) parts.push(`ID prefix “${filter.prefix}”`);
  if (filter.from) parts.push(`created from ${fmtTime(filter.from)}`);
  if (filter.to) parts.push(`created until ${fmtTime(filter.to)}`);
  return parts.length ? parts.join(' · ') : 'all instances';
}

// datetime-local (local time) ↔ ISO 8601 UTC.
function localToIso(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace('.000Z', 'Z');
}
// The filter's own time while the box still shows it (the box has no seconds).
function keepTime(value, iso) {
  return value === isoToLocal(iso) ? iso : localToIso(value);
}
function isoToLocal(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// ---- Instances view -------------------------------------------------------

function instancesView(target) {
  let filter = filterFromParams(target.params);
  let pages = [null];       // continuation token of each page seen; page 1 has none
  let page = 0;
  let next = null;          // token of the next page, if any
  let seq = 0;              // discards answers to superseded requests
  // The filter's count when it selects by more than status: made when the
  // filter changes, a bulk action ends or on request, not on every refresh.
  let matched = null;       // {count, atLeast, at} or null
  let matchedError = '';
  let countWanted = true;   // count the filter's matches on the next load
  let lastCounts = null;    // the last per-status counts

  const chips = h('div', { class: 'chips', test: 'status-chips', role: 'group', 'aria-label': 'Filter by status' });
  const nameSelect = h('select', { test: 'filter-name', 'aria-label': 'Orchestrator', onchange: apply });
  const prefixInput = h('input', { type: 'search', test: 'filter-prefix', placeholder: 'ID prefix', spellcheck: 'false', 'aria-label': 'Instance ID prefix' });
  const fromInput = h('input', { type: 'datetime-local', test: 'filter-from', 'aria-label': 'Created from', onchange: apply });
  const toInput = h('input', { type: 'datetime-local', test: 'filter-to', 'aria-label': 'Created until', onchange: apply });
  const clear = h('button', { type: 'button', class: 'ghost', test: 'filter-clear', onclick: () => navigate('#/instances') }, 'Clear filters');
  const filterForm = h('form', { class: 'filters', test: 'filters', onsubmit: (event) => { event.preventDefault(); apply(); } },
    field('Orchestrator', nameSelect),
    field('ID prefix', prefixInput),
    field('Created from', fromInput),
    field('Created until', toInput),
    h('div', { class: 'filter-buttons' },
      h('button', { type: 'submit', test: 'filter-apply' }, 'Apply'), clear));
  prefixInput.addEventListener('change', apply);

  const matching = h('span', { class: 'matching', test: 'matching-count' });
  const recount = h('button', {
    type: 'button', class: 'ghost small', test: 'matching-recount', hidden: true, 'aria-label': 'Count the matching instances again',
    onclick: () => { countWanted = true; recount.disabled = true; loop.now(); },
  }, '↻');
  const bulkButtons = h('div', { class: 'bulk-buttons', role: 'group', 'aria-label': 'Act on every instance of the filter' },
    h('button', { type: 'button', test: 'bulk-terminate', onclick: () => startBulk('terminate', filter) }, 'Terminate…'),
    h('button', { type: 'button', test: 'bulk-purge', onclick: () => startBulk('purge', filter) }, 'Purge…'),
    h('button', { type: 'button', test: 'bulk-rewind', onclick: () => startBulk('rewind', filter) }, 'Rewind failed…'));
  const tableBox = h('div', { class: 'table-box' }, h('p', { class: 'muted pad' }, 'Loading…'));
  const prev = h('button', { type: 'button', test: 'page-prev', onclick: () => goPage(page - 1) }, '← Previous');
  const nextButton = h('button', { type: 'button', test: 'page-next', onclick: () => goPage(page + 1) }, 'Next →');
  const pageLabel = h('span', { class: 'muted', test: 'page-number' });
  const bulkPanel = h('div', { class: 'bulk-panel', test: 'bulk-status', hidden: true });

  const el = h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Instances')),
    chips,
    filterForm,
    bulkPanel,
    h('div', { class: 'list-bar' }, h('span', { class: 'matching-box' }, matching, recount), h('span', { class: 'muted bulk-label' }, 'For all matching:'), bulkButtons),
    tableBox,
    h('div', { class: 'pager' }, prev, pageLabel, nextButton));

  function apply() {
    const hash = filterHash({
      status: filter.status,
      name: nameSelect.value,
      prefix: prefixInput.value.trim(),
      from: keepTime(fromInput.value, filter.from),
      to: keepTime(toInput.value, filter.to),
    });
    // Enter in the prefix box both changes and submits it: act once.
    if (hash !== location.hash) navigate(hash);
  }

  function toggleStatus(status) {
    const chosen = filter.status.includes(status)
      ? filter.status.filter((s) => s !== status)
      : [...filter.status, status];
    navigate(filterHash({ ...filter, status: STATUSES.filter((s) => chosen.includes(s)) }));
  }

  // Puts the filter's values into the form.
  function showFilter() {
    fillNameSelect();
    prefixInput.value = filter.prefix;
    fromInput.value = isoToLocal(filter.from);
    toInput.value = isoToLocal(filter.to);
    clear.disabled = !hasFilter(filter);
    document.title = 'Instances · Reprise';
  }

  function fillNameSelect() {
    const names = orchestratorNames();
    if (filter.name && !names.includes(filter.name)) names.push(filter.name);
    fill(nameSelect, h('option', { value: '' }, 'Any orchestrator'),
      ...names.map((name) => h('option', { value: name }, name)));
    nameSelect.value = filter.name;
  }

  function goPage(index) {
    if (index < 0) return;
    if (index > page) {
      if (!next) return;
      pages[index] = next;
    }
    page = index;
    seq += 1;
    loop.now();
  }

  async function load() {
    const mine = ++seq;
    const headers = pages[page] ? { 'x-ms-continuation-token': pages[page] } : {};
    const query = { ...apiFilter(filter), top: PAGE_SIZE, showInput: 'false', order: 'newest' };
    const counting = countWanted && beyondStatus(filter);
    const [list, counts, match] = await Promise.allSettled([
      api('/instances', { query, headers }),
      api('/counts'),
      counting ? api('/counts', { query: apiFilter(filter) }) : null,
    ]);
    if (mine !== seq) return;
    if (counting) takeMatch(match);
    if (list.status === 'fulfilled') {
      next = list.value.headers.get('x-ms-continuation-token');
      renderTable(Array.isArray(list.value.data) ? list.value.data : []);
    } else {
      shownItems = '';
      fill(tableBox, h('p', { class: 'notice error pad', test: 'instances-error' }, list.reason.message));
      if (!(list.reason instanceof ApiError)) throw list.reason;
    }
    renderCounts(counts.status === 'fulfilled' ? counts.value.data : null, counts.reason);
    renderPager();
  }

  // The chips are made once and updated in place, so focus stays on them.
  const chipCounts = new Map();
  function chip(status, label, onclick, extra = {}) {
    const count = h('span', { class: 'chip-count', test: 'status-count' }, '·');
    const button = h('button', { type: 'button', class: 'chip', onclick, ...extra },
      status ? h('span', { class: 'dot', dataset: { status } }) : null, label, count);
    chipCounts.set(status, { button, count });
    return button;
  }
  const chipsError = h('span', { class: 'muted', hidden: true });
  fill(chips, chip('', 'All', () => navigate(filterHash({ ...filter, status: [] })), { test: 'status-chip-all' }),
    STATUSES.map((status) => chip(status, status, () => toggleStatus(status), {
      test: 'status-chip', dataset: { status }, title: `Show ${status} instances (click again to leave them out)`,
    })), chipsError);

  // Keeps the answer to a filtered count; one the host could not give
  // (unreachable, 5xx) is asked again on the next refresh.
  function takeMatch(match) {
    if (match.status === 'fulfilled') {
      const data = match.value.data || {};
      matched = { ...(data.matching || { count: 0, atLeast: false }), at: new Date().toISOString() };
      matchedError = '';
      countWanted = false;
    } else if (!(match.reason instanceof AuthRequired)) {
      // A count made before (for this filter) stays shown.
      matchedError = match.reason.message;
      const status = match.reason instanceof ApiError ? match.reason.status : 0;
      countWanted = status === 0 || status >= 500;
    }
  }

  function renderCounts(counts, error) {
    if (error instanceof AuthRequired) return;
    chipsError.hidden = Boolean(counts && counts.byStatus);
    chipsError.textContent = error ? `Counts unavailable: ${error.message}` : '';
    for (const [status, { button, count }] of chipCounts) {
      const n = !counts || !counts.byStatus ? null : status ? counts.byStatus[status] ?? 0 : counts.total ?? 0;
      count.textContent = n === null ? '·' : fmtNumber(n);
      button.setAttribute('aria-pressed', String(status ? filter.status.includes(status) : !filter.status.length));
      // ContinuedAsNew is transient: shown only when there is some.
      button.hidden = status === 'ContinuedAsNew' && !n && !filter.status.includes(status);
    }
    if (counts && counts.byStatus) lastCounts = counts;
    renderMatching(counts && counts.byStatus ? counts : null);
  }

  // "N matching": from the per-status counts when the filter is by status
  // alone, else the count made when the filter was applied.
  function renderMatching(counts) {
    const scanned = beyondStatus(filter);
    let count = null;
    let atLeast = false;
    if (scanned) {
      if (matched) ({ count, atLeast } = matched);
    } else if (counts) {
      count = filter.status.length ? sumStatuses(counts.byStatus, filter.status) : counts.total ?? 0;
    }
    recount.hidden = !scanned || (!matched && !matchedError);
    recount.disabled = countWanted;
    recount.title = matchedError ? `Counting failed: ${matchedError}` : matched ? `Counted at ${fmtTime(matched.at)}; click to count again` : 'Count again';
    matching.classList.toggle('error', scanned && !matched && Boolean(matchedError));
    if (count === null) {
      matching.textContent = scanned && matchedError ? `Matching count unavailable: ${matchedError}` : '';
      delete matching.dataset.count;
      return;
    }
    const what = hasFilter(filter) ? 'matching' : 'in total';
    matching.textContent = `${atLeast ? 'at least ' : ''}${fmtNumber(count)} ${what}`;
    matching.dataset.count = String(count);
  }

  let shownItems = '';
  function renderTable(items) {
    // Unchanged rows are left alone (and focus with them).
    const signature = JSON.stringify([filterHash(filter), page, items]);
    if (signature === shownItems) return;
    shownItems = signature;
    const focused = tableBox.contains(document.activeElement) && document.activeElement.closest('tr');
    const focusedId = focused ? focused.dataset.id : null;
    if (!items.length) {
      fill(tableBox, h('div', { class: 'empty', test: 'instances-empty' },
        h('p', {}, page ? 'No more instances.' : hasFilter(filter) ? 'No instances match these filters.' : 'No instances yet.'),
        hasFilter(filter) ? h('button', { type: 'button', class: 'ghost', onclick: () => navigate('#/instances') }, 'Clear filters') : null,
        !hasFilter(filter) ? h('a', { href: '#/functions' }, 'Start one from the Functions page') : null));
      return;
    }
    const rows = items.map((item) => h('tr', { test: 'instance-row', dataset: { id: item.instanceId, status: item.runtimeStatus } },
      h('td', { class: 'id-cell' }, h('a', { href: instanceHref(item.instanceId), class: 'mono', test: 'instance-link' }, item.instanceId)),
      h('td', {}, item.name),
      h('td', {}, statusBadge(item.runtimeStatus, 'status-badge')),
      h('td', { class: 'time' }, timeEl(item.createdTime)),
      h('td', { class: 'time' }, timeEl(item.lastUpdatedTime)),
      h('td', { class: 'custom', title: compact(item.customStatus) }, compact(item.customStatus))));
    fill(tableBox, h('table', { class: 'grid', test: 'instances-table' },
      h('thead', {}, h('tr', {}, ['Instance ID', 'Orchestrator', 'Status', 'Created', 'Updated', 'Custom status'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
    const again = focusedId && rows.find((row) => row.dataset.id === focusedId);
    if (again) again.querySelector('a').focus();
  }

  function renderPager() {
    prev.disabled = page === 0;
    nextButton.disabled = !next;
    pageLabel.textContent = page === 0 && !next ? '' : `Page ${page + 1}`;
  }

  const loop = refresher(load, LIST_REFRESH_MS);
  const unsubscribe = watchBulk((job, done) => {
    renderBulk(bulkPanel, job);
    if (done) {
      countWanted = true;
      loop.now();
    }
  });

  showFilter();
  loop.now();
  loadFunctions().then(fillNameSelect).catch(report);

  return {
    el,
    // A new filter: same view, first page.
    update(route) {
      filter = filterFromParams(route.params);
      pages = [null];
      page = 0;
      next = null;
      seq += 1;
      matched = null;
      matchedError = '';
      countWanted = true;
      showFilter();
      renderMatching(lastCounts);
      loop.now();
      return true;
    },
    refresh: () => loop.now(),
    unmount() { loop.stop(); unsubscribe(); seq += 1; },
  };
}

// ---- Bulk actions over the current filter ---------------------------------

const BULK = {
  terminate: {
    title: 'Terminate instances', button: 'Terminate', verb: 'terminated', statuses: LIVE, reason: true, danger: true,
    note: 'Live instances (Pending, Running, Suspended) are terminated; the others are skipped.',
  },
  purge: {
    title: 'Purge instances', button: 'Purge', verb: 'purged', statuses: FINISHED, reason: false, danger: true,
    note: 'Finished instances (Completed, Failed, Terminated) are deleted with their history; live ones are skipped. This cannot be undone.',
  },
  rewind: {
    title: 'Rewind failed instances', button: 'Rewind', verb: 'rewound', statuses: ['Failed'], reason: true, danger: false,
    note: 'Failed instances resume from their last good point; the others are skipped.',
  },
};

// The job being followed (one at a time) and who shows it. A job is
// `running`, `done`, or `lost`: the host no longer knows it (jobs live in
// its memory, so a restart loses them).
const bulk = { job: null, listeners: new Set(), polling: false };

const bulkFinished = (job) => job.state === 'done' || job.state === 'lost';

// Whether a job ended badly: lost, stopped early, or with failures.
const bulkFailed = (job) => job.state === 'lost' || Boolean(job.stopped) || job.failed > 0;

function watchBulk(listener) {
  bulk.listeners.add(listener);
  listener(bulk.job, false);
  return () => bulk.listeners.delete(listener);
}

function publishBulk(done) {
  for (const listener of bulk.listeners) listener(bulk.job, done);
}

// How many instances of the filter the action applies to.
async function countApplicable(filter, statuses) {
  const chosen = filter.status.length ? statuses.filter((s) => filter.status.includes(s)) : statuses;
  if (!chosen.length) return { count: 0, atLeast: false };
  // By status alone: the cheap per-status counts say it.
  const query = beyondStatus(filter) ? { ...apiFilter(filter), runtimeStatus: chosen.join(',') } : undefined;
  const { data } = await api('/counts', { query });
  if (data && data.matching) return data.matching;
  return { count: sumStatuses((data && data.byStatus) || {}, chosen), atLeast: false };
}

function startBulk(action, filter) {
  const spec = BULK[action];
  if (bulk.job && !bulkFinished(bulk.job)) {
    toast('A bulk action is still running: wait for it to finish, or dismiss it to stop following it.', 'error');
    return;
  }
  const count = h('strong', { test: 'bulk-count' }, '…');
  const summary = h('p', { class: 'bulk-summary' }, count, ` instances will be ${spec.verb}.`);
  const reason = spec.reason ? h('input', { type: 'text', test: 'dialog-reason', placeholder: 'optional', value: 'bulk ' + action + ' from the dashboard' }) : null;
  openDialog({
    title: spec.title,
    test: 'bulk',
    body: [
      h('p', {}, 'Acting on ', h('strong', {}, describeFilter(filter)), '.'),
      summary,
      h('p', { class: 'muted' }, spec.note),
      reason ? field('Reason', reason, 'Recorded in each instance’s history') : null,
    ],
    confirmLabel: spec.button,
    danger: spec.danger,
    onConfirm: async () => {
      const query = { ...apiFilter(filter), action, reason: reason ? reason.value : undefined };
      const { data } = await api('/bulk', { method: 'POST', query });
      bulk.job = { ...data, action, filter: describeFilter(filter) };
      publishBulk(false);
      pollBulk();
    },
  });
  // Confirmed only once the count is known (and not zero).
  setDialogReady(false);
  const stillOpen = () => dialog.el.open && dialog.body.contains(count);
  countApplicable(filter, spec.statuses).then(({ count: n, atLeast }) => {
    if (!stillOpen()) return;
    count.textContent = `${atLeast ? 'at least ' : ''}${fmtNumber(n)}`;
    count.dataset.count = String(n);
    if (n === 0) {
      fill(summary, count, ` instances to ${action}: none of the filter's instances can be ${spec.verb}.`);
      setDialogError('Nothing to do.');
    }
    setDialogReady(n > 0);
  }).catch((error) => {
    if (!(error instanceof AuthRequired) && stillOpen()) setDialogError(error.message);
  });
}

// Follows the job until it is done. A failed poll is tried again, waiting
// twice as long each time (up to 5 s); a 404 means the host lost the job;
// a 401 stops polling until the user signs in again (signIn resumes it).
async function pollBulk() {
  if (bulk.polling) return;
  bulk.polling = true;
  let delay = BULK_POLL_MS;
  try {
    while (bulk.job && !bulkFinished(bulk.job)) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      const id = bulk.job && bulk.job.id;
      if (!id || bulkFinished(bulk.job)) break;
      let data;
      try {
        ({ data } = await api('/bulk/' + enc(id)));
      } catch (error) {
        if (error instanceof AuthRequired) return;
        if (!bulk.job || bulk.job.id !== id) continue;
        if (error instanceof ApiError && error.status === 404) {
          updateBulk(id, { state: 'lost', lost: error.message, retrying: null });
          bulkEnded(bulk.job);
          return;
        }
        delay = Math.min(delay * 2, BULK_POLL_MAX_MS);
        updateBulk(id, { retrying: `${error.message} (trying again in ${fmtDuration(delay, true)})` });
        continue;
      }
      delay = BULK_POLL_MS;
      updateBulk(id, { ...data, retrying: null });
      if (bulk.job && bulk.job.id === id && bulkFinished(bulk.job)) bulkEnded(bulk.job);
    }
  } catch (error) {
    report(error);
  } finally {
    bulk.polling = false;
  }
}

// Merges news of a job into the followed one (unless it was dismissed or
// replaced meanwhile) and shows it.
function updateBulk(id, changes) {
  if (!bulk.job || bulk.job.id !== id) return;
  bulk.job = { ...bulk.job, ...changes };
  publishBulk(bulkFinished(bulk.job));
}

// The toast for a finished job: an error when it did not do all it should.
function bulkEnded(job) {
  const title = (BULK[job.action] || { title: job.action }).title;
  if (job.state === 'lost') {
    toast(`${title}: the host no longer knows this job (it may have restarted); check the instances.`, 'error');
    return;
  }
  let message = `${title}: ${job.succeeded} done, ${job.skipped} skipped, ${job.failed} failed.`;
  if (job.stopped) message += ` Stopped early: ${job.stopped}`;
  toast(message, bulkFailed(job) ? 'error' : 'ok');
}

function renderBulk(panel, job) {
  panel.hidden = !job;
  if (!job) return;
  const finished = bulkFinished(job);
  panel.dataset.state = job.state;
  panel.dataset.outcome = finished ? (bulkFailed(job) ? 'error' : 'ok') : '';
  panel.dataset.action = job.action;
  const spec = BULK[job.action] || { title: job.action };
  const stat = (label, value, test) => h('span', { class: 'stat' }, h('strong', { test }, fmtNumber(value || 0)), ' ', label);
  const errors = (job.errors || []).slice(0, 20).map((e) => h('li', {},
    h('a', { href: instanceHref(e.instanceId), class: 'mono' }, e.instanceId), ': ', e.message));
  const stateText = { running: 'running…', done: job.stopped ? 'stopped early' : 'done', lost: 'lost' }[job.state] || job.state;
  // Dismissing a running job stops following it; the host carries on.
  const dismiss = h('button', {
    type: 'button', class: 'ghost small', test: 'bulk-dismiss',
    title: finished ? null : 'Stop following this job (the host carries on with it)',
    onclick: () => { bulk.job = null; publishBulk(false); },
  }, 'Dismiss');
  fill(panel,
    h('div', { class: 'bulk-head' },
      h('strong', {}, `${spec.title}`), h('span', { class: 'muted' }, ` · ${job.filter || ''}`),
      h('span', { class: 'bulk-state', test: 'bulk-state' }, stateText),
      dismiss),
    finished ? null : h('progress', { 'aria-label': 'Progress' }),
    h('div', { class: 'bulk-stats' },
      stat('processed', job.processed, 'bulk-processed'),
      stat('succeeded', job.succeeded, 'bulk-succeeded'),
      stat('skipped', job.skipped, 'bulk-skipped'),
      stat('failed', job.failed, 'bulk-failed')),
    job.lost ? h('p', { class: 'bulk-problem', role: 'alert', test: 'bulk-lost' },
      'The host no longer knows this job: jobs are kept in the memory of the host, so a restart loses them. ',
      'Some instances may have been processed; the list shows where they stand. (', job.lost, ')') : null,
    job.stopped ? h('p', { class: 'bulk-problem', role: 'alert', test: 'bulk-stopped' },
      'Stopped before the end of the selection: ', job.stopped) : null,
    job.retrying && !finished ? h('p', { class: 'muted', test: 'bulk-retrying' }, 'Cannot get the progress: ', job.retrying) : null,
    errors.length ? h('ul', { class: 'bulk-errors', test: 'bulk-errors' }, errors) : null);
}

// ---- Instance view --------------------------------------------------------

function instanceView(target) {
  const id = target.id;
  let status = null;
  let lastJson = '';
  let alive = true;
  let missing = false;
  let historyAt = '';       // when the shown history was loaded
  let historyWanted = true; // the next load fetches the history too

  const title = h('h1', { class: 'mono instance-title', test: 'instance-id', title: id }, id);
  const badge = h('span', { test: 'instance-status' });
  const actions = h('div', { class: 'actions', role: 'toolbar', 'aria-label': 'Instance actions' });
  const summary = h('div', { class: 'card summary', test: 'instance-summary' }, h('p', { class: 'muted' }, 'Loading…'));
  const payloads = h('div', { class: 'card payloads' });
  const timeline = h('div', { class: 'card', test: 'timeline' });
  const historyPre = h('pre', { class: 'json', test: 'history-json' });
  const historyCount = h('span', { class: 'muted' });
  const history = h('details', { class: 'card history', test: 'history', ontoggle: renderHistory },
    h('summary', { test: 'history-toggle' }, 'Raw history ', historyCount), historyPre);
  const staleText = h('span', {});
  const staleButton = h('button', { type: 'button', class: 'small', test: 'history-refresh', onclick: refreshHistory }, 'Refresh history');
  const staleNote = h('div', { class: 'notice history-stale', test: 'history-stale', hidden: true }, staleText, staleButton);
  const body = h('div', { class: 'instance-body' }, h('div', { class: 'two-col' }, summary, payloads), staleNote, timeline, history);

  const el = h('section', { class: 'page' },
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/instances', test: 'back-to-list' }, '← Instances')),
    h('div', { class: 'page-head instance-head' }, h('div', { class: 'instance-name' }, title, badge), actions),
    body);
  document.title = `${id} · Reprise`;

  // A long history is loaded only when asked for (or once the instance
  // has finished); other refreshes load the status alone.
  const longHistory = () => Boolean(status && status.historyEvents && status.historyEvents.length > MAX_LIVE_HISTORY);

  async function load() {
    const withHistory = historyWanted || !longHistory();
    const query = withHistory ? { showHistory: 'true', showHistoryOutput: 'true', showInput: 'true' } : { showInput: 'true' };
    let response;
    try {
      response = await api('/instances/' + enc(id), { query });
    } catch (error) {
      if (!alive) return;
      if (error instanceof ApiError && error.status === 404) {
        status = null;
        missing = true;
        badge.replaceChildren();
        actions.replaceChildren();
        fill(body, h('div', { class: 'notice', test: 'instance-missing' },
          h('p', {}, error.message), h('a', { href: '#/instances' }, 'Back to the instances')));
        return;
      }
      throw error;
    }
    if (!alive) return;
    missing = false;
    if (!withHistory) {
      const next = response.data;
      // Just finished (its history no longer changes: show it as it ended),
      // or a new generation (a restart): the shown history is the wrong one.
      const finished = !isLive(next.runtimeStatus) &&
        (next.runtimeStatus !== status.runtimeStatus || next.lastUpdatedTime !== status.lastUpdatedTime);
      if (finished || next.createdTime !== status.createdTime) {
        historyWanted = true;
        return load();
      }
      status = { ...next, historyEvents: status.historyEvents };
      renderStatus();
      return;
    }
    status = response.data;
    historyWanted = false;
    historyAt = new Date().toISOString();
    renderStatus();
    renderHistoryParts();
  }

  function renderStatus() {
    fill(badge, statusBadge(status.runtimeStatus));
    renderActions();
    renderSummary();
    renderPayloads();
    renderStaleNote();
  }

  function renderHistoryParts() {
    fill(timeline, ...renderTimeline(status));
    historyCount.textContent = `· ${fmtNumber((status.historyEvents || []).length)} events`;
    renderHistory();
  }

  // Says when a live instance's long history stops being refreshed (the
  // button is made once, so it keeps focus across refreshes).
  function renderStaleNote() {
    staleNote.hidden = !(longHistory() && isLive(status.runtimeStatus));
    if (staleNote.hidden) return;
    fill(staleText, `This instance has ${fmtNumber(status.historyEvents.length)} history events: while it runs, `,
      'only its status refreshes by itself. Timeline and raw history as loaded at ', timeEl(historyAt), '. ');
    staleButton.disabled = historyWanted;
  }

  // "Refresh history": one full load now.
  async function refreshHistory() {
    historyWanted = true;
    staleButton.disabled = true;
    try { await loop.now(); } finally { staleButton.disabled = historyWanted; }
  }

  // The JSON is built only while it is shown (histories can be long), and
  // replaced only when it changed (keeping a selection in it).
  function renderHistory() {
    if (!history.open || !status) return;
    const events = status.historyEvents || [];
    let json = pretty(events.slice(0, MAX_RAW_EVENTS));
    if (events.length > MAX_RAW_EVENTS) {
      json += `\n… the first ${MAX_RAW_EVENTS} of ${events.length} events`;
    }
    if (json !== lastJson) {
      historyPre.textContent = json;
      lastJson = json;
    }
  }

  function renderSummary() {
    const row = (label, value, test) => [h('dt', {}, label), h('dd', { test }, value)];
    fill(summary, h('dl', { class: 'facts' },
      row('Orchestrator', status.name, 'instance-name'),
      row('Version', status.componentVersion
        ? h('span', { class: 'mono', title: status.componentVersion }, shortVersion(status.componentVersion))
        : h('span', { class: 'muted' }, 'not recorded'), 'instance-version'),
      row('Created', [timeEl(status.createdTime), h('span', { class: 'muted' }, ` · ${fmtAgo(status.createdTime)}`)], 'instance-created'),
      row('Last updated', [timeEl(status.lastUpdatedTime), h('span', { class: 'muted' }, ` · ${fmtAgo(status.lastUpdatedTime)}`)], 'instance-updated'),
      row('Custom status', status.customStatus === null || status.customStatus === undefined
        ? h('span', { class: 'muted' }, 'none') : h('span', { class: 'mono' }, compact(status.customStatus)), 'instance-custom-status')));
  }

  function renderPayloads() {
    const failed = status.runtimeStatus === 'Failed';
    const finished = FINISHED.includes(status.runtimeStatus);
    const block = (label, value, test, cls = '') => [
      h('h3', {}, label),
      h('pre', { class: `json ${cls}`, test }, failed && test === 'instance-output' && typeof value === 'string' ? value : pretty(value)),
    ];
    fill(payloads,
      ...block('Input', status.input, 'instance-input'),
      ...(finished
        ? block(failed ? 'Failure details' : status.runtimeStatus === 'Terminated' ? 'Output (termination reason)' : 'Output',
          status.output, 'instance-output', failed ? 'failure' : '')
        : [h('h3', {}, 'Output'), h('p', { class: 'muted', test: 'instance-output' }, 'Not finished yet.')]));
  }

  /* Actions: each asks for confirmation; the host decides what it allows. */

  function renderActions() {
    const s = status.runtimeStatus;
    const live = isLive(s);
    const button = (name, label, applies, why, onclick, cls = '') => h('button', {
      type: 'button', test: `action-${name}`, class: cls, dataset: { applies: String(applies) },
      title: applies ? null : why, onclick,
    }, label);
    fill(actions,
      button('raise', 'Raise event…', live, 'Only live instances take events', raiseEvent, 'primary-soft'),
      button('suspend', 'Suspend', s === 'Running' || s === 'Pending', 'Only running instances can be suspended', () => simpleAction('suspend')),
      button('resume', 'Resume', s === 'Suspended', 'Only suspended instances can be resumed', () => simpleAction('resume')),
      button('terminate', 'Terminate', live, 'The instance has finished', () => simpleAction('terminate'), 'danger-soft'),
      button('rewind', 'Rewind', s === 'Failed', 'Only failed instances can be rewound', () => simpleAction('rewind')),
      button('restart', 'Restart', true, '', restart),
      button('purge', 'Purge', !live, 'Live instances cannot be purged: terminate first', purge, 'danger-soft'));
  }

  const SIMPLE = {
    suspend: { title: 'Suspend instance', text: 'Events, timers and activity results queue up (durably) until it is resumed.', done: 'Suspend requested' },
    resume: { title: 'Resume instance', text: 'What queued up while it was suspended is applied in arrival order.', done: 'Resume requested' },
    terminate: { title: 'Terminate instance', text: 'It stops for good; the reason becomes its output.', done: 'Termination requested', danger: true },
    rewind: { title: 'Rewind instance', text: 'A failed instance resumes from its last good point; its failed activities run again.', done: 'Rewind requested' },
  };

  function afterAction(message) {
    toast(message, 'ok');
    loop.now();
    loop.fast(6);
  }

  function simpleAction(action) {
    const spec = SIMPLE[action];
    const reason = h('input', { type: 'text', test: 'dialog-reason', placeholder: 'optional', value: '' });
    openDialog({
      title: spec.title,
      test: action,
      body: [h('p', {}, h('span', { class: 'mono' }, id)), h('p', { class: 'muted' }, spec.text), field('Reason', reason, 'Recorded in the history')],
      confirmLabel: spec.title.split(' ')[0],
      danger: spec.danger,
      onConfirm: async () => {
        await api(`/instances/${enc(id)}/${action}`, { method: 'POST', query: { reason: reason.value } });
        afterAction(spec.done);
      },
    });
  }

  function raiseEvent() {
    const name = h('input', { type: 'text', test: 'event-name', required: true, spellcheck: 'false', placeholder: 'e.g. approval' });
    const data = h('textarea', { test: 'event-data', rows: '6', spellcheck: 'false', placeholder: 'JSON, e.g. true (empty means null)' });
    validateJsonLive(data, setDialogError);
    openDialog({
      title: 'Raise an event',
      test: 'raise',
      body: [h('p', {}, 'To ', h('span', { class: 'mono' }, id)), field('Event name', name),
        field('Payload (JSON)', data, 'Ctrl+Enter sends')],
      confirmLabel: 'Send event',
      onConfirm: async () => {
        if (!name.value.trim()) throw new Error('Give the event a name.');
        const payload = checkJson(data.value, 'The payload');
        await api(`/instances/${enc(id)}/raiseEvent/${enc(name.value.trim())}`, { method: 'POST', body: payload });
        afterAction(`Event “${name.value.trim()}” sent`);
      },
    });
  }

  function restart() {
    const sameId = h('input', { type: 'checkbox', test: 'dialog-same-id' });
    openDialog({
      title: 'Restart instance',
      test: 'restart',
      body: [h('p', {}, 'Runs ', h('strong', {}, status ? status.name : 'the orchestrator'), ' again with the original input.'),
        h('label', { class: 'check' }, sameId, ' Keep the instance ID (only once this one has finished)')],
      confirmLabel: 'Restart',
      onConfirm: async () => {
        const query = sameId.checked ? { restartWithNewInstanceId: 'false' } : {};
        const { data } = await api(`/instances/${enc(id)}/restart`, { method: 'POST', query });
        toast('Restarted', 'ok');
        const newId = data && data.id;
        if (newId && newId !== id) navigate(instanceHref(newId)); else afterAction('Restarted');
      },
    });
  }

  function purge() {
    openDialog({
      title: 'Purge instance',
      test: 'purge',
      body: [h('p', {}, 'Deletes ', h('span', { class: 'mono' }, id), ' and its history. This cannot be undone.')],
      confirmLabel: 'Purge',
      danger: true,
      onConfirm: async () => {
        await api('/instances/' + enc(id), { method: 'DELETE' });
        toast(`Purged ${id}`, 'ok');
        navigate('#/instances');
      },
    });
  }

  // Refreshes while the instance is live; a finished one changes only
  // through an action, which refreshes by itself.
  const loop = refresher(load, INSTANCE_REFRESH_MS, () => !missing && (!status || isLive(status.runtimeStatus)));
  loop.now();

  return {
    el,
    update: () => false,
    unmount() { alive = false; loop.stop(); },
  };
}

// ---- Timeline: a Gantt chart of one generation's history ------------------

const KIND_LABEL = {
  orchestration: 'orchestration', activity: 'activity', timer: 'timer',
  suborchestration: 'sub-orchestration', event: 'event', sent: 'sent event',
};

// The smallest and largest finite numbers of a list (NaN when it has none).
// A loop, not Math.min(...list): spreading a long list into the arguments
// of a call overflows the stack (RangeError) past about 100,000 elements.
function extent(values) {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return min > max ? { min: NaN, max: NaN } : { min, max };
}

// Rows from the Durable Functions history: a finished activity or
// sub-orchestration is one completion entry with its ScheduledTime; one
// still running is its scheduling entry. A wait for an event has no entry
// of its own: it is drawn from the orchestrator's previous step to the
// event's arrival.
function timelineRows(status) {
  const events = status.historyEvents || [];
  const at = (iso) => (iso ? Date.parse(iso) : NaN);
  const rows = [];
  const timers = new Map();
  let started = NaN;
  let ended = NaN;
  let previous = NaN;
  const step = (kind, name, from, to, state, extra = {}) => {
    const row = { kind, name: name || KIND_LABEL[kind], from, to, state, ...extra };
    rows.push(row);
    return row;
  };
  for (const ev of events) {
    const ts = at(ev.Timestamp);
    switch (ev.EventType) {
      case 'ExecutionStarted': started = ts; break;
      case 'TaskScheduled': step('activity', ev.FunctionName, ts, NaN, 'running', { detail: ev.Input }); break;
      case 'TaskCompleted': step('activity', ev.FunctionName, at(ev.ScheduledTime) || ts, ts, 'done', { detail: ev.Result }); break;
      case 'TaskFailed': step('activity', ev.FunctionName, at(ev.ScheduledTime) || ts, ts, 'failed', { detail: ev.Reason }); break;
      case 'SubOrchestrationInstanceCreated':
        step('suborchestration', ev.FunctionName, ts, NaN, 'running', { child: ev.InstanceId }); break;
      case 'SubOrchestrationInstanceCompleted':
        step('suborchestration', ev.FunctionName, at(ev.ScheduledTime) || ts, ts, 'done', { child: ev.InstanceId, detail: ev.Result }); break;
      case 'SubOrchestrationInstanceFailed':
        step('suborchestration', ev.FunctionName, at(ev.ScheduledTime) || ts, ts, 'failed', { child: ev.InstanceId, detail: ev.Reason }); break;
      case 'TimerCreated':
        timers.set(ev.TimerId, step('timer', `timer to ${fmtTime(ev.FireAt)}`, ts, NaN, 'running', { fireAt: ev.FireAt })); break;
      case 'TimerFired': {
        const row = timers.get(ev.TimerId);
        if (row) Object.assign(row, { to: ts, state: 'done' });
        else step('timer', 'timer', at(ev.FireAt) || ts, ts, 'done');
        break;
      }
      case 'EventRaised':
        step('event', `event ${ev.Name}`, Number.isNaN(previous) ? ts : previous, ts, 'done', { detail: ev.Input }); break;
      case 'EventSent':
        step('sent', `sent ${ev.Name}`, ts, ts, 'done', { child: ev.InstanceId }); break;
      case 'ExecutionCompleted':
      case 'ExecutionTerminated':
        ended = ts; break;
      default: break;
    }
    if (Number.isFinite(ts)) previous = ts;
  }
  const live = isLive(status.runtimeStatus);
  const now = Date.now();
  const last = Math.max(previous || 0, extent(rows.map((r) => r.to)).max || 0);
  const end = Number.isFinite(ended) ? ended : live ? Math.max(now, last) : Math.max(last, at(status.lastUpdatedTime) || 0);
  // Steps still open when the instance finished were cut short.
  for (const row of rows) {
    if (Number.isNaN(row.to)) {
      row.to = live ? end : Math.max(row.from, end);
      if (!live) row.state = 'cancelled';
    }
  }
  rows.sort((a, b) => a.from - b.from);
  const begin = Number.isFinite(started) ? started : extent([at(status.createdTime)].concat(rows.map((r) => r.from))).min;
  const orchestrationState = { Failed: 'failed', Suspended: 'suspended' }[status.runtimeStatus] || (live ? 'running' : 'done');
  rows.unshift({ kind: 'orchestration', name: status.name, from: begin, to: end, state: orchestrationState, status: status.runtimeStatus });
  return { rows, begin, end, live };
}

// A tick label: ticks are round, so plain units read best (+500 ms, +15 s).
function fmtTick(ms) {
  const units = [[864e5, 'd'], [36e5, 'h'], [6e4, 'min'], [1e3, 's']];
  for (const [size, unit] of units) {
    if (ms >= size) return `+${Number((ms / size).toFixed(2))} ${unit}`;
  }
  return `+${ms} ms`;
}

// A round tick interval giving about six ticks over `span` ms.
function tickStep(span) {
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5,
    18e5, 36e5, 72e5, 108e5, 216e5, 432e5, 864e5, 1728e5, 6048e5];
  return steps.find((s) => span / s <= 7) || steps[steps.length - 1];
}

function renderTimeline(status) {
  const { rows, begin, end, live } = timelineRows(status);
  const span = Math.max(end - begin, 1);
  const pct = (t) => `${Math.min(100, Math.max(0, ((t - begin) / span) * 100))}%`;
  const header = h('div', { class: 'card-head' },
    h('h2', {}, 'Timeline'),
    h('span', { class: 'muted' }, Number.isFinite(begin) ? `started ${fmtTime(new Date(begin).toISOString(), true)} · ${fmtDuration(end - begin)}${live ? ' so far' : ''}` : ''),
    h('span', { class: 'legend' }, ['activity', 'timer', 'suborchestration', 'event'].map((k) =>
      h('span', { class: 'legend-item' }, h('span', { class: 'swatch', dataset: { kind: k } }), KIND_LABEL[k])),
    h('span', { class: 'legend-item' }, h('span', { class: 'swatch', dataset: { state: 'failed' } }), 'failed')));
  if (rows.length <= 1 && !status.historyEvents) return [header, h('p', { class: 'muted' }, 'No history.')];

  // Axis and grid lines.
  const stepMs = tickStep(span);
  const ticks = [];
  for (let t = 0; t <= span; t += stepMs) ticks.push(t);
  const axis = h('div', { class: 'gantt-row gantt-axis' }, h('div', { class: 'gantt-label' }), h('div', { class: 'gantt-track' },
    ticks.map((t) => {
      const tick = h('span', { class: 'tick' }, t === 0 ? '0' : fmtTick(t));
      tick.style.left = pct(begin + t);
      return tick;
    })), h('div', { class: 'gantt-duration' }, 'duration'));
  const grid = h('div', { class: 'gantt-grid', 'aria-hidden': 'true' }, ticks.map((t) => {
    const line = h('span', { class: 'grid-line' });
    line.style.left = pct(begin + t);
    return line;
  }));

  const shown = rows.slice(0, MAX_TIMELINE_ROWS);
  const body = shown.map((row) => ganttRow(row, pct, span));
  const more = rows.length > shown.length
    ? h('p', { class: 'muted' }, `Showing the first ${shown.length} of ${rows.length} steps; the raw history has them all.`) : null;
  return [header, h('div', { class: 'gantt', test: 'gantt' }, h('div', { class: 'gantt-grid-wrap' }, grid), axis, body), more];
}

function ganttRow(row, pct, span) {
  const duration = row.to - row.from;
  const label = row.child
    ? h('a', { href: instanceHref(row.child), test: 'timeline-child', title: `Open ${row.child}` }, row.name)
    : h('span', { title: row.name }, row.name);
  const bar = h('span', {
    class: 'bar' + (row.kind === 'sent' ? ' point' : ''), test: 'timeline-bar',
    dataset: { kind: row.kind, state: row.state, status: row.status || '' },
    title: barTitle(row),
  });
  bar.style.left = pct(row.from);
  bar.style.width = `${Math.max(0, (duration / span) * 100)}%`;
  const stateText = { running: 'running', suspended: 'suspended', cancelled: 'cut short', failed: 'failed', done: '' }[row.state];
  return h('div', { class: 'gantt-row', test: 'timeline-row', dataset: { kind: row.kind, state: row.state } },
    h('div', { class: 'gantt-label' }, h('span', { class: 'kind', dataset: { kind: row.kind } }, KIND_LABEL[row.kind]), label),
    h('div', { class: 'gantt-track' }, bar),
    h('div', { class: 'gantt-duration' }, row.kind === 'sent' ? '' : fmtDuration(duration),
      stateText ? h('span', { class: `state ${row.state}` }, ` ${stateText}`) : null));
}

function barTitle(row) {
  const iso = (t) => (Number.isFinite(t) ? new Date(t).toISOString() : '?');
  const lines = [`${KIND_LABEL[row.kind]}: ${row.name}`, `${iso(row.from)} → ${iso(row.to)} (${fmtDuration(row.to - row.from)})`];
  if (row.state !== 'done') lines.push(row.state);
  if (row.child) lines.push(`instance ${row.child}`);
  if (row.detail !== undefined) lines.push(compact(row.detail).slice(0, 300));
  return lines.join('\n');
}

// ---- Functions view -------------------------------------------------------

function functionsView(target) {
  let alive = true;
  const nameSelect = h('select', { test: 'start-name', required: true, 'aria-label': 'Orchestrator' });
  const idInput = h('input', { type: 'text', test: 'start-id', placeholder: 'leave empty for a new ID', spellcheck: 'false' });
  const inputArea = h('textarea', { test: 'start-input', rows: '5', spellcheck: 'false', placeholder: 'JSON, e.g. {"timeoutSeconds": 3600} (empty means null)' });
  const error = h('p', { class: 'form-error', role: 'alert', test: 'start-error', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary', test: 'start-submit' }, 'Start');
  const showError = (message) => { error.textContent = message; error.hidden = !message; };
  validateJsonLive(inputArea, showError);
  const form = h('form', { class: 'card start-form', test: 'start-form', onsubmit: startInstance },
    h('h2', {}, 'Start an orchestration'),
    h('div', { class: 'start-fields' },
      h('div', { class: 'start-left' }, field('Orchestrator', nameSelect), field('Instance ID', idInput, 'Optional; must not belong to a live instance')),
      field('Input (JSON)', inputArea, 'Ctrl+Enter starts')),
    error,
    h('div', { class: 'form-actions' }, submit));
  form.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) { event.preventDefault(); form.requestSubmit(); }
  });
  const functionsBox = h('div', { class: 'card' }, h('h2', {}, 'Loaded functions'), h('p', { class: 'muted' }, 'Loading…'));
  const versionsBox = h('div', { class: 'card' }, h('h2', {}, 'Component versions'), h('p', { class: 'muted' }, 'Loading…'));
  const el = h('section', { class: 'page' }, h('div', { class: 'page-head' }, h('h1', {}, 'Functions')), form, functionsBox, versionsBox);
  document.title = 'Functions · Reprise';

  async function startInstance(event) {
    event.preventDefault();
    showError('');
    let body;
    try { body = checkJson(inputArea.value, 'The input'); } catch (e) { showError(e.message); inputArea.focus(); return; }
    const name = nameSelect.value;
    if (!name) { showError('Choose an orchestrator.'); return; }
    const id = idInput.value.trim();
    submit.disabled = true;
    try {
      const path = `/orchestrators/${enc(name)}` + (id ? `/${enc(id)}` : '');
      const { data } = await api(path, { method: 'POST', body: body || undefined });
      toast(`Started ${name}`, 'ok');
      navigate(instanceHref((data && data.id) || id));
    } catch (e) {
      if (!(e instanceof AuthRequired)) showError(e.message);
    } finally {
      submit.disabled = false;
    }
  }

  function choose(name) {
    nameSelect.value = name;
    inputArea.focus();
    form.scrollIntoView({ block: 'nearest' });
  }

  async function load() {
    const [functions, versions] = await Promise.allSettled([loadFunctions(true), api('/versions')]);
    if (!alive) return;
    if (functions.status === 'rejected') {
      if (functions.reason instanceof AuthRequired) return;
      fill(functionsBox, h('h2', {}, 'Loaded functions'), h('p', { class: 'notice error' }, functions.reason.message));
      return;
    }
    const list = functions.value;
    const byVersion = new Map();
    let versionError = '';
    if (versions.status === 'fulfilled' && Array.isArray(versions.value.data)) {
      for (const v of versions.value.data) byVersion.set(v.version, v);
    } else if (versions.status === 'rejected') {
      versionError = versions.reason.message;
    }
    const previous = nameSelect.value || target.params.get('start') || '';
    const names = orchestratorNames();
    fill(nameSelect, h('option', { value: '' }, names.length ? 'Choose…' : 'No orchestrator loaded'),
      ...names.map((n) => h('option', { value: n }, n)));
    nameSelect.value = names.includes(previous) ? previous : names.length === 1 ? names[0] : '';
    renderFunctions(list, byVersion);
    renderVersions(versions.status === 'fulfilled' ? versions.value.data : null, list, versionError);
  }

  function renderFunctions(list, byVersion) {
    if (!list.length) {
      fill(functionsBox, h('h2', {}, 'Loaded functions'), h('p', { class: 'muted', test: 'functions-empty' },
        'No functions loaded: put .wasm components in the functions folder.'));
      return;
    }
    const rows = list.map((f) => {
      const v = byVersion.get(f.version);
      return h('tr', { test: 'function-row', dataset: { name: f.name, kind: f.kind } },
        h('td', { class: 'mono' }, f.name),
        h('td', {}, h('span', { class: 'kind-tag', dataset: { kind: f.kind } }, f.kind)),
        h('td', { class: 'mono' }, f.file),
        h('td', { class: 'mono', title: f.version }, shortVersion(f.version)),
        h('td', { class: 'time' }, v ? timeEl(v.storedAt) : '—'),
        h('td', { class: 'num', title: 'Unfinished instances on this version' }, v ? fmtNumber(v.liveInstances) : '—'),
        h('td', {}, f.kind === 'orchestrator'
          ? h('button', { type: 'button', class: 'small', test: 'function-start', onclick: () => choose(f.name) }, 'Start…') : null));
    });
    fill(functionsBox, h('h2', {}, 'Loaded functions'), h('table', { class: 'grid', test: 'functions-table' },
      h('thead', {}, h('tr', {}, ['Name', 'Kind', 'File', 'Version', 'Since', 'Live instances', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
  }

  function renderVersions(versions, list, errorMessage) {
    const headRow = h('h2', {}, 'Component versions');
    if (!Array.isArray(versions)) {
      fill(versionsBox, headRow, h('p', { class: 'muted' }, `Versions unavailable${errorMessage ? ': ' + errorMessage : ''}.`));
      return;
    }
    const files = new Map();
    for (const f of list) {
      if (!files.has(f.version)) files.set(f.version, new Set());
      files.get(f.version).add(f.file);
    }
    const rows = versions.map((v) => h('tr', { test: 'version-row', dataset: { version: v.version, retired: String(Boolean(v.retiredAt)) } },
      h('td', { class: 'mono', title: v.version }, shortVersion(v.version)),
      h('td', { class: 'mono' }, files.has(v.version) ? [...files.get(v.version)].join(', ') : '—'),
      h('td', { class: 'time' }, timeEl(v.storedAt)),
      h('td', {}, v.retiredAt ? timeEl(v.retiredAt) : h('span', { class: 'badge', dataset: { status: 'Completed' } }, 'serving')),
      h('td', { class: 'num' }, fmtNumber(v.liveInstances || 0))));
    fill(versionsBox, headRow,
      h('p', { class: 'muted' }, 'An instance stays on the version it started on; retired versions are kept while instances still run on them.'),
      rows.length ? h('table', { class: 'grid', test: 'versions-table' },
        h('thead', {}, h('tr', {}, ['Version', 'File', 'Stored', 'Retired', 'Live instances'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows)) : h('p', { class: 'muted' }, 'No versions recorded yet.'));
  }

  load().catch(report);
  return { el, update: () => false, unmount() { alive = false; } };
}

// ---- Header: go to an instance, refresh and theme toggles, sign out -------

function setupHeader() {
  const goto = $('#goto-input');
  $('#goto-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const id = goto.value.trim();
    if (!id) return;
    goto.value = '';
    goto.blur();
    navigate(instanceHref(id));
  });
  goto.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') goto.blur();
  });

  const refresh = $('#auto-refresh');
  refresh.checked = autoRefreshOn();
  refresh.addEventListener('change', () => {
    writeStorage(localStorage, REFRESH_STORAGE, refresh.checked ? 'on' : 'off');
    if (refresh.checked && state.view && state.view.view.refresh) state.view.view.refresh();
  });

  const theme = $('#theme-toggle');
  const showTheme = () => {
    const current = currentTheme();
    theme.textContent = { auto: '◐ Auto', light: '☀ Light', dark: '☾ Dark' }[current];
    theme.dataset.theme = current;
  };
  theme.addEventListener('click', () => {
    const nextTheme = THEMES[(THEMES.indexOf(currentTheme()) + 1) % THEMES.length];
    writeStorage(localStorage, THEME_STORAGE, nextTheme === 'auto' ? null : nextTheme);
    applyTheme(nextTheme);
    showTheme();
  });
  showTheme();

  $('#sign-out').addEventListener('click', signOut);

  // "/" focuses the go-to box, unless typing somewhere or in a dialog.
  document.addEventListener('keydown', (event) => {
    if (event.key === '/' && !event.ctrlKey && !event.metaKey && !event.altKey &&
        !isTyping(event.target) && !dialog.el.open && !state.loginShown) {
      event.preventDefault();
      goto.focus();
      goto.select();
    }
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && autoRefreshOn() && state.view && state.view.view.refresh) state.view.view.refresh();
  });
}

// ---- Start ----------------------------------------------------------------

function boot() {
  setupDialog();
  setupHeader();
  setKey(KEY_FROM_URL || readStorage(sessionStorage, KEY_STORAGE));
  window.addEventListener('hashchange', route);
  route();
}

document.addEventListener('DOMContentLoaded', boot);
