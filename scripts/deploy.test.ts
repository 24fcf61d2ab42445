import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as functionsParams from '../functions/src/params.ts';
import {
  currentParamDefaultsEnv,
  PARAM_DEFAULTS_PATH,
  paramDefaultsEnv,
  type ParamLike,
} from './deploy/param-defaults.ts';

/**
 * scripts/deploy.sh, without deploying anything: --dry-run runs with a PATH that holds no gcloud
 * at all (only tripwires for the other tools, which record any call), argument errors, --help, and
 * one failing "real" run whose tools are fakes, to check that it stops at the first failure with
 * guidance.
 */
const ROOT = resolve(import.meta.dirname, '..');
const SCRIPT = 'scripts/deploy.sh';
// A project id nobody deploys to, so that functions/.env.<id> cannot exist beforehand.
const PROJECT = 'agent-deploy-dryrun-test';
const DOMAIN = 'runner.example.com';
const FUNCTIONS_SA = `agent-functions@${PROJECT}.iam.gserviceaccount.com`;
const REGISTRY = `us-central1-docker.pkg.dev/${PROJECT}/agent-platform`;
const STEP_TITLES = [
  'check tools and access',
  'enable Google Cloud APIs',
  'Firestore database',
  'Artifact Registry repository',
  'build images (npm run images)',
  'tag and push images',
  'service accounts and IAM bindings',
  'static address and firewall rule',
  'runner VM (Container-Optimized OS)',
  `functions parameters (functions/.env.${PROJECT})`,
  'firebase deploy (functions, Firestore rules, Hosting)',
  'verify and summary',
];
/** Tools the script would run for real; in dry-run none of them may be called. No gcloud here. */
const TRIPWIRE_TOOLS = ['docker', 'npm', 'npx', 'node', 'firebase', 'curl', 'mktemp', 'rm', 'sleep'];

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

let work: string;
let tripwireBin: string;
let tripwireLog: string;
let bash: string;

function findBash(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'bash');
    if (dir && existsSync(candidate)) return candidate;
  }
  return '/bin/bash';
}

function runDeploy(args: string[], env: Record<string, string> = {}): Result {
  const res = spawnSync(bash, [SCRIPT, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: tripwireBin, HOME: join(work, 'home'), LANG: 'C', ...env },
    timeout: 60_000,
  });
  if (res.error) throw res.error;
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

/** Writes an executable /bin/sh script (the body may use shell builtins only). */
function writeTool(dir: string, name: string, body: string): void {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

const SKIP_DIRS = new Set(['node_modules', '.git', '.tools', 'test-artifacts', 'bench-results']);

/** Path -> "mtime size" of every file in the repository (minus dependencies and logs). */
function snapshot(dir = ROOT, into = new Map<string, string>()): Map<string, string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) snapshot(path, into);
    } else if (!entry.name.endsWith('.log')) {
      const st = statSync(path);
      into.set(path.slice(ROOT.length + 1), `${st.mtimeMs} ${st.size}`);
    }
  }
  return into;
}

function assertUnchanged(before: Map<string, string>, label: string): void {
  const now = snapshot();
  const changed = [...new Set([...before.keys(), ...now.keys()])].filter((k) => before.get(k) !== now.get(k));
  assert.deepEqual(changed, [], `${label} wrote, created or removed files in the repository`);
}

/** The lines printed between the header of step n and the next header. */
function stepSection(stdout: string, n: number): string[] {
  const lines = stdout.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`[deploy] step ${n}/`));
  assert.ok(start >= 0, `step ${n} header`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('[deploy] step '));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

function commands(lines: string[]): string[] {
  return lines.filter((l) => l.startsWith('+ ')).map((l) => l.slice(2));
}

