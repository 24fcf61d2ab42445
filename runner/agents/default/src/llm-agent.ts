/**
 * The reference LLM agent, used when the platform has a model provider (the request's `model` is
 * a name): a tool loop over the model gateway. Each step streams one chat completion; its text
 * deltas go to the user as they come, its tool calls run here, in the sandbox (llm-tools.ts), and
 * their results go back to the model; AGENT_MAX_STEPS model calls end a runaway loop.
 */
import { AGENT_MAX_STEPS, AGENT_TOOLS, type AgentRequest, type AgentTool } from '@agent-platform/contract';
import { streamCompletion, type ChatMessage, type ToolCall } from './chat-completion.ts';
import { callTool, clipToolResult, toolDefinitions } from './llm-tools.ts';
import type { ModelGateway } from './model-gateway.ts';
import type { Turn, TurnStatus } from './turn.ts';

export type LlmRequest = Pick<AgentRequest, 'message' | 'history' | 'agent'> & { model: string };

const DEFAULT_INSTRUCTIONS = [
  'You are an agent of the agent platform. You work in a sandbox with no network access;',
  'files in /workspace persist between the messages of this user.',
  'Use run_code to compute, inspect files and check your answers; answer concisely.',
].join(' ');

/** The conversation the first model call sees: system prompt, history, then the message. */
function firstMessages(req: LlmRequest): ChatMessage[] {
  const system = req.agent
    ? `You are ${req.agent.name}. ${req.agent.instructions}\n\n${DEFAULT_INSTRUCTIONS}`
    : DEFAULT_INSTRUCTIONS;
  return [
    { role: 'system', content: system },
    ...req.history.map((h): ChatMessage =>
      h.role === 'user' ? { role: 'user', content: h.text } : { role: 'assistant', content: h.text },
    ),
    { role: 'user', content: req.message },
  ];
}

/** The tool loop. Never throws: a failed model call ends the run with its reason in the reply. */
export async function answerWithModel(
  req: LlmRequest,
  turn: Turn,
  gateway: ModelGateway,
): Promise<TurnStatus> {
  const allowed = new Set<AgentTool>(req.agent ? req.agent.tools : AGENT_TOOLS);
  const tools = toolDefinitions(allowed);
  const messages = firstMessages(req);
  let afterTools = false;
  const onText = (delta: string) => {
    // The model's words after tool output start a paragraph of their own.
    turn.say(afterTools ? `\n\n${delta}` : delta);
    afterTools = false;
  };
  for (let step = 1; step <= AGENT_MAX_STEPS; step++) {
    let answer: { text: string; toolCalls: ToolCall[] };
    try {
      answer = await streamCompletion(
        gateway,
        { model: req.model, messages, stream: true, ...(tools.length > 0 ? { tools } : {}) },
        onText,
      );
    } catch (err) {
      turn.sayParagraph(err instanceof Error ? err.message : String(err));
      return 'error';
    }
    if (answer.toolCalls.length === 0) return 'ok';
    // A call the model sent without an id gets one: its result must name it.
    const calls = answer.toolCalls.map((c, i) => ({ ...c, id: c.id || `call_${step}_${i}` }));
    messages.push({
      role: 'assistant',
      content: answer.text || null,
      tool_calls: calls.map((c) => ({
        id: c.id,
        type: 'function',
        function: { name: c.name, arguments: c.arguments },
      })),
    });
    for (const call of calls) {
      const result = await callTool(call, allowed, turn);
      messages.push({ role: 'tool', tool_call_id: call.id, content: clipToolResult(result) });
    }
    afterTools = true;
  }
  turn.sayParagraph(`[stopped: the step limit of ${AGENT_MAX_STEPS} model calls was reached]`);
  return 'ok';
}
