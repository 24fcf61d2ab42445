// Bundles the two programs that leave this repository as files rather than as workspaces:
// - the default agent (runner/agents/default -> dist/agent.js): the agent image holds one file
//   and no node_modules, so the contract and zod are bundled in;
// - the functions (functions/src -> lib/index.js): `firebase deploy` uploads functions/ alone and
//   Cloud Build installs its package.json from the registry, where the workspace package
//   @agent-platform/contract does not exist, so it is bundled in; every registry dependency stays
//   external and is installed by Cloud Build as usual.
// Type-checking is tsc's job (npm run typecheck); this only bundles.
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const which = process.argv[2] ?? 'all';

async function bundleAgent() {
  rmSync(join(root, 'runner/agents/default/dist'), { recursive: true, force: true });
  await build({
    input: join(root, 'runner/agents/default/src/agent.ts'),
    platform: 'node',
    logLevel: 'warn',
    output: { file: join(root, 'runner/agents/default/dist/agent.js'), format: 'esm', minify: false },
  });
}

async function bundleFunctions() {
  const pkg = JSON.parse(readFileSync(join(root, 'functions/package.json'), 'utf8'));
  const deps = Object.keys(pkg.dependencies ?? {});
  // lib/ holds only the bundle (and its map): nothing stale from an earlier tsc build.
  rmSync(join(root, 'functions/lib'), { recursive: true, force: true });
  await build({
    input: join(root, 'functions/src/index.ts'),
    platform: 'node',
    logLevel: 'warn',
    // A registry dependency (or a subpath of one) stays an import; only workspace code is inlined.
    external: (id) => deps.some((d) => id === d || id.startsWith(`${d}/`)),
    output: { file: join(root, 'functions/lib/index.js'), format: 'esm', sourcemap: true },
  });
}

if (which === 'all' || which === 'agent') await bundleAgent();
if (which === 'all' || which === 'functions') await bundleFunctions();
