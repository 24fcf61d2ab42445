/**
 * The default agent's process (README.md): two agents over shared tools, one per request. With a
 * model (the request's `model` is a name) the LLM agent answers, a tool loop over the model
 * gateway (llm-agent.ts); without one, the deterministic offline agent (offline-agent.ts).
 *
 * Protocol (contract/src/agent-protocol.ts):
 * - stdin: one line of JSON (the request) per run; stdin stays open between runs (warm sandbox),
 *   and during a run it also carries the runner's model responses.
 * - stdout: newline-delimited JSON events: `text` deltas and `model_request`s, then one `result`.
 * - exit code 0 at EOF, whatever the requests were; 1 only if the process itself fails.
 *
 * Only Node built-ins and the zod-free parts of the contract (bundled into dist/agent.js by
 * scripts/bundle.mjs): it starts once per sandbox, and every millisecond of start-up is a cold
 * run's.
 */
import type { AgentEvent } from '@agent-platform/contract';
import { describeError } from './describe-error.ts';
import { answerWithModel } from './llm-agent.ts';
import { ModelGateway } from './model-gateway.ts';
import { answerOffline } from './offline-agent.ts';
import { inputLines, parseRequest, type InputLine } from './request.ts';
import { Turn, type TurnStatus } from './turn.ts';

function emit(event: AgentEvent): void {
  process.stdout.write(JSON.stringify(event) + '\n');
}

/** The loopback model gateway; it forwards only while a run is in progress. */
const gateway = new ModelGateway(emit);

/** One request's answer, by the agent its request asks for. */
async function answer(input: InputLine, turn: Turn): Promise<TurnStatus> {
  const parsed = 'error' in input ? input : parseRequest(input.line);
  if ('error' in parsed) {
    process.stderr.write(`agent: ${parsed.error}\n`);
    turn.say(parsed.error);
    return 'error';
  }
  const { message, history, model, agent } = parsed.request;
  if (model !== null) return answerWithModel({ message, history, model, agent }, turn, gateway);
  return answerOffline(message, turn);
}

async function main(): Promise<void> {
  process.stdout.on('error', () => process.exit(0)); // the reader went away: nothing left to do
  gateway.listen();
  // stdin carries request lines and, during a run, the runner's model responses: one reader
  // routes both, so responses arrive while a run (waiting on them) is in progress.
  const queue: InputLine[] = [];
  const waiting: { wake: () => void } = { wake: () => undefined };
  let ended = false;
  void (async () => {
    for await (const input of inputLines(process.stdin as AsyncIterable<Buffer>)) {
      if ('line' in input && gateway.route(input.line)) continue;
      queue.push(input);
      waiting.wake();
    }
  })()
    .catch((err: unknown) => process.stderr.write(`agent: reading stdin: ${describeError(err)}\n`))
    .finally(() => {
      ended = true;
      waiting.wake();
    });
  for (;;) {
    while (queue.length === 0 && !ended) await new Promise<void>((resolve) => (waiting.wake = resolve));
    waiting.wake = () => undefined;
    const input = queue.shift();
    if (!input) return;
    if ('line' in input && input.line.trim() === '') continue;
    const turn = new Turn(emit);
    gateway.begin();
    let status: TurnStatus | null = null;
    try {
      status = await answer(input, turn);
    } catch (err) {
      process.stderr.write(`agent: unexpected failure: ${describeError(err)}\n`);
    } finally {
      // Nothing may be written after the result (the runner stops reading): the gateway ends first.
      gateway.end();
    }
    if (status === null) turn.failUnexpectedly();
    else turn.finish(status);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`agent: ${describeError(err)}\n`);
    process.exit(1);
  },
);
