/**
 * Splits Docker's multiplexed attach/exec stream (8-byte header: stream type, 3 zero bytes,
 * big-endian length; then the payload) into stdout and stderr payloads.
 *
 * Replaces docker-modem's demuxStream, which copies the whole rest of its buffer after every
 * frame and recurses once per frame: a chunk of many tiny frames (code in a sandbox can write
 * one byte at a time) cost the runner quadratic CPU, and enough frames in one chunk overflow the
 * stack. This one walks each chunk with an offset and keeps only an unfinished frame's bytes.
 * (Docker copies a container's output in buffers of 32 KiB, so one frame is never larger and the
 * carried rest stays small.)
 */
export class DockerDemuxer {
  readonly #onStdout: (payload: Buffer) => void;
  readonly #onStderr: (payload: Buffer) => void;
  /** Bytes of an unfinished header or payload carried to the next chunk. */
  #rest: Buffer = Buffer.alloc(0);

  constructor(onStdout: (payload: Buffer) => void, onStderr: (payload: Buffer) => void) {
    this.#onStdout = onStdout;
    this.#onStderr = onStderr;
  }

  push(chunk: Buffer): void {
    const buf = this.#rest.length === 0 ? chunk : Buffer.concat([this.#rest, chunk]);
    let offset = 0;
    while (buf.length - offset >= 8) {
      const type = buf[offset]!;
      const length = buf.readUInt32BE(offset + 4);
      if (buf.length - offset - 8 < length) break;
      const payload = buf.subarray(offset + 8, offset + 8 + length);
      offset += 8 + length;
      // 0 is stdin (never sent back); anything else than 1 or 2 would be a protocol error of the
      // engine: its bytes are dropped rather than shown as the agent's output.
      if (type === 1) this.#onStdout(payload);
      else if (type === 2) this.#onStderr(payload);
    }
    // Copy the unfinished part so the big chunk it came from can be freed.
    this.#rest = offset === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(offset));
  }
}
