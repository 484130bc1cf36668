// One event type's queue on its page: pause or resume it, and its queued and
// in-flight messages, oldest first, with cancel for the queued ones.

import * as api from './api.js';
import { confirmIn, h, table } from './dom.js';
import { count, since, when } from './format.js';

// Runs `call`, says `done(result)` or why it failed, then refreshes.
async function act(what, call, done, ctx, after) {
  try {
    const result = await call();
    ctx.say(done(result));
  } catch (error) {
    ctx.say(`${what} failed: ${error.message}`);
  }
  await after();
}

export function pauseButton(eventType, paused, ctx, after) {
  return paused
    ? h('button', { type: 'button', 'data-key': `resume:${eventType}`, onclick: () => act('Resume',
      () => api.resume(eventType),
      () => `Resumed ${eventType}: hosts claim its due messages again.`, ctx, after) }, `Resume ${eventType}`)
    : h('button', { type: 'button', 'data-key': `pause:${eventType}`, onclick: () => act('Pause',
      () => api.pause(eventType),
      () => `Paused ${eventType}: no host claims its messages until it is resumed.`, ctx, after) }, `Pause ${eventType}`);
}

function state(m) {
  if (m.state === 'inflight') return `in flight on ${m.lease?.owner ?? 'a host'}`;
  return m.available_at > Date.now() ? `queued, due ${when(m.available_at)}` : `queued, due ${since(m.available_at)}`;
}

function cancelButton(m, ctx, after) {
  if (m.state !== 'queued') return h('span', { class: 'none' }, 'running');
  return h('button', { type: 'button', 'data-key': `cancel:${m.id}`, 'aria-label': `Cancel ${m.id}`,
    onclick: () => act('Cancel', () => api.cancel(m.id), () => `Cancelled ${m.id}.`, ctx, after) }, 'Cancel');
}

// The queued and in-flight messages of `eventType` (`page`, oldest first),
// and a button that cancels every queued one after asking in `dialog`.
export function messagesSection(eventType, queued, page, dialog, ctx, after) {
  const live = page.items.filter((m) => m.state !== 'dead');
  const cancelAll = async () => {
    const go = await confirmIn(dialog, {
      title: `Cancel every queued ${eventType}?`,
      text: [`${count(queued)} queued message${queued === 1 ? '' : 's'} of `, h('code', {}, eventType),
        ' are removed for good; messages in flight finish as usual.'],
      keep: 'Keep them',
      go: 'Cancel them all',
    });
    if (!go) { ctx.say('Nothing cancelled.'); return; }
    await act('Cancel', () => api.cancelQueued(eventType),
      ({ cancelled }) => `Cancelled ${count(cancelled)} queued message${cancelled === 1 ? '' : 's'} of ${eventType}.`,
      ctx, after);
  };
  return [
    h('h2', {}, 'Waiting and running'),
    live.length === 0
      ? h('p', {}, 'None.')
      : [
        queued > 0 && h('p', {}, h('button', { type: 'button', class: 'danger', 'data-key': `cancel-all:${eventType}`, onclick: cancelAll },
          `Cancel all ${count(queued)} queued…`), ' Same as ', h('code', {}, `mailroom messages cancel --event-type ${eventType} --yes`), '.'),
        table(`Oldest messages of ${eventType}`,
          ['Message', 'State', 'Attempts', 'Last error', ''],
          live.map((m) => h('tr', { 'data-message': m.id, 'data-state': m.state },
            h('th', { scope: 'row' }, h('code', { class: 'id' }, m.id)),
            h('td', {}, state(m)),
            h('td', { class: 'num' }, `${m.attempts} of ${m.max_attempts}`),
            h('td', { class: 'error-text' }, m.last_error ?? ''),
            h('td', {}, cancelButton(m, ctx, after)))),
          { class: 'messages' }),
      ],
  ];
}
