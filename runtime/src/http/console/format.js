// How numbers, times and durations read on the page.

export function count(n) {
  return (n ?? 0).toLocaleString('en');
}

export function age(ms) {
  if (ms === null || ms === undefined) return 'none';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} days`;
}

export function since(epochMs) {
  if (!epochMs) return 'unknown';
  return `${age(Date.now() - epochMs)} ago`;
}

export function when(epochMs) {
  if (!epochMs) return 'unknown';
  return new Date(epochMs).toLocaleString('en-GB', { hour12: false });
}

export function sum(values) {
  return values.reduce((a, b) => a + b, 0);
}
