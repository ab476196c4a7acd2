/**
 * The collector's URL and the request headers, checked once when the exporter is made.
 *
 * Accepted: an absolute http or https URL, used as given (the OTLP/HTTP logs path is
 * conventionally `/v1/logs`; nothing is appended). Refused (`export_bad_url`): text that is not a
 * URL, another scheme, a user name or password (credentials belong in a header, which no message
 * repeats). Refused (`export_bad_option`): a header name that is not an HTTP token, a value with
 * CR, LF or NUL, or a header the exporter sets itself (content-type, content-length).
 */
import { ExportError } from "./errors.ts";

export interface Endpoint {
  readonly url: string;
  /** Scheme, host, port and path: what messages may show. */
  readonly shown: string;
}

export function parseEndpoint(text: string): Endpoint {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new ExportError("export_bad_url", "audit: export: the collector url is not an absolute url");
  }
  if (u.username !== "" || u.password !== "") {
    throw new ExportError("export_bad_url", `audit: export: the collector url for ${u.host} carries a user name or password: put credentials in a header`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new ExportError("export_bad_url", `audit: export: the collector url scheme ${JSON.stringify(u.protocol)} is not http: or https:`);
  }
  return { url: u.href, shown: `${u.origin}${u.pathname}` };
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const OWN = ["content-type", "content-length"];

export function checkHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name)) throw new ExportError("export_bad_option", `audit: export: header name ${JSON.stringify(name.slice(0, 40))} is not an HTTP token`);
    if (OWN.includes(name.toLowerCase())) throw new ExportError("export_bad_option", `audit: export: header ${name} is set by the exporter`);
    if (typeof value !== "string" || /[\r\n\0]/.test(value)) throw new ExportError("export_bad_option", `audit: export: the value of header ${name} is not a string without CR, LF or NUL`);
  }
  return { ...headers };
}
