/**
 * The one newline-delimited JSON line splitter. Linear: it scans a chunk with an index and cuts
 * the rest once per chunk (re-slicing after every line is quadratic: a flood of short lines cost
 * seconds of CPU per MiB). A line that grows past `maxLineChars` without a newline is dropped up
 * to its newline and reported once as `null`, so an endless line never grows in memory.
 */
export class LineSplitter {
  readonly #maxLineChars: number;
  #pending = '';
  #skipping = false;

  /** @param maxLineChars longest line kept in memory; default unbounded. */
  constructor(maxLineChars = Number.POSITIVE_INFINITY) {
    this.#maxLineChars = maxLineChars;
  }

  /** Characters of the unfinished last line. */
  get pendingChars(): number {
    return this.#pending.length;
  }

  /**
   * Feeds text and returns the lines it completed, without their `\n` (a trailing `\r` is
   * removed). `null` stands for a line that was longer than the bound and was dropped.
   */
  push(chunk: string): Array<string | null> {
    const out: Array<string | null> = [];
    let start = 0;
    let nl = chunk.indexOf('\n');
    while (nl >= 0) {
      if (this.#skipping) {
        this.#skipping = false;
      } else {
        const piece = chunk.slice(start, nl);
        const line = this.#pending === '' ? piece : this.#pending + piece;
        this.#pending = '';
        if (line.length > this.#maxLineChars) out.push(null);
        else out.push(line.endsWith('\r') ? line.slice(0, -1) : line);
      }
      start = nl + 1;
      nl = chunk.indexOf('\n', start);
    }
    if (this.#skipping) return out;
    const rest = chunk.slice(start);
    if (rest !== '') this.#pending += rest;
    if (this.#pending.length > this.#maxLineChars) {
      this.#pending = '';
      this.#skipping = true;
      out.push(null);
    }
    return out;
  }

  /** At end of input: the unfinished last line, if any (never one that was dropped). */
  end(): string | null {
    const rest = this.#pending;
    this.#pending = '';
    this.#skipping = false;
    return rest === '' ? null : rest;
  }
}
