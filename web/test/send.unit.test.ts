/**
 * The send state machine and what the page shows of a send (pure, no browser): the callable is a
 * stand-in; the states it goes through and the rule that the stored documents win.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SendResult, TextChunk } from '@agent-platform/contract';
import { FirebaseError } from 'firebase/app';
import {
  SendMachine,
  type SendRequest,
  type SendState,
  type StreamingCall,
} from '../src/chat/send-machine.ts';
import { leavesSettledSend, unstored } from '../src/chat/unstored.ts';

const RESULT: SendResult = {
  conversationId: 'conv1',
  messageId: 'reply1',
  text: 'Test response: Hello',
  status: 'ok',
  component: null,
  agentCreated: false,
  agentId: null,
};

const FIRST: SendRequest = { message: 'Hello', requestId: 'request1' };

async function* chunks(items: unknown[], thenThrow?: Error): AsyncIterable<TextChunk> {
  for (const item of items) yield item as TextChunk;
  if (thenThrow) throw thenThrow;
}

/** A machine over `call`, with every state it reported. */
function machine(call: StreamingCall, resultWaitMs?: number) {
  const states: SendState[] = [];
  const m = new SendMachine(call, (s) => states.push(s), resultWaitMs === undefined ? {} : { resultWaitMs });
  // A function, not `m.state.phase`: an assertion on that would narrow it for the rest of the test.
  return { m, states, phases: () => states.map((s) => s.phase), phase: () => m.state.phase };
}

/** A call that answers only when the test says so. */
function heldCall() {
  const requests: SendRequest[] = [];
  const answer = Promise.withResolvers<Awaited<ReturnType<StreamingCall>>>();
  const call: StreamingCall = (request) => {
    requests.push(request);
    return answer.promise;
  };
  const release = () => answer.resolve({ stream: chunks([]), data: Promise.resolve(RESULT) });
  return { call, requests, release };
}

describe('the send machine', () => {
  test('a reply streams, then settles as done in the conversation its result names', async () => {
    const requests: SendRequest[] = [];
    const { m, states, phases } = machine(async (request) => {
      requests.push(request);
      return {
        stream: chunks([
          { type: 'text', delta: 'Test ' },
          { type: 'progress', delta: 'ignored' },
          { type: 'text', delta: 42 },
          { type: 'text', delta: 'response: Hello' },
        ]),
        data: Promise.resolve(RESULT),
      };
    });
    assert.equal(m.state.phase, 'idle');
    const end = await m.send(FIRST);
    assert.deepEqual(requests, [FIRST], 'the request goes to the callable as it is');
    assert.deepEqual(phases(), ['sending', 'streaming', 'streaming', 'done']);
    assert.deepEqual(states[0], {
      phase: 'sending',
      send: { requestId: 'request1', conversationId: null, text: 'Hello' },
    });
    assert.deepEqual(
      states.flatMap((s) => (s.phase === 'streaming' ? [s.streamed] : [])),
      ['Test ', 'Test response: Hello'],
    );
    assert.deepEqual(end, {
      phase: 'done',
      send: { requestId: 'request1', conversationId: 'conv1', text: 'Hello' },
      result: RESULT,
    });
    assert.equal(m.state, end);
  });

  test('a reply that streams nothing goes from sending to done', async () => {
    const { m, phases } = machine(async () => ({ stream: chunks([]), data: Promise.resolve(RESULT) }));
    await m.send({ ...FIRST, conversationId: 'conv1' });
    assert.deepEqual(phases(), ['sending', 'done']);
  });

  test('the callable refused: failed, with its error', async () => {
    const refused = new FirebaseError('functions/resource-exhausted', 'too fast');
    const { m, phases } = machine(() => Promise.reject(refused));
    const end = await m.send({ ...FIRST, conversationId: 'conv1' });
    assert.deepEqual(phases(), ['sending', 'failed']);
    assert.equal(end?.phase, 'failed');
    assert.equal(end.phase === 'failed' && end.error, refused);
    assert.equal(end.send.conversationId, 'conv1');
  });

  test('the stream broke: failed, with the error that rejects the result', async () => {
    const broke = new FirebaseError('functions/unavailable', 'runner down');
    const { m, phases } = machine(async () => {
      const data = Promise.reject(broke);
      return { stream: chunks([{ type: 'text', delta: 'Test' }], broke), data };
    });
    const end = await m.send(FIRST);
    assert.deepEqual(phases(), ['sending', 'streaming', 'failed']);
    assert.equal(end?.phase === 'failed' && end.error, broke);
  });

  test('a stream that ends without a result fails as internal once the wait is over', async () => {
    const { m, phases } = machine(
      async () => ({ stream: chunks([]), data: new Promise<SendResult>(() => undefined) }),
      20,
    );
    const end = await m.send(FIRST);
    assert.deepEqual(phases(), ['sending', 'failed']);
    const error = end?.phase === 'failed' ? end.error : null;
    assert.ok(error instanceof FirebaseError);
    assert.equal(error.code, 'functions/internal');
  });

  test('one send at a time: another while one is on its way is refused', async () => {
    const held = heldCall();
    const { m, phases } = machine(held.call);
    const first = m.send(FIRST);
    assert.equal(await m.send({ message: 'again', requestId: 'request2' }), null);
    assert.deepEqual(held.requests, [FIRST]);
    held.release();
    assert.equal((await first)?.phase, 'done');
    const next = await m.send({ message: 'next', requestId: 'request3' });
    assert.equal(next?.phase, 'done', 'a settled send does not hold up the next one');
    assert.equal(held.requests.length, 2);
    assert.deepEqual(phases(), ['sending', 'done', 'sending', 'done']);
  });

  test('reset abandons a send on its way: it reports nothing more', async () => {
    const held = heldCall();
    const { m, phases } = machine(held.call);
    const abandoned = m.send(FIRST);
    m.reset();
    assert.equal(m.state.phase, 'idle');
    held.release();
    assert.equal(await abandoned, null);
    assert.deepEqual(phases(), ['sending', 'idle'], 'nothing after the reset');
    assert.equal(m.state.phase, 'idle');
  });

  test('reset, then a new send: the old one cannot overwrite the new one', async () => {
    const calls: Array<() => void> = [];
    const { m, states } = machine((request) => {
      const answer = Promise.withResolvers<Awaited<ReturnType<StreamingCall>>>();
      calls.push(() =>
        answer.resolve({
          stream: chunks([]),
          data: Promise.resolve({ ...RESULT, conversationId: `for-${request.requestId}` }),
        }),
      );
      return answer.promise;
    });
    const old = m.send(FIRST);
    m.reset();
    const fresh = m.send({ message: 'new user', requestId: 'request2' });
    calls[0]!(); // the abandoned send answers first
    assert.equal(await old, null);
    assert.equal(m.state.phase, 'sending');
    calls[1]!();
    assert.equal((await fresh)?.send.conversationId, 'for-request2');
    assert.deepEqual(
      states.map((s) => s.phase),
      ['sending', 'idle', 'sending', 'done'],
    );
  });

  test('dismiss forgets a settled send, never one on its way', async () => {
    const held = heldCall();
    const { m, phase } = machine(held.call);
    const sent = m.send(FIRST);
    m.dismiss();
    assert.equal(phase(), 'sending');
    held.release();
    await sent;
    assert.equal(phase(), 'done');
    m.dismiss();
    assert.equal(phase(), 'idle');
  });
});

