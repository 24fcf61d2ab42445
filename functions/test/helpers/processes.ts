import { readdirSync, readFileSync } from 'node:fs';

/** PIDs of the processes whose command line matches `re` (read from /proc; Linux only). */
export function pidsMatching(re: RegExp): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (re.test(cmdline)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/**
 * Waits until none of `pids` exists any more, zombies included: a child is gone only once its
 * parent has reaped it. Node reaps a child and emits its `exit` in the same callback, so for the
 * Functions emulator's workers this means the emulator has marked them FINISHED and will not hand
 * them the next request.
 */
export async function waitUntilReaped(pids: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  while (pids.some(alive)) {
    if (Date.now() > deadline)
      throw new Error(`processes ${pids.filter(alive).join(', ')} not reaped in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
