// The HTTP API, called with the bearer token the operator signed in with.
// The token lives in sessionStorage: it lasts as long as the browser tab
// and is never written anywhere else.

const TOKEN_KEY = 'mailroom.token';

export class Unauthorized extends Error {}

// An error answer of the API: its `code` and its one-sentence `message`.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function signIn(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export async function call(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  const stored = token();
  if (stored) headers.Authorization = `Bearer ${stored}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'unreachable', 'The host does not answer: is `mailroom run` still running?');
  }
  if (response.status === 401) throw new Unauthorized('The host asks for a token.');
  const json = await response.json().catch(() => null);
  if (!response.ok) {
    const error = json?.error ?? {};
    throw new ApiError(response.status, error.code ?? 'http',
      error.message ?? `The host answered ${response.status}.`);
  }
  return json;
}

export const get = (path) => call(path);
export const stats = () => get('/v1/stats');
export const throughput = () => get('/v1/throughput');
export const plugins = () => get('/v1/plugins');

export function deadLetters({ eventType, cursor, limit = 50 } = {}) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (eventType) query.set('event_type', eventType);
  if (cursor) query.set('cursor', cursor);
  return get(`/v1/dead-letters?${query}`);
}

export const deadLetter = (id) => get(`/v1/dead-letters/${encodeURIComponent(id)}`);
export const redrive = (id) =>
  call(`/v1/dead-letters/${encodeURIComponent(id)}/redrive`, { method: 'POST' });
export const redriveType = (eventType) =>
  call('/v1/dead-letters/redrive', { method: 'POST', body: { event_type: eventType } });
export const purge = (id) =>
  call(`/v1/dead-letters/${encodeURIComponent(id)}`, { method: 'DELETE' });

export function messages({ eventType, state, cursor, limit = 50 } = {}) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (eventType) query.set('event_type', eventType);
  if (state) query.set('state', state);
  if (cursor) query.set('cursor', cursor);
  return get(`/v1/messages?${query}`);
}

const typePath = (eventType) => `/v1/event-types/${encodeURIComponent(eventType)}`;
export const cancel = (id) =>
  call(`/v1/messages/${encodeURIComponent(id)}`, { method: 'DELETE' });
export const cancelQueued = (eventType) =>
  call(`${typePath(eventType)}/messages`, { method: 'DELETE' });
export const pause = (eventType) => call(`${typePath(eventType)}/pause`, { method: 'POST' });
export const resume = (eventType) => call(`${typePath(eventType)}/resume`, { method: 'POST' });
