import { onCall, type CallableRequest, type CallableResponse } from 'firebase-functions/v2/https';
import { deps } from '../deps.ts';
import { NotSignedInError } from '../errors.ts';
import { ENFORCE_APP_CHECK, MAX_MESSAGE_CHARS } from '../params.ts';
import {
  conversationIdSchema,
  emptySchema,
  getConversationSchema,
  listConversationsSchema,
  parseInput,
  sendMessageSchema,
} from '../conversations/schemas.ts';
import { toHttpsError } from './translate.ts';

const options = { enforceAppCheck: ENFORCE_APP_CHECK, memory: '256MiB' as const, timeoutSeconds: 120 };

/** A chunk streamed to clients that call with `.stream()`. */
export interface TextChunk {
  type: 'text';
  delta: string;
}

/** Wraps a handler: requires sign-in, translates every error once. */
function callable<T>(
  name: string,
  handler: (uid: string, data: unknown, stream?: (delta: string) => void) => Promise<T>,
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
        return await handler(uid, request.data, stream);
      } catch (err) {
        throw toHttpsError(err, name);
      }
    },
  );
}

export const sendMessage = callable('sendMessage', (uid, data, stream) => {
  const input = parseInput(sendMessageSchema(MAX_MESSAGE_CHARS.value()), data);
  return deps().service.sendMessage(uid, input, stream);
});

export const listConversations = callable('listConversations', (uid, data) => {
  const input = parseInput(listConversationsSchema, data);
  return deps().service.listConversations(uid, input.limit, input.cursor);
});

export const getConversation = callable('getConversation', (uid, data) => {
  const input = parseInput(getConversationSchema, data);
  return deps().service.getConversation(uid, input.conversationId, input.limit, input.cursor);
});

export const deleteConversation = callable('deleteConversation', async (uid, data) => {
  const input = parseInput(conversationIdSchema, data);
  await deps().service.deleteConversation(uid, input.conversationId);
  return { deleted: true };
});

export const listAgents = callable('listAgents', (uid, data) => {
  parseInput(emptySchema, data);
  return deps().service.listAgents(uid);
});

export const warmSandbox = callable('warmSandbox', (uid, data) => {
  parseInput(emptySchema, data);
  return deps().service.warmSandbox(uid);
});

export const deleteWorkspace = callable('deleteWorkspace', (uid, data) => {
  parseInput(emptySchema, data);
  return deps().service.deleteWorkspace(uid);
});
