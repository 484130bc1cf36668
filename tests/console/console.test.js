// The web console end to end: the real `mailroom run` (HTTP on, a token) with
// real plugins, events enqueued with the CLI, and the pages driven in
// headless Chromium. Every wait is for an outcome (60 s bound), never a sleep.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startHost, launchBrowser, eventually } from './harness.js';

const TOKEN = 'console-test-token';

describe('the web console', () => {
  let host;
  let browser;
  let page;

  before(async () => {
    host = await startHost({ token: TOKEN });
    browser = await launchBrowser();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await host?.stop();
  });

  const nav = (name) => page.getByRole('navigation').getByRole('link', { name, exact: true });
  const row = (type) => page.locator(`tr[data-event-type="${type}"]`);
  const cell = (type, col) => row(type).locator(`td[data-col="${col}"]`);
  // Waits until `locator`'s whole text is `text`.
  const shows = (locator, text) =>
    locator.filter({ hasText: new RegExp(`^\\s*${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`) }).waitFor();
  const stats = async () => JSON.parse(await host.cli(['stats', '--json']));
  const deadLetters = async (type) => JSON.parse(await host.cli(['dlq', 'list', '--event-type', type, '--json']));

  it('asks for the token, refuses a wrong one and signs in with the right one', async () => {
    await page.goto(`${host.base}/ui/`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('API token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'That token was refused' }).waitFor();

    await page.getByLabel('API token').fill(TOKEN);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    // The token lasts for the tab's session: a reload stays signed in.
    await page.reload();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
  });

  it('shows a queue fill while no plugin serves it, and drain once one is deployed', async () => {
    const events = Array.from({ length: 40 }, (_, i) =>
      JSON.stringify({ event_type: 'flaky', payload: { succeed_on_attempt: 1, n: i } })).join('\n');
    await host.cli(['enqueue', '--ndjson'], `${events}\n`);

    await shows(cell('flaky', 'queued'), '40');
    await shows(page.locator('[data-figure="waiting"] dd'), '40');

    await host.deploy('flaky', 'flaky');
    await shows(cell('flaky', 'queued'), '0');
    await cell('flaky', 'handled').locator('.rate-text[data-total="40"]').waitFor();
    await cell('flaky', 'failed').locator('.rate-text[data-total="0"]').waitFor();
    assert.equal((await stats()).by_event_type.flaky?.queued ?? 0, 0);
  });

  it('opens a dead letter, redrives it once its plugin is fixed, and sees it handled', async () => {
    // A bad build of the order plugin dead-letters a valid order.
    await host.deploy('duplicate_order', 'duplicate-order');
    await nav('Plugins').click();
    await page.locator('tr[data-plugin="duplicate-order"]').waitFor();
    await host.cli(['enqueue', 'order.created', '--key', 'order-7',
      JSON.stringify({ order_id: '7', customer: 'ada@example.com', items: [{ sku: 'tea', qty: 2, price: 4.5 }] })]);

    await nav('Dead letters').click();
    const [dead] = await eventually('the order to be dead-lettered', async () => (await deadLetters('order.created')).length === 1 && deadLetters('order.created'));
    const link = page.getByRole('link', { name: dead.id, exact: true });
    await link.waitFor();
    await page.locator(`tr[data-id="${dead.id}"]`).filter({ hasText: 'duplicate-order handled an event' }).waitFor();
    await link.click();
    await page.getByRole('heading', { name: `Dead letter ${dead.id}` }).waitFor();
    await page.locator('pre.payload').filter({ hasText: '"order_id": "7"' }).waitFor();
    assert.match(await page.locator('pre.payload').innerText(), /\n {2}"customer": "ada@example.com",\n/);
    await page.locator('.fields').filter({ hasText: '1 of 3' }).waitFor();

    // The fix: the real order-validator replaces the bad build.
    await host.undeploy('duplicate-order');
    await host.deploy('order_validator', 'order-validator');
    await eventually('order-validator to be loaded', async () => {
      const plugins = JSON.parse(await host.cli(['plugins', '--json']));
      return plugins.loaded.some((p) => p.name === 'order-validator')
        && !plugins.loaded.some((p) => p.name === 'duplicate-order');
    });

    await page.getByRole('button', { name: 'Redrive', exact: true }).click();
    await page.getByRole('status').filter({ hasText: `Redrove ${dead.id}` }).waitFor();
    await page.locator('.gone').waitFor();

    await nav('Overview').click();
    await shows(cell('order.created', 'dead'), '0');
    await cell('order.created', 'handled').locator('.rate-text[data-total="1"]').waitFor();
    // Handled for real: the validator's follow-up event is in the store.
    await shows(cell('order.accepted', 'queued'), '1');
    await row('order.created').getByRole('link', { name: 'order.created' }).click();
    await page.getByRole('heading', { name: 'Event type order.created' }).waitFor();
    await page.locator('[data-rate="handled"] .rate-text[data-total="1"]').waitFor();
  });

  it('purges a dead letter only once the confirmation is given, by keyboard', async () => {
    await host.cli(['enqueue', 'flaky', '--max-attempts', '1', '{"succeed_on_attempt": 99}']);
    const [dead] = await eventually('the flaky event to be dead-lettered', async () => (await deadLetters('flaky')).length === 1 && deadLetters('flaky'));

    await page.goto(`${host.base}/ui/#/dead-letters?event_type=flaky`);
    await page.getByRole('heading', { name: 'Dead letters of flaky' }).waitFor();
    await page.getByRole('link', { name: dead.id, exact: true }).click();
    const purge = page.getByRole('button', { name: 'Purge…' });
    await purge.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Purge this dead letter?' });
    await dialog.waitFor();
    // Escape keeps the message.
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    await page.getByRole('status').filter({ hasText: 'Purge cancelled' }).waitFor();
    assert.equal((await deadLetters('flaky')).length, 1);

    await purge.focus();
    await page.keyboard.press('Enter');
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Purge for good' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('status').filter({ hasText: `Purged ${dead.id}` }).waitFor();
    await page.locator('.gone').waitFor();
    await eventually('the dead letter to be gone from the store', async () => (await deadLetters('flaky')).length === 0);
    assert.equal((await stats()).by_event_type.flaky?.dead ?? 0, 0);
  });

  it('pauses a type, cancels one queued message, then the rest after confirming, and resumes', async () => {
    await page.goto(`${host.base}/ui/#/types/flaky`);
    await page.getByRole('heading', { name: 'Event type flaky' }).waitFor();
    await page.getByRole('button', { name: 'Pause flaky' }).click();
    await page.getByRole('status').filter({ hasText: 'Paused flaky' }).waitFor();
    await page.locator('[data-paused="true"]').waitFor();
    assert.equal((await stats()).by_event_type.flaky.paused, true);

    const events = Array.from({ length: 3 }, (_, i) =>
      JSON.stringify({ event_type: 'flaky', payload: { succeed_on_attempt: 1, n: i } })).join('\n');
    await host.cli(['enqueue', '--ndjson'], `${events}\n`);
    const queued = page.locator('tr[data-message][data-state="queued"]');
    await eventually('three queued rows', async () => (await queued.count()) === 3);
    const first = await queued.first().getAttribute('data-message');
    await page.getByRole('button', { name: `Cancel ${first}` }).click();
    await page.getByRole('status').filter({ hasText: `Cancelled ${first}` }).waitFor();
    await eventually('two queued rows', async () => (await queued.count()) === 2);

    await page.getByRole('button', { name: 'Cancel all 2 queued…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Cancel every queued flaky?' });
    await dialog.getByRole('button', { name: 'Cancel them all' }).click();
    await page.getByRole('status').filter({ hasText: 'Cancelled 2 queued messages of flaky' }).waitFor();
    assert.equal((await stats()).by_event_type.flaky?.queued ?? 0, 0);

    await host.cli(['enqueue', 'flaky', '{"succeed_on_attempt": 1}']);
    await page.getByRole('button', { name: 'Resume flaky' }).click();
    await page.getByRole('status').filter({ hasText: 'Resumed flaky' }).waitFor();
    await eventually('the resumed message to be handled', async () => {
      const flaky = (await stats()).by_event_type.flaky;
      return flaky.paused === false && flaky.queued === 0 && flaky.inflight === 0;
    });
  });

  it('lists the host, the loaded plugins with their digests and the rejected files with the reason', async () => {
    await host.deploy('wrong_world', 'wrong-world');
    await nav('Plugins').click();
    // The one running host, as hostname:pid.
    await page.locator(`tr[data-host$=":${host.pid}"]`).waitFor();
    const validator = page.locator('tr[data-plugin="order-validator"]');
    await validator.filter({ hasText: 'order.created' }).waitFor();
    assert.match(await validator.locator('code.digest').innerText(), /^sha256:[0-9a-f]{64}$/);
    await page.locator('tr[data-rejected$="wrong-world.wasm"]').waitFor();
    assert.ok((await page.locator('tr[data-rejected$="wrong-world.wasm"] td.error-text').innerText()).length > 10);
  });

  it('ran without a script error', () => {
    assert.deepEqual(browser.errors.map(String), []);
  });
});

describe('the web console of a host without a token, at a phone\'s width', () => {
  let host;
  let browser;

  before(async () => {
    host = await startHost();
    browser = await launchBrowser({ width: 390, height: 844 });
  });

  after(async () => {
    await browser?.close();
    await host?.stop();
  });

  it('opens without a sign-in and fits the screen', async () => {
    const { page } = browser;
    await host.cli(['enqueue', 'order.created', '{"order_id": "1"}']);
    await page.goto(`${host.base}/ui/`);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.locator('tr[data-event-type="order.created"] td[data-col="queued"]').filter({ hasText: /^\s*1\s*$/ }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Sign out' }).isVisible(), false);
    for (const hash of ['#/', '#/types/order.created', '#/dead-letters', '#/plugins']) {
      await page.goto(`${host.base}/ui/${hash}`);
      await page.locator('main h1').waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${hash} is ${overflow} px wider than the screen`);
    }
    assert.deepEqual(browser.errors.map(String), []);
  });
});