describe('what the page shows of a send: the stored documents win', () => {
  const send = { requestId: 'request1', conversationId: 'conv1', text: 'Hello' };
  const user = { role: 'user' as const, requestId: 'request1' };
  const agent = { role: 'agent' as const, requestId: 'request1' };
  const older = [
    { role: 'user' as const, requestId: 'request0' },
    { role: 'agent' as const, requestId: 'request0' },
  ];

  test('until its documents arrive: the message, and the reply working, streamed, then its result', () => {
    assert.deepEqual(unstored({ phase: 'sending', send }, 'conv1', older), {
      user: 'Hello',
      reply: { kind: 'working' },
    });
    assert.deepEqual(unstored({ phase: 'streaming', send, streamed: '' }, 'conv1', []).reply, {
      kind: 'working',
    });
    assert.deepEqual(unstored({ phase: 'streaming', send, streamed: 'Test' }, 'conv1', []).reply, {
      kind: 'streamed',
      text: 'Test',
    });
    assert.deepEqual(unstored({ phase: 'done', send, result: RESULT }, 'conv1', []).reply, {
      kind: 'result',
      result: RESULT,
    });
  });

  test('a stored document replaces its part, whatever the stream or the result says', () => {
    const streaming: SendState = { phase: 'streaming', send, streamed: 'Test' };
    assert.deepEqual(unstored(streaming, 'conv1', [...older, user]), {
      user: null,
      reply: { kind: 'streamed', text: 'Test' },
    });
    assert.deepEqual(unstored(streaming, 'conv1', [...older, user, agent]), { user: null, reply: null });
    assert.deepEqual(unstored({ phase: 'done', send, result: RESULT }, 'conv1', [user, agent]), {
      user: null,
      reply: null,
    });
  });

  test('nothing when idle, failed, or in another conversation', () => {
    const nothing = { user: null, reply: null };
    assert.deepEqual(unstored({ phase: 'idle' }, 'conv1', []), nothing);
    assert.deepEqual(unstored({ phase: 'failed', send, error: new Error('x') }, 'conv1', []), nothing);
    assert.deepEqual(unstored({ phase: 'sending', send }, 'conv2', []), nothing);
    assert.deepEqual(unstored({ phase: 'sending', send }, null, []), nothing);
    const first = { ...send, conversationId: null };
    assert.deepEqual(unstored({ phase: 'sending', send: first }, null, []).user, 'Hello');
  });

  test('a settled send is left behind when its conversation is, not when a first message moves into it', () => {
    const done: SendState = { phase: 'done', send, result: RESULT };
    assert.equal(leavesSettledSend(done, null, 'conv1'), false, 'the first message opens its conversation');
    assert.equal(leavesSettledSend(done, 'conv1', 'conv2'), true);
    assert.equal(leavesSettledSend(done, 'conv1', null), true);
    assert.equal(leavesSettledSend(done, 'conv2', 'conv1'), true, 'coming back later: its documents load');
    assert.equal(leavesSettledSend({ phase: 'failed', send, error: null }, 'conv1', null), true);
    assert.equal(
      leavesSettledSend({ phase: 'sending', send }, 'conv1', 'conv2'),
      false,
      'one on its way stays',
    );
    assert.equal(leavesSettledSend({ phase: 'idle' }, 'conv1', 'conv2'), false);
  });
});
