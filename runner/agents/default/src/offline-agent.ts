/**
 * The offline agent, used when the platform has no model provider (the request's `model` is
 * null): deterministic, so the platform can be tested end to end without a model. It answers
 * `Test response: <message>`, runs the message's code blocks, and acts on its `/create-agent` and
 * `/component` lines (message-syntax.ts, README.md), through the same tools as the LLM agent.
 */
import { parseComponent, parseCreateAgent, scanMessage } from './message-syntax.ts';
import { createAgent, runCode, showComponent } from './tools.ts';
import type { Turn, TurnStatus } from './turn.ts';

export async function answerOffline(message: string, turn: Turn): Promise<TurnStatus> {
  turn.say(`Test response: ${message}`);
  const { blocks, prose } = scanMessage(message);
  // In order, each to its end: a block may use what an earlier one left in /workspace.
  for (const block of blocks) await runCode(turn, block.lang, block.code);

  const created = parseCreateAgent(prose);
  if (created) {
    const outcome = 'error' in created ? created : createAgent(turn, created.fields);
    if ('error' in outcome) turn.say(`\n\nCould not create agent: ${outcome.error}.`);
  }

  const shown = parseComponent(prose);
  if (shown && 'error' in showComponent(turn, shown.spec)) turn.say(`\n\nUnknown component "${shown.kind}"`);
  return 'ok';
}
