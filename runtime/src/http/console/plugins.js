// Plugins: what the running hosts of this store have loaded, and the files
// they refused with the reason.

import * as api from './api.js';
import { h, replace, table } from './dom.js';
import { since } from './format.js';
import { typeLink } from './overview.js';

export function mount(main) {
  const body = h('div');
  main.append(
    h('h1', {}, 'Plugins'),
    h('p', { class: 'hint' }, 'As recorded by the running hosts. Same as ', h('code', {}, 'mailroom plugins'),
      ' and ', h('code', {}, 'GET /v1/plugins'), '. Deploy by writing ', h('code', {}, 'name.wasm.tmp'),
      ' into the plugin folder and renaming it to ', h('code', {}, 'name.wasm'), '.'),
    body);
  return {
    title: 'Plugins',
    async refresh() {
      const registry = await api.plugins();
      replace(body,
        h('h2', {}, `Loaded (${registry.loaded.length})`),
        registry.loaded.length === 0
          ? h('p', {}, 'No plugin is loaded.')
          : table('Loaded plugins', ['Name', 'Version', 'Event types', 'Digest', 'File', 'Loaded'],
            registry.loaded.map((p) => h('tr', { 'data-plugin': p.name },
              h('th', { scope: 'row' }, p.name),
              h('td', {}, p.version),
              h('td', {}, h('ul', { class: 'plain' }, p.event_types.map((t) => h('li', {}, typeLink(t))))),
              h('td', {}, h('code', { class: 'digest' }, p.digest)),
              h('td', {}, h('code', {}, p.path)),
              h('td', {}, since(p.updated_at))))),
        h('h2', {}, `Rejected files (${registry.rejected.length})`),
        registry.rejected.length === 0
          ? h('p', {}, 'None.')
          : table('Rejected plugin files', ['File', 'Reason', 'Seen'],
            registry.rejected.map((p) => h('tr', { 'data-rejected': p.path },
              h('th', { scope: 'row' }, h('code', {}, p.path)),
              h('td', { class: 'error-text' }, p.reason),
              h('td', {}, since(p.updated_at))))));
    },
  };
}
