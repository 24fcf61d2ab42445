// The default agent's pure parts, from its TypeScript sources (no Docker): the language table, the
// component builder, the create-agent check, the offline message syntax, the turn, the request
// checks and the model's view of the tools. The runner's Docker suites run the built image.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  AGENT_INSTRUCTIONS_MAX_CHARS,
  AGENT_PROTOCOL_VERSION,
  AGENT_TOOLS,
  COMPONENT_MAX_JSON_BYTES,
  MODEL_REQUEST_MAX_BYTES,
  REPLY_MAX_CHARS,
  TABLE_MAX_COLUMNS,
  TABLE_MAX_ROWS,
  type AgentEvent,
  type ResultEvent,
} from '@agent-platform/contract';
import { buildComponent } from '../agents/default/src/components.ts';
import { checkCreatedAgent } from '../agents/default/src/created-agent.ts';
import { MODEL_LANGUAGES, interpreterFor } from '../agents/default/src/languages.ts';
import { callTool, clipToolResult, toolDefinitions } from '../agents/default/src/llm-tools.ts';
import {
  parseComponent,
  parseCreateAgent,
  scanMessage,
  splitCsv,
} from '../agents/default/src/message-syntax.ts';
import { ModelGateway, type ResponseSink } from '../agents/default/src/model-gateway.ts';
import { answerOffline } from '../agents/default/src/offline-agent.ts';
import { inputLines, parseRequest } from '../agents/default/src/request.ts';
import { CODE_OUTPUT_MAX_BYTES, runInterpreter } from '../agents/default/src/run-interpreter.ts';
import { Turn } from '../agents/default/src/turn.ts';
import { readStart, workspacePath } from '../agents/default/src/workspace.ts';

/** A turn whose events are kept. */
function recordedTurn(): { turn: Turn; events: AgentEvent[]; result: () => ResultEvent | undefined } {
  const events: AgentEvent[] = [];
  const turn = new Turn((e) => events.push(e));
  return { turn, events, result: () => events.find((e): e is ResultEvent => e.type === 'result') };
}

describe('the language table', () => {
  test('every fence tag of the README runs with its interpreter; others do not run', () => {
    const commands = (tags: string[]) => tags.map((t) => interpreterFor(t)?.command);
    assert.deepEqual(commands(['sh', 'shell', 'bash']), ['sh', 'sh', 'bash']);
    assert.deepEqual(commands(['python', 'python3', 'py']), ['python3', 'python3', 'python3']);
    assert.deepEqual(commands(['js', 'javascript', 'node']), Array(3).fill(process.execPath));
    assert.deepEqual(commands(['ruby', '', 'text']), [undefined, undefined, undefined]);
  });

  test("a model's languages are names of the same table", () => {
    for (const language of MODEL_LANGUAGES) assert.ok(interpreterFor(language), language);
  });
});

describe('the component builder', () => {
  test('a card needs a title', () => {
    assert.deepEqual(buildComponent({ type: 'card', title: 'T', body: '' }), {
      type: 'card',
      title: 'T',
      body: '',
    });
    assert.equal(buildComponent({ type: 'card', title: '', body: 'b' }), null);
  });

  test('a table keeps its bounds: extra columns and rows dropped, short rows padded', () => {
    const columns = Array.from({ length: TABLE_MAX_COLUMNS + 2 }, (_, i) => `c${i}`);
    const rows = Array.from({ length: TABLE_MAX_ROWS + 5 }, () => ['x']);
    const table = buildComponent({ type: 'table', columns, rows });
    assert.equal(table?.type, 'table');
    if (table?.type !== 'table') return;
    assert.equal(table.columns.length, TABLE_MAX_COLUMNS);
    assert.equal(table.rows.length, TABLE_MAX_ROWS);
    assert.deepEqual(table.rows[0]?.cells, ['x', ...Array(TABLE_MAX_COLUMNS - 1).fill('')]);
    assert.deepEqual(buildComponent({ type: 'table', columns: ['a'], rows: [['1', '2']] }), {
      type: 'table',
      columns: ['a'],
      rows: [{ cells: ['1'] }],
    });
    assert.equal(buildComponent({ type: 'table', columns: [], rows: [] }), null);
  });

  test('buttons: 1 to 10 labels, each its own value', () => {
    assert.deepEqual(buildComponent({ type: 'buttons', labels: ['Yes', 'No'] }), {
      type: 'buttons',
      buttons: [
        { label: 'Yes', value: 'Yes' },
        { label: 'No', value: 'No' },
      ],
    });
    assert.equal(buildComponent({ type: 'buttons', labels: [] }), null);
    assert.equal(buildComponent({ type: 'buttons', labels: Array(11).fill('b') }), null);
  });

  test('no component over the JSON size bound', () => {
    assert.equal(
      buildComponent({ type: 'card', title: 'T', body: 'x'.repeat(COMPONENT_MAX_JSON_BYTES) }),
      null,
    );
  });
});

