// Plugins and hosts: the hosts running on this store, what each has loaded,
// and the files they refused with the reason.

import * as api from './api.js';
import { h, replace, table } from './dom.js';
import { since } from './format.js';
import { typeLink } from './overview.js';

export function mount(main) {
  const body = h('div');
  main.append(
    h('h1', {}, 'Plugins and hosts'),
    h('p', { class: 'hint' }, 'As recorded by the running hosts. Same as ', h('code', {}, 'mailroom plugins'),
      ' and ', h('code', {}, 'GET /v1/plugins'), '. Deploy by writing ', h('code', {}, 'name.wasm.tmp'),
      ' into the plugin folder and renaming it to ', h('code', {}, 'name.wasm'), '.'),
    body);
  return {
    title: 'Plugins',
    async refresh() {
      const registry = await api.plugins();
      const hosts = registry.hosts || [];
      replace(body,
        h('h2', {}, `Hosts (${hosts.length})`),
        hosts.length === 0
          ? h('p', {}, 'No host is running on this store.')
          : table('Running hosts', ['Host', 'Started', 'Last heartbeat'],
            hosts.map((host) => h('tr', { 'data-host': host.host },
              h('th', { scope: 'row' }, h('code', {}, host.host)),
              h('td', {}, since(host.started_at)),
              h('td', {}, since(host.heartbeat_at))))),
        h('h2', {}, `Loaded (${registry.loaded.length})`),
        registry.loaded.length === 0
          ? h('p', {}, 'No plugin is loaded.')
          : table('Loaded plugins', ['Name', 'Version', 'Event types', 'Digest', 'File', 'Host', 'Loaded'],
            registry.loaded.map((p) => h('tr', { 'data-plugin': p.name },
              h('th', { scope: 'row' }, p.name),
              h('td', {}, p.version),
              h('td', {}, h('ul', { class: 'plain' }, p.event_types.map((t) => h('li', {}, typeLink(t))))),
              h('td', {}, h('code', { class: 'digest' }, p.digest)),
              h('td', {}, h('code', {}, p.path)),
              h('td', {}, h('code', {}, p.host)),
              h('td', {}, since(p.updated_at))))),
        h('h2', {}, `Rejected files (${registry.rejected.length})`),
        registry.rejected.length === 0
          ? h('p', {}, 'None.')
          : table('Rejected plugin files', ['File', 'Host', 'Reason', 'Seen'],
            registry.rejected.map((p) => h('tr', { 'data-rejected': p.path },
              h('th', { scope: 'row' }, h('code', {}, p.path)),
              h('td', {}, h('code', {}, p.host)),
              h('td', { class: 'error-text' }, p.reason),
              h('td', {}, since(p.updated_at))))));
    },
  };
}
