// A few DOM helpers: build elements, and swap a region's content without
// losing the keyboard focus when the live update rebuilds it.

// h('a', {href: '#/'}, 'text', child…): attributes starting with "on" are
// listeners; false, null and undefined children and attributes are skipped.
export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === false || child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

// Replaces region's children with `children`. An element that had the focus
// and carries data-key gets it back when the new content has the same key.
export function replace(region, ...children) {
  const focused = region.contains(document.activeElement)
    ? document.activeElement.getAttribute('data-key')
    : null;
  region.replaceChildren();
  append(region, children);
  if (focused) {
    const again = region.querySelector(`[data-key="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

// A table inside a region that scrolls sideways on narrow screens (and can
// be scrolled with the keyboard).
export function table(caption, headers, rows, attrs = {}) {
  return h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': caption },
    h('table', attrs,
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, headers.map((text) => h('th', { scope: 'col' }, text)))),
      h('tbody', {}, rows)));
}

// Asks in `dialog` (a <dialog> on the page) before something that cannot be
// undone: `title`, the `text` (children), and two buttons, the safe one
// focused. Resolves to true when the operator chose `go`.
export function confirmIn(dialog, { title, text, keep, go }) {
  const id = `${dialog.id || 'confirm'}-title`;
  dialog.setAttribute('aria-labelledby', id);
  replace(dialog, h('form', { method: 'dialog' },
    h('h2', { id }, title),
    h('p', {}, text),
    h('p', { class: 'actions' },
      h('button', { type: 'submit', value: 'keep', autofocus: true }, keep),
      h('button', { type: 'submit', value: 'go', class: 'danger' }, go))));
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.onclose = () => resolve(dialog.returnValue === 'go');
  });
}
