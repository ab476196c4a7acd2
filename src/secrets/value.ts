/**
 * What a secret's name and value may be.
 *
 * Names are those of `${secret:NAME}` references (src/policy/inject.ts): 1-64 of [A-Za-z0-9_.-],
 * starting with a letter, digit or '_'. A rejected name is not repeated in the error: an operator
 * who typed the value where the name goes must not see it echoed to a terminal or a log.
 *
 * Values go into HTTP header fields (DESIGN.md section 7), so they are 1 to 16384 bytes of
 * printable ASCII, space and tab (RFC 9110 section 5.5 field-value without obs-text). Rejected:
 * empty values, CR, LF, NUL and every other control character (header splitting), and bytes
 * above 0x7e (no encoding question between the store and the wire). Input read from stdin or a
 * file loses one trailing LF or CRLF, once, before these checks.
 */
import { parseSecretName } from "../policy/inject.ts";
import { SecretError } from "./errors.ts";

export const MAX_SECRET_BYTES = 16384;

export function checkSecretName(name: string): string {
  try {
    return parseSecretName(name);
  } catch {
    throw new SecretError(
      "secret_bad_name",
      `secrets: a secret name is 1-64 of letters, digits, '_', '.', '-', starting with a letter, digit or '_' (the ${name.length}-character name given is not repeated, in case it was a value)`,
    );
  }
}

function badValue(name: string, why: string): SecretError {
  return new SecretError("secret_bad_value", `secrets: the value of ${name} ${why}`);
}

/** `value` when it may be stored under `name` (already checked); throws secret_bad_value. */
export function checkSecretValue(name: string, value: string): string {
  if (value.length === 0) throw badValue(name, "is empty");
  if (value.length > MAX_SECRET_BYTES) throw badValue(name, `is ${value.length} characters, more than ${MAX_SECRET_BYTES}`);
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c > 0x7f) throw badValue(name, `has a character that is not ASCII at offset ${i}: values go into HTTP headers`);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw badValue(name, `has a control character at offset ${i}: values go into HTTP headers`);
  }
  return value;
}

/** The value in `bytes` (stdin or a file) with one trailing LF or CRLF removed; checked. */
export function secretValueFromBytes(name: string, bytes: Uint8Array): string {
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0a) end -= end > 1 && bytes[end - 2] === 0x0d ? 2 : 1;
  if (end > MAX_SECRET_BYTES) throw badValue(name, `is ${end} bytes, more than ${MAX_SECRET_BYTES}`);
  let text = "";
  for (let i = 0; i < end; i++) {
    const b = bytes[i]!;
    if (b > 0x7f) throw badValue(name, `has a byte that is not ASCII at offset ${i}: values go into HTTP headers`);
    text += String.fromCharCode(b);
  }
  return checkSecretValue(name, text);
}
