/** native/nondumpable.c, where the image installs it. */
const NONDUMPABLE_SO = '/opt/agent/nondumpable.so';

/**
 * Makes this process non-dumpable (native/nondumpable.c has why): loading the shared object runs
 * its constructor, and Node then refuses it as a module ("did not self-register"), as expected.
 * Returns null, or what went wrong (e.g. the file is missing outside the image), for stderr.
 */
export function makeNonDumpable(path: string = NONDUMPABLE_SO): string | null {
  try {
    process.dlopen({ exports: {} }, path);
    return null;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return message.includes('did not self-register') ? null : message;
  }
}
