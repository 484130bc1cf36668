// Dead letters: the list (filtered by event type, a page at a time) and one
// dead letter with its payload, with redrive and purge.

import * as api from './api.js';
import { confirmIn, h, replace, table } from './dom.js';
import { count, since, when } from './format.js';

export function detailLink(id) {
  return h('a', { href: `#/dead-letters/${encodeURIComponent(id)}`, 'data-key': `dl:${id}`, class: 'id' }, id);
}

export function deadLetterTable(items, caption) {
  return table(caption,
    ['Message', 'Event type', 'Attempts', 'Last error', 'Died'],
    items.map((m) => h('tr', { 'data-id': m.id },
      h('th', { scope: 'row' }, detailLink(m.id)),
      h('td', {}, m.event_type),
      h('td', { class: 'num' }, `${m.attempts} of ${m.max_attempts}`),
      h('td', { class: 'error-text' }, m.last_error ?? '(none)'),
      h('td', {}, since(m.dead_at)))),
    { class: 'dead-letters' });
}

// A button that redrives every dead letter of `eventType`.
export function redriveAllButton(eventType, n, ctx, after) {
  return h('button', { type: 'button', 'data-key': `redrive-all:${eventType}`, onclick: async () => {
    try {
      const { redriven } = await api.redriveType(eventType);
      ctx.say(`Redrove ${redriven} dead letter${redriven === 1 ? '' : 's'} of ${eventType}: back in the queue.`);
      await after();
    } catch (error) {
      ctx.say(`Redrive failed: ${error.message}`);
    }
  } }, `Redrive all ${count(n)} of ${eventType}`);
}

function mountList(main, params, ctx) {
  const eventType = params.event_type || '';
  let cursor = null;
  const input = h('input', { id: 'filter-type', name: 'event_type', value: eventType, list: 'dead-types', autocomplete: 'off' });
  const options = h('datalist', { id: 'dead-types' });
  const form = h('form', { class: 'filter', role: 'search', onsubmit: (event) => {
    event.preventDefault();
    const value = input.value.trim();
    ctx.navigate(value ? `#/dead-letters?event_type=${encodeURIComponent(value)}` : '#/dead-letters');
  } },
  h('label', { for: 'filter-type' }, 'Event type'), input, options,
  h('button', { type: 'submit' }, 'Filter'),
  eventType && h('a', { href: '#/dead-letters' }, 'Show all'));
  const body = h('div');
  main.append(
    h('h1', {}, eventType ? `Dead letters of ${eventType}` : 'Dead letters'),
    h('p', { class: 'hint' }, 'Oldest first. Same as ', h('code', {}, 'mailroom dlq list'),
      ' and ', h('code', {}, 'GET /v1/dead-letters'), '.'),
    form, body);
  const view = {
    title: 'Dead letters',
    async refresh() {
      const [page, stats] = await Promise.all([
        api.deadLetters({ eventType, cursor }), api.stats(),
      ]);
      const dead = Object.entries(stats.by_event_type).filter(([, c]) => c.dead > 0);
      options.replaceChildren(...dead.map(([name]) => h('option', { value: name })));
      const total = eventType ? (stats.by_event_type[eventType]?.dead ?? 0) : stats.dead;
      replace(body,
        h('p', { 'data-dead-total': total }, `${count(total)} dead letter${total === 1 ? '' : 's'}${eventType ? ` of ${eventType}` : ''}.`),
        eventType && total > 0 && h('p', {}, redriveAllButton(eventType, total, ctx, view.refresh),
          ' Same as ', h('code', {}, `mailroom dlq redrive --event-type ${eventType}`), '.'),
        page.items.length > 0 && deadLetterTable(page.items, 'Dead letters'),
        h('p', { class: 'pages' },
          cursor && h('button', { type: 'button', 'data-key': 'first', onclick: () => { cursor = null; view.refresh(); } }, 'First page'),
          page.next_cursor && h('button', { type: 'button', 'data-key': 'next', onclick: () => { cursor = page.next_cursor; view.refresh(); } }, 'Next page')));
    },
  };
  return view;
}

