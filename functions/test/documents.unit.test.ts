import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  HISTORY_MAX_JSON_BYTES,
  STORED_TEXT_MAX_BYTES,
  conversationDocSchema,
} from '@agent-platform/contract';
import { readDoc } from '../src/firestore/read-doc.ts';
import { boundedHistory, cutUtf8, storableReply } from '../src/send/storable.ts';

/** Pure: what the functions store is storable, and stored documents are read through the contract. */

describe('storable replies and bounded history', () => {
  test('a table with rows of cells is kept; rows as arrays of arrays are dropped with a note', () => {
    const table = { type: 'table', columns: ['a'], rows: [{ cells: ['1'] }] };
    assert.deepEqual(storableReply('hi', table), { text: 'hi', component: table, dropped: null });
    const old = storableReply('hi', { type: 'table', columns: ['a'], rows: [['1']] });
    assert.equal(old.component, null);
    assert.equal(old.text, 'hi\n\n[The agent\'s "table" component could not be shown.]');
    assert.match(old.dropped ?? '', /^table: rows\.0/);
    const unknown = storableReply('hi', { type: 'chart', points: [[1, 2]] });
    assert.equal(unknown.component, null);
    assert.match(unknown.text, /"chart" component could not be shown/);
  });

  test('a reply over STORED_TEXT_MAX_BYTES is cut at a character boundary, with a note', () => {
    const text = 'é'.repeat(STORED_TEXT_MAX_BYTES); // two bytes each
    const r = storableReply(text, null);
    assert.ok(Buffer.byteLength(r.text) <= STORED_TEXT_MAX_BYTES);
    assert.match(r.text, /^é+\n\n\[The reply was longer than can be stored; it was cut here\.\]$/);
    assert.equal(cutUtf8('aé', 2), 'a', 'a split character is dropped, not mangled');
  });

  test('history keeps the newest entries that fit HISTORY_MAX_JSON_BYTES, oldest first', () => {
    const entries = Array.from({ length: 20 }, (_, i) => ({
      role: (i % 2 ? 'agent' : 'user') as 'user' | 'agent',
      text: `${i}:` + '"'.repeat(20_000), // escaping doubles each quote
    }));
    const kept = boundedHistory(entries);
    assert.ok(Buffer.byteLength(JSON.stringify(kept)) <= HISTORY_MAX_JSON_BYTES);
    assert.ok(kept.length > 0 && kept.length < 20);
    assert.deepEqual(
      kept.map((e) => e.text.split(':')[0]),
      entries.slice(20 - kept.length).map((e) => e.text.split(':')[0]),
    );
    const huge = boundedHistory([{ role: 'agent', text: '\u0001'.repeat(100_000) }]);
    assert.equal(huge.length, 1, 'an over-long newest entry is cut, not dropped');
    assert.ok(Buffer.byteLength(JSON.stringify(huge)) <= HISTORY_MAX_JSON_BYTES);
  });
});

describe('stored documents', () => {
  const conversation = { title: 't', messageCount: 2, nextSeq: 2, lastMessagePreview: 'p', createdAt: null };
  test('a document that matches its schema is read, unknown fields dropped', () => {
    const problems: string[] = [];
    const doc = readDoc(conversationDocSchema, { data: () => ({ ...conversation, extra: 1 }) }, (p) =>
      problems.push(p),
    );
    assert.deepEqual(doc, { ...conversation, updatedAt: null });
    assert.deepEqual(problems, []);
  });

  test('one that does not is null, with its first problem named', () => {
    const problems: string[] = [];
    const doc = readDoc(conversationDocSchema, { data: () => ({ ...conversation, nextSeq: 'x' }) }, (p) =>
      problems.push(p),
    );
    assert.equal(doc, null);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^nextSeq: /);
    assert.equal(
      readDoc(conversationDocSchema, { data: () => undefined }, () => undefined),
      null,
      'a missing document is not a conversation',
    );
  });
});
