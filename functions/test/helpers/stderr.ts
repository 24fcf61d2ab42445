/** The functions' logger writes to process.stderr: tests that must see (or hide) its lines capture it. */

/** Captures process.stderr (the functions' logger writes errors there) until restore(). */
export function interceptStderr(): { logged: () => string; restore: () => void } {
  const chunks: string[] = [];
  const original = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  }) as typeof process.stderr.write;
  return { logged: () => chunks.join(''), restore: () => (process.stderr.write = original) };
}

/** Runs `fn` with process.stderr captured. */
export function captureStderr<T>(fn: () => T): { result: T; logged: string } {
  const capture = interceptStderr();
  try {
    return { result: fn(), logged: capture.logged() };
  } finally {
    capture.restore();
  }
}

/** captureStderr for an async `fn`. */
export async function captureStderrAsync<T>(fn: () => Promise<T>): Promise<{ result: T; logged: string }> {
  const capture = interceptStderr();
  try {
    return { result: await fn(), logged: capture.logged() };
  } finally {
    capture.restore();
  }
}
