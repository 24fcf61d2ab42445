/*
 * Loaded by the agent at start (agent.ts, process.dlopen): makes the agent's process
 * non-dumpable, so code in the sandbox, which runs as the same uid, cannot open the agent's
 * /proc/<pid>/fd (its stdout, where protocol lines go; its stdin, where requests come), nor its
 * memory. Node has no prctl binding; a shared object's constructor runs on dlopen. Its exec
 * resets the flag, so it is set from inside the process. Measured: under runc, writes to the
 * agent's /proc/<pid>/fd/1 from sh, Python and Node then fail with EACCES; Debian's 2022 gVisor
 * (runsc) does not check it for /proc/<pid>/fd, so there forged lines still arrive, and the runner
 * trusts nothing they say about accounting or permissions (docs/security.md).
 */
#include <sys/prctl.h>

__attribute__((constructor)) static void nondumpable(void) { prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); }