describe('the create-agent check', () => {
  test('the name is trimmed and 1-100 characters; the description at most 1000', () => {
    assert.deepEqual(checkCreatedAgent({ name: ' Bot ', description: 'd', instructions: 'i' }), {
      agent: { name: 'Bot', description: 'd', instructions: 'i' },
    });
    const nameError = { error: 'the name must be 1-100 characters' };
    assert.deepEqual(checkCreatedAgent({ name: '  ', description: '', instructions: '' }), nameError);
    assert.deepEqual(
      checkCreatedAgent({ name: 'n'.repeat(101), description: '', instructions: '' }),
      nameError,
    );
    assert.deepEqual(checkCreatedAgent({ name: 'N', description: 'd'.repeat(1001), instructions: '' }), {
      error: 'the description must be at most 1000 characters',
    });
  });

  test('instructions past their bound are cut, not refused', () => {
    const checked = checkCreatedAgent({ name: 'N', description: '', instructions: 'i'.repeat(25_000) });
    assert.ok('agent' in checked);
    assert.equal(checked.agent.instructions.length, AGENT_INSTRUCTIONS_MAX_CHARS);
  });
});

describe('the offline message syntax', () => {
  test('code blocks and the lines outside them; an unclosed block runs to the end', () => {
    const { blocks, prose } = scanMessage(
      'hi\n```Python\nprint(1)\n```\n````sh\n```\necho x\n````\nafter\n```js\nopen',
    );
    assert.deepEqual(blocks, [
      { lang: 'python', code: 'print(1)' },
      { lang: 'sh', code: '```\necho x' },
      { lang: 'js', code: 'open' },
    ]);
    assert.deepEqual(
      prose.map((l) => [l.text, l.fence]),
      [
        ['hi', false],
        ['```Python', true],
        ['````sh', true],
        ['after', false],
        ['```js', true],
      ],
    );
  });

  test('/create-agent: name, description, instructions up to a fence or command, a default', () => {
    const prose = (m: string) => scanMessage(m).prose;
    assert.deepEqual(
      parseCreateAgent(prose('x\n/create-agent Bot: helps\nBe kind.\nBe brief.\n/component card A: b')),
      {
        fields: { name: 'Bot', description: 'helps', instructions: 'Be kind.\nBe brief.' },
      },
    );
    assert.deepEqual(parseCreateAgent(prose('/create-agent  Bot :  helps \n```sh\nx\n```')), {
      fields: { name: 'Bot', description: 'helps', instructions: 'You are Bot. helps' },
    });
    assert.deepEqual(parseCreateAgent(prose('/create-agent Bot')), {
      error: 'expected "/create-agent <name>: <description>"',
    });
    assert.equal(parseCreateAgent(prose('```\n/create-agent Bot: in a block\n```')), null);
  });

  test('/component: the first line, its kind as written, what it describes', () => {
    const parse = (m: string) => parseComponent(scanMessage(m).prose);
    assert.deepEqual(parse('/component Card Weather: Sunny: warm\n/component buttons A'), {
      kind: 'Card',
      spec: { type: 'card', title: 'Weather', body: 'Sunny: warm' },
    });
    assert.deepEqual(parse('/component table\nname,qty\napples,3\n\nprose'), {
      kind: 'table',
      spec: { type: 'table', columns: ['name', 'qty'], rows: [['apples', '3']] },
    });
    assert.deepEqual(parse('/component buttons Yes | | No'), {
      kind: 'buttons',
      spec: { type: 'buttons', labels: ['Yes', 'No'] },
    });
    assert.deepEqual(parse('/component card no colon'), { kind: 'card', spec: null });
    assert.deepEqual(parse('/component table\n'), { kind: 'table', spec: null });
    assert.deepEqual(parse('/component chart 1,2'), { kind: 'chart', spec: null });
    assert.equal(parse('no command'), null);
  });

  test('CSV cells: trimmed, or quoted with "" for a quote', () => {
    assert.deepEqual(splitCsv(' a , "b, c" ,"say ""hi""",'), ['a', 'b, c', 'say "hi"', '']);
  });

  test('the offline agent answers a message without code, as the README shows', async () => {
    const { turn, events, result } = recordedTurn();
    const message = 'Make\n/create-agent Recipe Bot: Suggests recipes\n/component chart 1';
    assert.equal(await answerOffline(message, turn), 'ok');
    turn.finish('ok');
    assert.deepEqual(
      events.filter((e) => e.type === 'text').map((e) => e.delta),
      [`Test response: ${message}`, '\n\nCreated agent "Recipe Bot".', '\n\nUnknown component "chart"'],
    );
    assert.deepEqual(result(), {
      type: 'result',
      text: `Test response: ${message}\n\nCreated agent "Recipe Bot".\n\nUnknown component "chart"`,
      status: 'ok',
      component: null,
      agent: {
        name: 'Recipe Bot',
        description: 'Suggests recipes',
        instructions: 'You are Recipe Bot. Suggests recipes',
      },
      workspaceChanged: false,
    });
  });
});

