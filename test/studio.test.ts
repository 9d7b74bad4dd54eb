// The Studio, the page Kiln serves at `/`, in a real browser (Debian's Chromium, driven by
// playwright-core) against a real Kiln with the simulator: sign in, submit a prompt and watch
// it reach succeeded live over the WebSocket, see its variants at their real dimensions, upload
// a photo and upscale it, cancel running work, read a failure's reason and an invalid input's
// message, resume after a dropped connection, see usage and the operator's view — with no
// console errors. Screenshots of the gallery and the operator view, at desktop and phone
// widths, are left in test/artifacts/studio/.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import sharp from 'sharp';
import { createKilnClient } from '../client-sdk/index.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

const CHROMIUM = '/usr/bin/chromium';
const missing = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium); skipped`;
const root = path.join(import.meta.dirname, '..');
const ARTIFACTS = path.join(import.meta.dirname, 'artifacts', 'studio');
const ADMIN_TOKEN = 'admin-token-for-the-studio-browser-test';
const LAUNCH_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

/** What the test reads of an <img> in the page (the test's own types have no DOM). */
interface ShownImage {
  loading: string;
  naturalWidth: number;
  naturalHeight: number;
  dataset: Record<string, string | undefined>;
  decode(): Promise<void>;
  getBoundingClientRect(): { width: number; height: number };
}

/** The card of the generation whose title is `title`. */
const card = (page: Page, title: string): Locator => page.locator('article.card', { has: page.getByRole('heading', { name: title, exact: true }) }).first();

async function waitForState(target: Locator, state: string, timeout = 60_000): Promise<void> {
  await target.and(target.page().locator(`[data-state="${state}"]`)).waitFor({ timeout });
}

describe('the Studio', { skip: missing }, () => {
  let kiln: TestKiln;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];
  /** While a test provokes a refusal on purpose, the browser's own line about that answer is expected. */
  let refusalsExpected = false;
  /** Every tRPC call the page made over HTTP, by procedure. */
  const httpCalls: string[] = [];
  /** Every message the page received over its WebSockets. */
  const socketMessages: string[] = [];
  let socketsOpened = 0;

  before(async () => {
    // The bundle is built by `npm install` / `npm ci` (prepare); built here too when missing.
    if (!existsSync(path.join(root, 'server', 'studio', 'dist', 'manifest.json'))) {
      await promisify(execFile)(process.execPath, [path.join(root, 'server', 'studio', 'build.ts')], { cwd: root });
    }
    await mkdir(ARTIFACTS, { recursive: true });
    kiln = await startKiln({ env: { KILN_ADMIN_TOKEN: ADMIN_TOKEN, KILN_SIMULATOR_LATENCY_MS: '300-600' } });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: LAUNCH_FLAGS });
    const context = await browser.newContext({ viewport: DESKTOP });
    page = await context.newPage();
    page.on('console', (message) => {
      const expected = refusalsExpected && /^Failed to load resource: the server responded with a status of (400|401|403)/.test(message.text());
      if (message.type() === 'error' && !expected) consoleErrors.push(`${message.text()} (${message.location().url})`);
    });
    page.on('pageerror', (error) => consoleErrors.push(error.message));
    page.on('request', (request) => {
      const match = /\/trpc\/([^?]+)/.exec(request.url());
      if (match?.[1]) httpCalls.push(...match[1].split(','));
    });
    page.on('websocket', (socket) => {
      socketsOpened += 1;
      socket.on('framereceived', ({ payload }) => socketMessages.push(String(payload)));
    });
    // Lets a test drop the page's WebSockets as a broken network would (browser code, as text).
    await page.addInitScript({
      content: `{
        const sockets = [];
        const Native = window.WebSocket;
        window.WebSocket = class extends Native {
          constructor(...args) { super(...args); sockets.push(this); }
        };
        window.dropSockets = () => sockets.splice(0).forEach((socket) => socket.close(4000, 'dropped by the test'));
      }`,
    });
  });

  after(async () => {
    await browser?.close();
    await kiln?.stop();
  });

  it('is served at / with index revalidated and hashed files cached forever, compressed', async () => {
    const index = await fetch(`${kiln.url}/`, { headers: { 'Accept-Encoding': 'br' } });
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    assert.match(index.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/);
    const html = await index.text();
    const script = /src="(\/studio\/studio-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    assert.ok(script, html);
    const asset = await fetch(`${kiln.url}${script}`, { headers: { 'Accept-Encoding': 'br, gzip' } });
    assert.equal(asset.status, 200);
    assert.equal(asset.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(asset.headers.get('content-encoding'), 'br');
    const again = await fetch(`${kiln.url}${script}`, { headers: { 'If-None-Match': asset.headers.get('etag') ?? '' } });
    assert.equal(again.status, 304);
    assert.equal((await fetch(`${kiln.url}/studio/studio-OLD.js`)).status, 404);
  });

  it('signs in with an API key, by keyboard, and keeps it in the browser', async (t) => {
    await page.goto(`${kiln.url}/`);
    await page.getByRole('heading', { name: 'Kiln Studio' }).waitFor();
    const firstPaint = await page.evaluate<number | undefined>(`performance.getEntriesByName('first-contentful-paint')[0]?.startTime`);
    t.diagnostic(`first contentful paint: ${firstPaint?.toFixed(0)} ms`);
    assert.ok(firstPaint !== undefined && firstPaint < 2000, `first contentful paint ${firstPaint} ms`);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate<string>('document.activeElement?.id'), 'api-key', 'the key field is the first stop');
    await page.keyboard.type('kiln_sk_not-a-real-key');
    refusalsExpected = true;
    await page.keyboard.press('Enter');
    await page.getByText('Kiln does not know this key').waitFor();
    refusalsExpected = false;
    assert.equal(await page.getByLabel('API key').getAttribute('aria-invalid'), 'true');

    await page.getByLabel('API key').fill(kiln.apiKey);
    await page.keyboard.press('Enter');
    await page.getByRole('navigation', { name: 'Views' }).waitFor();
    await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
    await page.reload();
    await page.getByRole('navigation', { name: 'Views' }).waitFor();
    assert.equal(await page.getByLabel('API key').count(), 0, 'still signed in after a reload');
  });

  it('signs in with the development key link that npm start prints, and drops the key from the address bar', async () => {
    await page.getByRole('button', { name: /Sign out/ }).click();
    await page.getByLabel('API key').waitFor();
    await page.goto(`${kiln.url}/#key=${encodeURIComponent(kiln.apiKey)}`);
    await page.getByRole('navigation', { name: 'Views' }).waitFor();
    assert.equal(new URL(page.url()).hash, '');
  });

  it('names every control, so it can be found and used without seeing it', async () => {
    for (const mode of ['A photo', 'A prompt']) {
      await page.getByLabel(mode).check();
      const unnamed = await page.evaluate<string[]>(
        `[...document.querySelectorAll('input, select, textarea, button')].filter((control) => !(control.labels?.length || control.getAttribute('aria-label') || control.textContent.trim())).map((control) => control.outerHTML)`,
      );
      assert.deepEqual(unnamed, [], `with ${mode}`);
    }
  });

  it('submits a prompt and watches it reach succeeded live, with its variants at their real dimensions', async () => {
    const prompt = 'a lighthouse at dusk, flat illustration';
    await page.getByLabel('Prompt', { exact: true }).fill(prompt);
    await page.getByLabel('Instagram story').check();
    await page.getByLabel('X post').check();
    await page.getByLabel('PNG').check();
    const statusCallsBefore = httpCalls.filter((call) => call === 'status').length;
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const generation = card(page, prompt);
    await generation.waitFor();
    await waitForState(generation, 'succeeded');

    const id = await generation.getAttribute('data-generation-id');
    assert.ok(id);
    const stages = await generation.locator('[data-stage]').evaluateAll((items) => items.map((item) => item.getAttribute('data-stage')));
    for (const stage of ['queued', 'started', 'provider.created', 'downloading', 'rendering', 'stored', 'succeeded']) assert.ok(stages.includes(stage), `${stage} in ${stages.join(', ')}`);
    assert.equal(new Set(stages).size, stages.length, 'each stage once');
    // Pushed, not polled: the stages came over the WebSocket, and the page read the status only
    // when it was queued and once it was final.
    assert.ok(socketMessages.some((message) => message.includes(id) && message.includes('"stage":"rendering"')), 'stages arrive over the WebSocket');
    assert.ok(httpCalls.filter((call) => call === 'status').length - statusCallsBefore <= 3, `status calls: ${httpCalls.join(' ')}`);

    // 3 platforms × 2 formats + the original, each loaded at its real size and shown at its shape.
    const images = generation.locator('img[data-asset-width]');
    assert.equal(await images.count(), 7);
    const shown = await images.evaluateAll((items) =>
      Promise.all(
        (items as unknown as ShownImage[]).map(async (image) => {
          image.loading = 'eager';
          await image.decode();
          const box = image.getBoundingClientRect();
          return { natural: [image.naturalWidth, image.naturalHeight], declared: [Number(image.dataset.assetWidth), Number(image.dataset.assetHeight)], ratio: box.width / box.height };
        }),
      ),
    );
    for (const image of shown) {
      assert.deepEqual(image.natural, image.declared, 'the image is the size its asset says');
      const [width = 0, height = 1] = image.declared;
      assert.ok(Math.abs(image.ratio - width / height) / (width / height) < 0.03, `shown at its aspect ratio: ${JSON.stringify(image)}`);
    }
    const sizes = await generation.locator('.thumb-caption').allTextContents();
    assert.ok(sizes.some((text) => /instagram-story\s+WEBP · 1080×1920 · [\d.]+ KB/.test(text)), sizes.join(' | '));
    assert.ok(sizes.some((text) => /x-post\s+PNG · 1200×675/.test(text)), sizes.join(' | '));
  });

  it('collects finished work in the gallery: each variant to open, download, or copy its URL', async () => {
    await page.getByRole('link', { name: 'Gallery' }).click();
    const generation = card(page, 'a lighthouse at dusk, flat illustration');
    const download = generation.getByRole('link', { name: 'Download x-post png' });
    const url = await download.getAttribute('href');
    assert.match(url ?? '', /^http:\/\/127\.0\.0\.1:\d+\/assets\/[0-9a-f]{64}\.png$/);
    assert.equal(await download.getAttribute('download'), 'x-post.png');
    assert.equal(await generation.getByRole('link', { name: 'Open x-post png' }).getAttribute('href'), url);
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
    await generation.getByRole('button', { name: 'Copy URL of x-post png' }).click();
    await generation.getByRole('button', { name: 'Copied the URL of x-post png' }).waitFor();
    assert.equal(await page.evaluate<string>('navigator.clipboard.readText()'), url);
    await page.getByRole('link', { name: 'Create' }).click();
  });

  it('resumes after a dropped connection, missing no stage', async () => {
    const prompt = 'a slow harbour [sim:slow=2500]';
    await page.getByLabel('Prompt', { exact: true }).fill(prompt);
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const generation = card(page, prompt);
    await generation.locator('[data-stage="provider.created"]').waitFor({ timeout: 30_000 });
    const opened = socketsOpened;
    await page.evaluate('window.dropSockets()');
    await waitForState(generation, 'succeeded');
    assert.ok(socketsOpened > opened, 'the page opened a new WebSocket');
    const stages = await generation.locator('[data-stage]').evaluateAll((items) => items.map((item) => item.getAttribute('data-stage')));
    for (const stage of ['downloading', 'rendering', 'stored', 'succeeded']) assert.ok(stages.includes(stage), `${stage} after the drop, in ${stages.join(', ')}`);
    assert.equal(new Set(stages).size, stages.length, 'each stage once');
  });

  it('uploads a photo and upscales it', async () => {
    const photo = await sharp({ create: { width: 96, height: 64, channels: 3, background: { r: 40, g: 120, b: 200 } } }).png().toBuffer();
    await page.getByLabel('A photo').check();
    await page.getByLabel(/^Photo/).setInputFiles({ name: 'product.png', mimeType: 'image/png', buffer: photo });
    await page.getByText('product.png · 96×64').waitFor();
    await page.getByLabel('Operation').selectOption('upscale');
    await page.getByLabel('Scale').selectOption('2');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const generation = card(page, 'Upscale of product.png');
    await waitForState(generation, 'succeeded');
    const original = generation.locator('img[alt^="original"]');
    assert.deepEqual([await original.getAttribute('data-asset-width'), await original.getAttribute('data-asset-height')], ['192', '128']);
    await page.getByLabel('A prompt').check();
  });

  it('optimises a product photo for a catalogue, and shows its paid steps and the bytes', async () => {
    // A small product on a light backdrop: upscaled first (its short edge is below the target), then cut out.
    const box = await sharp({ create: { width: 80, height: 60, channels: 3, background: '#8a1c1c' } }).png().toBuffer();
    const photo = await sharp({ create: { width: 200, height: 150, channels: 3, background: '#dddddd' } }).composite([{ input: box, gravity: 'centre' }]).jpeg().toBuffer();
    await page.getByLabel('A photo').check();
    await page.getByLabel(/^Photo/).setInputFiles({ name: 'chair.jpg', mimeType: 'image/jpeg', buffer: photo });
    await page.getByText('chair.jpg · 200×150').waitFor();
    await page.getByLabel('Operation').selectOption('optimize');
    await page.getByLabel('Background').selectOption('white');
    assert.equal(await page.getByLabel('Outputs').count(), 0, 'the optimiser makes one image: not asked');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const generation = card(page, 'Optimise for a catalogue of chair.jpg');
    await waitForState(generation, 'succeeded');
    await generation.getByRole('button', { name: 'Details' }).click();
    const steps = generation.locator('.details ol.related li');
    await steps.first().waitFor();
    assert.deepEqual(
      (await steps.allTextContents()).map((text) => text.replace(/ \(.*\)/, '')),
      ['Upscale · succeeded', 'Remove background · succeeded'],
    );
    assert.match((await generation.locator('.details').textContent()) ?? '', /Bytesphoto [\d.]+ KB → variants [\d.]+ KB/);
    // Its steps are in its details, not cards of their own.
    assert.equal(await page.locator('article.card', { has: page.getByRole('heading', { name: /^(Upscale|Remove background)$/ }) }).count(), 0);
    await page.getByLabel('A prompt').check();
  });

  it('follows a chain from a generation to its parent and its children', async () => {
    const parent = await kiln.client.waitFor((await kiln.client.generate({ prompt: 'the first of a chain', seed: 4, platforms: ['thumbnail'] })).id);
    const child = await kiln.client.generate({ operation: 'upscale', from: parent.id, platforms: ['thumbnail'] });
    const childCard = page.locator(`article.card[data-generation-id="${child.id}"]`);
    await waitForState(childCard, 'succeeded');
    await childCard.getByRole('button', { name: 'Details' }).click();
    await childCard.getByRole('link', { name: new RegExp(`output 1 of ${parent.id}`) }).click();
    assert.equal(new URL(page.url()).hash, `#g-${parent.id}`);
    const parentCard = page.locator(`article.card[data-generation-id="${parent.id}"]`);
    await parentCard.getByRole('button', { name: 'Details' }).click();
    await parentCard.getByRole('link', { name: 'Upscale' }).click();
    assert.equal(new URL(page.url()).hash, `#g-${child.id}`);
  });

  it('cancels running work, and offers to retry it', async () => {
    const prompt = 'a very slow one [sim:slow=30000]';
    await page.getByLabel('Prompt', { exact: true }).fill(prompt);
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const generation = card(page, prompt);
    await waitForState(generation, 'running', 30_000);
    await generation.getByRole('button', { name: 'Cancel' }).click();
    await waitForState(generation, 'canceled', 15_000);
    await generation.locator('[data-stage="canceled"]').waitFor();
    await generation.getByRole('button', { name: 'Retry' }).waitFor();
  });

  it('submits a batch, one prompt per line, and shows each waiting one\'s place in the queue and when it should start', async () => {
    // One at a time for this tenant, so the batch queues behind its first item.
    const admin = createKilnClient({ url: kiln.url, apiKey: ADMIN_TOKEN });
    await admin.trpc.admin.tenants.set.mutate({ tenant: kiln.tenantId, inProgressCap: 1 });
    try {
      const prompts = ['queue one [sim:slow=1200]', 'queue two [sim:slow=1200]', 'queue three [sim:slow=1200]'];
      await page.getByLabel('One prompt per line').check();
      await page.getByLabel('Prompts, one per line').fill(prompts.join('\n'));
      await page.getByRole('button', { name: 'Generate 3' }).click();
      await page.getByRole('status').filter({ hasText: 'Queued a batch of 3' }).waitFor();
      const last = card(page, prompts[2] ?? '');
      const place = last.locator('[data-queue-position]');
      await place.waitFor({ timeout: 15_000 });
      assert.match((await place.textContent()) ?? '', /(\d+ ahead in the queue|Next in line)( · starts (in|any moment))?/);
      for (const prompt of prompts) await waitForState(card(page, prompt), 'succeeded');
      assert.equal(await place.count(), 0, 'no queue place once it has run');
    } finally {
      await admin.trpc.admin.tenants.set.mutate({ tenant: kiln.tenantId, inProgressCap: null });
      admin.close();
      await page.getByLabel('One prompt per line').uncheck();
    }
  });

  it('says why a generation failed, and what to do about it', async () => {
    const prompt = 'this one fails [sim:fail]';
    await page.getByLabel('Prompt', { exact: true }).fill(prompt);
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const generation = card(page, prompt);
    await waitForState(generation, 'failed');
    await generation.getByText('Simulated model failure').waitFor();
    await generation.getByText('retrying often works').waitFor();
    // Retry submits it again as a new generation (failing again, as the simulator is told to).
    await generation.getByRole('button', { name: 'Retry' }).click();
    const attempts = page.locator('article.card', { has: page.getByRole('heading', { name: prompt, exact: true }) });
    await attempts.nth(1).waitFor();
    await waitForState(attempts.first(), 'failed');
  });

  it('shows an invalid input\'s message beside its field', async () => {
    refusalsExpected = true;
    await page.getByLabel('Prompt', { exact: true }).fill('');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const prompt = page.getByLabel('Prompt', { exact: true });
    await page.locator('#error-prompt').waitFor();
    assert.match((await page.locator('#error-prompt').textContent()) ?? '', /prompt/i);
    assert.equal(await prompt.getAttribute('aria-invalid'), 'true');
    assert.equal(await prompt.getAttribute('aria-describedby'), 'error-prompt');
    await page.getByRole('alert').filter({ hasText: 'Invalid input' }).waitFor();

    // A batch names the line at fault.
    await page.getByLabel('One prompt per line').check();
    await page.getByLabel('Prompts, one per line').fill(`fine\n${'x'.repeat(2001)}`);
    await page.getByLabel('Seed (optional)').fill('99999999999');
    await page.getByRole('button', { name: 'Generate 2' }).click();
    await page.locator('#error-prompt').filter({ hasText: 'line 2:' }).waitFor();
    await page.locator('#error-seed').filter({ hasText: 'seed must be between 0 and 4294967295' }).waitFor();
    await page.getByLabel('Seed (optional)').fill('');
    await page.getByLabel('One prompt per line').uncheck();
    refusalsExpected = false;
  });

  it('shows the tenant\'s credits, spend by model and day, and cache hits', async () => {
    await page.getByRole('link', { name: 'Usage' }).click();
    await page.getByRole('heading', { name: 'Credits and usage' }).waitFor();
    const table = page.getByRole('table', { name: /Spend by model and day/ });
    await table.getByRole('cell', { name: 'black-forest-labs/flux-schnell' }).first().waitFor();
    await page.getByText('Cache hits').waitFor();
  });

  it('shows the operator view with the admin token', async () => {
    await page.getByRole('link', { name: 'Operator' }).click();
    await page.getByLabel('Admin token').fill('not-the-admin-token');
    refusalsExpected = true;
    await page.getByRole('button', { name: 'Open the operator view' }).click();
    await page.locator('#error-admin-token').waitFor();
    refusalsExpected = false;
    await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Open the operator view' }).click();
    await page.getByText('Predictions in flight').waitFor();
    await page.getByRole('img', { name: /generations ended in the last 15 minutes/ }).waitFor();
    const tenants = page.getByRole('table', { name: /Tenants by their share/ });
    await tenants.getByRole('row').nth(1).waitFor();
    assert.match((await tenants.textContent()) ?? '', /%/);
    // A second reading gives the budgets' use per minute.
    await page.getByRole('table', { name: 'Provider budgets: their use and state' }).getByText(/\d+ of \d+\/min/).first().waitFor();
  });

  it('saves screenshots of the gallery and the operator view at desktop and phone widths', async () => {
    for (const [name, viewport] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
      await page.setViewportSize(viewport);
      for (const view of ['gallery', 'operator', 'create'] as const) {
        await page.goto(`${kiln.url}/#${view}`);
        await page.locator('main').waitFor();
        if (view === 'gallery') {
          await page.locator('article.card[data-state="succeeded"]').first().waitFor();
          await page.locator('img[data-asset-width]').evaluateAll((images) => Promise.all((images as unknown as ShownImage[]).map((image) => ((image.loading = 'eager'), image.decode().catch(() => {})))));
        }
        if (view === 'operator') await page.getByRole('table', { name: 'Provider budgets: their use and state' }).getByText(/\d+ of \d+\/min/).first().waitFor();
        await page.screenshot({ path: path.join(ARTIFACTS, `${view}-${name}.png`), fullPage: true });
        const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
        const wide = await page.evaluate<string[]>(`[...document.querySelectorAll('main *')].filter((element) => element.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map((element) => element.tagName + '.' + element.className)`);
        assert.ok(overflow <= 0, `${view} at ${name} width fits without sideways scrolling (${overflow}px over: ${wide.join(', ')})`);
      }
    }
    // The dark theme, as a system set to dark shows it.
    await page.setViewportSize(DESKTOP);
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.goto(`${kiln.url}/#operator`);
    await page.getByRole('table', { name: 'Provider budgets: their use and state' }).getByText(/\d+ of \d+\/min/).first().waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'operator-desktop-dark.png'), fullPage: true });
    await page.goto(`${kiln.url}/#create`);
    await page.locator('article.card[data-state="succeeded"]').first().waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'create-desktop-dark.png') });
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('logged no console errors', () => {
    assert.deepEqual(consoleErrors, []);
  });
});
