// Overview: the whole store at a glance, and one row per event type with its
// counts and its deliveries per minute.

import * as api from './api.js';
import { h, replace, table } from './dom.js';
import { age, count } from './format.js';
import { rate } from './chart.js';

// Every event type the store holds messages of, or that this host delivered
// lately, with both figures (either may be missing).
export function eventTypes(stats, throughput) {
  const names = new Set([
    ...Object.keys(stats.by_event_type),
    ...Object.keys(throughput.by_event_type),
  ]);
  const none = new Array(throughput.minutes).fill(0);
  return [...names].sort().map((name) => ({
    name,
    counts: stats.by_event_type[name] ?? { queued: 0, inflight: 0, dead: 0 },
    handled: throughput.by_event_type[name]?.handled ?? none,
    failed: throughput.by_event_type[name]?.failed ?? none,
  }));
}

export function typeLink(name) {
  return h('a', { href: `#/types/${encodeURIComponent(name)}`, 'data-key': `type:${name}` }, name);
}

function totals(stats) {
  const item = (label, value, key) => h('div', { class: 'figure', 'data-figure': key },
    h('dt', {}, label), h('dd', {}, value));
  return h('dl', { class: 'figures' },
    item('Queued', count(stats.queued), 'queued'),
    item('Due now', count(stats.due), 'due'),
    item('In flight', count(stats.inflight), 'inflight'),
    item('Dead', count(stats.dead), 'dead'),
    item('Waiting for a plugin', count(stats.waiting_for_handler), 'waiting'),
    item('Oldest due message has waited', age(stats.oldest_due_age_ms), 'oldest-due'));
}

function typesTable(rows, minutes) {
  if (rows.length === 0) {
    return h('p', {}, 'No messages yet. Enqueue one with ',
      h('code', {}, 'mailroom enqueue <type> <json>'), ' or ', h('code', {}, 'POST /v1/events'), '.');
  }
  return table(`Event types (deliveries per minute over the last ${minutes} minutes)`,
    ['Event type', 'Queued', 'In flight', 'Dead', 'Handled', 'Failed'],
    rows.map((row) => h('tr', { 'data-event-type': row.name, 'data-paused': String(row.counts.paused === true) },
      h('th', { scope: 'row' }, typeLink(row.name), row.counts.paused && h('span', { class: 'badge' }, ' paused')),
      h('td', { class: 'num', 'data-col': 'queued' }, count(row.counts.queued)),
      h('td', { class: 'num', 'data-col': 'inflight' }, count(row.counts.inflight)),
      h('td', { class: 'num', 'data-col': 'dead' },
        row.counts.dead > 0
          ? h('a', { href: `#/dead-letters?event_type=${encodeURIComponent(row.name)}`,
            'data-key': `dead:${row.name}` }, count(row.counts.dead))
          : '0'),
      h('td', { 'data-col': 'handled' }, rate(row.handled, `${row.name} handled per minute`, 'handled')),
      h('td', { 'data-col': 'failed' }, rate(row.failed, `${row.name} failed per minute`, 'failed')))),
    { class: 'types' });
}

export function mount(main) {
  const body = h('div');
  main.append(
    h('h1', {}, 'Overview'),
    h('p', { class: 'hint' }, 'Counts come from the store (every host and process); deliveries per minute are this host\'s. ',
      'Same as ', h('code', {}, 'mailroom stats'), ', ', h('code', {}, 'GET /v1/stats'), ' and ',
      h('code', {}, 'GET /v1/throughput'), '.'),
    body);
  return {
    title: 'Overview',
    async refresh() {
      const [stats, throughput] = await Promise.all([api.stats(), api.throughput()]);
      replace(body,
        h('h2', {}, 'All messages'),
        totals(stats),
        h('h2', {}, 'By event type'),
        typesTable(eventTypes(stats, throughput), throughput.minutes));
    },
  };
}
