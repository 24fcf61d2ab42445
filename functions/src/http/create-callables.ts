import {
  FUNCTION_TIMEOUT_S,
  agentIdInputSchema,
  conversationIdInputSchema,
  createAgentInputSchema,
  filePathInputSchema,
  uploadFileInputSchema,
  updateAgentInputSchema,
  emptyInputSchema,
  getConversationInputSchema,
  listConversationsInputSchema,
  sendMessageInputSchema,
  type TextChunk,
} from '@agent-platform/contract';
import { onCall, type CallableRequest, type CallableResponse } from 'firebase-functions/v2/https';
import type { FunctionsConfig } from '../config.ts';
import { config, deps } from '../deps.ts';
import { NotSignedInError } from '../errors.ts';
import { ENFORCE_APP_CHECK } from '../params.ts';
import { parseInput } from './parse-input.ts';
import { clientIp } from './client-ip.ts';
import type { CallOrigin } from '../send/message-sender.ts';
import { toHttpsError } from './translate.ts';

// The timeout is the budget's outermost function layer (contract/src/timeouts.ts).
const options = {
  enforceAppCheck: ENFORCE_APP_CHECK,
  memory: '256MiB' as const,
  timeoutSeconds: FUNCTION_TIMEOUT_S,
};

/** Wraps a handler: requires sign-in, translates every error once. */
function callable<T>(
  name: string,
  handler: (
    uid: string,
    data: unknown,
    stream: ((delta: string) => void) | undefined,
    origin: CallOrigin,
  ) => Promise<T>,
) {
  return onCall(
    options,
    async (request: CallableRequest<unknown>, response?: CallableResponse<TextChunk>) => {
      try {
        const uid = request.auth?.uid;
        if (!uid) throw new NotSignedInError();
        // Clients that call with .stream() get the agent's text as it is produced; the stored
        // result and the final return value are the same either way.
        const stream =
          request.acceptsStreaming && response
            ? (delta: string) => void response.sendChunk({ type: 'text', delta })
            : undefined;
        return await handler(uid, request.data, stream, {
          ip: clientIp(request.rawRequest),
          // A token without its firebase claims (a test's) counts as signed in for real.
          anonymous: request.auth?.token.firebase?.sign_in_provider === 'anonymous',
        });
      } catch (err) {
        throw toHttpsError(err, name);
      }
    },
  );
}

/** A callable whose input is an empty object (anything else is invalid-argument). */
function withoutInput<T>(name: string, handler: (uid: string) => Promise<T>) {
  return callable(name, (uid, data) => {
    parseInput(emptyInputSchema, data);
    return handler(uid);
  });
}

/**
 * The callables, reading their settings from `cfg` (the instance's validated configuration;
 * tests pass their own instead of changing the process's environment).
 */
export function createCallables(cfg: () => FunctionsConfig = config) {
  return {
    sendMessage: callable('sendMessage', (uid, data, stream, origin) => {
      const input = parseInput(sendMessageInputSchema(cfg().maxMessageChars), data);
      return deps().send.sendMessage(uid, input, stream, origin);
    }),
    listConversations: callable('listConversations', (uid, data) => {
      const input = parseInput(listConversationsInputSchema, data);
      return deps().conversations.listConversations(uid, input.limit, input.cursor);
    }),
    getConversation: callable('getConversation', (uid, data) => {
      const input = parseInput(getConversationInputSchema, data);
      return deps().conversations.getConversation(uid, input.conversationId, input.limit, input.cursor);
    }),
    deleteConversation: callable('deleteConversation', async (uid, data) => {
      const input = parseInput(conversationIdInputSchema, data);
      await deps().conversations.deleteConversation(uid, input.conversationId);
      return { deleted: true };
    }),
    listAgents: withoutInput('listAgents', (uid) => deps().agents.listAgents(uid)),
    createAgent: callable('createAgent', (uid, data) =>
      deps().agents.createAgent(uid, parseInput(createAgentInputSchema, data)),
    ),
    updateAgent: callable('updateAgent', (uid, data) =>
      deps().agents.updateAgent(uid, parseInput(updateAgentInputSchema, data)),
    ),
    deleteAgent: callable('deleteAgent', (uid, data) =>
      deps().agents.deleteAgent(uid, parseInput(agentIdInputSchema, data).agentId),
    ),
    listModels: withoutInput('listModels', () => deps().agents.listModels()),
    getUsage: withoutInput('getUsage', (uid) => deps().agents.getUsage(uid)),
    listFiles: withoutInput('listFiles', (uid) => deps().files.list(uid)),
    downloadFile: callable('downloadFile', (uid, data) =>
      deps().files.download(uid, parseInput(filePathInputSchema, data).path),
    ),
    uploadFile: callable('uploadFile', (uid, data) => {
      const input = parseInput(uploadFileInputSchema, data);
      return deps().files.write(uid, input.path, Buffer.from(input.contentBase64, 'base64'));
    }),
    deleteFile: callable('deleteFile', (uid, data) =>
      deps().files.remove(uid, parseInput(filePathInputSchema, data).path),
    ),
    warmSandbox: withoutInput('warmSandbox', (uid) => deps().workspaces.warmSandbox(uid)),
    deleteWorkspace: withoutInput('deleteWorkspace', (uid) => deps().workspaces.deleteWorkspace(uid)),
  };
}
