/**
 * Every size limit that crosses a boundary, declared once. The runner, the functions, the web
 * client and the default agent read them from here: changing a limit is one line.
 * Limits that an operator may lower per deployment (MAX_MESSAGE_CHARS, ...) have their default and
 * their hard bound here; the config tables of the runner and the functions check against them.
 */
const KiB = 1024;
const MiB = 1024 * KiB;

/** Ids of users, conversations, messages and agents: Firebase uids and Firestore ids fit. */
export const ID_MAX_CHARS = 128;
/** Idempotency keys chosen by clients. */
export const REQUEST_ID_MIN_CHARS = 8;
export const REQUEST_ID_MAX_CHARS = 128;
/** Run ids (UUIDs today). */
export const RUN_ID_MAX_CHARS = 100;

/** Hard bound on one message, in characters; the runner's and the functions' caps stay below. */
export const MESSAGE_MAX_CHARS = 1_000_000;
/** Default cap of the functions' MAX_MESSAGE_CHARS (what a client may send). */
export const FUNCTIONS_MESSAGE_CHARS_DEFAULT = 8000;
/** Highest MAX_MESSAGE_CHARS of the functions: a message is stored in one Firestore document. */
export const FUNCTIONS_MESSAGE_CHARS_MAX = 100_000;
/** Default cap of the runner's MAX_MESSAGE_CHARS (what a caller of the runner may send). */
export const RUNNER_MESSAGE_CHARS_DEFAULT = 32_000;

/** History entries a run request may carry. */
export const HISTORY_MAX_ENTRIES = 100;
/** Characters of one history entry. */
export const HISTORY_ENTRY_MAX_CHARS = 100_000;
/** Recent messages the functions send as history with each run. */
export const HISTORY_MESSAGES_SENT = 20;
/**
 * Bytes of JSON the history of one run request may take. With the longest message it stays well
 * inside the runner's body limit (RUNNER_BODY_BYTES_DEFAULT): one long reply must not make every
 * later message of its conversation too large to send.
 */
export const HISTORY_MAX_JSON_BYTES = 128 * KiB;

/** Characters of a reply (the result's text), and of one streamed text delta. */
export const REPLY_MAX_CHARS = 1_000_000;
/**
 * UTF-8 bytes of a reply's text as stored (in the reply message and in its request record, each
 * a Firestore document of at most 1 MiB); a longer reply is stored truncated, with a note.
 */
export const STORED_TEXT_MAX_BYTES = 512 * KiB;

/** Bytes of JSON of one UI component. */
export const COMPONENT_MAX_JSON_BYTES = 64 * KiB;
export const COMPONENT_TYPE_MAX_CHARS = 64;
/** Rows, columns and buttons of the component vocabulary (card, table, buttons). */
export const TABLE_MAX_ROWS = 50;
export const TABLE_MAX_COLUMNS = 10;
export const BUTTONS_MAX = 10;

/** An agent that an agent created. */
export const AGENT_NAME_MAX_CHARS = 100;
export const AGENT_DESCRIPTION_MAX_CHARS = 1000;
export const AGENT_INSTRUCTIONS_MAX_CHARS = 20_000;

/** One request line the runner writes to an agent's stdin. */
export const AGENT_REQUEST_MAX_BYTES = 32 * MiB;

/** warmSandbox and deleteWorkspace calls per user per minute (each costs a container or a volume). */
export const SANDBOX_OPS_PER_MINUTE = 10;

/** Pages of the list callables. */
export const PAGE_MAX = 100;
export const CONVERSATIONS_PAGE_DEFAULT = 20;
export const MESSAGES_PAGE_DEFAULT = 50;
export const CURSOR_MAX_CHARS = 200;
/** Agents one user may have (created by hand or by runs); the list shows them all. */
export const AGENTS_LIST_MAX = 100;

/** Stored previews and titles of conversations. */
export const PREVIEW_MAX_CHARS = 140;
export const TITLE_MAX_CHARS = 80;

/** Largest JSON body the REST API accepts. */
export const REST_BODY_MAX_BYTES = 64 * KiB;
/** Default of the runner's MAX_BODY_BYTES (a run request with history). */
export const RUNNER_BODY_BYTES_DEFAULT = 256 * KiB;

/** Default of the runner's OUTPUT_LIMIT_BYTES: the agent's stdout per run. */
export const OUTPUT_LIMIT_BYTES_DEFAULT = 4 * MiB;

/** Workspace files through the files API (issue 11): a path, one file, a listing. */
export const FILE_PATH_MAX_CHARS = 1024;
export const FILE_MAX_BYTES = 4 * MiB;
export const FILES_LIST_MAX = 1000;
/** listFiles, downloadFile, uploadFile and deleteFile calls per user per minute. */
export const FILE_OPS_PER_MINUTE = 60;

/** Highest token budget of one run or one user's day (input plus output tokens). */
export const TOKEN_BUDGET_MAX = 1_000_000_000;
/** Default of the runner's MODEL_TOKENS_PER_RUN and the functions' MODEL_TOKENS_PER_RUN. */
export const TOKENS_PER_RUN_DEFAULT = 100_000;
/** Default of the functions' MODEL_TOKENS_PER_USER_PER_DAY. */
export const TOKENS_PER_USER_PER_DAY_DEFAULT = 1_000_000;
