// Makes the console screenshots in docs/: the host with the bundled plugins
// handling the demo's events (examples/demo/events.ndjson) plus a stream of
// orders, at a desktop's and at a phone's width.
//
//   node tests/console/screenshots.js [minutes]   # minutes of orders (default 3)
//
// Needs what scripts/console-test builds (the binary, the plugins, chromium).

import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startHost, launchBrowser } from './harness.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const docs = join(root, 'docs');
const minutes = Number(process.argv[2] ?? 3);
const TOKEN = 'screenshots';

function order(n) {
  const qty = n % 9 === 0 ? 0 : 1 + (n % 3); // every ninth order is invalid: a dead letter
  return JSON.stringify({ event_type: 'order.created', key: `order-${n}`,
    payload: { order_id: String(n), customer: `customer${n}@example.com`, items: [{ sku: 'tea', qty, price: 4.5 }] } });
}

const host = await startHost({ token: TOKEN });
try {
  for (const [component, name] of [['order_validator', 'order-validator'], ['notifier', 'notifier'], ['flaky', 'flaky']]) {
    await host.deploy(component, name);
  }
  await writeFile(join(host.dir, 'plugins', 'half-written.wasm'), 'not a component');
  await host.cli(['enqueue', '--ndjson'], await readFile(join(root, 'examples/demo/events.ndjson'), 'utf8'));
  // A stream of orders, so the charts have a few minutes to show.
  let n = 2000;
  for (let step = 0; step < minutes * 4; step++) {
    const batch = Array.from({ length: 3 + (step * 7) % 11 }, () => order(n++));
    batch.push(JSON.stringify({ event_type: 'flaky', payload: { succeed_on_attempt: 1 + (step % 3) } }));
    await host.cli(['enqueue', '--ndjson'], `${batch.join('\n')}\n`);
    await sleep(15_000);
  }
  // Some work waiting, so the queue shows.
  await host.cli(['enqueue', '--ndjson'], `${Array.from({ length: 25 }, () => order(n++)).join('\n')}\n`);

  for (const [width, height, shots] of [
    [1280, 860, ['overview', 'dead-letter', 'plugins', 'event-type']],
    [390, 844, ['phone']],
  ]) {
    const browser = await launchBrowser({ width, height });
    const { page } = browser;
    await page.goto(`${host.base}/ui/`);
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.locator('tr[data-event-type="order.created"]').waitFor();
    for (const shot of shots) {
      if (shot === 'dead-letter') {
        await page.goto(`${host.base}/ui/#/dead-letters?event_type=order.created`);
        await page.locator('a.id').first().click();
        await page.locator('pre.payload').waitFor();
      } else if (shot === 'plugins') {
        await page.goto(`${host.base}/ui/#/plugins`);
        await page.locator('tr[data-rejected]').waitFor();
      } else if (shot === 'event-type') {
        await page.goto(`${host.base}/ui/#/types/order.created`);
        await page.locator('[data-rate="handled"]').waitFor();
      } else {
        await page.goto(`${host.base}/ui/#/`);
        await page.locator('tr[data-event-type="order.created"]').waitFor();
      }
      await page.mouse.move(0, 0);
      await page.screenshot({ path: join(docs, `console-${shot}.png`), fullPage: shot !== 'phone' });
      console.log(`docs/console-${shot}.png`);
    }
    await browser.close();
  }
} finally {
  await host.stop();
}
