// The console's shell: sign-in, the pages (chosen by the URL's #fragment),
// and the live update that refreshes the open page every few seconds.

import * as api from './api.js';
import { h, replace } from './dom.js';
import * as overview from './overview.js';
import * as eventType from './event_type.js';
import * as deadLetters from './dead_letters.js';
import * as plugins from './plugins.js';

const REFRESH_MS = 2000;

// #/…  → [page module, nav key, parameters]
function route(hash) {
  const [path, query = ''] = hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const params = Object.fromEntries(new URLSearchParams(query));
  if (parts[0] === 'types' && parts[1]) return [eventType, 'overview', { ...params, type: parts[1] }];
  if (parts[0] === 'dead-letters' && parts[1]) return [deadLetters, 'dead-letters', { ...params, id: parts[1] }];
  if (parts[0] === 'dead-letters') return [deadLetters, 'dead-letters', params];
  if (parts[0] === 'plugins') return [plugins, 'plugins', params];
  return [overview, 'overview', params];
}

const main = document.getElementById('main');
const status = document.getElementById('status');
const signOutButton = document.getElementById('sign-out');

let generation = 0;
let timer = null;
let lastError = null;

// Announces a result (read out by screen readers, shown under the header).
function say(message) {
  status.textContent = message;
}

const ctx = { say, navigate: (hash) => { location.hash = hash; } };

async function show() {
  const mine = ++generation;
  clearTimeout(timer);
  const [page, nav, params] = route(location.hash);
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === nav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  signOutButton.hidden = !api.token();
  main.replaceChildren();
  const view = page.mount(main, params, ctx);
  document.title = `${view.title} · Mailroom console`;
  const tick = async () => {
    if (mine !== generation) return;
    if (!document.hidden) {
      try {
        await view.refresh();
        if (lastError) { lastError = null; say('Connected again.'); }
      } catch (error) {
        if (mine !== generation) return;
        if (error instanceof api.Unauthorized) { showSignIn(); return; }
        if (lastError !== error.message) { lastError = error.message; say(error.message); }
      }
    }
    if (mine === generation) timer = setTimeout(tick, REFRESH_MS);
  };
  await tick();
}

function showSignIn(refused = false) {
  generation++;
  clearTimeout(timer);
  document.title = 'Sign in · Mailroom console';
  signOutButton.hidden = true;
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', required: true,
    autocomplete: 'current-password', spellcheck: 'false',
    'aria-describedby': 'token-help',
  });
  const form = h('form', { class: 'sign-in', onsubmit: async (event) => {
    event.preventDefault();
    api.signIn(input.value.trim());
    try {
      await api.stats();
      say('Signed in.');
      show();
    } catch (error) {
      api.signOut();
      if (error instanceof api.Unauthorized) showSignIn(true);
      else say(error.message);
    }
  } },
  h('h1', {}, 'Sign in'),
  h('p', { id: 'token-help' },
    'This host asks for its API token (', h('code', {}, 'http.token'), ' or ',
    h('code', {}, 'MAILROOM_HTTP_TOKEN'), '). The console keeps it in this browser tab only, until you sign out or close the tab.'),
  refused && h('p', { class: 'error', role: 'alert' }, 'That token was refused: check it and try again.'),
  h('p', {}, h('label', { for: 'token' }, 'API token'), input),
  h('p', {}, h('button', { type: 'submit' }, 'Sign in')));
  replace(main, form);
  input.focus();
}

signOutButton.addEventListener('click', () => {
  api.signOut();
  say('Signed out.');
  showSignIn();
});

window.addEventListener('hashchange', () => {
  say('');
  show();
  main.focus();
});

show();