describe('the turn', () => {
  test('the reply is the concatenation of its deltas; the result carries what was made', () => {
    const { turn, events } = recordedTurn();
    turn.sayParagraph('first');
    turn.say('');
    turn.sayParagraph('second');
    turn.show({ type: 'card', title: 'T', body: 'b' });
    turn.created({ name: 'N', description: '', instructions: '' });
    turn.changedWorkspace();
    turn.finish('ok');
    turn.say('after the end');
    turn.finish('error');
    assert.deepEqual(events, [
      { type: 'text', delta: 'first' },
      { type: 'text', delta: '\n\nsecond' },
      {
        type: 'result',
        text: 'first\n\nsecond',
        status: 'ok',
        component: { type: 'card', title: 'T', body: 'b' },
        agent: { name: 'N', description: '', instructions: '' },
        workspaceChanged: true,
      },
    ]);
  });

  test('the reply stops at REPLY_MAX_CHARS with a note', () => {
    const { turn, result } = recordedTurn();
    turn.say('x'.repeat(REPLY_MAX_CHARS - 10));
    turn.say('y'.repeat(100));
    turn.say('z');
    turn.finish('ok');
    const text = result()?.text ?? '';
    assert.equal(text.length, REPLY_MAX_CHARS);
    assert.ok(text.endsWith('\n[reply truncated]'));
    assert.ok(!text.includes('z'));
  });

  test('an unexpected failure drops what was made and counts the workspace as changed', () => {
    const { turn, result } = recordedTurn();
    turn.show({ type: 'card', title: 'T', body: 'b' });
    turn.failUnexpectedly();
    assert.deepEqual(result(), {
      type: 'result',
      text: 'The agent failed unexpectedly.',
      status: 'error',
      component: null,
      agent: null,
      workspaceChanged: true,
    });
  });
});

