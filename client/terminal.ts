/**
 * The terminal a person reads while a runbook runs: one question at a time, and step lines held back while a
 * question is open (printed right after it), so that prompts and steps do not interleave. A question can be
 * withdrawn (an AbortSignal) when the runbook no longer needs the answer, e.g. an item signed elsewhere.
 */
import { createInterface } from 'node:readline/promises';

let openQuestions = 0;
const held: string[] = [];

/** A person at a terminal can answer (stdin and stderr are terminals). */
export const interactive = () => Boolean(process.stdin.isTTY && process.stderr.isTTY);

/** Write progress text to stderr, or hold it until the open question is answered. */
export function note(text: string): void {
  if (openQuestions > 0) held.push(text);
  else process.stderr.write(text);
}

function flush(): void {
  if (openQuestions > 0) return;
  while (held.length) process.stderr.write(held.shift()!);
}

export interface AskOptions {
  /** Withdraw the question: `ask` then returns undefined. */
  signal?: AbortSignal;
  /** Ask again on an empty answer, saying this. */
  required?: string;
}

/** Ask one question on stderr; the trimmed answer, or undefined when withdrawn. */
export async function ask(question: string, opts: AskOptions = {}): Promise<string> {
  const answer = await askOrWithdrawn(question, opts);
  return answer ?? '';
}

export async function askOrWithdrawn(question: string, opts: AskOptions = {}): Promise<string | undefined> {
  openQuestions++;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    for (;;) {
      let a: string;
      try {
        a = (await rl.question(question, opts.signal ? { signal: opts.signal } : {})).trim();
      } catch (err) {
        if ((err as Error).name === 'AbortError' || opts.signal?.aborted) {
          process.stderr.write('\n');
          return undefined;
        }
        throw err;
      }
      if (a || !opts.required) return a;
      process.stderr.write(`    ${opts.required}\n`);
    }
  } finally {
    rl.close();
    openQuestions--;
    flush();
  }
}
