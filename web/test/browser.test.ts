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

/**
 * The web client in a real browser (Debian's Chromium through playwright-core) against the whole
 * local stack: Hosting on 127.0.0.1:5000 serving web/dist, the Auth, Functions and Firestore
 * emulators, and the real runner on the real Docker engine. scripts/test.sh starts the emulators
 * with functions/.env.local pointing RUNNER_URL at 127.0.0.1:$RUNNER_TEST_PORT; this file owns
 * that runner process. Screenshots go to test-artifacts/screenshots/.
 */
const HOSTING = 'http://127.0.0.1:5000';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const PORT = process.env.RUNNER_TEST_PORT;
const TOKEN = process.env.RUNNER_TEST_TOKEN;
const RUNNER_ID = process.env.RUNNER_TEST_ID ?? 'web-test';
const RATE_LIMIT = Number(process.env.MESSAGES_PER_MINUTE_TEST ?? 5);
const SHOTS = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));
const PASSWORD = 'correct horse battery staple';

let runner: RunnerProcess;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];
/** Console reports of Content-Security-Policy violations: the app must work under its policy. */
const cspViolations: string[] = [];

const email = () => `web-${randomBytes(5).toString('hex')}@example.test`;
const shot = (name: string) => page.screenshot({ path: `${SHOTS}${name}.png` });
const text = async (selector: string) => ((await page.locator(selector).textContent()) ?? '').trim();

/** Types into the composer as a user would: Shift+Enter between lines, Enter sends. */
async function send(message: string): Promise<void> {
  const box = page.getByLabel('Message', { exact: true });
  await box.fill('');
  for (const [i, line] of message.split('\n').entries()) {
    if (i > 0) await box.press('Shift+Enter');
    await box.pressSequentially(line);
  }
  assert.equal(await box.inputValue(), message, 'Shift+Enter adds a new line');
  await box.press('Enter');
}

/** The stored agent reply containing `text`, once the live listener shows it. */
async function reply(text: string) {
  const li = page.locator('#messages li.msg-agent', { hasText: text });
  await li.waitFor();
  return li;
}

async function signUp(address: string): Promise<void> {
  await page.getByLabel('Email').fill(address);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.locator('#user-label', { hasText: address }).waitFor();
}

async function signOut(): Promise<void> {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Create account' }).waitFor();
}

before(async () => {
  assert.ok(PORT && TOKEN, 'RUNNER_TEST_PORT and RUNNER_TEST_TOKEN must be set (scripts/test.sh does it)');
  assert.ok(RATE_LIMIT >= 4, 'the scenarios send 4 messages a minute per user (MESSAGES_PER_MINUTE_TEST)');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  const home = await fetch(`${HOSTING}/`).catch(() => null);
  assert.equal(
    home?.status,
    200,
    `Hosting does not serve ${HOSTING}/ (run npm run build, then the emulators)`,
  );
  runner = await startRunner({ PORT, RUNNER_TOKEN: TOKEN, RUNNER_ID });
  await mkdir(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  context.setDefaultTimeout(60_000);
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text());
  });
});

after(async () => {
  await context?.close();
  await browser?.close();
  await runner?.stop();
  // The runner removes its warm sandboxes when it stops; workspaces (volumes) stay by design.
  const left = await leftovers(RUNNER_ID);
  await removeLeftovers(RUNNER_ID);
  assert.deepEqual(left.containers, [], 'no sandbox outlives the tests');
  assert.deepEqual((await leftovers(RUNNER_ID)).volumes, []);
});

