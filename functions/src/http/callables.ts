import { createCallables } from './create-callables.ts';

/** The deployed callables (index.ts exports each), on the instance's configuration. */
export const {
  sendMessage,
  listConversations,
  getConversation,
  deleteConversation,
  listAgents,
  createAgent,
  updateAgent,
  deleteAgent,
  listModels,
  getUsage,
  listFiles,
  downloadFile,
  uploadFile,
  deleteFile,
  warmSandbox,
  deleteWorkspace,
} = createCallables();