describe('the request', () => {
  test('what the agent checks of a request line', () => {
    const line = (o: object) => JSON.stringify({ protocol: AGENT_PROTOCOL_VERSION, ...o });
    assert.deepEqual(parseRequest(line({ message: 'hi', model: '' })), {
      request: { message: 'hi', history: [], model: null, agent: null },
    });
    assert.deepEqual(parseRequest('{'), { error: 'Invalid request: the line is not JSON.' });
    assert.deepEqual(parseRequest('[]'), { error: 'Invalid request: expected a JSON object.' });
    assert.deepEqual(parseRequest(JSON.stringify({ protocol: 99, message: 'x' })), {
      error: `Invalid request: unsupported protocol 99 (expected ${AGENT_PROTOCOL_VERSION}).`,
    });
    assert.deepEqual(parseRequest(line({ message: 1 })), {
      error: 'Invalid request: "message" must be a string.',
    });
  });

  test('input lines across chunks, a last line without newline, CRLF', async () => {
    async function* chunks() {
      yield Buffer.from('{"a":');
      yield Buffer.from('1}\r\nsecond\nla');
      yield Buffer.from('st');
    }
    const lines = [];
    for await (const l of inputLines(chunks())) lines.push(l);
    assert.deepEqual(lines, [{ line: '{"a":1}' }, { line: 'second' }, { line: 'last' }]);
  });
});

describe('the tools as a model sees them (no code runs, no file is touched)', () => {
  test("the definitions offered follow AGENT_TOOLS' order, only those the agent allows", () => {
    const names = (tools: object[]) => tools.map((t) => (t as { function: { name: string } }).function.name);
    assert.deepEqual(names(toolDefinitions(new Set(AGENT_TOOLS))), [...AGENT_TOOLS]);
    assert.deepEqual(names(toolDefinitions(new Set(['show_component', 'read_file'] as const))), [
      'read_file',
      'show_component',
    ]);
  });

  test('a tool result is cut with how much was cut', () => {
    assert.equal(clipToolResult('abcdef', 4), 'abcd\n[cut: 2 more characters]');
    assert.equal(clipToolResult('abcd', 4), 'abcd');
  });

  test('calls: refused, malformed, a new agent, a component', async () => {
    const { turn, result } = recordedTurn();
    const all = new Set(AGENT_TOOLS);
    const call = (name: string, args: unknown) =>
      callTool(
        { id: 'c', name, arguments: typeof args === 'string' ? args : JSON.stringify(args) },
        all,
        turn,
      );
    assert.equal(
      await callTool({ id: 'c', name: 'run_code', arguments: '{}' }, new Set(['read_file'] as const), turn),
      'error: no tool named "run_code" is available',
    );
    assert.equal(await call('rm_rf', {}), 'error: no tool named "rm_rf" is available');
    assert.equal(await call('run_code', '[1]'), 'error: the arguments must be a JSON object');
    assert.equal(
      await call('run_code', { language: 'ruby', code: '' }),
      'error: language must be sh, python or js',
    );
    assert.equal(await call('run_code', { language: 'sh' }), 'error: code must be a string');
    assert.equal(
      await call('read_file', { path: '../etc/passwd' }),
      'error: the path must be inside /workspace',
    );
    assert.equal(await call('write_file', { path: 'a' }), 'error: content must be a string');
    assert.equal(await call('create_agent', { name: ' ' }), 'error: the name must be 1-100 characters');
    assert.equal(
      await call('create_agent', { name: 'Poet', description: 'd'.repeat(1500), instructions: 'Rhyme.' }),
      'created',
    );
    assert.equal(
      await call('show_component', { type: 'chart' }),
      'error: not a valid card, table or buttons component',
    );
    assert.equal(await call('show_component', { type: 'buttons', buttons: Array(12).fill('b') }), 'shown');
    assert.equal(
      await call('show_component', { type: 'table', columns: ['a', 2], rows: [['1', null], 'x'] }),
      'shown',
    );
    turn.finish('ok');
    assert.equal(result()?.text, '\n\nCreated agent "Poet".');
    assert.equal(result()?.agent?.description.length, 1000, "a model's description is cut, not refused");
    assert.deepEqual(result()?.component, {
      type: 'table',
      columns: ['a', '2'],
      rows: [{ cells: ['1', ''] }, { cells: ['', ''] }],
    });
    assert.equal(result()?.workspaceChanged, false);
  });
});

