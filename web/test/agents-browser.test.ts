import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import {
  leftovers,
  removeLeftovers,
  startRunner,
  type RunnerProcess,
} from '../../runner/test/helpers/runner-process.ts';
import { startFakeModel, type FakeModel } from '../../runner/test/helpers/fake-model.ts';

/**
 * Agents in the web client, in a real browser (Debian's Chromium through playwright-core) against
 * the whole local stack, with the reference LLM agent in the sandbox: a user creates an agent,
 * starts a conversation with it, watches its tokens and its code's output stream in, and sees the
 * tokens used. The model provider is the only stand-in (runner/test/helpers/fake-model.ts). This
 * file owns the runner at RUNNER_TEST_PORT while it runs.
 */
const HOSTING = 'http://127.0.0.1:5000';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const PORT = process.env.RUNNER_TEST_PORT;
const TOKEN = process.env.RUNNER_TEST_TOKEN;
const RUNNER_ID = `${process.env.RUNNER_TEST_ID ?? 'web-test'}-agents`;
const SHOTS = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));

let runner: RunnerProcess;
let fake: FakeModel;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

const shot = (name: string) => page.screenshot({ path: `${SHOTS}${name}.png` });

before(async () => {
  assert.ok(PORT && TOKEN, 'RUNNER_TEST_PORT and RUNNER_TEST_TOKEN must be set (scripts/test.sh does it)');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  fake = await startFakeModel();
  runner = await startRunner({
    PORT,
    RUNNER_TOKEN: TOKEN,
    RUNNER_ID,
    MODEL_BASE_URL: fake.baseUrl,
    MODEL_API_KEY: 'sk-test-browser-key',
    MODEL_ALLOWLIST: 'fake-small,fake-large',
    MODEL_DEFAULT: 'fake-small',
  });
  await mkdir(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  context.setDefaultTimeout(60_000);
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err)));
});

after(async () => {
  await context?.close();
  await browser?.close();
  await runner?.stop();
  await fake?.close();
  const left = await leftovers(RUNNER_ID);
  await removeLeftovers(RUNNER_ID);
  assert.deepEqual(left.containers, [], 'no sandbox outlives the tests');
});

