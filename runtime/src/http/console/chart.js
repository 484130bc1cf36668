// Small bar charts as inline SVG, one bar per minute. The numbers are also
// in the accessible name and in the text beside every chart, so nothing
// depends on seeing the bars (or their colour).

import { h } from './dom.js';
import { sum } from './format.js';

const BAR = 6;
const GAP = 1;

// values: counts per minute, oldest first (the last is the current minute).
export function bars(values, { label, kind, height = 28 }) {
  const max = Math.max(1, ...values);
  const width = values.length * (BAR + GAP);
  const total = sum(values);
  const name = `${label}: ${total} in the last ${values.length} minutes, `
    + `${values[values.length - 1] ?? 0} this minute, at most ${max} in one minute`;
  return h('svg:svg', {
    class: `chart ${kind}`, role: 'img', 'aria-label': name,
    viewBox: `0 0 ${width} ${height}`, width, height, preserveAspectRatio: 'none',
  },
  h('svg:title', {}, name),
  h('svg:line', { class: 'axis', x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5 }),
  values.map((v, i) => {
    const barHeight = v === 0 ? 0 : Math.max(2, Math.round((v / max) * (height - 2)));
    return h('svg:rect', {
      x: i * (BAR + GAP), y: height - 1 - barHeight, width: BAR, height: barHeight,
    });
  }));
}

// A chart with its numbers written out beside it.
export function rate(values, label, kind) {
  const last = values[values.length - 1] ?? 0;
  return h('span', { class: 'rate' },
    bars(values, { label, kind }),
    h('span', { class: 'rate-text', 'data-total': sum(values) },
      `${sum(values)} total`, h('br'), `${last} this min`));
}