test("the agent's own model requests: during a run only, and within the bound a model_request line may carry", () => {
  const events: AgentEvent[] = [];
  const gateway = new ModelGateway((e) => events.push(e));
  const aborted: string[] = [];
  const sink: ResponseSink = { head() {}, data() {}, end() {}, abort: (m) => aborted.push(m) };
  gateway.request('POST', '/v1/chat/completions', '{}', sink);
  gateway.begin();
  gateway.request('POST', '/v1/chat/completions', 'x'.repeat(MODEL_REQUEST_MAX_BYTES + 1), sink);
  gateway.request('POST', '/v1/chat/completions', 'x'.repeat(MODEL_REQUEST_MAX_BYTES), sink);
  assert.deepEqual(aborted, [
    'the model gateway answers during a run only',
    `a model request may have at most ${MODEL_REQUEST_MAX_BYTES} bytes`,
  ]);
  assert.deepEqual(
    events.map((e) => e.type === 'model_request' && e.body?.length),
    [MODEL_REQUEST_MAX_BYTES],
  );
  gateway.end();
  assert.equal(aborted.at(-1), 'the run ended before the model answered');
});

describe('code and files (in a temporary directory, not /workspace)', () => {
  let dir = '';
  before(async () => (dir = await mkdtemp(join(tmpdir(), 'agent-unit-'))));
  after(() => rm(dir, { recursive: true, force: true }));
  const sh = interpreterFor('sh')!;

  test('the start of a file, and whether it has more; an endless file is no different', async () => {
    const file = join(dir, 'ten');
    await writeFile(file, '0123456789');
    const start = async (path: string, maxBytes: number) => {
      const { bytes, more } = await readStart(path, maxBytes);
      return { text: bytes.toString(), more };
    };
    assert.deepEqual(await start(file, 4), { text: '0123', more: true });
    assert.deepEqual(await start(file, 10), { text: '0123456789', more: false });
    assert.deepEqual(await start('/dev/zero', 3), { text: '\0\0\0', more: true });
  });

  test('output is passed on a line at a time; the status says how it ended', async () => {
    const pieces: string[] = [];
    const r = await runInterpreter(
      sh,
      'echo one; sleep 0.2; echo two >&2; sleep 0.2; printf three; exit 3',
      (t) => pieces.push(t),
      dir,
    );
    assert.deepEqual(r, { output: 'one\ntwo\nthree', status: 'exit 3' });
    assert.equal(pieces.join(''), 'one\ntwo\nthree');
    assert.ok(pieces.every((p, i) => i === pieces.length - 1 || p.endsWith('\n')));
  });

  test('output past the bound is dropped with a note; the child still runs to its end', async () => {
    const pieces: string[] = [];
    const r = await runInterpreter(
      sh,
      `head -c ${CODE_OUTPUT_MAX_BYTES * 2} /dev/zero | tr '\\0' a`,
      (t) => pieces.push(t),
      dir,
    );
    assert.equal(r.status, 'exit 0');
    assert.equal(r.output, `${'a'.repeat(CODE_OUTPUT_MAX_BYTES)}\n[output truncated]`);
    assert.equal(pieces.join(''), r.output);
  });

  test('a signal, and a program that cannot start', async () => {
    assert.equal((await runInterpreter(sh, 'kill -9 $$', () => undefined, dir)).status, 'signal SIGKILL');
    const missing = await runInterpreter(
      { command: 'no-such-interpreter', args: [] },
      '',
      () => undefined,
      dir,
    );
    assert.equal(missing.status, 'exit -1');
    assert.match(missing.output, /^cannot start no-such-interpreter: .*ENOENT/);
  });
});

test('workspace paths: relative or absolute inside, nothing outside', () => {
  assert.equal(workspacePath('notes/a.txt', '/w'), '/w/notes/a.txt');
  assert.equal(workspacePath('/w/a', '/w'), '/w/a');
  assert.equal(workspacePath('.', '/w'), '/w');
  assert.equal(workspacePath('../etc/passwd', '/w'), null);
  assert.equal(workspacePath('/wx/a', '/w'), null);
  assert.equal(workspacePath('', '/w'), null);
  assert.equal(workspacePath(5, '/w'), null);
});
