/** The reply renderer's parser (pure, no browser): fences, and no quadratic work. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { segments } from '../src/render.ts';

describe('segments', () => {
  test('a streamed output block: running until its (exit N) line, then that outcome', () => {
    const running = 'Test response: ```sh\necho hi\n```\n\n```output (sh)\nhi\n';
    assert.deepEqual(segments(running).at(-1), {
      kind: 'output',
      lang: 'sh',
      outcome: 'running',
      code: 'hi',
    });
    assert.deepEqual(segments(running + '```\n(exit 3)\n\nafter').slice(-2), [
      { kind: 'output', lang: 'sh', outcome: 'exit 3', code: 'hi' },
      { kind: 'text', text: 'after' },
    ]);
  });

  test('text, code after echoed text, and output blocks', () => {
    const text = 'Test response: ```sh\necho hi\n```\n\n```output (sh, exit 0)\nhi\n```';
    assert.deepEqual(segments(text), [
      { kind: 'text', text: 'Test response:' },
      { kind: 'code', lang: 'sh', code: 'echo hi' },
      { kind: 'output', lang: 'sh', outcome: 'exit 0', code: 'hi' },
    ]);
  });

  test('a fence after text opens only when a closing fence follows', () => {
    assert.deepEqual(segments('see ```js'), [{ kind: 'text', text: 'see ```js' }]);
    // Four backticks are not closed by three (which then open a fence of their own).
    assert.deepEqual(segments('see ````\nx\n```\ny'), [
      { kind: 'text', text: 'see ````\nx' },
      { kind: 'code', lang: '', code: 'y' },
    ]);
    assert.deepEqual(segments('see ```\nx\n````'), [
      { kind: 'text', text: 'see' },
      { kind: 'code', lang: '', code: 'x' },
    ]);
  });

  // Each such line used to scan every line after it for a closing fence: quadratic, 22.6 s of
  // the browser's main thread for these 20,000 lines (measured), 11 ms with one backwards pass.
  // The deadline is a hang guard, far from either number; speed is the benchmark's business.
  test('many lines of text ending in a fence, none closed, parse in one pass', { timeout: 10_000 }, () => {
    const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i} \`\`\`x`);
    assert.deepEqual(segments(lines.join('\n')), [{ kind: 'text', text: lines.join('\n') }]);
  });
});
