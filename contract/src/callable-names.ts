/**
 * Names of the callables, so senders and listeners cannot drift apart. Zod-free, so the web
 * client's bundle does not take in zod (about 90 kB) for them.
 */
export const CALLABLES = {
  sendMessage: 'sendMessage',
  listConversations: 'listConversations',
  getConversation: 'getConversation',
  deleteConversation: 'deleteConversation',
  listAgents: 'listAgents',
  createAgent: 'createAgent',
  updateAgent: 'updateAgent',
  deleteAgent: 'deleteAgent',
  listModels: 'listModels',
  getUsage: 'getUsage',
  listFiles: 'listFiles',
  downloadFile: 'downloadFile',
  uploadFile: 'uploadFile',
  deleteFile: 'deleteFile',
  warmSandbox: 'warmSandbox',
  deleteWorkspace: 'deleteWorkspace',
} as const;
