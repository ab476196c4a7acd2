/**
 * Reading a value for `tidegate secret set` from stdin, never from argv (other users see argv in
 * /proc). A pipe or file is read to its end (at most MAX_SECRET_BYTES plus a newline). A terminal
 * gets a prompt on stderr and is put in raw mode so the value is not echoed: Enter ends it,
 * Backspace deletes, Ctrl-U starts over, Ctrl-C (or Ctrl-D on an empty line) abandons
 * (`secret_input_aborted`); the terminal's mode is restored in every case.
 */
import { MAX_SECRET_BYTES, secretValueFromBytes } from "./value.ts";
import { SecretError } from "./errors.ts";

export type SecretInputSource = typeof process.stdin;

const aborted = (name: string, how: string) => new SecretError("secret_input_aborted", `secrets: no value for ${name} was stored (${how})`);
const tooLong = (name: string) => new SecretError("secret_bad_value", `secrets: the value of ${name} is more than ${MAX_SECRET_BYTES} bytes`);

async function readPipe(name: string, stdin: SecretInputSource): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stdin as AsyncIterable<Uint8Array | string>) {
    const bytes = typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk;
    chunks.push(bytes);
    size += bytes.length;
    if (size > MAX_SECRET_BYTES + 2) throw tooLong(name);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Raw mode is on before the prompt shows, so nothing typed after it is ever echoed. */
function readHidden(name: string, stdin: SecretInputSource, prompt: (text: string) => void): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    let typed: number[] = [];
    const done = (result: Uint8Array | SecretError) => {
      stdin.off("data", onData);
      stdin.off("end", onEnd);
      stdin.setRawMode(false);
      stdin.pause();
      if (result instanceof SecretError) reject(result);
      else resolve(result);
    };
    const onEnd = () => done(aborted(name, "the terminal closed"));
    const onData = (chunk: Uint8Array | string) => {
      const bytes = typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk;
      for (const b of bytes) {
        if (b === 0x0d || b === 0x0a) return done(new Uint8Array(typed));
        if (b === 0x03) return done(aborted(name, "Ctrl-C"));
        if (b === 0x04) {
          if (typed.length === 0) return done(aborted(name, "Ctrl-D"));
          continue;
        }
        if (b === 0x7f || b === 0x08) typed.pop();
        else if (b === 0x15) typed = [];
        else typed.push(b);
        if (typed.length > MAX_SECRET_BYTES) return done(tooLong(name));
      }
    };
    stdin.setRawMode(true);
    prompt(`value of ${name} (not shown; Enter ends it): `);
    stdin.on("data", onData);
    stdin.on("end", onEnd);
    stdin.resume();
  });
}

/** The value the operator gives on stdin; `prompt` writes to stderr (terminal only). */
export async function readSecretInput(name: string, prompt: (text: string) => void, stdin: SecretInputSource = process.stdin): Promise<string> {
  if (stdin.isTTY && typeof stdin.setRawMode === "function") {
    try {
      return secretValueFromBytes(name, await readHidden(name, stdin, prompt));
    } finally {
      prompt("\n");
    }
  }
  return secretValueFromBytes(name, await readPipe(name, stdin));
}