describe('the web client', () => {
  let firstConversation = '';

  test('Hosting serves the app for every path and keeps the API rewrites', async () => {
    const health = await fetch(`${HOSTING}/health`);
    assert.deepEqual(await health.json(), { status: 'ok', service: 'api-server' });
    const deep = await fetch(`${HOSTING}/c/some-conversation`);
    assert.equal(deep.status, 200);
    assert.match(await deep.text(), /<title>Agent platform<\/title>/);
    // Security headers from firebase.json: no framing, no inline script, foreign script only from
    // Google sign-in and reCAPTCHA (App Check in deployed builds).
    const csp = deep.headers.get('content-security-policy') ?? '';
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(
      csp,
      /script-src 'self' https:\/\/apis\.google\.com https:\/\/www\.google\.com\/recaptcha\/ https:\/\/www\.gstatic\.com\/recaptcha\/;/,
    );
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(csp, /object-src 'none'/);
    assert.equal(deep.headers.get('x-frame-options'), 'DENY');
    assert.equal(deep.headers.get('x-content-type-options'), 'nosniff');
  });

  test('the sign-in screen explains a failed sign-in', async () => {
    await page.goto(HOSTING);
    await page.getByRole('heading', { name: 'Agent platform' }).waitFor();
    await shot('01-sign-in');
    await page.getByLabel('Email').fill(email());
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.locator('#auth-error');
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? '', /Wrong email or password|No account uses that email/);
  });

  test('sign up with email and password: empty conversations and agents', async () => {
    await signUp(email());
    await page.locator('#conversations-status', { hasText: 'No conversations yet' }).waitFor();
    await page.locator('#agents-status', { hasText: 'No agents yet' }).waitFor();
    assert.equal(await page.locator('#conversation-list li').count(), 0);
    await page.getByRole('heading', { name: 'Start a conversation' }).waitFor();
    await shot('02-empty');
  });

  test('a message shows a pending reply, then the stored reply', async () => {
    // Records what the pending reply bubble showed: streamed text, or the working indicator.
    await page.evaluate(() => {
      const el = document.getElementById('pending-reply')!;
      const seen: Array<{ busy: boolean; text: string }> = [];
      (window as unknown as { seen: typeof seen }).seen = seen;
      new MutationObserver(() => {
        if (el.hidden) return;
        const text = [...el.children]
          .slice(1)
          .map((c) => c.textContent)
          .join('');
        seen.push({ busy: el.getAttribute('aria-busy') === 'true', text });
      }).observe(el, { childList: true, subtree: true, characterData: true, attributes: true });
    });
    await send('Hello agent');
    const li = await reply('Test response: Hello agent');
    assert.equal(await li.locator('p.text').textContent(), 'Test response: Hello agent');
    await page.waitForURL(/\/c\/[A-Za-z0-9]+$/);
    firstConversation = new URL(page.url()).pathname.split('/')[2]!;

    const seen = await page.evaluate(
      () => (window as unknown as { seen: Array<{ busy: boolean; text: string }> }).seen,
    );
    assert.ok(
      seen.some((s) => s.busy),
      `the pending reply was shown while waiting: ${JSON.stringify(seen)}`,
    );
    for (const s of seen.filter((x) => x.busy && x.text !== 'Agent is working…')) {
      assert.ok('Test response: Hello agent'.startsWith(s.text), `streamed text is a prefix: ${s.text}`);
    }
    await page.locator('#pending-reply').waitFor({ state: 'hidden' });
    assert.equal(await page.locator('#messages li.msg-agent').count(), 1, 'the reply is shown once');
    assert.equal(await page.locator('#messages li.msg-user p.text').textContent(), 'Hello agent');
    await page.locator('#conversation-list a[aria-current="page"]', { hasText: 'Hello agent' }).waitFor();
    assert.equal(await text('#chat-title'), 'Hello agent');
  });

  test('a python code block: the code and its output as code blocks', async () => {
    await send('Run this:\n```python\nprint(6*7)\n```');
    const li = await reply('Test response: Run this:');
    const output = li.locator('figure.output');
    await output.waitFor();
    assert.equal(await output.locator('figcaption').textContent(), 'Output · python · exit 0');
    assert.equal(await output.locator('pre > code').textContent(), '42');
    assert.equal(await li.locator('figure.code:not(.output) pre > code').textContent(), 'print(6*7)');
  });

  test('/create-agent: a notice, and the agent in the Agents panel', async () => {
    await send('/create-agent Recipe Bot: Suggests recipes');
    await reply('Created agent "Recipe Bot".');
    await page.locator('#notice', { hasText: 'Created the agent “Recipe Bot”' }).waitFor();
    const agent = page.locator('#agent-list li', { hasText: 'Recipe Bot' });
    await agent.waitFor();
    assert.equal(await agent.locator('.agent-description').textContent(), 'Suggests recipes');
  });

  test('/component card renders a card', async () => {
    await send('/component card Weather: Sunny');
    const li = await reply('Test response: /component card Weather: Sunny');
    const card = li.locator('.card');
    await card.waitFor();
    assert.equal(await card.locator('h3').textContent(), 'Weather');
    assert.equal(await card.locator('p').textContent(), 'Sunny');
    await page.setViewportSize({ width: 1280, height: 1120 }); // the whole conversation
    await shot('03-chat');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  test('after a reload the conversation and its history are still there', async () => {
    await page.reload();
    await page.locator('#user-label').waitFor();
    assert.equal(new URL(page.url()).pathname, `/c/${firstConversation}`);
    await reply('Test response: /component card Weather: Sunny');
    assert.equal(await page.locator('#messages li.msg').count(), 8);
    assert.deepEqual(await page.locator('#messages li.msg-user p.text').allTextContents(), [
      'Hello agent',
      'Run this:',
      '/create-agent Recipe Bot: Suggests recipes',
      '/component card Weather: Sunny',
    ]);
    assert.equal(await page.locator('#messages .output pre > code').textContent(), '42');
    await page.locator('#agent-list li', { hasText: 'Recipe Bot' }).waitFor();
  });

  test('a narrow (390x844) screen: the chat, with the list behind it', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    assert.equal(await page.locator('#sidebar').isVisible(), false);
    await page.locator('#thread').evaluate((el) => (el.scrollTop = el.scrollHeight));
    await shot('04-narrow-chat');
    await page.getByRole('button', { name: '☰ Conversations' }).click();
    await page.locator('#conversation-list').waitFor();
    assert.equal(await page.locator('#chat').isVisible(), false);
    await shot('05-narrow-list');
    await page.locator('#conversation-list a', { hasText: 'Hello agent' }).click();
    await page.locator('#chat').waitFor();
    assert.equal(await page.locator('#sidebar').isVisible(), false);
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  test("a second user sees none of the first user's conversations", async () => {
    await signOut();
    assert.equal(new URL(page.url()).pathname, '/');
    await signUp(email());
    await page.locator('#conversations-status', { hasText: 'No conversations yet' }).waitFor();
    assert.equal(await page.locator('#conversation-list li').count(), 0);
    await page.locator('#agents-status', { hasText: 'No agents yet' }).waitFor();
    assert.equal(await page.getByText('Hello agent').count(), 0);
    // The first user's conversation by URL: nothing (it is looked up under the new user).
    await page.goto(`${HOSTING}/c/${firstConversation}`);
    await page.locator('#notice', { hasText: 'does not exist' }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/');
    assert.equal(await page.locator('#messages li').count(), 0);
  });

  test('buttons: a click sends its value', async () => {
    await send('/component buttons Yes | No');
    const li = await reply('Test response: /component buttons Yes | No');
    await li.getByRole('button', { name: 'No' }).waitFor();
    await li.getByRole('button', { name: 'Yes' }).click();
    await reply('Test response: Yes');
    assert.deepEqual(await page.locator('#messages li.msg-user p.text').allTextContents(), [
      '/component buttons Yes | No',
      'Yes',
    ]);
  });

  test('a sandbox failure is shown as its status', async () => {
    await send('```python\nx=[]\nwhile True: x.append(bytearray(50*1024*1024))\n```');
    const status = page.locator('#messages li.msg-agent .run-status-oom');
    await status.waitFor();
    assert.match((await status.textContent()) ?? '', /Out of memory/);
    await shot('06-buttons-and-oom');
  });

  test('delete a conversation, after confirming', async () => {
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    const confirm = page.getByRole('alertdialog');
    await confirm.waitFor();
    await shot('07-confirm-delete');
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    assert.equal(await page.locator('#conversation-list li').count(), 1);
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await confirm.getByRole('button', { name: 'Delete' }).click();
    await page.locator('#notice', { hasText: 'Conversation deleted.' }).waitFor();
    await page.locator('#conversations-status', { hasText: 'No conversations yet' }).waitFor();
    assert.equal(await page.locator('#conversation-list li').count(), 0);
    assert.equal(new URL(page.url()).pathname, '/');
  });

  test('anonymous sign-in', async () => {
    await signOut();
    await page.getByRole('button', { name: 'Continue without an account' }).click();
    await page.locator('#user-label', { hasText: 'Guest (anonymous)' }).waitFor();
    // All but one of this minute's messages (the runner-down message below is the last).
    for (let i = 1; i < RATE_LIMIT; i++) {
      await send(`message ${i}`);
      await reply(`Test response: message ${i}`);
    }
  });

  test('the runner is down: the error, and the message marked as not answered', async () => {
    await runner.stop();
    await send('anyone there?');
    await page.locator('#error', { hasText: 'The agent runner is unavailable' }).waitFor();
    await page.locator('#messages li.msg-user .msg-failed', { hasText: 'Not answered' }).waitFor();
    assert.equal(await page.getByLabel('Message', { exact: true }).inputValue(), 'anyone there?');
    await shot('08-runner-unavailable');
  });

  test('sending too fast is explained', async () => {
    await send('one too many');
    await page.locator('#error', { hasText: "You're sending messages too fast" }).waitFor();
    assert.equal(await page.getByLabel('Message', { exact: true }).inputValue(), 'one too many');
    assert.equal(await page.locator('#messages li.msg-user').count(), RATE_LIMIT);
    await shot('09-rate-limited');
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
    assert.deepEqual(cspViolations, [], 'nothing the app does is blocked by its Content-Security-Policy');
  });

  test('a message not answered is sent again in place with Retry', async () => {
    await signOut();
    await page.getByRole('button', { name: 'Continue without an account' }).click();
    await page.locator('#user-label', { hasText: 'Guest (anonymous)' }).waitFor();
    await send('retry me'); // the runner is still down
    await page.locator('#messages li.msg-user .msg-failed', { hasText: 'Not answered' }).waitFor();
    runner = await startRunner({ PORT: PORT!, RUNNER_TOKEN: TOKEN!, RUNNER_ID });
    await page.getByRole('button', { name: 'Retry' }).click();
    await reply('Test response: retry me');
    await page.locator('#messages li.msg-user .msg-failed').waitFor({ state: 'detached' });
    assert.equal(await page.locator('#messages li.msg-user').count(), 1, 'the same message, answered');
    await shot('10-retried');
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(cspViolations, []);
  });
});
