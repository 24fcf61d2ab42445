/** Cloud Functions (v2) of the agent platform. */
import './global-options.ts';
export {
  sendMessage,
  listConversations,
  getConversation,
  deleteConversation,
  listAgents,
  warmSandbox,
  deleteWorkspace,
} from './http/callables.ts';
export { api } from './http/api.ts';
