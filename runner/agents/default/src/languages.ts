/**
 * The one language table: which interpreter runs a language's code (read from stdin). The
 * offline agent runs code blocks by their fence tag; the LLM agent offers a model one name per
 * interpreter.
 */

/** A program that reads the code to run on its stdin. */
export interface Interpreter {
  command: string;
  args: readonly string[];
}

const SHELL: Interpreter = { command: 'sh', args: ['-s'] };
const BASH: Interpreter = { command: 'bash', args: ['-s'] };
// -u: unbuffered, so print() output and tracebacks arrive in the order they happen.
const PYTHON: Interpreter = { command: 'python3', args: ['-u', '-'] };
const NODE: Interpreter = { command: process.execPath, args: ['-'] };

const INTERPRETERS: ReadonlyMap<string, Interpreter> = new Map([
  ['sh', SHELL],
  ['shell', SHELL],
  ['bash', BASH],
  ['python', PYTHON],
  ['python3', PYTHON],
  ['py', PYTHON],
  ['js', NODE],
  ['javascript', NODE],
  ['node', NODE],
]);

/** The languages run_code offers a model (one name each, as models name them most often). */
export const MODEL_LANGUAGES = ['sh', 'python', 'js'] as const;
export type ModelLanguage = (typeof MODEL_LANGUAGES)[number];

/** The interpreter of a language name (lower case, as a fence tag or a tool argument gives it). */
export function interpreterFor(language: string): Interpreter | undefined {
  return INTERPRETERS.get(language);
}

export function isModelLanguage(language: unknown): language is ModelLanguage {
  return (MODEL_LANGUAGES as readonly unknown[]).includes(language);
}
