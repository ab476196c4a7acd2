/**
 * Distinguished names (RFC 5280 section 4.1.2.4) rendered as text for `svid inspect`, in
 * openssl's one-line order ("C=US, O=SPIRE, CN=x"). Display only: chain building compares the
 * DER bytes of names, never this text.
 */
import { DerError, TAG, children, readOid, readTlv, value, type Tlv } from "./der.ts";

const SHORT: Readonly<Record<string, string>> = {
  "2.5.4.3": "CN",
  "2.5.4.5": "serialNumber",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.45": "x500UniqueIdentifier",
  "0.9.2342.19200300.100.1.25": "DC",
  "1.2.840.113549.1.9.1": "emailAddress",
};

/** The text of a directory string value; non-printable characters escaped as \uXXXX. */
function stringValue(bytes: Uint8Array, t: Tlv): string {
  const v = value(bytes, t);
  let s: string;
  switch (t.tag) {
    case TAG.UTF8_STRING:
      s = new TextDecoder("utf-8", { fatal: false }).decode(v);
      break;
    case TAG.BMP_STRING: {
      if (v.length % 2 !== 0) throw new DerError("bad bmp string");
      s = "";
      for (let i = 0; i < v.length; i += 2) s += String.fromCharCode((v[i]! << 8) | v[i + 1]!);
      break;
    }
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case TAG.T61_STRING:
      s = String.fromCharCode(...v);
      break;
    default:
      return `#${Array.from(bytes.subarray(t.start, t.end), (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Renders a Name given its DER encoding (the SEQUENCE). Throws DerError on malformed input. */
export function nameToText(der: Uint8Array): string {
  const seq = readTlv(der, 0);
  if (seq.tag !== TAG.SEQUENCE || seq.end !== der.length) throw new DerError("bad name");
  const parts: string[] = [];
  for (const rdn of children(der, seq)) {
    if (rdn.tag !== TAG.SET) throw new DerError("bad relative distinguished name");
    const atvs: string[] = [];
    for (const atv of children(der, rdn)) {
      if (atv.tag !== TAG.SEQUENCE) throw new DerError("bad attribute");
      const [type, val, extra] = children(der, atv);
      if (type === undefined || val === undefined || extra !== undefined) throw new DerError("bad attribute");
      const oid = readOid(der, type);
      atvs.push(`${SHORT[oid] ?? oid}=${stringValue(der, val)}`);
    }
    if (atvs.length === 0) throw new DerError("empty relative distinguished name");
    parts.push(atvs.join(" + "));
  }
  return parts.join(", ");
}