function paramNames(): string[] {
  const source = readFileSync(join(ROOT, 'functions/src/params.ts'), 'utf8');
  return [...source.matchAll(/define[A-Za-z]+\(\s*['"]([A-Z0-9_]+)['"]/g)].map((m) => m[1]!);
}

before(() => {
  bash = findBash();
  work = mkdtempSync(join(tmpdir(), 'deploy-test-'));
  tripwireBin = join(work, 'bin');
  tripwireLog = join(work, 'tripwire.log');
  mkdirSync(tripwireBin);
  mkdirSync(join(work, 'home'));
  for (const tool of TRIPWIRE_TOOLS) {
    writeTool(tripwireBin, tool, `echo "${tool} $*" >>'${tripwireLog}'\nexit 97`);
  }
});

after(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('deploy.sh --dry-run', () => {
  let result: Result;
  let repoBefore: Map<string, string>;

  before(() => {
    assert.ok(!existsSync(join(ROOT, `functions/.env.${PROJECT}`)), 'no leftover env file');
    repoBefore = snapshot();
    result = runDeploy(['--project', PROJECT, '--runner-domain', DOMAIN, '--dry-run']);
  });

  test('exits 0 without running any tool or gcloud', () => {
    assert.equal(result.status, 0, result.stderr);
    assert.ok(
      !existsSync(tripwireLog),
      `tools were run: ${existsSync(tripwireLog) ? readFileSync(tripwireLog, 'utf8') : ''}`,
    );
    assert.doesNotMatch(result.stderr, /command not found|internal error/);
    // The PATH has no gcloud: the dry-run says so and carries on.
    assert.match(result.stderr, /warning: gcloud not found on PATH/);
  });

  test('writes no file in the repository', () => {
    assertUnchanged(repoBefore, 'deploy.sh --dry-run');
    assert.ok(!existsSync(join(ROOT, `functions/.env.${PROJECT}`)));
  });

  test('announces every step, in order', () => {
    const headers = result.stdout
      .split('\n')
      .filter((l) => l.startsWith('[deploy] step '))
      .map((l) => l.replace(/^\[deploy\] step /, ''));
    assert.deepEqual(
      headers,
      STEP_TITLES.map((title, i) => `${i + 1}/${STEP_TITLES.length}: ${title}`),
    );
  });

  test('enables the APIs', () => {
    const [enable] = commands(stepSection(result.stdout, 2));
    for (const api of [
      'run',
      'artifactregistry',
      'compute',
      'cloudfunctions',
      'cloudbuild',
      'firestore',
      'secretmanager',
      'cloudscheduler', // the scheduled functions
      'iam',
    ]) {
      assert.match(enable ?? '', new RegExp(` ${api}\\.googleapis\\.com `), api);
    }
    assert.match(enable ?? '', new RegExp(`^gcloud services enable .* --project=${PROJECT}$`));
  });

  test('creates the Artifact Registry repository only if describe fails', () => {
    const section = stepSection(result.stdout, 4);
    const describeAt = section.indexOf(
      `+ gcloud artifacts repositories describe agent-platform --location=us-central1 --project=${PROJECT}`,
    );
    assert.ok(describeAt >= 0, section.join('\n'));
    assert.equal(section[describeAt + 1], '  -> dry-run: assumed not found');
    assert.ok(
      commands(section).some((c) =>
        new RegExp(
          `^gcloud artifacts repositories create agent-platform --repository-format=docker --location=us-central1 --project=${PROJECT} `,
        ).test(c),
      ),
      section.join('\n'),
    );
  });

  test('builds the images, then tags and pushes both to the registry', () => {
    assert.deepEqual(commands(stepSection(result.stdout, 5)), ['npm run images']);
    const push = commands(stepSection(result.stdout, 6));
    const runnerPush = push.find((c) => c.startsWith(`docker push ${REGISTRY}/runner:`));
    const agentPush = push.find((c) => c.startsWith(`docker push ${REGISTRY}/agent-default:`));
    assert.ok(runnerPush && agentPush, push.join('\n'));
    assert.ok(
      push.includes(`docker tag agent-platform/runner:latest ${runnerPush.slice('docker push '.length)}`),
    );
    assert.ok(
      push.includes(
        `docker tag agent-platform/agent-default:latest ${agentPush.slice('docker push '.length)}`,
      ),
    );
  });

  test('creates both service accounts and the bindings', () => {
    const cmds = commands(stepSection(result.stdout, 7));
    assert.ok(
      cmds.some((c) =>
        c.startsWith(`gcloud iam service-accounts create agent-functions --project=${PROJECT}`),
      ),
    );
    assert.ok(
      cmds.some((c) => c.startsWith(`gcloud iam service-accounts create agent-runner --project=${PROJECT}`)),
    );
    const binds = (member: string, role: string) =>
      cmds.some(
        (c) =>
          c.includes('add-iam-policy-binding') &&
          c.includes(`--member=serviceAccount:${member}`) &&
          c.includes(`--role=${role}`),
      );
    const runnerSa = `agent-runner@${PROJECT}.iam.gserviceaccount.com`;
    assert.ok(binds(runnerSa, 'roles/artifactregistry.reader'));
    assert.ok(binds(runnerSa, 'roles/logging.logWriter'));
    assert.ok(binds(FUNCTIONS_SA, 'roles/datastore.user'));
  });

  test('opens 80/443 to the VM, not the runner port', () => {
    const rule = commands(stepSection(result.stdout, 8)).find((c) =>
      c.startsWith('gcloud compute firewall-rules create'),
    );
    assert.match(rule ?? '', /--rules=tcp:80,tcp:443 /);
    assert.match(rule ?? '', /--target-tags=agent-runner /);
    assert.doesNotMatch(rule ?? '', /8081/);
  });

  test('creates the VM on cos-stable, running the pushed runner image with the host socket', () => {
    const section = stepSection(result.stdout, 9);
    const create = commands(section).find((c) =>
      c.startsWith('gcloud compute instances create agent-runner '),
    );
    assert.ok(create, section.join('\n'));
    assert.match(create, /--image-family=cos-stable --image-project=cos-cloud/);
    assert.match(
      create,
      new RegExp(`--service-account=agent-runner@${PROJECT}\\.iam\\.gserviceaccount\\.com`),
    );
    assert.match(create, /--metadata-from-file=startup-script=/);
    const startup = section
      .filter((l) => l.startsWith('    | '))
      .map((l) => l.slice(6))
      .join('\n');
    assert.match(
      startup,
      /-v \/var\/run\/docker\.sock:\/var\/run\/docker\.sock --group-add "\$\(stat -c %g \/var\/run\/docker\.sock\)"/,
    );
    assert.ok(startup.includes(`-e RUNNER_ALLOWED_INVOKERS=${FUNCTIONS_SA} `), startup);
    assert.ok(startup.includes(`-e RUNNER_AUDIENCE=https://${DOMAIN} `), startup);
    // Every image the VM runs is one this deploy pushed, pinned by the digest docker push printed
    // (a dry run shows sha256:DIGEST): the VM never pulls a moving tag at boot.
    const pushed = commands(stepSection(result.stdout, 6)).filter((c) => c.startsWith('docker push '));
    assert.equal(pushed.length, 3, pushed.join('\n'));
    const pinned = (image: string) => `${image.replace(/:[^:/]+$/, '')}@sha256:DIGEST`;
    for (const image of pushed.map((c) => c.slice('docker push '.length))) {
      assert.ok(startup.includes(`docker pull ${pinned(image)}\n`), `the VM pulls ${pinned(image)}`);
    }
    assert.doesNotMatch(startup, /caddy:2|:latest/, 'no moving tag in the startup script');
    const agentImage = pushed.find((c) => c.includes('/agent-default:'))!.slice('docker push '.length);
    assert.ok(startup.includes(`-e AGENT_IMAGE=${pinned(agentImage)} `));
    const caddyImage = pushed.find((c) => c.includes('/caddy:'))!.slice('docker push '.length);
    assert.ok(startup.includes(`${pinned(caddyImage)} caddy reverse-proxy`), startup);
    // Caddy comes from its public tag once, here, and is mirrored into the project's registry.
    assert.ok(commands(stepSection(result.stdout, 6)).includes('docker pull docker.io/library/caddy:2'));
    // The VM's token can pull images and write logs and metrics, nothing more.
    assert.match(create, /--scopes=storage-ro,logging-write,monitoring-write /);
    assert.doesNotMatch(create, /cloud-platform/);
    assert.match(
      startup,
      new RegExp(`caddy reverse-proxy --from ${DOMAIN.replaceAll('.', '\\.')} --to agent-runner:8081`),
    );
    // An existing VM is updated instead; the dry-run shows that path too.
    assert.ok(
      commands(section).some((c) => c.startsWith('gcloud compute instances add-metadata agent-runner ')),
    );
  });

  test('the VM installs the pinned gVisor release, checked against its SHA-512, and the runner uses it', () => {
    const section = stepSection(result.stdout, 9);
    assert.ok(
      commands(section).includes(
        'curl -fsSL https://storage.googleapis.com/gvisor/releases/release/20250707.0/x86_64/runsc.sha512',
      ),
      'the checksum is fetched at deploy time',
    );
    const startup = section.filter((l) => l.startsWith('    | ')).map((l) => l.slice(6));
    const text = startup.join('\n');
    assert.match(
      text,
      /curl -fsSL --retry 5 -o "\$RUNSC\.new" https:\/\/storage\.googleapis\.com\/gvisor\/releases\/release\/20250707\.0\/x86_64\/runsc\n/,
    );
    assert.match(
      text,
      /echo "SHA512 {2}\$RUNSC\.new" \| sha512sum -c --status\n/,
      'checked before it is used',
    );
    assert.ok(text.indexOf('sha512sum -c --status\n  chmod') < text.indexOf('mv "$RUNSC.new" "$RUNSC"'));
    assert.ok(text.includes('-e SANDBOX_RUNTIME=auto \\'), 'the runner picks runsc');
    assert.ok(text.indexOf('grep -q \'"runsc"\'') < text.indexOf('docker run -d --name agent-runner'));
    // The daemon.json amendment, run for real on sample files (systemctl is not called here).
    const from = startup.findIndex((l) => l.startsWith('DAEMON='));
    const to = startup.findIndex((l, i) => i > from && l === 'fi');
    const block = startup
      .slice(from, to + 1)
      .join('\n')
      .replace('systemctl restart docker', 'echo restarted');
    const dir = mkdtempSync(join(tmpdir(), 'daemon-json-'));
    try {
      const cases: Array<[string | null, Record<string, unknown>]> = [
        [null, {}],
        ['{}\n', {}],
        ['{\n  "live-restore": true,\n  "mtu": 1460\n}\n', { 'live-restore': true, mtu: 1460 }],
      ];
      for (const [before, kept] of cases) {
        const file = join(dir, 'daemon.json');
        rmSync(file, { force: true });
        if (before !== null) writeFileSync(file, before);
        const script = block.replace('DAEMON=/etc/docker/daemon.json', `DAEMON=${file}`);
        const first = spawnSync(bash, ['-c', script], { encoding: 'utf8' });
        assert.equal(first.status, 0, first.stderr);
        assert.equal(first.stdout, 'restarted\n');
        assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), {
          ...kept,
          runtimes: { runsc: { path: '/var/lib/docker/runsc', runtimeArgs: ['--network=none'] } },
        });
        const again = spawnSync(bash, ['-c', script], { encoding: 'utf8' });
        assert.equal(again.stdout, '', 'at the next boot it is there already: no restart');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('prints the functions params it would write, one for every param of params.ts', () => {
    const section = stepSection(result.stdout, 10);
    assert.ok(section.includes(`dry-run: would write functions/.env.${PROJECT}:`), section.join('\n'));
    const values = new Map(
      section
        .filter((l) => /^ {4}\| [A-Z_]+=/.test(l))
        .map((l) => {
          const line = l.slice(6);
          const eq = line.indexOf('=');
          return [line.slice(0, eq), line.slice(eq + 1)] as const;
        }),
    );
    assert.equal(values.get('RUNNER_URL'), `https://${DOMAIN}`);
    assert.equal(values.get('RUNNER_AUDIENCE'), `https://${DOMAIN}`);
    assert.equal(values.get('CORS_ORIGINS'), `https://${PROJECT}.web.app,https://${PROJECT}.firebaseapp.com`);
    const names = paramNames();
    assert.ok(names.length >= 8, names.join(','));
    for (const name of names) assert.ok(values.has(name), `param ${name} has a value`);
  });

  test('deploys functions, rules and hosting with firebase for the project', () => {
    const cmds = commands(stepSection(result.stdout, 11));
    const deploy = cmds.filter((c) => c.startsWith('npx firebase deploy '));
    assert.ok(deploy.length === 1, cmds.join('\n'));
    assert.match(
      deploy[0]!,
      new RegExp(
        `^npx firebase deploy --project ${PROJECT} --only functions,firestore:rules,firestore:indexes,hosting --non-interactive( --force)?$`,
      ),
    );
  });

  test('ends with the URLs', () => {
    assert.match(result.stdout, new RegExp(`Hosting: +https://${PROJECT}\\.web\\.app`));
    assert.match(result.stdout, new RegExp(`Runner: +https://${DOMAIN.replaceAll('.', '\\.')} `));
    assert.match(result.stdout, /Functions: +region us-central1/);
  });
});

describe('deploy.sh with a model provider', () => {
  const KEY = 'sk-test-deploy-0123456789abcdef';
  const startupOf = (stdout: string) =>
    stepSection(stdout, 9)
      .filter((l) => l.startsWith('    | '))
      .map((l) => l.slice(6))
      .join('\n');

  test('openai: the key from MODEL_API_KEY goes to Secret Manager (never printed), the VM reads it at boot', () => {
    const res = runDeploy(
      [
        '--project',
        PROJECT,
        '--runner-domain',
        DOMAIN,
        '--model-provider',
        'openai',
        '--model-base-url',
        'https://api.openai.com/v1',
        '--model-allowlist',
        'gpt-4o-mini,gpt-4o',
        '--model-default',
        'gpt-4o-mini',
        '--dry-run',
      ],
      { MODEL_API_KEY: KEY },
    );
    assert.equal(res.status, 0, res.stderr);
    assert.ok(!(res.stdout + res.stderr).includes(KEY), 'the key is printed nowhere');
    const iam = commands(stepSection(res.stdout, 7));
    assert.ok(
      iam.includes(
        `gcloud secrets create agent-model-api-key --project=${PROJECT} --replication-policy=automatic`,
      ),
    );
    assert.ok(
      iam.includes(
        `gcloud secrets versions add agent-model-api-key --project=${PROJECT} --data-file=- < (MODEL_API_KEY from the environment)`,
      ),
    );
    assert.ok(
      iam.some(
        (c) =>
          c.startsWith(
            `gcloud secrets add-iam-policy-binding agent-model-api-key --project=${PROJECT} --member=serviceAccount:agent-runner@`,
          ) && c.includes('--role=roles/secretmanager.secretAccessor'),
      ),
    );
    const vm = commands(stepSection(res.stdout, 9));
    assert.ok(
      vm.some(
        (c) => c.startsWith('gcloud compute instances create ') && c.includes('--scopes=cloud-platform '),
      ),
    );
    assert.ok(
      vm.some(
        (c) =>
          c.startsWith('gcloud compute instances set-service-account ') &&
          c.endsWith('--scopes=cloud-platform'),
      ),
    );
    const startup = startupOf(res.stdout);
    assert.match(startup, /--env-file \/run\/agent-platform\/runner\.env \\\n/);
    assert.match(startup, /-e MODEL_PROVIDER=openai -e MODEL_BASE_URL=https:\/\/api\.openai\.com\/v1 \\\n/);
    assert.match(startup, /-e MODEL_ALLOWLIST=gpt-4o-mini,gpt-4o \\\n {2}-e MODEL_DEFAULT=gpt-4o-mini \\\n/);

    // The boot-time fetch, run for real with curl standing in for the metadata server and Secret
    // Manager (their real answer shapes): the runner's env file gets the key, the token file goes.
    const fetch = startup.slice(
      startup.indexOf('( umask 077'),
      startup.indexOf('runner.env )') + 'runner.env )'.length,
    );
    const dir = mkdtempSync(join(work, 'boot-'));
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const secretJson = JSON.stringify(
      {
        name: `projects/1/secrets/agent-model-api-key/versions/3`,
        payload: { data: Buffer.from(KEY).toString('base64'), dataCrc32c: '1' },
      },
      null,
      2,
    );
    writeTool(
      bin,
      'curl',
      [
        'for a in "$@"; do last="$a"; done',
        'case "$last" in',
        `  http://metadata.google.internal/*) echo '{"access_token":"ya29.token","expires_in":3599,"token_type":"Bearer"}' ;;`,
        `  https://secretmanager.googleapis.com/*) grep -q 'Authorization: Bearer ya29.token' ${join(dir, 'run')}/auth || exit 22; cat <<'JSON'\n${secretJson}\nJSON\n ;;`,
        '  *) exit 6 ;;',
        'esac',
      ].join('\n'),
    );
    const script = fetch.replaceAll('/run/agent-platform', join(dir, 'run'));
    const out = spawnSync(bash, ['-c', `set -euo pipefail\n${script}`], {
      encoding: 'utf8',
      env: { PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` },
    });
    assert.equal(out.status, 0, out.stderr);
    assert.equal(readFileSync(join(dir, 'run', 'runner.env'), 'utf8'), `MODEL_API_KEY=${KEY}`);
    assert.equal((statSync(join(dir, 'run', 'runner.env')).mode & 0o777).toString(8), '600');
    assert.ok(!existsSync(join(dir, 'run', 'auth')), 'the token file is removed');
  });

  test('vertex: Vertex AI API and role for the VM account, no key, the runner gets the project and location', () => {
    const res = runDeploy([
      '--project',
      PROJECT,
      '--runner-domain',
      DOMAIN,
      '--model-provider',
      'vertex',
      '--model-default',
      'google/gemini-2.0-flash-001',
      '--dry-run',
    ]);
    assert.equal(res.status, 0, res.stderr);
    assert.match(commands(stepSection(res.stdout, 2)).join('\n'), /aiplatform\.googleapis\.com/);
    const iam = commands(stepSection(res.stdout, 7));
    assert.ok(iam.some((c) => c.includes('--role=roles/aiplatform.user')));
    assert.ok(!iam.some((c) => c.includes('secrets')), 'no secret');
    const startup = startupOf(res.stdout);
    assert.match(
      startup,
      new RegExp(`-e MODEL_PROVIDER=vertex -e VERTEX_PROJECT=${PROJECT} -e VERTEX_LOCATION=us-central1 `),
    );
    assert.match(startup, /-e MODEL_DEFAULT=google\/gemini-2\.0-flash-001 /);
    assert.doesNotMatch(startup, /env-file|secretmanager/);
  });

  const bad: Array<{ name: string; args: string[]; env?: Record<string, string>; message: RegExp }> = [
    {
      name: 'openai without a base URL',
      args: ['--model-provider', 'openai'],
      message: /needs --model-base-url https:/,
    },
    {
      name: 'vertex with a key in the environment',
      args: ['--model-provider', 'vertex'],
      env: { MODEL_API_KEY: 'sk-x' },
      message: /Vertex AI uses the VM's service account/,
    },
    {
      name: 'an unknown provider',
      args: ['--model-provider', 'anthropic'],
      message: /invalid --model-provider/,
    },
    {
      name: 'a default model without a provider',
      args: ['--model-default', 'm'],
      message: /need --model-provider/,
    },
    {
      name: 'a model name with a space',
      args: ['--model-provider', 'vertex', '--model-allowlist', 'a b'],
      message: /invalid model name/,
    },
  ];
  for (const c of bad) {
    test(`${c.name}: exit 2 with a clear message`, () => {
      const res = runDeploy(['--project', PROJECT, '--runner-domain', DOMAIN, ...c.args, '--dry-run'], c.env);
      assert.equal(res.status, 2, res.stdout + res.stderr);
      assert.match(res.stderr, c.message);
    });
  }
});

describe('deploy.sh skip flags', () => {
  test('--skip-runner --skip-firebase leaves out images, VM and firebase', () => {
    const res = runDeploy([
      '--project',
      PROJECT,
      '--runner-domain',
      DOMAIN,
      '--dry-run',
      '--skip-runner',
      '--skip-firebase',
    ]);
    assert.equal(res.status, 0, res.stderr);
    for (const n of [3, 4, 5, 6, 8, 9, 10, 11]) {
      assert.match(
        res.stdout,
        new RegExp(`\\[deploy\\] step ${n}/12: .*\\(skipped: --skip-(runner|firebase)\\)`),
      );
    }
    assert.doesNotMatch(res.stdout, /^\+ (docker push|npx firebase deploy|gcloud compute instances create)/m);
    assert.ok(!existsSync(tripwireLog));
  });
});

describe('deploy.sh arguments', () => {
  const cases: Array<{ name: string; args: string[]; message: RegExp }> = [
    { name: 'missing --project', args: ['--dry-run'], message: /--project is required/ },
    {
      name: 'a demo- project',
      args: ['--project', 'demo-agent-platform', '--dry-run'],
      message: /demo- project.*emulators/,
    },
    {
      name: 'a malformed project id',
      args: ['--project', 'My_Project', '--dry-run'],
      message: /invalid project id 'My_Project'/,
    },
    {
      name: 'a too short project id',
      args: ['--project', 'abc', '--dry-run'],
      message: /invalid project id 'abc'/,
    },
    {
      name: 'no runner domain',
      args: ['--project', PROJECT, '--dry-run'],
      message: /--runner-domain \(one runner\) or --runners \(a fleet\) is required/,
    },
    {
      name: 'a fleet without runners',
      args: ['--project', PROJECT, '--runners', '0..3', '--dry-run'],
      message: /invalid --runners '0\.\.3': need 1 <= MIN <= MAX <= 100/,
    },
    {
      name: 'a fleet whose MIN exceeds its MAX',
      args: ['--project', PROJECT, '--runners', '5..2', '--dry-run'],
      message: /invalid --runners '5\.\.2'/,
    },
    {
      name: 'a fleet of more than 100',
      args: ['--project', PROJECT, '--runners', '2..101', '--dry-run'],
      message: /invalid --runners '2\.\.101'/,
    },
    {
      name: 'a fleet size that is not a range',
      args: ['--project', PROJECT, '--runners', 'two', '--dry-run'],
      message: /invalid --runners 'two' \(MIN\.\.MAX/,
    },
    {
      name: 'a fleet with a runner domain',
      args: ['--project', PROJECT, '--runners', '2..4', '--runner-domain', DOMAIN, '--dry-run'],
      message: /--runner-domain is for the one runner/,
    },
    {
      name: 'a fleet with --skip-runner',
      args: ['--project', PROJECT, '--runners', '2..4', '--skip-runner', '--dry-run'],
      message: /--runners .* cannot go with --skip-runner/,
    },
    {
      name: 'a bucket without a fleet',
      args: ['--project', PROJECT, '--runner-domain', DOMAIN, '--bucket', 'my-bucket', '--dry-run'],
      message: /--bucket, --proxy-subnet-range and --connector-range are for a fleet/,
    },
    {
      name: 'a bad bucket name',
      args: ['--project', PROJECT, '--runners', '2', '--bucket', 'Bad_Bucket!', '--dry-run'],
      message: /invalid --bucket 'Bad_Bucket!'/,
    },
    {
      name: 'a VPC connector range that is not a /28',
      args: ['--project', PROJECT, '--runners', '2', '--connector-range', '10.8.0.0/27', '--dry-run'],
      message: /--connector-range must be a \/28/,
    },
    {
      name: 'a proxy-only subnet smaller than a /26',
      args: ['--project', PROJECT, '--runners', '2', '--proxy-subnet-range', '10.127.0.0/28', '--dry-run'],
      message: /--proxy-subnet-range must be a \/26 or larger/,
    },
    {
      name: 'a URL as runner domain',
      args: ['--project', PROJECT, '--runner-domain', 'https://runner.example.com', '--dry-run'],
      message: /invalid --runner-domain/,
    },
    {
      name: 'a zone outside the region',
      args: ['--project', PROJECT, '--runner-domain', DOMAIN, '--zone', 'europe-west1-b', '--dry-run'],
      message: /not in region 'us-central1'/,
    },
    { name: 'an option without its value', args: ['--project'], message: /--project needs a value/ },
    { name: 'an unknown option', args: ['--project', PROJECT, '--yes'], message: /unknown argument: --yes/ },
  ];
  for (const c of cases) {
    test(`${c.name}: exit 2 with a clear message`, () => {
      const res = runDeploy(c.args);
      assert.equal(res.status, 2, res.stdout + res.stderr);
      assert.match(res.stderr, c.message);
      assert.match(res.stderr, /--help/);
      assert.doesNotMatch(res.stdout, /\[deploy\] step/);
    });
  }

  test('--help prints the usage and exits 0', () => {
    const res = runDeploy(['--help']);
    assert.equal(res.status, 0);
    assert.match(
      res.stdout,
      /^Usage: scripts\/deploy\.sh --project PROJECT \[--region us-central1\] \[--zone us-central1-a\]/,
    );
    for (const flag of ['--runner-domain', '--dry-run', '--skip-runner', '--skip-firebase']) {
      assert.ok(res.stdout.includes(flag), flag);
    }
  });
});

describe('deploy.sh failure handling (fake tools)', () => {
  test('stops at the first failing command and says what to check', () => {
    const fakeBin = join(work, 'fake-bin');
    const fakeLog = join(work, 'fake.log');
    mkdirSync(fakeBin);
    // Fakes: everything "succeeds" except enabling APIs (as without billing). Builtins only.
    for (const tool of ['gcloud', 'docker', 'npm', 'npx', 'curl']) {
      writeTool(
        fakeBin,
        tool,
        [
          `echo "${tool} $*" >>'${fakeLog}'`,
          'case "$*" in',
          `  "services enable"*) echo "ERROR: (gcloud.services.enable) FAILED_PRECONDITION: Billing account for project is not found." >&2; exit 1 ;;`,
          '  "projects describe"*) echo 123456789012 ;;',
          'esac',
          'exit 0',
        ].join('\n'),
      );
    }
    const repoBefore = snapshot();
    const res = runDeploy(['--project', PROJECT, '--runner-domain', DOMAIN], { PATH: fakeBin });
    assert.equal(res.status, 1, res.stdout + res.stderr);
    assert.match(res.stderr, /FAILED at step 2\/12: enable Google Cloud APIs \(exit code 1\)/);
    assert.match(res.stderr, /command: gcloud services enable run\.googleapis\.com/);
    assert.match(res.stderr, /Billing must be enabled/);
    assert.doesNotMatch(res.stdout, /\[deploy\] step 3\//);
    const calls = readFileSync(fakeLog, 'utf8').trim().split('\n');
    assert.match(calls.at(-1) ?? '', /^gcloud services enable /);
    assert.ok(!calls.some((c) => c.startsWith('npm run images') || c.includes(' push ')), calls.join('\n'));
    assertUnchanged(repoBefore, 'a failing deploy');
  });
});

/** The file a dry run shows under `would write LABEL (...)`, without the `    | ` margin. */
function shownFile(stdout: string, label: string): string {
  const lines = stdout.split('\n');
  const start = lines.findIndex(
    (l) => l.startsWith(`dry-run: would write ${label} (`) || l === `dry-run: would write ${label}:`,
  );
  assert.ok(start >= 0, `the dry run shows ${label}`);
  const body: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (!l.startsWith('    | ')) break;
    body.push(l.slice(6));
  }
  return `${body.join('\n')}\n`;
}

/** KEY=value lines of the functions' .env file a dry run shows. */
function shownEnv(stdout: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const line of shownFile(stdout, `functions/.env.${PROJECT}`).split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) env.set(m[1]!, m[2]!);
  }
  return env;
}

describe('deploy.sh --runners: a fleet behind an internal load balancer (dry run)', () => {
  let result: Result;
  let repoBefore: Map<string, string>;
  const section = (n: number) => stepSection(result.stdout, n);
  const cmd = (n: number, prefix: string) => commands(section(n)).find((c) => c.startsWith(prefix));

  before(() => {
    repoBefore = snapshot();
    result = runDeploy(['--project', PROJECT, '--runners', '2..6', '--dry-run']);
  });

  test('exits 0 without running any tool; steps 8 and 9 are the network and the fleet', () => {
    assert.equal(result.status, 0, result.stderr);
    assert.ok(!existsSync(tripwireLog), 'no tool was run');
    assertUnchanged(repoBefore, 'deploy.sh --runners --dry-run');
    const headers = result.stdout.split('\n').filter((l) => l.startsWith('[deploy] step '));
    assert.equal(headers.length, 12);
    assert.match(
      headers[7]!,
      /step 8\/12: network: internal address, proxy-only subnet, firewall, VPC connector/,
    );
    assert.match(headers[8]!, /step 9\/12: runner fleet: bucket, instance template, group, autoscaler/);
    assert.match(result.stdout, /runners: {10}2\.\.6 VMs \(e2-standard-2\) in us-central1/);
  });

  test('enables the VPC Access and Cloud Storage APIs; pushes the runner and agent, no Caddy', () => {
    const enable = cmd(2, 'gcloud services enable ') ?? '';
    assert.match(enable, / vpcaccess\.googleapis\.com /);
    assert.match(enable, / storage\.googleapis\.com /);
    const push = commands(section(6));
    assert.deepEqual(
      push.filter((c) => c.startsWith('docker push ')).map((c) => c.replace(/:[^:/]+$/, '')),
      [`docker push ${REGISTRY}/runner`, `docker push ${REGISTRY}/agent-default`],
    );
    assert.ok(!push.some((c) => c.includes('caddy')), push.join('\n'));
  });

  test('network: no external address; the runner port is open to the proxies and health checkers only', () => {
    const cmds = commands(section(8));
    assert.ok(!cmds.some((c) => c.includes('agent-runner-ip') || c.includes('tcp:443')), cmds.join('\n'));
    assert.ok(
      cmds.includes(
        `gcloud compute networks subnets update default --region=us-central1 --project=${PROJECT} --enable-private-ip-google-access`,
      ),
    );
    assert.match(
      cmd(8, 'gcloud compute networks subnets create agent-proxy-only ') ?? '',
      /--purpose=REGIONAL_MANAGED_PROXY --role=ACTIVE --range=10\.127\.0\.0\/23$/,
    );
    assert.match(cmd(8, 'gcloud compute addresses create agent-runner-ilb ') ?? '', /--subnet=default$/);
    const fromLb = cmd(8, 'gcloud compute firewall-rules create agent-runner-from-lb ') ?? '';
    assert.match(
      fromLb,
      /--rules=tcp:8081 --target-tags=agent-runner-fleet --source-ranges=10\.127\.0\.0\/23 /,
    );
    const health = cmd(8, 'gcloud compute firewall-rules create agent-runner-health-checks ') ?? '';
    assert.match(
      health,
      /--rules=tcp:8081 --target-tags=agent-runner-fleet --source-ranges=35\.191\.0\.0\/16,130\.211\.0\.0\/22 /,
    );
    assert.ok(!cmds.some((c) => c.includes('0.0.0.0/0')), 'nothing is opened to the internet');
    // Without a provider on the internet, the runners need no NAT.
    assert.ok(!cmds.some((c) => c.includes('routers')), cmds.join('\n'));
    assert.match(
      cmd(8, 'gcloud compute networks vpc-access connectors create agent-functions ') ?? '',
      /--region=us-central1 .*--network=default --range=10\.8\.0\.0\/28 --machine-type=e2-micro --min-instances=2 --max-instances=3$/,
    );
  });

  test('the workspace bucket: private, no soft delete, read and written by the runners account only', () => {
    const bucket = `gs://${PROJECT}-agent-workspaces`;
    assert.equal(
      cmd(9, `gcloud storage buckets create ${bucket} `),
      `gcloud storage buckets create ${bucket} --project=${PROJECT} --location=us-central1 --uniform-bucket-level-access --public-access-prevention --soft-delete-duration=0`,
    );
    assert.equal(
      cmd(9, `gcloud storage buckets add-iam-policy-binding ${bucket} `),
      `gcloud storage buckets add-iam-policy-binding ${bucket} --project=${PROJECT} --member=serviceAccount:agent-runner@${PROJECT}.iam.gserviceaccount.com --role=roles/storage.objectUser --format=none`,
    );
  });

  test('an instance template without an external address, with startup and shutdown scripts', () => {
    const template = cmd(9, 'gcloud compute instance-templates create agent-runner-') ?? '';
    assert.match(template, /--image-family=cos-stable --image-project=cos-cloud /);
    assert.match(template, /--scopes=storage-rw,logging-write,monitoring-write /);
    assert.match(template, /--tags=agent-runner-fleet --network=default --no-address /);
    assert.match(
      template,
      /--metadata-from-file=startup-script=<temporary file: startup>,shutdown-script=<temporary file: shutdown>'$/,
    );
    const startup = shownFile(result.stdout, 'VM startup script');
    assert.match(startup, /-p 8081:8081 --stop-timeout 80 \\\n/);
    assert.match(
      startup,
      /-e WORKSPACE_STORE=gcs -e WORKSPACE_BUCKET=agent-deploy-dryrun-test-agent-workspaces \\\n/,
    );
    assert.match(startup, /-e RUNNER_AUDIENCE=http:\/\/ILB_IP \\\n/);
    assert.doesNotMatch(startup, /docker pull \S*caddy|caddy reverse-proxy/);
    assert.equal(
      shownFile(result.stdout, 'VM shutdown script').split('\n').at(-2),
      'docker stop -t 80 agent-runner || true',
    );
  });

  test('the group: MIN runners, autohealed on /readyz after boot, autoscaled MIN..MAX', () => {
    const create = cmd(9, 'gcloud compute instance-groups managed create agent-runners ') ?? '';
    assert.match(create, /--template=agent-runner-\d{8}-\d{6} --size=2 /);
    assert.match(
      create,
      new RegExp(
        `--health-check=https://www.googleapis.com/compute/v1/projects/${PROJECT}/regions/us-central1/healthChecks/agent-runner-autoheal --initial-delay=300$`,
      ),
    );
    assert.match(
      cmd(9, 'gcloud compute health-checks create http agent-runner-autoheal ') ?? '',
      /--port=8081 --request-path=\/readyz /,
    );
    assert.match(
      cmd(9, 'gcloud compute health-checks create http agent-runner-ready ') ?? '',
      /--port=8081 --request-path=\/readyz /,
    );
    assert.match(
      cmd(9, 'gcloud compute instance-groups managed set-named-ports ') ?? '',
      /--named-ports=http:8081$/,
    );
    assert.match(
      cmd(9, 'gcloud compute instance-groups managed set-autoscaling agent-runners ') ?? '',
      /--min-num-replicas=2 --max-num-replicas=6 /,
    );
    // A group that exists gets the new template by a rolling update that adds runners before it
    // removes any.
    assert.match(
      cmd(9, 'gcloud compute instance-groups managed rolling-action start-update agent-runners ') ?? '',
      /--version=template=agent-runner-\d{8}-\d{6} --max-surge=3 --max-unavailable=0$/,
    );
  });

  test('the internal load balancer hashes consistently on the user header and has global access', () => {
    const yaml = shownFile(result.stdout, 'backend service');
    for (const line of [
      'loadBalancingScheme: INTERNAL_MANAGED',
      'localityLbPolicy: RING_HASH',
      'sessionAffinity: HEADER_FIELD',
      'consistentHash:\n  httpHeaderName: x-agent-user\n',
      `- https://www.googleapis.com/compute/v1/projects/${PROJECT}/regions/us-central1/healthChecks/agent-runner-ready\n`,
      `- group: https://www.googleapis.com/compute/v1/projects/${PROJECT}/regions/us-central1/instanceGroups/agent-runners\n`,
      'portName: http',
    ]) {
      assert.ok(yaml.includes(line), `${line} in\n${yaml}`);
    }
    assert.match(
      cmd(9, 'gcloud compute backend-services import agent-runners ') ?? '',
      /--region=us-central1 .*--quiet$/,
    );
    assert.match(
      cmd(9, 'gcloud compute url-maps create agent-runners ') ?? '',
      /--default-service=agent-runners$/,
    );
    assert.match(
      cmd(9, 'gcloud compute target-http-proxies create agent-runners ') ?? '',
      /--url-map=agent-runners /,
    );
    assert.match(
      cmd(9, 'gcloud compute forwarding-rules create agent-runners ') ?? '',
      /--load-balancing-scheme=INTERNAL_MANAGED --network=default --subnet=default --address=agent-runner-ilb --ports=80 .*--allow-global-access$/,
    );
  });

  test('the functions call the balancer through the VPC connector; one runner has none', () => {
    const env = shownEnv(result.stdout);
    assert.equal(env.get('RUNNER_URL'), 'http://ILB_IP');
    assert.equal(env.get('RUNNER_AUDIENCE'), 'http://ILB_IP');
    assert.equal(env.get('RUNNER_VPC_CONNECTOR'), 'agent-functions');
    const one = runDeploy(['--project', PROJECT, '--runner-domain', DOMAIN, '--dry-run']);
    assert.equal(shownEnv(one.stdout).get('RUNNER_VPC_CONNECTOR'), '');
  });

  test('an OpenAI-compatible provider: the runners reach it through Cloud NAT', () => {
    const res = runDeploy(
      [
        '--project',
        PROJECT,
        '--runners',
        '3',
        '--model-provider',
        'openai',
        '--model-base-url',
        'https://api.example.com/v1',
        '--dry-run',
      ],
      { MODEL_API_KEY: 'sk-test-fleet-0123456789' },
    );
    assert.equal(res.status, 0, res.stderr);
    const cmds = commands(stepSection(res.stdout, 8));
    assert.ok(
      cmds.some((c) => c.startsWith('gcloud compute routers create agent-runner-router ')),
      cmds.join('\n'),
    );
    assert.match(
      cmds.find((c) => c.startsWith('gcloud compute routers nats create agent-runner-nat ')) ?? '',
      /--auto-allocate-nat-external-ips --nat-custom-subnet-ip-ranges=default$/,
    );
    assert.match(commands(stepSection(res.stdout, 9)).join('\n'), /--size=3 /);
    assert.doesNotMatch(res.stdout + res.stderr, /sk-test-fleet/);
  });
});

describe('the VM scripts deploy.sh writes, run with stand-ins for the host', () => {
  // The startup and shutdown scripts are text that runs only on a VM. Here they run under bash with
  // their host paths moved into a temporary directory and stand-ins for the host's tools (docker,
  // curl and through it the metadata server and Secret Manager, systemctl, ...), which record what
  // they are asked. A script that does not run as written fails here.
  const KEY = 'sk-test-boot-0123456789abcdef';
  const TOKEN = 'ya29.test-token';
  const RUNNER_PIN = `${REGISTRY}/runner@sha256:DIGEST`;
  let n = 0;

  interface Host {
    dir: string;
    boot(script: string): { status: number | null; stdout: string; stderr: string; docker: string[][] };
  }

  function host(daemonJson?: string): Host {
    const dir = join(work, `host-${++n}`);
    const bin = join(dir, 'bin');
    for (const d of [
      bin,
      join(dir, 'etc/docker'),
      join(dir, 'var/lib/docker'),
      join(dir, 'run'),
      join(dir, 'home'),
    ]) {
      mkdirSync(d, { recursive: true });
    }
    if (daemonJson !== undefined) writeFileSync(join(dir, 'etc/docker/daemon.json'), daemonJson);
    const log = join(dir, 'calls.log');
    const record = (tool: string) => `printf '%s\\037' ${tool} "$@" >>'${log}'; printf '\\n' >>'${log}'`;
    writeTool(
      bin,
      'docker',
      `${record('docker')}\ncase "$1" in info) cat '${dir}/etc/docker/daemon.json' ;; esac\nexit 0`,
    );
    writeTool(bin, 'systemctl', record('systemctl'));
    writeTool(bin, 'docker-credential-gcr', record('docker-credential-gcr'));
    writeTool(bin, 'stat', 'echo 999');
    writeTool(bin, 'hostname', 'echo agent-runner-x1y2');
    // sha512sum -c: "SUM  PATH" on stdin; the stand-in accepts any file that exists.
    writeTool(bin, 'sha512sum', 'read -r sum path; [ -f "$path" ]');
    const secret = Buffer.from(KEY).toString('base64');
    writeTool(
      bin,
      'curl',
      [
        record('curl'),
        'out="" header="" url=""',
        'while [ $# -gt 0 ]; do',
        '  case "$1" in -o) out="$2"; shift ;; -H) header="$2"; shift ;; http*) url="$1" ;; esac',
        '  shift',
        'done',
        `case "$header" in @*) cat "\${header#@}" >>'${dir}/headers.log' ;; esac`,
        'case "$url" in',
        `  *metadata.google.internal*) echo '{"access_token":"${TOKEN}","expires_in":3599,"token_type":"Bearer"}' ;;`,
        // Secret Manager answers with indented JSON, one field per line.
        `  *secretmanager*) printf '{\\n  "name": "projects/1/secrets/s/versions/3",\\n  "payload": {\\n    "data": "${secret}",\\n    "dataCrc32c": "1"\\n  }\\n}\\n' ;;`,
        '  *) [ -n "$out" ] && echo runsc-binary >"$out" ;;',
        'esac',
        'exit 0',
      ].join('\n'),
    );
    return {
      dir,
      boot(script: string) {
        const moved = script
          .replaceAll('/home/agent-platform', join(dir, 'home'))
          .replaceAll('/var/lib/docker/runsc', join(dir, 'var/lib/docker/runsc'))
          .replaceAll('/etc/docker/daemon.json', join(dir, 'etc/docker/daemon.json'))
          .replaceAll('/run/agent-platform', join(dir, 'run/agent-platform'));
        rmSync(log, { force: true });
        const res = spawnSync(bash, ['-c', moved], {
          encoding: 'utf8',
          env: { PATH: `${bin}${delimiter}/usr/bin${delimiter}/bin`, LANG: 'C' },
          timeout: 30_000,
        });
        const docker = existsSync(log)
          ? readFileSync(log, 'utf8')
              .split('\n')
              .filter(Boolean)
              .map((l) => l.split('\x1f').slice(0, -1))
          : [];
        return { status: res.status, stdout: res.stdout, stderr: res.stderr, docker };
      },
    };
  }

  const has = (args: string[], ...seq: string[]) =>
    args.some((_, i) => seq.every((s, j) => args[i + j] === s));
  const runOf = (calls: string[][], name: string) =>
    calls.find((c) => c[0] === 'docker' && c[1] === 'run' && has(c, '--name', name));

  test('a fleet runner boots: gVisor installed and registered, the runner started with every option', () => {
    const out = runDeploy(['--project', PROJECT, '--runners', '2..4', '--dry-run']).stdout;
    const h = host();
    const first = h.boot(shownFile(out, 'VM startup script'));
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /agent-platform: runner started\n$/);
    const daemon = JSON.parse(readFileSync(join(h.dir, 'etc/docker/daemon.json'), 'utf8')) as {
      runtimes: { runsc: { path: string; runtimeArgs: string[] } };
    };
    assert.deepEqual(daemon.runtimes.runsc, {
      path: join(h.dir, 'var/lib/docker/runsc'),
      runtimeArgs: ['--network=none'],
    });
    assert.equal(statSync(join(h.dir, 'var/lib/docker/runsc')).mode & 0o777, 0o755);
    assert.ok(first.docker.some((c) => c.join(' ') === 'systemctl restart docker'));
    const run = runOf(first.docker, 'agent-runner');
    assert.ok(run, first.docker.map((c) => c.join(' ')).join('\n'));
    assert.equal(run.at(-1), RUNNER_PIN, 'the image is the last argument');
    for (const seq of [
      ['-p', '8081:8081'],
      ['--stop-timeout', '80'],
      ['-e', 'RUNNER_ID=agent-runner-x1y2'],
      ['-e', 'WORKSPACE_STORE=gcs'],
      ['-e', `WORKSPACE_BUCKET=${PROJECT}-agent-workspaces`],
      ['--group-add', '999'],
      ['--cap-drop', 'ALL'],
      ['--security-opt', 'no-new-privileges:true'],
      ['--read-only'],
      ['-e', 'SANDBOX_RUNTIME=auto'],
      ['-e', 'RUNNER_AUDIENCE=http://ILB_IP'],
      ['-e', `RUNNER_ALLOWED_INVOKERS=${FUNCTIONS_SA}`],
    ]) {
      assert.ok(has(run, ...seq), `${seq.join(' ')} in ${run.join(' ')}`);
    }
    assert.equal(runOf(first.docker, 'agent-caddy'), undefined, 'no Caddy in a fleet');

    // The next boot finds gVisor in place and registered: no download, no engine restart.
    const again = h.boot(shownFile(out, 'VM startup script'));
    assert.equal(again.status, 0, again.stderr);
    assert.ok(!again.docker.some((c) => c[0] === 'curl' || c[0] === 'systemctl'), again.docker.join('\n'));

    const stop = h.boot(shownFile(out, 'VM shutdown script'));
    assert.equal(stop.status, 0, stop.stderr);
    assert.deepEqual(stop.docker, [['docker', 'stop', '-t', '80', 'agent-runner']]);
  });

  test('one runner without a provider boots with the whole command (an empty line once cut it short)', () => {
    const out = runDeploy(['--project', PROJECT, '--runner-domain', DOMAIN, '--dry-run']).stdout;
    const res = host('{}').boot(shownFile(out, 'VM startup script'));
    assert.equal(res.status, 0, res.stderr);
    const run = runOf(res.docker, 'agent-runner');
    assert.ok(run, res.docker.map((c) => c.join(' ')).join('\n'));
    assert.equal(run.at(-1), RUNNER_PIN);
    assert.ok(has(run, '-v', '/var/run/docker.sock:/var/run/docker.sock'));
    assert.ok(has(run, '-e', `RUNNER_AUDIENCE=https://${DOMAIN}`));
    assert.ok(runOf(res.docker, 'agent-caddy'));
    assert.match(res.stdout, /agent-platform: runner and caddy started\n$/);
  });

  test('one runner with a provider key boots: the key reaches the runner by file only, Caddy fronts it', () => {
    const out = runDeploy(
      [
        '--project',
        PROJECT,
        '--runner-domain',
        DOMAIN,
        '--model-provider',
        'openai',
        '--model-base-url',
        'https://api.example.com/v1',
        '--dry-run',
      ],
      { MODEL_API_KEY: KEY },
    ).stdout;
    const h = host('{\n  "log-driver": "json-file"\n}\n');
    const res = h.boot(shownFile(out, 'VM startup script'));
    assert.equal(res.status, 0, res.stderr);
    const daemon = JSON.parse(readFileSync(join(h.dir, 'etc/docker/daemon.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.equal(daemon['log-driver'], 'json-file', 'the existing settings stay');
    assert.ok((daemon.runtimes as Record<string, unknown>).runsc);
    const envFile = join(h.dir, 'run/agent-platform/runner.env');
    assert.equal(readFileSync(envFile, 'utf8'), `MODEL_API_KEY=${KEY}`);
    assert.equal(statSync(envFile).mode & 0o077, 0, 'only root reads the key');
    assert.ok(!existsSync(join(h.dir, 'run/agent-platform/auth')), 'the token file is removed');
    assert.equal(readFileSync(join(h.dir, 'headers.log'), 'utf8'), `Authorization: Bearer ${TOKEN}\n`);
    const run = runOf(res.docker, 'agent-runner');
    assert.ok(run);
    assert.equal(run.at(-1), RUNNER_PIN);
    assert.ok(has(run, '-p', '127.0.0.1:8081:8081'));
    assert.ok(has(run, '--env-file', envFile));
    assert.ok(has(run, '-e', 'MODEL_PROVIDER=openai'));
    assert.ok(!res.docker.some((c) => c.join(' ').includes(KEY)), 'the key is on no command line');
    const caddy = runOf(res.docker, 'agent-caddy');
    assert.ok(caddy);
    assert.deepEqual(caddy.slice(-6), [
      'caddy',
      'reverse-proxy',
      '--from',
      DOMAIN,
      '--to',
      'agent-runner:8081',
    ]);
  });
});

describe('firebase-tools reads the deploy params as a deploy would', () => {
  // The functions' manifest from the built source (firebase-functions' own discovery), resolved by
  // firebase-tools' deploy code with the .env lines deploy.sh writes, as `firebase deploy
  // --non-interactive` does: every param has a value, and RUNNER_VPC_CONNECTOR becomes the
  // functions' VPC connector (private ranges only) for a fleet and nothing for one runner.
  const require = createRequire(join(ROOT, 'package.json'));
  interface Endpoint {
    id: string;
    platform: string;
  }
  interface Connection {
    vpcConnector?: string;
    vpcConnectorEgressSettings?: string;
  }
  const v1 = require('firebase-tools/lib/deploy/functions/runtimes/discovery/v1alpha1.js') as {
    buildFromV1Alpha1(yaml: unknown, project: string, region: string, runtime: string): unknown;
  };
  const tools = require('firebase-tools/lib/deploy/functions/build.js') as {
    resolveBackend(opts: {
      build: unknown;
      firebaseConfig: { projectId: string };
      userEnvs: Record<string, string>;
      nonInteractive: boolean;
      isEmulator: boolean;
    }): Promise<{ backend: { endpoints: Record<string, Record<string, Endpoint>> } }>;
  };
  const gcfV2 = require('firebase-tools/lib/gcp/cloudfunctionsv2.js') as {
    functionFromEndpoint(e: unknown): { serviceConfig: Connection };
  };
  // The Auth deletion trigger is a 1st gen function (v2 has none); it deletes workspaces through
  // the runner too.
  const gcfV1 = require('firebase-tools/lib/gcp/cloudfunctions.js') as {
    functionFromEndpoint(e: unknown, sourceUploadUrl: string): Connection;
  };
  const dotenv = require('firebase-tools/lib/functions/env.js') as {
    parse(text: string): { envs: Record<string, string>; errors: unknown[] };
  };

  async function deployedFunctions(
    args: string[],
  ): Promise<Array<{ id: string; v1: boolean; vpc: Connection }>> {
    const out = runDeploy([...args, '--dry-run']).stdout;
    const parsed = dotenv.parse(shownFile(out, `functions/.env.${PROJECT}`));
    assert.deepEqual(parsed.errors, []);
    const manifest = join(work, `manifest-${++manifests}.json`);
    const gen = spawnSync(process.execPath, [join(ROOT, 'node_modules/.bin/firebase-functions')], {
      cwd: join(ROOT, 'functions'),
      env: {
        PATH: process.env.PATH ?? '',
        FUNCTIONS_MANIFEST_OUTPUT_PATH: manifest,
        GCLOUD_PROJECT: PROJECT,
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(gen.status, 0, gen.stderr);
    const build = v1.buildFromV1Alpha1(
      JSON.parse(readFileSync(manifest, 'utf8')),
      PROJECT,
      'us-central1',
      'nodejs24',
    );
    const { backend } = await tools.resolveBackend({
      build,
      firebaseConfig: { projectId: PROJECT },
      userEnvs: parsed.envs,
      nonInteractive: true,
      isEmulator: false,
    });
    const endpoints = Object.values(backend.endpoints).flatMap((byId) => Object.values(byId));
    assert.ok(endpoints.length > 10, 'every function');
    return endpoints.map((e) =>
      e.platform === 'gcfv1'
        ? { id: e.id, v1: true, vpc: gcfV1.functionFromEndpoint(e, 'https://storage.googleapis.com/upload') }
        : {
            id: e.id,
            v1: false,
            vpc: gcfV2.functionFromEndpoint({ ...e, source: { storageSource: { bucket: 'b', object: 'o' } } })
              .serviceConfig,
          },
    );
  }
  let manifests = 0;

  test('a fleet: every function egresses to private ranges through the connector', async () => {
    const fns = await deployedFunctions(['--project', PROJECT, '--runners', '2..4']);
    assert.ok(
      fns.some((f) => f.id === 'onUserDeleted' && f.v1),
      'the Auth trigger is among them',
    );
    for (const f of fns) {
      assert.equal(
        f.vpc.vpcConnector,
        `projects/${PROJECT}/locations/us-central1/connectors/agent-functions`,
        f.id,
      );
      // A connector's egress is private ranges unless set otherwise; the v2 functions say so.
      if (f.v1) assert.equal(f.vpc.vpcConnectorEgressSettings, undefined, f.id);
      else assert.equal(f.vpc.vpcConnectorEgressSettings, 'PRIVATE_RANGES_ONLY', f.id);
    }
  });

  test('one runner: no function gets a VPC connector', async () => {
    for (const f of await deployedFunctions(['--project', PROJECT, '--runner-domain', DOMAIN])) {
      // Unset, or (1st gen) the empty string, which the API reads as unset.
      assert.ok(!f.vpc.vpcConnector, `${f.id}: ${f.vpc.vpcConnector}`);
      assert.equal(f.vpc.vpcConnectorEgressSettings, undefined, f.id);
    }
  });
});

describe('deploy.sh --runners for real, against stand-in tools', () => {
  // The paths a dry run skips: outputs parsed (the region's proxy-only subnet, the balancer's
  // address, image digests, the gVisor checksum), the scripts and YAML written to temporary files
  // and handed to gcloud, the update of a group that exists, the functions' .env file written, and
  // the temporary files removed at the end. gcloud, docker, npm, npx and curl are stand-ins that
  // record their arguments and copy the files they are given.
  test('deploys a fleet into an existing group and reuses the region proxy-only subnet', () => {
    const dir = join(work, 'real-fleet');
    const bin = join(dir, 'bin');
    const files = join(dir, 'files');
    const tmp = join(dir, 'tmp');
    for (const d of [bin, files, tmp]) mkdirSync(d, { recursive: true });
    const log = join(dir, 'calls.log');
    const handed = join(dir, 'handed.log');
    const sha = 'ab'.repeat(64);
    const digest = `sha256:${'cd'.repeat(32)}`;
    const record = (tool: string) => `echo "${tool} $*" >>'${log}'`;
    writeTool(
      bin,
      'gcloud',
      [
        record('gcloud'),
        'for a in "$@"; do',
        '  case "$a" in',
        '    --metadata-from-file=*)',
        "      old_ifs=$IFS; IFS=','",
        '      for kv in ${a#--metadata-from-file=}; do',
        `        cp "\${kv#*=}" '${files}'/"\${kv%%=*}"; echo "\${kv#*=}" >>'${handed}'`,
        '      done',
        '      IFS=$old_ifs ;;',
        `    --source=*) cp "\${a#--source=}" '${files}/backend-service.yaml'; echo "\${a#--source=}" >>'${handed}' ;;`,
        '  esac',
        'done',
        'case "$*" in',
        '  "projects describe"*) echo 123456789012 ;;',
        '  "compute instance-groups managed describe"*) exit 0 ;;',
        '  "compute addresses describe agent-runner-ilb"*"--format=value(address)"*) echo 10.128.0.42 ;;',
        '  "compute networks subnets list"*) printf \'10.129.0.0/23\\n\' ;;',
        `  "run services describe"*) echo ${FUNCTIONS_SA} ;;`,
        '  *" describe "*) exit 1 ;;',
        'esac',
        'exit 0',
      ].join('\n'),
    );
    writeTool(
      bin,
      'docker',
      [
        record('docker'),
        'case "$1 $2" in',
        '  "image inspect") echo amd64 ;;',
        `  push\\ *) echo "\${2##*:}: digest: ${digest} size: 1234" ;;`,
        'esac',
        'exit 0',
      ].join('\n'),
    );
    writeTool(
      bin,
      'curl',
      `${record('curl')}\ncase "$*" in *runsc.sha512*) echo "${sha}  runsc" ;; esac\nexit 0`,
    );
    writeTool(bin, 'npm', `${record('npm')}\nexit 0`);
    writeTool(bin, 'npx', `${record('npx')}\nexit 0`);

    const envFile = join(ROOT, `functions/.env.${PROJECT}`);
    assert.ok(!existsSync(envFile), 'no leftover env file');
    try {
      const res = runDeploy(['--project', PROJECT, '--runners', '2..5'], {
        PATH: `${bin}${delimiter}/usr/bin${delimiter}/bin`,
        TMPDIR: tmp,
      });
      assert.equal(res.status, 0, res.stdout + res.stderr);
      const calls = readFileSync(log, 'utf8').trim().split('\n');
      // The region already has an active proxy-only subnet: reused, and the firewall admits its range.
      assert.ok(!calls.some((c) => c.startsWith('gcloud compute networks subnets create')), calls.join('\n'));
      assert.match(res.stdout, /the region's active proxy-only subnet is 10\.129\.0\.0\/23: reusing it/);
      assert.ok(
        calls.some(
          (c) =>
            c.startsWith('gcloud compute firewall-rules create agent-runner-from-lb ') &&
            c.includes('--source-ranges=10.129.0.0/23 '),
        ),
      );
      // The group exists: a rolling update to the new template, no second group.
      assert.ok(!calls.some((c) => c.startsWith('gcloud compute instance-groups managed create')));
      const template = /^gcloud compute instance-templates create (agent-runner-\d{8}-\d{6}) /.exec(
        calls.find((c) => c.startsWith('gcloud compute instance-templates create')) ?? '',
      )?.[1];
      assert.ok(template, calls.join('\n'));
      assert.ok(
        calls.some((c) =>
          c.startsWith(
            `gcloud compute instance-groups managed rolling-action start-update agent-runners --region=us-central1 --project=${PROJECT} --version=template=${template} `,
          ),
        ),
      );
      // What the VMs get: the balancer's address as audience, the checksum and digests parsed.
      const startup = readFileSync(join(files, 'startup-script'), 'utf8');
      assert.ok(startup.includes('-e RUNNER_AUDIENCE=http://10.128.0.42 \\\n'), startup);
      assert.ok(startup.includes(`echo "${sha}  $RUNSC" | sha512sum -c --status`), 'the gVisor checksum');
      assert.ok(startup.includes(`docker pull ${REGISTRY}/runner@${digest}\n`));
      assert.ok(startup.includes(`-e AGENT_IMAGE=${REGISTRY}/agent-default@${digest} \\\n`));
      assert.equal(
        readFileSync(join(files, 'shutdown-script'), 'utf8').trim().split('\n').at(-1),
        'docker stop -t 80 agent-runner || true',
      );
      assert.match(
        readFileSync(join(files, 'backend-service.yaml'), 'utf8'),
        /^consistentHash:\n {2}httpHeaderName: x-agent-user\n/m,
      );
      // The functions' params, written for firebase deploy.
      const env = readFileSync(envFile, 'utf8');
      for (const line of [
        'RUNNER_URL=http://10.128.0.42',
        'RUNNER_AUDIENCE=http://10.128.0.42',
        'RUNNER_VPC_CONNECTOR=agent-functions',
      ]) {
        assert.ok(env.split('\n').includes(line), `${line} in\n${env}`);
      }
      assert.ok(
        calls.some(
          (c) => c.startsWith(`npx firebase deploy --project ${PROJECT} `) && c.endsWith(' --force'),
        ),
      );
      // Every temporary file handed to gcloud is gone.
      const tmpFiles = readFileSync(handed, 'utf8').trim().split('\n');
      assert.equal(tmpFiles.length, 3, tmpFiles.join('\n'));
      for (const f of tmpFiles) assert.ok(f.startsWith(tmp) && !existsSync(f), f);
      assert.deepEqual(readdirSync(tmp), []);
      assert.match(res.stdout, /Runners: {4}group agent-runners in us-central1, 2\.\.5 VMs/);
    } finally {
      rmSync(envFile, { force: true });
    }
  });
});

describe("the functions' param defaults come from functions/src/params.ts", () => {
  test('scripts/deploy/param-defaults.env is what param-defaults.ts generates from params.ts now', () => {
    assert.equal(
      readFileSync(PARAM_DEFAULTS_PATH, 'utf8'),
      currentParamDefaultsEnv(),
      'stale: run node scripts/deploy/param-defaults.ts',
    );
  });

  test('a default that is not a plain dotenv value, or none, is refused', () => {
    assert.throws(
      () => paramDefaultsEnv([{ name: 'A', options: { default: 'two words' } }]),
      /not a plain dotenv value/,
    );
    assert.throws(
      () => paramDefaultsEnv([{ name: 'A', options: { default: 'a#b' } }]),
      /not a plain dotenv value/,
    );
    assert.throws(() => paramDefaultsEnv([{ name: 'A', options: {} }]), /must be a literal/);
    assert.deepEqual(
      paramDefaultsEnv([
        { name: 'B', options: { default: false } },
        { name: 'A', options: { default: 30_000 } },
      ])
        .split('\n')
        .filter((l) => !l.startsWith('#')),
      ['A=30000', 'B=false', ''],
    );
  });

  test("a deploy writes params.ts's own default for every param it does not decide itself", () => {
    const env = shownEnv(runDeploy(['--project', PROJECT, '--runner-domain', DOMAIN, '--dry-run']).stdout);
    const decided = new Set([
      'RUNNER_URL',
      'RUNNER_AUDIENCE',
      'RUNNER_SERVICE',
      'RUNNER_VPC_CONNECTOR',
      'CORS_ORIGINS',
    ]);
    const params = Object.values(functionsParams) as ParamLike[];
    assert.equal(params.length, paramNames().length);
    for (const p of params) {
      if (!decided.has(p.name)) assert.equal(env.get(p.name), String(p.options.default), p.name);
    }
    assert.equal(env.get('RUNNER_SERVICE'), '');
  });
});

/** Runs bash with scripts/deploy/render.sh sourced: `script` gets the arguments after it as "$@". */
function withRenderer(script: string, args: string[] = []): Result {
  const res = spawnSync(bash, ['-c', `source scripts/deploy/render.sh\n${script}`, 'render-test', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', HOME: join(work, 'home'), LANG: 'C' },
    timeout: 30_000,
  });
  if (res.error) throw res.error;
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

describe('the template renderer (scripts/deploy/render.sh)', () => {
  let dir: string;
  let n = 0;
  before(() => {
    dir = mkdtempSync(join(work, 'render-'));
  });

  /** Renders `template` with `values`; the rendered text on stdout. */
  function render(template: string, values: Record<string, string>): Result {
    const file = join(dir, `t-${++n}.tmpl`);
    writeFileSync(file, template);
    return withRenderer(
      'file="$1"; shift; declare -A v=(); while (($# > 0)); do v[$1]="$2"; shift 2; done\n' +
        'render_template "$file" v out && printf %s "$out"',
      [file, ...Object.entries(values).flat()],
    );
  }

  /** Runs rendered text under bash in a directory that holds files (so that a glob would expand). */
  function runRendered(text: string): Result {
    const cwd = mkdtempSync(join(dir, 'run-'));
    writeFileSync(join(cwd, 'a'), '');
    writeFileSync(join(cwd, 'b'), '');
    const res = spawnSync(bash, ['-c', text], {
      cwd,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: join(work, 'home'), LANG: 'C' },
    });
    assert.ok(!existsSync(join(cwd, 'pwned')), `a value ran a command: ${text}`);
    return { status: res.status, stdout: res.stdout, stderr: res.stderr };
  }

  const hostile = [
    'two words',
    " leading and trailing space's ",
    "it's",
    "'",
    "''",
    '"double"',
    '$HOME',
    '${PATH}',
    '`touch pwned`',
    '$(touch pwned)',
    'a;touch pwned',
    'a|touch pwned',
    'a&&touch pwned',
    '*',
    '?',
    '[ab]',
    '~',
    '~root/x',
    '{a,b}',
    'a\\b',
    '\\',
    '!x',
    '#not a comment',
    'a&b', // `&` in a bash 5.2 pattern replacement would be the match
    '-n',
    '',
    'x@V@', // a value is not rendered again
    'ünïcode',
  ];
  test('a value lands as exactly one shell word, whatever it holds', () => {
    for (const value of hostile) {
      const out = render("printf '<%s>\\n' @V@\n", { V: value });
      assert.equal(out.status, 0, `${JSON.stringify(value)}: ${out.stderr}`);
      const ran = runRendered(out.stdout);
      assert.equal(ran.status, 0, ran.stderr);
      assert.equal(ran.stdout, `<${value}>\n`, `${JSON.stringify(value)} rendered as ${out.stdout}`);
    }
  });

  test('a plain word stays as it is (what the deploy tests read), anything else is single-quoted', () => {
    const out = render('docker pull @IMAGE@ -e A=@A@ @B@\n', {
      IMAGE: 'us-central1-docker.pkg.dev/p/agent-platform/runner@sha256:0a1b',
      A: 'gpt-4o-mini,gpt-4o',
      B: "it's",
    });
    assert.equal(
      out.stdout,
      "docker pull us-central1-docker.pkg.dev/p/agent-platform/runner@sha256:0a1b -e A=gpt-4o-mini,gpt-4o 'it'\\''s'\n",
    );
  });

  test('a newline or another control character in a value is refused', () => {
    for (const value of ['two\nlines', 'tab\there', 'cr\r', 'esc\x1b[31m']) {
      const out = render('echo @V@\n', { V: value });
      assert.equal(out.status, 1, JSON.stringify(value));
      assert.match(out.stderr, /line 1: the value of V holds a newline or another control character/);
      assert.equal(out.stdout, '');
    }
  });

  test('@NAME:bare@ takes a plain word only (inside "..." or YAML, where quotes would be wrong)', () => {
    assert.equal(render('echo "@V:bare@  x"\n', { V: 'sha256:0a1b' }).stdout, 'echo "sha256:0a1b  x"\n');
    for (const value of ['two words', '$(touch pwned)', '"', "'", '']) {
      const out = render('echo "@V:bare@"\n', { V: value });
      assert.equal(out.status, 1, JSON.stringify(value));
      assert.match(out.stderr, /the value of V must be a plain word here/);
    }
  });

  test('#@if, #@else and #@end keep or drop whole lines, nested', () => {
    const template = [
      'start',
      '#@if A',
      'a',
      '#@if B',
      'a and b',
      '#@else',
      'a, not b',
      '#@end',
      '#@else',
      'not a',
      '#@if B',
      'not a, b',
      '#@else',
      'not a, not b',
      '#@end',
      '#@end',
      'end',
      '',
    ].join('\n');
    assert.equal(render(template, { A: '1', B: 'yes' }).stdout, 'start\na\na and b\nend\n');
    assert.equal(render(template, { A: 'x', B: '0' }).stdout, 'start\na\na, not b\nend\n');
    assert.equal(render(template, { A: '', B: '1' }).stdout, 'start\nnot a\nnot a, b\nend\n');
    assert.equal(render(template, { A: '0', B: '' }).stdout, 'start\nnot a\nnot a, not b\nend\n');
  });

  test("#@# lines are for the template's reader: not written, not rendered, even in a continued command", () => {
    const template = 'docker run \\\n#@# why the option below: @NOT_A_VALUE@\n  image\n';
    assert.equal(render(template, {}).stdout, 'docker run \\\n  image\n');
  });

  test('what is not a placeholder stays: Go templates, curl -H @file, lowercase @words@', () => {
    const text = "docker info --format '{{json .Runtimes}}'\ncurl -H @/run/auth x@example.com @lower@ @ @@\n";
    assert.equal(render(text, {}).stdout, text);
  });

  const refused: Array<{ name: string; template: string; values?: Record<string, string>; message: RegExp }> =
    [
      {
        name: 'a placeholder without a value',
        template: 'a\necho @MISSING@\n',
        message: /line 2: @MISSING@ has no value/,
      },
      {
        name: 'a placeholder without a value in a branch not taken',
        template: '#@if OFF\necho @MISSING@\n#@end\n',
        values: { OFF: '' },
        message: /line 2: @MISSING@ has no value/,
      },
      {
        name: 'a condition without a value',
        template: '#@if NOPE\nx\n#@end\n',
        message: /#@if NOPE: NOPE has no value/,
      },
      {
        name: 'an unknown directive',
        template: '#@if A\nx\n#@fi\n',
        values: { A: '1' },
        message: /unknown directive '#@fi'/,
      },
      { name: '#@else without #@if', template: 'x\n#@else\n', message: /line 2: #@else without #@if/ },
      {
        name: 'a second #@else',
        template: '#@if A\n#@else\n#@else\n#@end\n',
        values: { A: '1' },
        message: /line 3: #@else without #@if/,
      },
      { name: '#@end without #@if', template: 'x\n#@end\n', message: /line 2: #@end without #@if/ },
      {
        name: '#@if without #@end',
        template: '#@if A\nx\n',
        values: { A: '1' },
        message: /#@if without #@end/,
      },
      {
        name: 'a continued line followed by an empty line',
        template: 'docker run -d \\\n  --name x \\\n\n  image\n',
        message: /line 2 of the output: a line continued with \\ is followed by an empty line or nothing/,
      },
      {
        name: 'a continued line followed by an empty value line',
        template: 'docker run -d \\\n@EMPTY_LINE:bare@\n  image\n',
        values: { EMPTY_LINE: '' },
        message: /must be a plain word here/,
      },
      {
        name: 'a continued line at the end (its last option dropped by a condition)',
        template: 'docker run -d \\\n#@if A\n  image\n#@end\n',
        values: { A: '' },
        message: /a line continued with \\ is followed by an empty line or nothing/,
      },
    ];
  for (const c of refused) {
    test(`refused: ${c.name}`, () => {
      const out = render(c.template, c.values ?? {});
      assert.equal(out.status, 1, out.stdout);
      assert.match(out.stderr, /^deploy: template \S+, line /);
      assert.match(out.stderr, c.message);
      assert.equal(out.stdout, '');
    });
  }

  test('every template renders, for every combination of its conditions, to bash (or YAML) that parses', () => {
    for (const name of readdirSync(join(ROOT, 'scripts/deploy')).filter((f) => f.endsWith('.tmpl'))) {
      const text = readFileSync(join(ROOT, 'scripts/deploy', name), 'utf8');
      const conditions = [
        ...new Set([...text.matchAll(/^#@if ([A-Za-z_][A-Za-z0-9_]*)$/gm)].map((m) => m[1]!)),
      ];
      const names = [...new Set([...text.matchAll(/@([A-Z][A-Z0-9_]*)(?::bare)?@/g)].map((m) => m[1]!))];
      assert.ok(names.length > 0, name);
      // One bash process renders every combination, and one `bash -n` parses them all (each
      // the body of a function).
      const res = withRenderer(
        [
          'file="$1" sh="$4" all="" failed=0',
          'read -ra conditions <<<"$2"; read -ra names <<<"$3"',
          'for ((mask = 0; mask < 1 << ${#conditions[@]}; mask++)); do',
          '  declare -A v=()',
          '  for n in "${names[@]}"; do v[$n]="sample-$n"; done',
          '  for i in "${!conditions[@]}"; do if ((mask >> i & 1)); then v[${conditions[i]}]=1; else v[${conditions[i]}]=; fi; done',
          '  if render_template "$file" v out; then all+="combination_$mask() {"$\'\\n\'"$out}"$\'\\n\'; else echo "combination $mask" >&2; failed=1; fi',
          '  unset v',
          'done',
          'if ((sh)) && ! bash -n <<<"$all"; then failed=1; fi',
          'exit $failed',
        ].join('\n'),
        [
          join(ROOT, 'scripts/deploy', name),
          conditions.join(' '),
          names.filter((n) => !conditions.includes(n)).join(' '),
          name.endsWith('.sh.tmpl') ? '1' : '0',
        ],
      );
      assert.equal(res.status, 0, `${name}: ${res.stderr}`);
    }
  });
});

/** The option table of scripts/deploy/options.sh: flag, variable, and its METAVAR ('' for a switch). */
function optionTable(): Array<{ flag: string; variable: string; arg: string }> {
  const res = spawnSync(
    bash,
    [
      '-c',
      'source scripts/deploy/options.sh\nfor f in "${OPTION_FLAGS[@]}"; do printf "%s\\t%s\\t%s\\n" "$f" "${OPTION_VAR[$f]}" "${OPTION_ARG[$f]}"; done',
    ],
    { cwd: ROOT, encoding: 'utf8', env: { PATH: '', HOME: join(work, 'home'), LANG: 'C' } },
  );
  assert.equal(res.status, 0, res.stderr);
  return res.stdout
    .trim()
    .split('\n')
    .map((l) => {
      const [flag, variable, arg] = l.split('\t');
      return { flag: flag!, variable: variable!, arg: arg ?? '' };
    });
}

describe('deploy.sh options: one table for the parser, the checks, the help and the plan', () => {
  test('every option of the table is in the help, with its value name, and the help names no other', () => {
    const table = optionTable();
    assert.ok(table.length >= 19, table.map((o) => o.flag).join(' '));
    const help = runDeploy(['--help']);
    assert.equal(help.status, 0);
    const described = help.stdout
      .split('\n')
      .map((l) => /^ {2}(?:-h, )?(--[a-z-]+)( [A-Z][A-Z.]*)? +\S/.exec(l))
      .filter((m) => m !== null);
    assert.deepEqual(
      described.map((m) => `${m[1]}${m[2] ?? ''}`),
      table.map((o) => `${o.flag}${o.arg ? ` ${o.arg}` : ''}`),
    );
    const known = new Set(table.map((o) => o.flag));
    for (const flag of help.stdout.match(/--[a-z][a-z-]*/g) ?? []) assert.ok(known.has(flag), flag);
  });

  test('the parser takes every option of the table, as --flag VALUE and as --flag=VALUE', () => {
    const table = optionTable();
    const args = table.flatMap((o) =>
      o.flag === '--help' ? [] : o.arg ? [o.flag, `v ${o.variable}`] : [o.flag],
    );
    const eqArgs = table.flatMap((o) =>
      o.flag === '--help' ? [] : o.arg ? [`${o.flag}=v=${o.variable}`] : [o.flag],
    );
    for (const [form, argv] of [
      ['--flag VALUE', args],
      ['--flag=VALUE', eqArgs],
    ] as const) {
      const res = spawnSync(
        bash,
        [
          '-c',
          'source scripts/deploy/options.sh\ninit_options\nparse_options "$@"\nfor f in "${OPTION_FLAGS[@]}"; do v="${OPTION_VAR[$f]}"; printf "%s=%s\\n" "$v" "${!v}"; done',
          'options-test',
          ...argv,
        ],
        { cwd: ROOT, encoding: 'utf8', env: { PATH: '', HOME: join(work, 'home'), LANG: 'C' } },
      );
      assert.equal(res.status, 0, `${form}: ${res.stderr}`);
      const expected = table.map((o) =>
        o.flag === '--help'
          ? `${o.variable}=0`
          : `${o.variable}=${o.arg ? `v${form === '--flag VALUE' ? ' ' : '='}${o.variable}` : '1'}`,
      );
      assert.deepEqual(res.stdout.trim().split('\n'), expected, form);
    }
  });

  const refused: Array<{ args: string[]; message: RegExp }> = [
    { args: ['--projects', PROJECT], message: /unknown argument: --projects/ },
    { args: ['-p', PROJECT], message: /unknown argument: -p/ },
    { args: [PROJECT], message: new RegExp(`unknown argument: ${PROJECT}`) },
    { args: ['--project', PROJECT, '--dry-run=yes'], message: /--dry-run takes no value/ },
    { args: ['--project', PROJECT, '--region'], message: /--region needs a value/ },
    { args: ['--project', PROJECT, '--region=Europe'], message: /invalid region 'Europe'/ },
  ];
  for (const c of refused) {
    test(`refused: ${c.args.join(' ')}`, () => {
      const res = runDeploy(['--dry-run', ...c.args]);
      assert.equal(res.status, 2, res.stdout + res.stderr);
      assert.match(res.stderr, c.message);
      assert.match(res.stderr, /Run scripts\/deploy\.sh --help for usage/);
    });
  }

  test('the plan prints the options in effect, derived defaults filled in, as a command line', () => {
    const res = runDeploy([
      `--project=${PROJECT}`,
      '--region',
      'europe-west1',
      '--runners',
      '2..3',
      '--model-provider=vertex',
      '--dry-run',
    ]);
    assert.equal(res.status, 0, res.stderr);
    const line = res.stdout.split('\n').find((l) => l.startsWith('[deploy] options: '));
    assert.equal(
      line,
      `[deploy] options:          --project ${PROJECT} --region europe-west1 --zone europe-west1-b --machine-type e2-standard-2 --firestore-location europe-west1 --model-provider vertex --vertex-location europe-west1 --runners 2..3 --bucket ${PROJECT}-agent-workspaces --proxy-subnet-range 10.127.0.0/23 --connector-range 10.8.0.0/28 --dry-run`,
    );
  });
});