describe('agents in the web client', () => {
  test('sign up, create an agent with a model and one tool; a bad name is refused with the reason', async () => {
    await page.goto(`${HOSTING}/`);
    await page.getByLabel('Email').fill(`agents-${randomBytes(5).toString('hex')}@example.test`);
    await page.getByLabel('Password').fill('correct horse battery staple');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.locator('#agents-status', { hasText: 'No agents yet' }).waitFor();

    await page.getByRole('button', { name: '+ New agent' }).click();
    const editor = page.locator('#agent-editor');
    await editor.waitFor();
    await page.locator('#agent-model option[value="fake-large"]').waitFor({ state: 'attached' });
    await page.getByLabel('Name').fill('   ');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#agent-editor-error', { hasText: 'Not saved: name: must not be empty' }).waitFor();

    await page.getByLabel('Name').fill('Counter');
    await page.getByLabel('Description').fill('Counts with code');
    await page.getByLabel('Instructions').fill('Count things by running code.');
    await page.getByLabel('Model').selectOption('fake-large');
    for (const tool of ['Read files', 'Write files', 'Create agents', 'Show cards, tables, buttons']) {
      await page.getByLabel(tool).uncheck();
    }
    await page.getByRole('button', { name: 'Save' }).click();
    await editor.waitFor({ state: 'hidden' });
    const item = page.locator('#agent-list li.agent', { hasText: 'Counter' });
    await item.waitFor();
    assert.equal((await item.locator('.agent-meta').textContent())?.trim(), 'fake-large · 1 tool');
    await shot('agents-01-created');
  });

  test('a conversation with the agent: its tokens and its code output stream in, then the tokens used', async () => {
    // Records what the pending reply showed while streaming.
    await page.evaluate(() => {
      const el = document.getElementById('pending-reply')!;
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      new MutationObserver(() => {
        if (!el.hidden && el.getAttribute('aria-busy') === 'true') seen.push(el.textContent ?? '');
      }).observe(el, { childList: true, subtree: true, characterData: true });
    });
    const before = fake.requests.length;
    fake.agentScript.push(
      {
        text: 'Counting now. ',
        toolCalls: [
          {
            name: 'run_code',
            arguments: JSON.stringify({
              language: 'python',
              code: 'import time\nprint("one")\ntime.sleep(2)\nprint("two")',
            }),
          },
        ],
        usage: { input: 30, output: 12 },
      },
      { text: 'Counted to two.', usage: { input: 50, output: 8 } },
    );
    await page
      .locator('#agent-list li.agent', { hasText: 'Counter' })
      .getByRole('button', { name: 'Chat' })
      .click();
    await page.locator('#chat-title', { hasText: 'New conversation with Counter' }).waitFor();
    const box = page.getByLabel('Message', { exact: true });
    await box.fill('count to two');
    await box.press('Enter');

    const li = page.locator('#messages li.msg-agent', { hasText: 'Counted to two.' });
    await li.waitFor();
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    assert.ok(
      seen.some((s) => s.includes('Counting now.') && s.endsWith('Output · python · runningone')),
      `the text and the first output line showed before the second line: ${JSON.stringify(seen.slice(-5))}`,
    );
    const output = li.locator('figure.output');
    assert.equal(await output.locator('figcaption').textContent(), 'Output · python · exit 0');
    assert.equal(await output.locator('pre > code').textContent(), 'one\ntwo');
    assert.equal(
      (await li.locator('p.usage').textContent())?.trim(),
      '100 tokens · 2 model calls · fake-large',
    );
    await page.locator('#chat-agent', { hasText: 'With Counter' }).waitFor();
    await page.locator('#usage', { hasText: 'Today: 100 of 1,000,000 tokens (2 model calls)' }).waitFor();
    const first = fake.requests[before]?.body as { model: string; messages: Array<{ content: string }> };
    assert.equal(first.model, 'fake-large');
    assert.match(first.messages[0]!.content, /^You are Counter\. Count things by running code\./);
    await shot('agents-02-conversation');
  });

  test('workspace files: upload one, see it listed, download the same bytes, delete it', async () => {
    const content = Buffer.from(`hello from the browser ${randomBytes(4).toString('hex')}\n`);
    await page
      .locator('#file-upload')
      .setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: content });
    const item = page.locator('#file-list li.file', { hasText: 'notes.txt' });
    await item.waitFor();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      item.getByRole('button', { name: 'Download' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), 'notes.txt');
    const stream = await download.createReadStream();
    const chunks: Buffer[] = [];
    for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
    assert.ok(Buffer.concat(chunks).equals(content), 'the same bytes');
    // The agent's code sees it in the workspace too (the files listed include what it wrote).
    await item.getByRole('button', { name: 'Delete' }).click();
    await item.waitFor({ state: 'detached' });
    await shot('agents-03-files');
  });

  test('edit and delete an agent', async () => {
    const item = page.locator('#agent-list li.agent', { hasText: 'Counter' });
    await item.getByRole('button', { name: 'Edit' }).click();
    await page.locator('#agent-editor-title', { hasText: 'Edit “Counter”' }).waitFor();
    await page.locator('#agent-model option[value="fake-large"]').waitFor({ state: 'attached' });
    assert.equal(await page.getByLabel('Model').inputValue(), 'fake-large');
    await page.getByLabel('Name').fill('Counter Two');
    await page.getByRole('button', { name: 'Save' }).click();
    const renamed = page.locator('#agent-list li.agent', { hasText: 'Counter Two' });
    await renamed.waitFor();
    await renamed.getByRole('button', { name: 'Delete' }).click();
    await renamed.getByRole('button', { name: 'Delete?' }).click();
    await page.locator('#agents-status', { hasText: 'No agents yet' }).waitFor();
    assert.deepEqual(pageErrors, []);
  });
});
