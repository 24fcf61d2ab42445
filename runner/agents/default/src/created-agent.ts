/**
 * The one check of an agent that a run creates (a `/create-agent` line, a create_agent call),
 * against the contract's bounds (createdAgentSchema, which the functions apply again).
 */
import {
  AGENT_DESCRIPTION_MAX_CHARS,
  AGENT_INSTRUCTIONS_MAX_CHARS,
  AGENT_NAME_MAX_CHARS,
  type CreatedAgent,
} from '@agent-platform/contract';

/**
 * The agent to create, or why not: the name (trimmed) must be 1-AGENT_NAME_MAX_CHARS characters
 * and the description at most AGENT_DESCRIPTION_MAX_CHARS; instructions past their bound are cut
 * (they are long prose, and the start of them still makes the agent).
 */
export function checkCreatedAgent(fields: CreatedAgent): { agent: CreatedAgent } | { error: string } {
  const name = fields.name.trim();
  if (name.length < 1 || name.length > AGENT_NAME_MAX_CHARS) {
    return { error: `the name must be 1-${AGENT_NAME_MAX_CHARS} characters` };
  }
  if (fields.description.length > AGENT_DESCRIPTION_MAX_CHARS) {
    return { error: `the description must be at most ${AGENT_DESCRIPTION_MAX_CHARS} characters` };
  }
  const instructions = fields.instructions.slice(0, AGENT_INSTRUCTIONS_MAX_CHARS);
  return { agent: { name, description: fields.description, instructions } };
}