function field(label, value) {
  return [h('dt', {}, label), h('dd', {}, value ?? h('span', { class: 'none' }, 'none'))];
}

function payload(m) {
  if (m.payload_encoding === 'json') return JSON.stringify(m.payload, null, 2);
  return m.payload;
}

function mountDetail(main, params, ctx) {
  const id = params.id;
  const body = h('div');
  let gone = null;
  // The detail is redrawn only when it changes, so a selection in the
  // payload survives the live update.
  let shown = null;
  const dialog = h('dialog', { id: 'purge', class: 'confirm' });
  main.append(
    h('p', {}, h('a', { href: '#/dead-letters' }, '← All dead letters')),
    h('h1', {}, 'Dead letter ', h('code', { class: 'id' }, id)),
    body, dialog);

  async function act(what, call, done) {
    try {
      await call();
      gone = done;
      ctx.say(done);
      await view.refresh();
    } catch (error) {
      ctx.say(`${what} failed: ${error.message}`);
    }
  }

  async function confirmPurge() {
    const purge = await confirmIn(dialog, {
      title: 'Purge this dead letter?',
      text: ['Message ', h('code', { class: 'id' }, id), ' is deleted for good: it cannot be redriven afterwards.'],
      keep: 'Keep it',
      go: 'Purge for good',
    });
    if (purge) act('Purge', () => api.purge(id), `Purged ${id}: it is gone for good.`);
    else ctx.say('Purge cancelled.');
  }

  const view = {
    title: `Dead letter ${id}`,
    async refresh() {
      let m;
      try {
        m = await api.deadLetter(id);
      } catch (error) {
        if (error instanceof api.ApiError && (error.status === 404 || error.status === 409)) {
          shown = null;
          replace(body, h('p', { class: 'gone', 'data-gone': error.code },
            gone ?? (error.status === 404
              ? 'No message has this id (any more): it was purged, or redriven and handled.'
              : 'This message is no longer a dead letter: it was redriven and is back in the queue.')),
          h('p', {}, h('a', { href: '#/' }, 'Back to the overview')));
          return;
        }
        throw error;
      }
      const signature = JSON.stringify(m);
      if (signature === shown) return;
      shown = signature;
      replace(body,
        h('p', { class: 'actions' },
          h('button', { type: 'button', 'data-key': 'redrive', onclick: () =>
            act('Redrive', () => api.redrive(id), `Redrove ${id}: back in the queue, due now.`) }, 'Redrive'),
          h('button', { type: 'button', class: 'danger', 'data-key': 'purge', onclick: confirmPurge }, 'Purge…')),
        h('p', { class: 'hint' }, 'Same as ', h('code', {}, `mailroom dlq redrive ${id}`), ' and ',
          h('code', {}, `mailroom dlq purge ${id}`), '.'),
        h('dl', { class: 'fields' },
          field('Event type', h('a', { href: `#/types/${encodeURIComponent(m.event_type)}` }, m.event_type)),
          field('Attempts', `${m.attempts} of ${m.max_attempts}`),
          field('Last error', m.last_error && h('pre', { class: 'error-text' }, m.last_error)),
          field('Died', m.dead_at && `${when(m.dead_at)} (${since(m.dead_at)})`),
          field('Enqueued', when(m.created_at)),
          field('Priority', m.priority),
          field('Key', m.key),
          field('Source', m.source),
          field('Correlation id', m.correlation_id),
          field('Plugin build (digest)', m.plugin_digest && h('code', { class: 'digest' }, m.plugin_digest))),
        h('h2', {}, `Payload (${count(m.payload_bytes)} bytes, ${m.payload_encoding})`),
        h('pre', { class: 'payload', tabindex: 0, 'aria-label': 'Payload' }, payload(m)));
    },
  };
  return view;
}

export function mount(main, params, ctx) {
  return params.id ? mountDetail(main, params, ctx) : mountList(main, params, ctx);
}
