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
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';

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
      message: /--runner-domain is required/,
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
