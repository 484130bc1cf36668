// One event type: its counts, pause or resume, the plugin serving it, its
// waiting and running messages (with cancel), its deliveries per minute and
// its dead letters.

import * as api from './api.js';
import { h, replace } from './dom.js';
import { count } from './format.js';
import { rate } from './chart.js';
import { eventTypes } from './overview.js';
import { deadLetterTable, redriveAllButton } from './dead_letters.js';
import { messagesSection, pauseButton } from './queue.js';

function countsSection(row, plugin, ctx, refresh) {
  const paused = row.counts.paused === true;
  return [
    h('h2', {}, 'Messages'),
    h('p', { 'data-paused': String(paused) }, paused
      ? 'Paused: no host claims its messages until it is resumed (enqueues are still accepted). '
      : 'Running. ', pauseButton(row.name, paused, ctx, refresh)),
    h('dl', { class: 'figures' },
      h('div', { class: 'figure', 'data-figure': 'queued' }, h('dt', {}, 'Queued'), h('dd', {}, count(row.counts.queued))),
      h('div', { class: 'figure', 'data-figure': 'inflight' }, h('dt', {}, 'In flight'), h('dd', {}, count(row.counts.inflight))),
      h('div', { class: 'figure', 'data-figure': 'dead' }, h('dt', {}, 'Dead'), h('dd', {}, count(row.counts.dead)))),
    h('p', {}, plugin
      ? ['Handled by plugin ', h('a', { href: '#/plugins' }, h('strong', {}, plugin.name)), ` ${plugin.version}.`]
      : 'No running host has a plugin for this type: its messages wait, spending no attempts, until one is deployed.'),
  ];
}

function throughputSection(row, minutes) {
  return [
    h('h2', {}, `Deliveries per minute (last ${minutes} minutes, this host)`),
    h('dl', { class: 'rates' },
      h('dt', {}, 'Handled'), h('dd', { 'data-rate': 'handled' }, rate(row.handled, `${row.name} handled per minute`, 'handled')),
      h('dt', {}, 'Failed (retried or dead-lettered)'), h('dd', { 'data-rate': 'failed' }, rate(row.failed, `${row.name} failed per minute`, 'failed'))),
  ];
}

function deadLettersSection(row, page, ctx, refresh) {
  return [
    h('h2', {}, 'Dead letters'),
    page.items.length === 0
      ? h('p', {}, 'None.')
      : [
        h('p', {}, redriveAllButton(row.name, row.counts.dead, ctx, refresh), ' ',
          h('a', { href: `#/dead-letters?event_type=${encodeURIComponent(row.name)}` }, 'All dead letters of this type')),
        deadLetterTable(page.items, `Oldest dead letters of ${row.name}`),
      ],
  ];
}

export function mount(main, params, ctx) {
  const type = params.type;
  const body = h('div');
  const dialog = h('dialog', { id: 'cancel-all', class: 'confirm' });
  main.append(
    h('p', {}, h('a', { href: '#/' }, '← Overview')),
    h('h1', {}, 'Event type ', h('code', {}, type)),
    body, dialog);
  const view = {
    title: type,
    async refresh() {
      const [stats, throughput, registry, page, messages] = await Promise.all([
        api.stats(), api.throughput(), api.plugins(),
        api.deadLetters({ eventType: type, limit: 20 }),
        api.messages({ eventType: type, limit: 20 }),
      ]);
      const none = new Array(throughput.minutes).fill(0);
      const row = eventTypes(stats, throughput).find((r) => r.name === type)
        ?? { name: type, counts: { queued: 0, inflight: 0, dead: 0 }, handled: none, failed: none };
      const plugin = registry.loaded.find((p) => p.event_types.includes(type));
      const sections = [
        countsSection(row, plugin, ctx, view.refresh),
        messagesSection(type, row.counts.queued, messages, dialog, ctx, view.refresh),
        throughputSection(row, throughput.minutes),
        deadLettersSection(row, page, ctx, view.refresh),
      ];
      replace(body, sections);
    },
  };
  return view;
}
