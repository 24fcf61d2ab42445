import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Logger, userHash } from '../src/logs.ts';

/** Pure: the functions' log lines. */

describe('logs', () => {
  test('one structured line per message, with a hash of the user id and never the id itself', () => {
    const lines: Array<{ severity: string; message: string; fields: Record<string, unknown> }> = [];
    const log = new Logger({
      write: (severity, message, fields) => lines.push({ severity, message, fields }),
    });
    log.messageHandled({
      uid: 'alice-uid-123',
      conversationId: 'c1',
      messageId: 'm1',
      replyId: 'm2',
      runId: 'r1',
      status: 'ok',
      ms: 42,
      streamed: true,
      replay: false,
      warm: true,
    });
    assert.equal(lines.length, 1);
    const [line] = lines;
    assert.equal(line!.message, 'message handled');
    assert.equal(line!.fields.user, userHash('alice-uid-123'));
    assert.match(String(line!.fields.user), /^[0-9a-f]{16}$/);
    assert.ok(!JSON.stringify(line).includes('alice-uid-123'));
    assert.deepEqual(
      { ...line!.fields, user: undefined },
      {
        user: undefined,
        conversationId: 'c1',
        messageId: 'm1',
        replyId: 'm2',
        runId: 'r1',
        status: 'ok',
        ms: 42,
        streamed: true,
        replay: false,
        warm: true,
      },
    );
  });

  test("a refused ID token is logged by firebase-admin's code only, never the token or its message", () => {
    const lines: Array<{ message: string; fields: Record<string, unknown> }> = [];
    const log = new Logger({ write: (_s, message, fields) => lines.push({ message, fields }) });
    const err = Object.assign(new Error('Decoding failed for token eyJsecret'), {
      code: 'auth/argument-error',
    });
    log.tokenRejected('GET /api/conversations', err);
    assert.deepEqual(lines[0]!.fields, { route: 'GET /api/conversations', code: 'auth/argument-error' });
    assert.ok(!JSON.stringify(lines).includes('eyJsecret'));
  });
});
