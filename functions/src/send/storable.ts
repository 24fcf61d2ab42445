import {
  HISTORY_ENTRY_MAX_CHARS,
  HISTORY_MAX_JSON_BYTES,
  STORED_TEXT_MAX_BYTES,
  storedComponentSchema,
  type HistoryEntry,
  type StoredComponent,
} from '@agent-platform/contract';

/**
 * What the functions store must be something Firestore stores (a document of at most 1 MiB, no
 * arrays directly in arrays, no reserved names), and what they send the runner must fit its body
 * limit. Anything else used to fail the write and leave the message pending for ever, or fail
 * every later message of the conversation.
 */

const TRUNCATED = '\n\n[The reply was longer than can be stored; it was cut here.]';

/** Cuts `text` to at most `maxBytes` of UTF-8 without splitting a character. */
export function cutUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  let cut = Buffer.from(text, 'utf8').subarray(0, maxBytes).toString('utf8');
  // A character split by the cut decodes as U+FFFD at the end: drop it.
  if (cut.endsWith('\uFFFD')) cut = cut.slice(0, -1);
  return cut;
}

/**
 * A reply as it can be stored: its text bounded (with a note where it was cut), its component
 * one of the vocabulary or dropped (with a note naming why).
 */
export function storableReply(
  text: string,
  component: unknown,
): { text: string; component: StoredComponent | null; dropped: string | null } {
  let stored: StoredComponent | null = null;
  let dropped: string | null = null;
  let note = '';
  if (component !== null && component !== undefined) {
    const parsed = storedComponentSchema.safeParse(component);
    if (parsed.success) {
      stored = parsed.data;
    } else {
      const type =
        typeof component === 'object' && 'type' in component
          ? String(component.type).slice(0, 64)
          : 'unknown';
      const issue = parsed.error.issues[0];
      dropped = `${type}: ${issue ? `${issue.path.join('.') || 'component'} ${issue.message}` : 'invalid'}`;
      note = `\n\n[The agent's "${type}" component could not be shown.]`;
    }
  }
  const room = STORED_TEXT_MAX_BYTES - Buffer.byteLength(note, 'utf8');
  const bounded =
    Buffer.byteLength(text, 'utf8') <= room
      ? text
      : cutUtf8(text, room - Buffer.byteLength(TRUNCATED, 'utf8')) + TRUNCATED;
  return { text: bounded + note, component: stored, dropped };
}

/**
 * The most recent history entries whose JSON fits HISTORY_MAX_JSON_BYTES (each entry's text cut
 * to HISTORY_ENTRY_MAX_CHARS first), oldest first.
 */
export function boundedHistory(entries: HistoryEntry[]): HistoryEntry[] {
  const kept: HistoryEntry[] = [];
  let bytes = 2; // []
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    const entry: HistoryEntry = { role: e.role, text: e.text.slice(0, HISTORY_ENTRY_MAX_CHARS) };
    const size = Buffer.byteLength(JSON.stringify(entry), 'utf8') + 1;
    if (bytes + size > HISTORY_MAX_JSON_BYTES) {
      // The newest entry alone is too long: keep its start (JSON escaping can make one
      // character six bytes, so this always fits).
      if (kept.length === 0) {
        const room = HISTORY_MAX_JSON_BYTES - bytes - 64;
        kept.push({ role: e.role, text: entry.text.slice(0, Math.floor(room / 6)) });
      }
      break;
    }
    bytes += size;
    kept.push(entry);
  }
  return kept.reverse();
}
