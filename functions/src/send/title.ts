import { TITLE_MAX_CHARS } from '@agent-platform/contract';

/** A new conversation's title: the first line of prose of its first message (not code), else "Code". */
export function titleOf(message: string): string {
  let inFence = false;
  for (const raw of message.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('```')) {
      inFence = !inFence;
      continue;
    }
    if (!inFence && line) return line.slice(0, TITLE_MAX_CHARS);
  }
  return 'Code';
}
